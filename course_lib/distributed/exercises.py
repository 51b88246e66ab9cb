"""Exercises for chapter 04 (DDP and ring all-reduce), auto-checked with :class:`~course_lib.exercises.Exercise`.

* :data:`reduce_scatter_schedule` — which chunk a rank sends at each reduce-scatter step.
* :data:`ring_bytes` — the exact bytes a rank sends in a ring all-reduce, uneven chunks included.
* :data:`bucket_assignment` — DDP's buckets: reverse parameter order, closed at the cap.
* :data:`gradient_averaging_hook` — the body of a gradient-averaging communication hook.

All run in one process: the hook's all-reduce is simulated (:class:`SimulatedAllReduce`).
Notebook: ``04_ddp`` ("Exercises").
Tests: ``tests/test_distributed_exercises.py``.
"""

from __future__ import annotations

import random

import torch

from course_lib.distributed.ddp import assign_buckets
from course_lib.exercises import Exercise, randn


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

EXERCISES = (reduce_scatter_schedule, ring_bytes, bucket_assignment, gradient_averaging_hook)
