"""Tests for course_lib.distributed: ring and naive all-reduce against torch.distributed on real
processes, byte accounting, SimpleDDP against PyTorch's DDP, launching, faults and bad input.

Process launches are the expensive part (each starts N processes), so each launch runs many
cases: one launch per world size 1..8 checks ring and naive against ``dist.all_reduce`` on every
size and dtype. The schedule itself is property-tested in one process (``simulate_ring``).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.distributed import (
    SimpleDDP,
    TrainConfig,
    WorkerError,
    assign_buckets,
    chunk_bounds,
    launch,
    naive_all_reduce,
    naive_bytes_per_rank,
    ring_all_reduce,
    ring_bytes_per_rank,
    ring_schedule,
    run_training,
    simulate_ring,
)
from course_lib.distributed import experiment as ex

# Tolerance vs dist.all_reduce: a different summation order, so a few ulps of the partial sums.
ULPS = 4  # times eps(dtype) * world_size * max(1, |sum|)
EXACT_DTYPES = ("int32", "int64")
SIZES = (0, 1, 2, 5, 7, 8, 9, 97, 113, 257, 4099)


def _tolerance(dtype: str, world_size: int, scale: float) -> float:
    if dtype in EXACT_DTYPES:
        return 0.0
    return ULPS * torch.finfo(getattr(torch, dtype)).eps * world_size * max(1.0, scale)


def _check_rows(rows: list[dict]) -> None:
    assert rows, "the worker ran no cases"
    for row in rows:
        n, numel, rank = row["world_size"], row["numel"], row["rank"]
        tol = _tolerance(row["dtype"], n, row["scale"])
        assert row["ring_error"] <= tol, row
        assert row["naive_error"] <= tol, row
        element = getattr(torch, row["dtype"]).itemsize
        nbytes = numel * element
        assert row["ring_sent"] == ring_bytes_per_rank(numel, n, element, rank), row
        # With uneven chunks a rank receives what its left neighbour sends, not what it sends.
        assert row["ring_received"] == ring_bytes_per_rank(numel, n, element, (rank - 1) % n), row
        if numel % n == 0:  # the textbook formula, exactly
            assert row["ring_sent"] * n == 2 * (n - 1) * nbytes, row
        # Naive: rank 0 is the hub; N - 1 tensors go in and N - 1 come out.
        expected_naive = (n - 1) * nbytes if rank == 0 else (nbytes if n > 1 else 0)
        assert row["naive_sent"] == row["naive_received"] == expected_naive, row


# --- one process: the schedule, the formulas, the simulation ---------------------------------

@given(numel=st.integers(0, 400), n=st.integers(1, 8))
@settings(max_examples=60, deadline=None)
def test_chunk_bounds_match_tensor_split(numel: int, n: int) -> None:
    expected = [len(c) for c in torch.tensor_split(torch.arange(numel), n)]
    assert [b - a for a, b in chunk_bounds(numel, n)] == expected


@pytest.mark.parametrize("n", range(1, 9))
def test_ring_schedule_is_a_ring(n: int) -> None:
    steps = ring_schedule(n)
    assert len(steps) == 2 * (n - 1)
    for step in steps:
        assert [t.src for t in step] == list(range(n))
        assert [t.dst for t in step] == [(r + 1) % n for r in range(n)]
        assert sorted(t.chunk for t in step) == list(range(n))  # each chunk moves once per step
    for r in range(n):  # a rank forwards what it just received (reduce-scatter and all-gather alike)
        for s in range(1, len(steps)):
            if steps[s][r].phase == steps[s - 1][r].phase:
                assert steps[s][r].chunk == steps[s - 1][(r - 1) % n].chunk


@given(n=st.integers(1, 8), numel=st.integers(0, 300), seed=st.integers(0, 2**16))
@settings(max_examples=80, deadline=None)
def test_simulated_ring_equals_sum_for_every_world_size(n: int, numel: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    xs = [torch.randint(-10**6, 10**6, (numel,), generator=gen) for _ in range(n)]
    total = torch.stack(xs).sum(0) if numel else torch.zeros(0, dtype=torch.int64)
    for out in simulate_ring(xs):
        assert torch.equal(out, total)


def test_simulated_ring_float_shapes_and_partial_steps() -> None:
    xs = [torch.randn(17, 3, dtype=torch.float64) for _ in range(5)]
    outs = simulate_ring(xs)
    assert all(o.shape == (17, 3) for o in outs)
    torch.testing.assert_close(outs[2], sum(xs), rtol=1e-12, atol=1e-12)
    half = simulate_ring(xs, stop_after=4)  # reduce-scatter done: rank r owns chunk r + 1 only
    flat_sum = sum(xs).reshape(-1)
    for r in range(5):
        a, b = chunk_bounds(51, 5)[(r + 1) % 5]
        torch.testing.assert_close(half[r].reshape(-1)[a:b], flat_sum[a:b], rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="share one shape"):
        simulate_ring([torch.zeros(3), torch.zeros(4)])


@given(numel=st.integers(0, 10_000), n=st.integers(1, 8), element=st.sampled_from([2, 4, 8]))
@settings(max_examples=60, deadline=None)
def test_ring_bytes_formula_counts_the_schedule(numel: int, n: int, element: int) -> None:
    sizes = [b - a for a, b in chunk_bounds(numel, n)]
    for r in range(n):
        from_schedule = sum(sizes[step[r].chunk] for step in ring_schedule(n)) * element
        assert ring_bytes_per_rank(numel, n, element, r) == from_schedule
        assert from_schedule <= 2 * (n - 1) * (numel // n + 1) * element
    assert naive_bytes_per_rank(numel, n, element, 0) == (n - 1) * numel * element


def test_assign_buckets_reverse_order_and_cap() -> None:
    assert assign_buckets([40, 4, 400, 12], 50) == [[3, 2], [1, 0]]
    assert assign_buckets([10, 10, 10], 10) == [[2], [1], [0]]
    assert assign_buckets([10, 10, 10], 10**6) == [[2, 1, 0]]
    assert assign_buckets([], 5) == []


# --- bad input, without processes --------------------------------------------------------------

def test_collectives_need_a_process_group() -> None:
    for fn in (ring_all_reduce, naive_all_reduce):
        with pytest.raises(RuntimeError, match="initialised process group.*launch"):
            fn(torch.ones(3))
    with pytest.raises(RuntimeError, match="initialised process group"):
        SimpleDDP(torch.nn.Linear(2, 2))
    with pytest.raises(RuntimeError, match="initialised process group"):
        run_training(TrainConfig())


def test_collectives_check_the_tensor_first() -> None:
    with pytest.raises(ValueError, match="contiguous"):
        ring_all_reduce(torch.ones(4, 6).t())
    with pytest.raises(TypeError, match="dtype"):
        ring_all_reduce(torch.ones(4, dtype=torch.bool))
    with pytest.raises(TypeError, match="dtype"):
        naive_all_reduce(torch.ones(4, dtype=torch.complex64))
    with pytest.raises(TypeError, match="must be Tensor"):
        ring_all_reduce([1.0, 2.0])


def test_simple_ddp_checks_its_arguments_before_any_collective() -> None:
    with pytest.raises(TypeError, match="module must be Module; got str"):
        SimpleDDP("not a model")
    with pytest.raises(ValueError, match=r"bucket_cap_mb must be a number in \(0, inf\]; got 0"):
        SimpleDDP(torch.nn.Linear(2, 2), bucket_cap_mb=0)
    with pytest.raises(TypeError, match="bucket_cap_mb must be a real number; got str"):
        SimpleDDP(torch.nn.Linear(2, 2), bucket_cap_mb="25")


@pytest.mark.parametrize("change, error, match", [
    (dict(ddp="fsdp"), ValueError, r"cfg.ddp must be one of 'simple', 'torch'; got 'fsdp'"),
    (dict(steps=0), ValueError, r"cfg.steps must be an int in \[1, inf\]; got 0"),  # was torch.stack's error
    (dict(global_batch=0), ValueError, r"cfg.global_batch must be an int in \[1, inf\]; got 0"),  # was a NaN loss
    (dict(width=2.5), TypeError, r"cfg.width must be an int; got float: 2.5"),
    (dict(lr=0.0), ValueError, r"cfg.lr must be a number in \(0, inf\]; got 0.0"),
    (dict(bucket_cap_mb=-1.0), ValueError, r"cfg.bucket_cap_mb must be a number in \(0, inf\]"),
])
def test_run_training_checks_its_config_first(change, error, match) -> None:
    with pytest.raises(error, match=match):
        run_training(TrainConfig(**change))
    with pytest.raises(TypeError, match="cfg must be TrainConfig; got dict"):
        run_training({"steps": 3})


def test_launch_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"world_size must be an int in \[1"):
        launch(ex.hello, 0)
    with pytest.raises(TypeError, match="world_size must be an int"):
        launch(ex.hello, 2.0)
    with pytest.raises(TypeError, match="module-level function"):
        launch(lambda: 1, 2)
    with pytest.raises(ValueError, match="backend must be one of"):
        launch(ex.hello, 2, backend="mpi")
    if torch.cuda.device_count() < 2:
        with pytest.raises(ValueError, match="one GPU per rank"):
            launch(ex.hello, 2, backend="nccl")
    with pytest.raises(ValueError, match="world_size must be an int in"):
        ring_bytes_per_rank(10, 0, 4)


# --- real processes ------------------------------------------------------------------------------

@pytest.mark.parametrize("world_size", range(1, 9))
def test_ring_and_naive_match_dist_all_reduce(world_size: int) -> None:
    sizes = sorted({*SIZES, world_size - 1, world_size + 1, 3 * world_size})
    result = launch(ex.compare_all_reduces, world_size, (sizes, ("float32", "int64", "float64")),
                    dict(seed=world_size), show_output=False)
    rows = [row for per_rank in result.results for row in per_rank]
    assert len(rows) == world_size * len(sizes) * 3
    _check_rows(rows)


def test_subgroups_and_low_precision() -> None:
    """Groups of ranks 0..k-1 inside a world of 5 (the group= argument), in fp16/bf16/int32."""
    result = launch(ex.compare_all_reduces, 5, ((1, 6, 97, 1000), ("float16", "bfloat16", "int32")),
                    dict(group_sizes=(2, 3, 5)), show_output=False)
    rows = [row for per_rank in result.results for row in per_rank]
    assert {row["world_size"] for row in rows} == {2, 3, 5}
    assert len(rows) == (2 + 3 + 5) * 4 * 3
    _check_rows(rows)


def test_launch_collects_results_and_output() -> None:
    result = launch(ex.hello, 3, show_output=False)
    assert result.results == [(r, 3, 3.0) for r in range(3)]
    assert all(f"I am rank {r} of 3" in out for r, out in enumerate(result.outputs))
    assert result.backend == "gloo" and result.world_size == 3


def test_bad_input_across_ranks_gives_the_same_clear_error_everywhere() -> None:
    messages = launch(ex.bad_input_errors, 3, show_output=False).results
    for per_rank in messages:
        for algorithm in ("ring", "naive"):
            assert re.search(r"same shape and dtype on every rank.*rank 1: shape \(6,\)", per_rank[algorithm])
        assert "received no gradient" in per_rank["unused_parameter"]
    assert messages[0] == messages[1] == messages[2]


@pytest.mark.parametrize("world_size", [2, 3])
def test_simple_ddp_matches_torch_ddp_and_single_process(world_size: int) -> None:
    out = launch(ex.compare_ddp, world_size, kwargs=dict(steps=5), show_output=False).results[0]
    assert out["simple_vs_torch"] <= (0.0 if world_size == 2 else 1e-6)  # same order of operations as DDP
    assert out["simple_vs_single"] <= 1e-6
    assert out["buckets"] >= 2  # the tiny cap splits the MLP: several buckets, launched in order
    assert out["launched_during_backward"]  # a bucket's all-reduce started before backward ended
    assert len(out["losses"]) == 5


def test_simple_ddp_starts_from_rank0_parameters_and_buffers() -> None:
    states = launch(ex.broadcast_state, 3, show_output=False).results
    for state in states:
        assert state["weight"] == [0.0] * 15 and state["running_mean"] == [10.0] * 5


def test_training_script_is_the_same_under_launch_and_torchrun(tmp_path) -> None:
    cfg = TrainConfig(steps=3, width=16, depth=1)
    by_launch = {ddp: launch(run_training, 2, (TrainConfig(**{**vars(cfg), "ddp": ddp}),), show_output=False)
                 .results[0]["losses"] for ddp in ("simple", "torch")}
    torch.testing.assert_close(by_launch["simple"], by_launch["torch"], rtol=0, atol=1e-6)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "course_lib.distributed.train", "--steps", "3", "--width", "16", "--depth", "1"],
        capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    final = re.search(r"ddp=simple ranks=2 .*loss ([\d.]+) -> ([\d.]+)", proc.stdout)
    assert final, proc.stdout
    assert float(final.group(2)) == pytest.approx(by_launch["simple"][-1], abs=1e-4)


@pytest.mark.parametrize("how, kind", [("raise", "raised"), ("exit", "died"), ("hang", "stopped")])
def test_a_failing_rank_stops_everyone_and_is_named(how: str, kind: str) -> None:
    start = time.perf_counter()
    with pytest.raises(WorkerError) as info:
        launch(ex.fail_on_rank, 3, (1, how), timeout=6, show_output=False)
    elapsed = time.perf_counter() - start
    err = info.value
    assert err.rank == 1 and err.kind == kind
    assert str(err).startswith(f"rank 1 {kind}")
    assert set(err.failures) == {0, 1, 2}  # the others were stopped, not left hanging
    if how == "raise":
        assert "failed on purpose" in str(err) and "ValueError" in str(err)
    if how == "exit":
        assert "exit" in str(err) and "code 3" in str(err)
    assert elapsed < 6 + 20  # bounded (the timeout plus teardown, wide for a loaded CI machine), never a hang
    assert "about to all-reduce" in err.outputs[0]


def test_overlaps_backward_reads_the_event_order() -> None:
    from course_lib.distributed import overlaps_backward

    assert overlaps_backward([("grad", 3), ("grad", 2), ("launch", 0), ("grad", 1), ("grad", 0),
                              ("launch", 1), ("wait", 0), ("wait", 1)])
    assert not overlaps_backward([("grad", 1), ("grad", 0), ("launch", 0), ("wait", 0)])
    assert not overlaps_backward([])


def test_average_divides_before_the_sum_like_torch_ddp() -> None:
    """FP16 gradients of 40000 on 2 ranks: sum-then-divide overflows (80000 > 65504); DDP divides first."""
    for out in launch(ex.average_order, 2, show_output=False).results:
        assert out["sum_then_divide"] == float("inf")
        assert out["divide_then_sum"] == out["simple_ddp"] == out["torch_ddp"] == 40000.0


@pytest.mark.parametrize("broadcast_buffers", [True, False])
def test_buffers_are_broadcast_at_every_forward_like_torch_ddp(broadcast_buffers: bool) -> None:
    results = launch(ex.buffers_each_forward, 3, kwargs=dict(broadcast_buffers=broadcast_buffers),
                     show_output=False).results
    for rank, out in enumerate(results):
        expected = 0.0 if broadcast_buffers else float(rank)
        assert out == {"simple_ddp": expected, "torch_ddp": expected}


def test_no_sync_accumulates_locally_like_torch_ddp_and_sends_once() -> None:
    for out in launch(ex.accumulation, 2, kwargs=dict(micro_batches=4), show_output=False).results:
        assert out["simple_vs_torch"] == 0.0  # the same sums in the same order as DDP's no_sync
        assert out["synced_vs_no_sync"] <= 1e-6  # communicating every micro-batch gives the same mean
        assert out["bytes_no_sync"] == out["gradient_bytes"]  # one all-reduce of every gradient
        assert out["bytes_every_step"] == 4 * out["gradient_bytes"]
