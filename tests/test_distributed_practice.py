"""Tests for the chapter's practice sections: unused parameters (SimpleDDP's
``find_unused_parameters`` against PyTorch's DDP and one process), ``DistributedSampler`` shards
and ``set_epoch``, saving a checkpoint on rank 0, and ``time_all_reduces`` on ``timing.compare``.

Real processes (gloo on CPU) through ``course_lib.distributed.launch``; timings are never asserted.
"""

from __future__ import annotations

import pytest
import torch

from course_lib.distributed import SimpleDDP, launch
from course_lib.distributed import experiment as ex
from course_lib.timing import Timing

# The part of DDP's message that torch 2.11 and 2.14 share (reducer.cpp, ensure_prior_reduction_finished).
TORCH_PREFIX = "Expected to have finished reduction in the prior iteration before starting a new one."


@pytest.mark.parametrize("world_size", [2, 3])
def test_unused_parameters_error_and_fix_match_torch_ddp_and_one_process(world_size: int) -> None:
    results = launch(ex.unused_parameters, world_size, show_output=False).results
    for rank, out in enumerate(results):
        # torch DDP: backward of the skipping step is silent and unsynchronised, the next forward raises
        assert out["torch_error"] == f"RuntimeError: {TORCH_PREFIX}"
        assert "find_unused_parameters=True" in out["torch_error_message"]
        assert out["torch_error_at"] == "forward of step 1"
        assert out["torch_step0_grads_synchronised"] is False
        # SimpleDDP: a clear error in the backward that skipped, before any optimizer step
        assert out["simple_error_at"] == "backward of step 0"
        skipped = "[6, 7]" if rank % 2 == 0 else "[4, 5]"  # rank r used expert r % 2
        assert f"parameters {skipped}" in out["simple_error"] and "find_unused_parameters=True" in out["simple_error"]
        # the fix: every step, including "no rank used it" and "only rank 0 used it"
        assert out["simple_vs_single"] <= 1e-6 and out["torch_vs_single"] <= 1e-6
        assert out["expert1_grad_is_none_after_step1"]


def test_simple_ddp_checks_find_unused_parameters_before_any_collective() -> None:
    with pytest.raises(TypeError, match="find_unused_parameters must be bool; got str"):
        SimpleDDP(torch.nn.Linear(2, 2), find_unused_parameters="yes")


def test_reachable_parameters_walks_the_graph() -> None:
    from course_lib.distributed.ddp import _reachable_parameters

    a, b, c = (torch.nn.Parameter(torch.ones(2)) for _ in range(3))
    out = {"y": (a * 2).sum(), "z": [b.exp()], "leaf": c, "none": None}
    assert _reachable_parameters(out) == {id(a), id(b), id(c)}
    assert _reachable_parameters((a * 2).sum()) == {id(a)}
    assert _reachable_parameters(torch.ones(3)) == set()


@pytest.mark.parametrize("size, world", [(10, 3), (12, 4), (7, 2), (2, 3)])
def test_distributed_sampler_shards_set_epoch_and_padding(size: int, world: int) -> None:
    fixed = ex.sampler_shards(size, world, epochs=3, set_epoch=False)
    moving = ex.sampler_shards(size, world, epochs=3, set_epoch=True)
    assert fixed[0] == fixed[1] == fixed[2]  # no set_epoch: every epoch the same order
    assert moving[0] == fixed[0] and moving[1] != moving[0]  # epoch 0 seeds alike; then it changes
    per_rank = -(-size // world)
    for epoch in moving:
        assert all(len(shard) == per_rank for shard in epoch)
        flat = [i for shard in epoch for i in shard]
        assert set(flat) == set(range(size))  # covered
        assert len(flat) - len(set(flat)) == per_rank * world - size  # padded with that many repeats
    if size % world == 0:
        assert all(not set(a) & set(b) for e in moving for i, a in enumerate(e) for b in e[i + 1:])  # disjoint


def test_checkpoint_saved_on_rank0_loads_identically_everywhere(tmp_path) -> None:
    results = launch(ex.checkpoint_on_rank0, 3, (str(tmp_path),), show_output=False).results
    assert [r["wrote"] for r in results] == [True, False, False]
    for r in results:
        assert r["files"] == ["checkpoint.pt"]  # one file, complete (no .tmp left) before anyone read
        assert r["differed_before_load"] and r["max_diff_across_ranks"] == 0.0 and r["max_diff_vs_trained"] == 0.0
        assert r["step"] == 3


def test_time_all_reduces_uses_compare_in_one_launch_for_several_process_counts() -> None:
    sizes = [2**10, 2**14]
    results = launch(ex.time_all_reduces, 3, (sizes,), dict(repeats=3, group_sizes=(2, 3)), show_output=False).results
    assert set(results[0]) == {2, 3} and set(results[2]) == {3}  # rank 2 is not in the group of 2
    for k, per_algorithm in results[0].items():
        assert set(per_algorithm) == set(ex.ALGORITHMS)
        for timings in per_algorithm.values():
            assert len(timings) == len(sizes) and all(isinstance(t, Timing) for t in timings)
            assert all(len(t.samples) == 3 and t.median > 0 for t in timings)
        # every rank of a group used the same number of calls per sample (else: mismatched collectives)
        numbers = {tuple(t.number for t in results[r][k]["ring"]) for r in range(k)}
        assert len(numbers) == 1


def test_simple_ddp_default_bucket_size_is_torch_ddps() -> None:
    import inspect

    cap = launch(ex.ddp_default_bucket_bytes, 1, show_output=False).results[0]
    assert cap == 25 * 2**20  # DDP's documented default, bucket_cap_mb=25 (MiB)
    assert inspect.signature(SimpleDDP).parameters["bucket_cap_mb"].default * 2**20 == cap
