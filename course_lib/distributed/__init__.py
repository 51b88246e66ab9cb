"""Distributed data parallel and ring all-reduce, on real processes.

Data-parallel training runs one process per device, each with a full model replica and a
shard of every batch; after backward the gradients are averaged with an **all-reduce**, so
every replica takes the same step. This package builds the pieces and runs them on real
processes talking through ``torch.distributed`` (gloo on CPU, NCCL on GPUs):

* :func:`ring_all_reduce` — reduce-scatter + all-gather over send/recv (:mod:`.ring`), and
  :func:`naive_all_reduce` — everything through rank 0 (:mod:`.naive`); both return the
  :class:`Traffic` they caused, to compare with :func:`ring_bytes_per_rank` /
  :func:`naive_bytes_per_rank`.
* :func:`ring_time` / :func:`fit_alpha_beta` — the α-β cost model of the ring, fitted to measured
  timings (:mod:`.cost_model`).
* :class:`SimpleDDP` — broadcast, gradient hooks, reverse-order buckets, async all-reduce
  overlapping backward, averaging, ``find_unused_parameters`` (:mod:`.ddp`).
* :func:`launch` — start N worker processes from a notebook and collect their results; faults
  surface as :class:`WorkerError` naming the rank (:mod:`.launcher`). :func:`run_training` and
  ``python -m course_lib.distributed.train`` run unchanged under ``torchrun`` (:mod:`.training`, :mod:`.train`).
* :func:`ring_state` / :func:`ring_view` / :func:`ring_widget` — the ring stepper (:mod:`.ring_view`).
* :mod:`.experiment` — the notebook's worker functions (``course_lib.distributed.experiment.<name>``,
  not re-exported); :mod:`.exercises` — the exercises.

Limitations: one machine from :func:`launch` (use torchrun for several); CPU processes share
the machine's cores, so timings on a laptop show the algorithms' shape, not a cluster's speed.

Notebook: ``notebooks/04_ddp.ipynb``. Tests: ``tests/test_distributed.py``,
``tests/test_distributed_exercises.py``, ``tests/test_distributed_cost_model.py``,
``tests/test_distributed_practice.py``.
"""

from course_lib.distributed.cost_model import AlphaBetaFit, fit_alpha_beta, ring_time
from course_lib.distributed.ddp import SimpleDDP, assign_buckets, overlaps_backward
from course_lib.distributed.launcher import (
    LaunchResult,
    WorkerError,
    default_backend,
    init_from_env,
    launch,
    worker_device,
)
from course_lib.distributed.naive import naive_all_reduce, naive_bytes_per_rank
from course_lib.distributed.ring import (
    chunk_bounds,
    ring_all_reduce,
    ring_bytes_per_rank,
    ring_schedule,
    ring_step,
    simulate_ring,
)
from course_lib.distributed.ring_view import ring_state, ring_view, ring_widget
from course_lib.distributed.traffic import Traffic
from course_lib.distributed.training import TrainConfig, run_training

__all__ = [
    "AlphaBetaFit", "LaunchResult", "SimpleDDP", "Traffic", "TrainConfig", "WorkerError", "assign_buckets",
    "chunk_bounds", "default_backend", "fit_alpha_beta", "init_from_env", "launch", "naive_all_reduce",
    "naive_bytes_per_rank", "overlaps_backward", "ring_all_reduce", "ring_bytes_per_rank", "ring_schedule",
    "ring_state", "ring_step", "ring_time", "ring_view", "ring_widget", "run_training", "simulate_ring",
    "worker_device",
]
