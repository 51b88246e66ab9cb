"""Exercises for chapter 04 (DDP and ring all-reduce), auto-checked with :class:`~course_lib.exercises.Exercise`.

* :data:`reduce_scatter_schedule` — which chunk a rank sends at each reduce-scatter step.
* :data:`ring_bytes` — the exact bytes a rank sends in a ring all-reduce, uneven chunks included.
* :data:`bucket_assignment` — DDP's buckets: reverse parameter order, closed at the cap.
* :data:`gradient_averaging_hook` — the body of a gradient-averaging communication hook.
* :data:`ring_step` — one step of the ring (reduce-scatter or all-gather), checked on real
  processes inside the library's :func:`~course_lib.distributed.ring_all_reduce`.

All but the last run in one process: the hook's all-reduce is simulated (:class:`SimulatedAllReduce`).
Notebook: ``04_ddp`` ("Exercises").
Tests: ``tests/test_distributed_exercises.py``.
"""

from __future__ import annotations

import inspect
import random
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from course_lib.distributed.ddp import assign_buckets
from course_lib.exercises import Exercise, Result, randn


def _reduce_scatter_schedule(world_size: int, rank: int) -> list[int]:
    # At step s rank r sends the chunk it received (and reduced) at step s - 1: (r - s) mod N.
    return [(rank - s) % world_size for s in range(world_size - 1)]


def _schedule_case(rng: random.Random) -> dict:
    n = rng.randint(2, 8)
    return {"world_size": n, "rank": rng.randrange(n)}


reduce_scatter_schedule = Exercise(
    title="the reduce-scatter schedule",
    task="""
        Write `reduce_scatter_schedule(world_size: int, rank: int) -> list[int]`: the chunk index
        that `rank` sends to `rank + 1` at each of the N - 1 reduce-scatter steps of a ring
        all-reduce over N = world_size ranks (chunks are numbered 0..N-1; at step 0 each rank
        sends its own chunk `rank`). After the last step rank r must hold the complete sum of
        chunk (r + 1) mod N.
    """,
    reference=_reduce_scatter_schedule,
    edge_cases=[{"world_size": 1, "rank": 0}, {"world_size": 2, "rank": 1},
                {"world_size": 4, "rank": 0}, {"world_size": 8, "rank": 7}],
    random_case=_schedule_case,
    hints=["What a rank sends at step s is what it received and added at step s - 1.",
           "Rank r receives from r - 1, which sent chunk (r - 1) - (s - 1) at step s - 1.",
           "Python's % is never negative: (0 - 3) % 4 == 1."],
)


def _ring_bytes(numel: int, world_size: int, element_size: int, rank: int) -> int:
    if world_size == 1:
        return 0
    base, extra = divmod(numel, world_size)
    sizes = [base + (1 if c < extra else 0) for c in range(world_size)]  # torch.tensor_split's rule
    # Reduce-scatter sends every chunk but (rank + 1); all-gather every chunk but (rank + 2).
    return (2 * numel - sizes[(rank + 1) % world_size] - sizes[(rank + 2) % world_size]) * element_size


def _bytes_case(rng: random.Random) -> dict:
    n = rng.randint(1, 8)
    return {"numel": rng.randint(0, 5000), "world_size": n, "element_size": rng.choice([2, 4, 8]),
            "rank": rng.randrange(n)}


ring_bytes = Exercise(
    title="bytes per rank in a ring all-reduce",
    task="""
        Write `ring_bytes(numel: int, world_size: int, element_size: int, rank: int) -> int`:
        the exact number of bytes `rank` sends during a ring all-reduce of a tensor with `numel`
        elements of `element_size` bytes over N = world_size ranks. The flat tensor is split
        into N chunks like torch.tensor_split: the first numel % N chunks get one extra element.
        (When N divides numel the answer is 2 (N - 1) / N * numel * element_size.)
    """,
    reference=_ring_bytes,
    edge_cases=[{"numel": 12, "world_size": 4, "element_size": 4, "rank": 0},
                {"numel": 10, "world_size": 4, "element_size": 4, "rank": 3},
                {"numel": 3, "world_size": 8, "element_size": 2, "rank": 5},
                {"numel": 100, "world_size": 1, "element_size": 4, "rank": 0}],
    random_case=_bytes_case,
    hints=["Use the schedule: which chunks does rank r send in each phase? Which one never?",
           "Reduce-scatter: every chunk except (r + 1) mod N. All-gather: every chunk except (r + 2) mod N.",
           "Chunk c has numel // N + (1 if c < numel % N else 0) elements."],
)


def _bucket_case(rng: random.Random) -> dict:
    return {"sizes_bytes": [rng.choice([4, 40, 400, 4000]) * rng.randint(1, 9) for _ in range(rng.randint(0, 12))],
            "cap_bytes": rng.choice([1, 100, 1000, 10_000, 10**6])}


bucket_assignment = Exercise(
    title="DDP bucket assignment",
    task="""
        Write `bucket_assignment(sizes_bytes: list[int], cap_bytes: int) -> list[list[int]]`.
        `sizes_bytes[i]` is the gradient size of parameter i in module.parameters() order. Walk
        the parameters from the LAST to the first, adding each index to the current bucket;
        close the bucket as soon as its total reaches cap_bytes (>=) and start a new one. A last,
        partly filled bucket is kept. Example: sizes [40, 4, 400, 12], cap 50 -> [[3, 2], [1, 0]].
    """,
    reference=assign_buckets,  # the library function SimpleDDP uses
    edge_cases=[{"sizes_bytes": [], "cap_bytes": 100}, {"sizes_bytes": [40, 4, 400, 12], "cap_bytes": 50},
                {"sizes_bytes": [10, 10, 10], "cap_bytes": 10}, {"sizes_bytes": [10, 10, 10], "cap_bytes": 10**6}],
    random_case=_bucket_case,
    hints=["Iterate over reversed(range(len(sizes_bytes))).",
           "Keep a running total for the open bucket; reset it when you close one.",
           "Don't forget the last bucket if it is not empty."],
)


class SimulatedAllReduce:
    """``dist.all_reduce(SUM)`` for one rank, with the other ranks simulated in the same process.

    The other ranks run the same hook as this one, so whatever this rank did to its bucket before
    calling ``all_reduce`` they did to theirs: the simulation applies this rank's scaling (the
    ratio of the tensor passed in to the bucket it started from) to the others' gradients, then
    adds them. Dividing before or after the sum both give the mean; the sum is taken in the
    bucket's dtype, so in FP16 a sum above 65504 overflows as it would on real ranks. (An
    all-zero bucket shows no scaling, so the cases never start from one.)
    """

    def __init__(self, mine: torch.Tensor, others: torch.Tensor) -> None:
        self.mine = mine.clone()  # (k,) this rank's bucket as the hook received it
        self.others = others  # (N - 1, k) the other ranks' buckets as their hooks received them

    def __call__(self, tensor: torch.Tensor) -> None:
        mine = self.mine.double()
        norm = float(mine.dot(mine))
        factor = float(tensor.double().dot(mine)) / norm if norm else 1.0  # what this rank's hook applied
        for other in self.others:
            tensor.add_((other.double() * factor).to(tensor.dtype))

    def __repr__(self) -> str:
        return f"all_reduce over {len(self.others) + 1} ranks"


def _all_reduce_case(bucket: torch.Tensor, others: torch.Tensor) -> dict:
    return {"bucket": bucket, "world_size": len(others) + 1, "all_reduce": SimulatedAllReduce(bucket, others)}


def _gradient_averaging_hook(bucket: torch.Tensor, world_size: int, all_reduce) -> torch.Tensor:
    # Divide first, then sum, as PyTorch's DDP does: the sum of N gradients can overflow in FP16
    # (2 x 40000 > 65504) where the sum of N gradients / N cannot exceed the largest of them.
    bucket /= world_size
    all_reduce(bucket)  # in place: now the sum over all ranks of gradient / N, the mean
    return bucket


def _hook_case(rng: random.Random) -> dict:
    n, k = rng.randint(1, 8), rng.randint(1, 50)
    return _all_reduce_case(randn(rng, k), randn(rng, n - 1, k))


gradient_averaging_hook = Exercise(
    title="a gradient-averaging hook",
    task="""
        Write `gradient_averaging_hook(bucket: Tensor, world_size: int, all_reduce) -> Tensor`,
        the body DDP runs for a full bucket of this rank's gradients (a flat tensor).
        `all_reduce(t)` sums `t` over all ranks IN PLACE (like dist.all_reduce) and returns
        None; the other ranks run your hook too. Return the bucket holding the average gradient
        over the world_size ranks. It must also work for FP16 buckets of large gradients, where
        the sum over the ranks would exceed FP16's largest value, 65504.
    """,
    reference=_gradient_averaging_hook,
    edge_cases=[_all_reduce_case(torch.ones(3, dtype=torch.float64), torch.zeros(0, 3, dtype=torch.float64)),
                _all_reduce_case(torch.ones(3, dtype=torch.float64), torch.full((1, 3), 3.0, dtype=torch.float64)),
                _all_reduce_case(torch.full((2,), 40000.0, dtype=torch.float16),
                                 torch.full((1, 2), 40000.0, dtype=torch.float16))],
    random_case=_hook_case,
    hints=["Two lines: one division, one call.",
           "all_reduce returns None; the result is in the tensor you passed.",
           "The mean of the ranks' gradients is sum(g_r) / N = sum(g_r / N): which order can overflow in FP16?"],
)

def _ring_step(chunks: list[torch.Tensor], rank: int, world_size: int, step: int, exchange) -> None:
    n = world_size
    if step < n - 1:  # reduce-scatter: pass partial sums along, add what arrives
        s = step
        send, receive = (rank - s) % n, (rank - s - 1) % n
        chunks[receive].add_(exchange(chunks[send], chunks[receive].numel()))
    else:  # all-gather: pass complete chunks along, overwrite with what arrives
        s = step - (n - 1)
        send, receive = (rank + 1 - s) % n, (rank - s) % n
        chunks[receive].copy_(exchange(chunks[send], chunks[receive].numel()))


@dataclass
class ProcessExercise(Exercise):
    """An exercise checked on real processes: the learner's function runs inside the library."""

    world_sizes: Sequence[int] = (2, 3, 5)  # one launch per world size
    sizes: Sequence[int] = (1, 7, 97, 1000)  # tensor sizes (uneven chunks and empty ones included)

    def _judge(self, fn, seed: int) -> Result:
        from course_lib.distributed.experiment import check_ring_step
        from course_lib.distributed.launcher import WorkerError, launch

        try:  # one call in this process: a stub says "not attempted" without starting processes
            fn([torch.zeros(1), torch.zeros(1)], 0, 2, 0, lambda send, numel: torch.zeros(numel))
        except NotImplementedError:
            return Result(False, False, f"… {self.title}: not attempted yet — replace the "
                          "`raise NotImplementedError` with your code and run this cell again.")
        except Exception:  # noqa: BLE001 — judged properly on the processes below
            pass
        try:
            source = textwrap.dedent(inspect.getsource(fn))
        except (OSError, TypeError) as exc:
            return Result(False, True, f"✗ {self.title}: cannot read the source of {fn!r} ({exc}); define it with def")
        for n in self.world_sizes:
            case = {"world_size": n, "sizes": tuple(self.sizes)}
            try:
                out = launch(check_ring_step, n, (source, fn.__name__, tuple(self.sizes), seed),
                             timeout=60, show_output=False)
            except WorkerError as err:
                return Result(False, True, f"✗ {self.title}: on {n} processes, {str(err).splitlines()[0]}", case)
            for row in (row for per_rank in out.results for row in per_rank):
                if not row["max_error"] <= 1e-9 * n:
                    return Result(False, True, f"✗ {self.title}: on {n} processes, a tensor of {row['numel']} "
                                  f"elements: rank {row['rank']} differs from dist.all_reduce by "
                                  f"{row['max_error']:.3g}", {**case, "numel": row["numel"], "rank": row["rank"]})
        return Result(True, True, f"✓ {self.title}: ring_all_reduce with your step equals dist.all_reduce on "
                      f"{', '.join(map(str, self.world_sizes))} processes, sizes {', '.join(map(str, self.sizes))}.")


ring_step = ProcessExercise(
    title="one step of the ring, on real processes",
    task="""
        Write `ring_step(chunks, rank, world_size, step, exchange)`: step `step` of a ring
        all-reduce on this rank, in place. `chunks` are this rank's N = world_size chunks (views
        into its tensor; sizes may differ by one, some may be empty). `exchange(send, numel)`
        sends the tensor `send` to rank + 1 and returns the `numel` elements rank - 1 sent in the
        same step (every rank calls it once per step). Steps 0 .. N-2 are the reduce-scatter:
        at step s send chunk (rank - s) % N and ADD what arrives to chunk (rank - s - 1) % N.
        Steps N-1 .. 2N-3 are the all-gather: at its step s send chunk (rank + 1 - s) % N and
        COPY what arrives into chunk (rank - s) % N. The check runs the library's
        ring_all_reduce with your step on 2, 3 and 5 real processes and compares with
        dist.all_reduce.
    """,
    reference=_ring_step,
    hints=["Split on step < world_size - 1; in the all-gather, count s from 0 again (s = step - (N - 1)).",
           "The receiving chunk decides how many elements to ask for: exchange(chunks[send], chunks[receive].numel()).",
           "Reduce-scatter: chunks[receive].add_(...); all-gather: chunks[receive].copy_(...)."],
)

EXERCISES = (reduce_scatter_schedule, ring_bytes, bucket_assignment, gradient_averaging_hook)
