"""The chapter 04 exercises judge right answers right and wrong answers wrong."""

from __future__ import annotations

import itertools

import pytest
import torch

from course_lib.distributed import assign_buckets, ring_bytes_per_rank, ring_schedule
from course_lib.distributed.exercises import (
    EXERCISES,
    SimulatedAllReduce,
    bucket_assignment,
    gradient_averaging_hook,
    reduce_scatter_schedule,
    ring_bytes,
)


def _schedule_from_library(world_size, rank):
    return [step[rank].chunk for step in ring_schedule(world_size)[: world_size - 1]]


def _schedule_off_by_one(world_size, rank):
    return [(rank - s - 1) % world_size for s in range(world_size - 1)]


def _schedule_forward(world_size, rank):
    return [(rank + s) % world_size for s in range(world_size - 1)]


def _bytes_from_library(numel, world_size, element_size, rank):
    return ring_bytes_per_rank(numel, world_size, element_size, rank)


def _bytes_textbook(numel, world_size, element_size, rank):  # only right when N divides numel
    return 2 * (world_size - 1) * numel * element_size // world_size


def _bytes_one_phase(numel, world_size, element_size, rank):
    return _bytes_from_library(numel, world_size, element_size, rank) // 2


def _buckets_by_prefix_sums(sizes_bytes, cap_bytes):
    # Independent of assign_buckets (the reference): cut the reversed list wherever the running
    # total since the last cut reaches the cap, found with prefix sums.
    order = list(reversed(range(len(sizes_bytes))))
    prefix = list(itertools.accumulate((sizes_bytes[i] for i in order), initial=0))
    buckets, start = [], 0
    for end in range(1, len(order) + 1):
        if prefix[end] - prefix[start] >= cap_bytes or end == len(order):
            buckets.append(order[start:end])
            start = end
    return buckets


def _buckets_forward(sizes_bytes, cap_bytes):
    return [list(reversed(b)) for b in reversed(assign_buckets(sizes_bytes, cap_bytes))]


def _buckets_strict(sizes_bytes, cap_bytes):  # closes only when the cap is exceeded (>), not reached
    buckets, current, filled = [], [], 0
    for i in reversed(range(len(sizes_bytes))):
        current.append(i)
        filled += sizes_bytes[i]
        if filled > cap_bytes:
            buckets.append(current)
            current, filled = [], 0
    return buckets + ([current] if current else [])


def _hook_right(bucket, world_size, all_reduce):  # PyTorch's order: divide, then sum
    bucket.div_(world_size)
    all_reduce(bucket)
    return bucket


def _hook_sum_then_divide(bucket, world_size, all_reduce):  # the mean too, but FP16 sums overflow
    all_reduce(bucket)
    return bucket.div_(world_size)


def _hook_no_divide(bucket, world_size, all_reduce):
    all_reduce(bucket)
    return bucket


def _hook_no_all_reduce(bucket, world_size, all_reduce):
    return bucket / world_size


RIGHT_AND_WRONG = [
    (reduce_scatter_schedule, _schedule_from_library, [_schedule_off_by_one, _schedule_forward]),
    (ring_bytes, _bytes_from_library, [_bytes_textbook, _bytes_one_phase]),
    (bucket_assignment, _buckets_by_prefix_sums, [_buckets_forward, _buckets_strict]),
    (gradient_averaging_hook, _hook_right, [_hook_no_divide, _hook_no_all_reduce, _hook_sum_then_divide]),
]


@pytest.mark.parametrize("exercise, right, wrongs", RIGHT_AND_WRONG, ids=lambda v: getattr(v, "title", ""))
def test_exercise_accepts_right_and_rejects_wrong(exercise, right, wrongs) -> None:
    assert exercise.check(right, quiet=True).passed
    assert exercise.check(exercise.reference, quiet=True).passed
    for wrong in wrongs:
        result = exercise.check(wrong, quiet=True)
        assert not result.passed and result.attempted
        assert result.failing_case is not None
        first_arg = next(iter(result.failing_case))
        assert f"{first_arg} = " in result.message and "expected:" in result.message


def test_stub_counts_as_not_attempted_and_hints_and_solution_exist() -> None:
    assert len(EXERCISES) >= 3
    for exercise in EXERCISES:
        def stub(**kwargs):
            raise NotImplementedError
        result = exercise.check(stub, quiet=True)
        assert not result.passed and not result.attempted
        assert exercise.hints and "def " in exercise.solution()


def test_bucket_reference_is_what_simple_ddp_uses() -> None:
    # The exercise's reference is the library's assign_buckets; pin it to a hand-worked case
    # and to an independent implementation on every edge case.
    assert bucket_assignment.reference([40, 4, 400, 12], 50) == [[3, 2], [1, 0]]
    for case in bucket_assignment.edge_cases:
        assert bucket_assignment.reference(**case) == _buckets_by_prefix_sums(**case)


def test_hook_reference_is_what_simple_ddp_computes() -> None:
    grads = [torch.randn(6, dtype=torch.float64) for _ in range(3)]
    out = gradient_averaging_hook.reference(grads[0].clone(), 3, SimulatedAllReduce(grads[0], torch.stack(grads[1:])))
    torch.testing.assert_close(out, torch.stack(grads).mean(0))


def test_sum_then_divide_is_accepted_where_it_does_not_overflow() -> None:
    """Both orders give the mean in FP64; only the FP16 edge case tells them apart."""
    fp64_only = [case for case in gradient_averaging_hook.cases() if case["bucket"].dtype == torch.float64]
    for case in fp64_only:
        torch.testing.assert_close(_hook_sum_then_divide(**{**case, "bucket": case["bucket"].clone()}),
                                   gradient_averaging_hook.reference(**{**case, "bucket": case["bucket"].clone()}))
    result = gradient_averaging_hook.check(_hook_sum_then_divide, quiet=True)
    assert result.failing_case["bucket"].dtype == torch.float16 and "inf" in result.message


# --- the ring step, on real processes ------------------------------------------------------------

def _ring_step_from_schedule(chunks, rank, world_size, step, exchange):
    from course_lib.distributed import ring_schedule

    out, inc = ring_schedule(world_size)[step][rank], ring_schedule(world_size)[step][(rank - 1) % world_size]
    got = exchange(chunks[out.chunk], chunks[inc.chunk].numel())
    (chunks[inc.chunk].add_ if inc.phase == "reduce-scatter" else chunks[inc.chunk].copy_)(got)


def _ring_step_always_adds(chunks, rank, world_size, step, exchange):  # all-gather must copy, not add
    n = world_size
    s = step if step < n - 1 else step - (n - 1)
    send, receive = ((rank - s) % n, (rank - s - 1) % n) if step < n - 1 else ((rank + 1 - s) % n, (rank - s) % n)
    chunks[receive].add_(exchange(chunks[send], chunks[receive].numel()))


def test_ring_step_is_checked_inside_ring_all_reduce_on_processes() -> None:
    import dataclasses

    from course_lib.distributed.exercises import ring_step

    quick = dataclasses.replace(ring_step, world_sizes=(3,))
    assert quick.check(_ring_step_from_schedule, quiet=True).passed
    wrong = quick.check(_ring_step_always_adds, quiet=True)
    assert not wrong.passed and wrong.attempted and "on 3 processes" in wrong.message
    assert wrong.failing_case["world_size"] == 3

    def stub(chunks, rank, world_size, step, exchange):
        raise NotImplementedError

    assert not quick.check(stub, quiet=True).attempted
    assert "def _ring_step" in ring_step.solution() and ring_step.hints
