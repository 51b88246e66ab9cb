"""course_lib.attention.io_model against loop-by-loop counts transcribed from the paper's
algorithms, its asymptotics, and memory kept for backward (course_lib.attention.memory)."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.attention import (
    attention_ref,
    flash_attention_io,
    flash_attention_torch,
    flash_block_sizes,
    saved_for_backward_bytes,
    standard_attention_io,
)
from course_lib.attention.benchmark import attention_flops


def count_algorithm_1(n: int, d: int, m: int) -> tuple[int, int]:
    """Reads and writes of FlashAttention's Algorithm 1 (Dao et al. 2022), line by line."""
    b_c = math.ceil(m / (4 * d))
    b_r = min(b_c, d)
    reads, writes = 0, n * d + 2 * n  # line 2: O = 0, l = 0, m = -inf initialised in HBM
    for j0 in range(0, n, b_c):  # line 5: outer loop over K/V blocks
        cols = min(b_c, n - j0)
        reads += 2 * cols * d  # line 6: load K_j, V_j
        for i0 in range(0, n, b_r):  # line 7: inner loop over Q blocks
            rows = min(b_r, n - i0)
            reads += rows * d + rows * d + rows + rows  # line 8: load Q_i, O_i, l_i, m_i
            writes += rows * d + rows + rows  # lines 12-13: write O_i, l_i, m_i
    return reads, writes


def count_flash_2(n: int, d: int, m: int) -> tuple[int, int]:
    """Reads and writes of the FlashAttention-2 loop order (Q outer), tile by tile."""
    b = math.ceil(m / (4 * d))
    reads = writes = 0
    for i0 in range(0, n, b):
        rows = min(b, n - i0)
        reads += rows * d  # Q_i once
        reads += sum(2 * min(b, n - j0) * d for j0 in range(0, n, b))  # every K_j, V_j
        writes += rows * d + rows  # O_i and L_i
    return reads, writes


@pytest.mark.parametrize("n, d, sram", [(1, 16, 256), (97, 16, 4096), (1024, 64, 100 * 1024), (4000, 128, 192 * 1024)])
def test_flash_counts_match_the_algorithms_loops(n, d, sram):
    fa1 = flash_attention_io(n, d, sram, bytes_per_element=2)
    assert (fa1.reads, fa1.writes) == count_algorithm_1(n, d, sram // 2)
    fa2 = flash_attention_io(n, d, sram, bytes_per_element=2, variant="fa2")
    assert (fa2.reads, fa2.writes) == count_flash_2(n, d, sram // 2)
    assert fa1.bytes == 2 * fa1.elements


def test_standard_counts_and_bytes():
    io = standard_attention_io(1024, 64, bytes_per_element=4)
    assert io.reads == 3 * 1024 * 64 + 2 * 1024**2 and io.writes == 1024 * 64 + 2 * 1024**2
    assert io.bytes == 4 * (4 * 1024 * 64 + 4 * 1024**2)


def test_asymptotics_of_theorem_2():
    d, sram = 64, 100 * 1024
    m = sram // 2
    # standard: Θ(N d + N²) — the ratio to N d + N² stays within constant bounds as N grows
    ratios = [standard_attention_io(n, d).elements / (n * d + n * n) for n in (2**10, 2**12, 2**14)]
    assert all(2 <= r <= 4 for r in ratios)
    # flash: Θ(N² d² / M) for N large against M / d
    for variant in ("fa1", "fa2"):
        ratios = [flash_attention_io(n, d, sram, variant=variant).elements / (n * n * d * d / m)
                  for n in (2**12, 2**14)]
        assert all(1 <= r <= 16 for r in ratios)
        assert abs(ratios[0] - ratios[1]) / ratios[1] < 0.15  # the constant has settled
    # doubling on-chip memory roughly halves flash's traffic; standard attention does not care
    small, big = flash_attention_io(8192, d, sram), flash_attention_io(8192, d, 2 * sram)
    assert 1.8 < small.elements / big.elements < 2.1
    # at d = 64 and 100 KiB SRAM flash moves several times fewer bytes than standard attention
    assert standard_attention_io(8192, d).bytes > 3 * flash_attention_io(8192, d, sram).bytes
    assert flash_attention_io(8192, d, sram, variant="fa2").bytes < flash_attention_io(8192, d, sram).bytes


def test_block_sizes_and_bad_input():
    assert flash_block_sizes(64, 100 * 1024) == (64, 200)  # M = 51200 elements: B_c = 200, B_r = min(200, 64)
    with pytest.raises(ValueError, match=r"sram_bytes must hold at least 4·d = 512 elements \(1024 bytes\); got 1000"):
        flash_attention_io(100, 128, 1000)
    with pytest.raises(ValueError, match="variant must be one of 'fa1', 'fa2'; got 'fa3'"):
        flash_attention_io(100, 64, 10**5, variant="fa3")
    with pytest.raises(ValueError, match=r"n must be an int in \[1, inf\]; got 0"):
        standard_attention_io(0, 64)


def test_memory_kept_for_backward_is_quadratic_vs_linear():
    def saved(fn, n):
        x = torch.zeros(1, 1, n, 16)
        return saved_for_backward_bytes(fn, x, x.clone(), x.clone(), causal=True)

    ref = [saved(attention_ref, n) for n in (64, 128, 256)]
    flash = [saved(flash_attention_torch, n) for n in (64, 128, 256)]
    assert flash == [4 * n * 16 * 4 + n * 4 for n in (64, 128, 256)]  # q, k, v, O (fp32) and L
    assert ref[2] - ref[1] > 3 * (ref[1] - ref[0])  # second differences grow: the N² term
    assert ref[2] >= 256 * 256 * 4  # at least one N x N fp32 matrix
    with pytest.raises(TypeError, match="fn must be a function; got int"):
        saved_for_backward_bytes(3, torch.zeros(1))


def test_flop_formula_of_the_benchmark():
    assert attention_flops(2, 16, 1024, 64) == 4 * 2 * 16 * 1024**2 * 64
    assert attention_flops(2, 16, 1024, 64, causal=True) == 2 * 2 * 16 * 1024**2 * 64
    assert attention_flops(1, 1, 8, 16, backward=True) == 3.5 * 4 * 8 * 8 * 16
