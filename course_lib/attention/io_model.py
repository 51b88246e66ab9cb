"""An IO model of attention: elements moved between HBM and the chip, standard vs FlashAttention.

Dao et al. (2022, https://arxiv.org/abs/2205.14135, Theorem 2) count HBM accesses for sequence
length N, head dim d and on-chip memory (SRAM) of M elements:

* standard attention (their Algorithm 0) writes S and P to HBM and reads them back:
  Θ(N·d + N²);
* FlashAttention (Algorithm 1) streams K/V blocks of ``B_c = ⌈M / 4d⌉`` rows past Q blocks of
  ``B_r = min(B_c, d)`` rows and never writes S or P: Θ(N²·d² / M).

The functions below count exactly what those algorithms move, line by line, for one head:

* :func:`standard_attention_io` — Algorithm 0: read Q, K, write S; read S, write P; read P, V, write O.
* :func:`flash_attention_io` — Algorithm 1 (``variant="fa1"``: K/V outer loop, O, l, m read and
  written back per K/V block), or FlashAttention-2's order (``"fa2"``: Q outer loop — the order
  of :mod:`course_lib.attention.flash_triton` — Q read once, K/V once per Q block of
  ``⌈M / 4d⌉`` rows, O and L written once).

Limitations: one head, no causal skipping, caches ignored (a real GPU's L2 cache absorbs part of
the re-reads); the model is about *how the count scales*, which measurements on a GPU confirm.

Notebook: ``09_flash_attention`` §4 (the IO model). Tests: ``tests/test_attention_io.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from course_lib import _checks
from course_lib._export import export


@export("attention.HbmTraffic")
@dataclass(frozen=True)
class HbmTraffic:
    """Elements read from and written to HBM by one attention head."""

    reads: int  # elements loaded from HBM
    writes: int  # elements stored to HBM
    bytes_per_element: int  # 2 for fp16/bf16, 4 for fp32

    @property
    def elements(self) -> int:
        """Reads plus writes, in elements."""
        return self.reads + self.writes

    @property
    def bytes(self) -> int:
        """Reads plus writes, in bytes."""
        return self.elements * self.bytes_per_element


def _sizes(n: int, d: int, bytes_per_element: int) -> tuple[int, int, int]:
    return (_checks.integer("n", n, minimum=1), _checks.integer("d", d, minimum=1),
            _checks.integer("bytes_per_element", bytes_per_element, minimum=1))


@export("attention.standard_attention_io")
def standard_attention_io(n: int, d: int, bytes_per_element: int = 2) -> HbmTraffic:
    """HBM traffic of standard attention (Algorithm 0): ``4·N·d + 4·N²`` elements, Θ(Nd + N²).

    Args:
        n: sequence length N.
        d: head dimension.
        bytes_per_element: 2 (fp16/bf16) or 4 (fp32).

    Returns:
        reads ``3Nd + 2N²`` (Q, K; S; P, V), writes ``Nd + 2N²`` (S; P; O).
    """
    n, d, bpe = _sizes(n, d, bytes_per_element)
    reads = 2 * n * d + n * n + (n * n + n * d)  # Q,K for S = QKᵀ;  S for softmax;  P,V for O = PV
    writes = n * n + n * n + n * d  # S;  P;  O
    return HbmTraffic(reads, writes, bpe)


@export("attention.flash_block_sizes")
def flash_block_sizes(d: int, sram_bytes: int, bytes_per_element: int = 2) -> tuple[int, int]:
    """Algorithm 1's tile sizes ``(B_r, B_c) = (min(⌈M/4d⌉, d), ⌈M/4d⌉)`` for M = SRAM in elements.

    Raises:
        ValueError: SRAM smaller than ``4·d`` elements (not even one row of Q, K, V, O fits).
    """
    d = _checks.integer("d", d, minimum=1)
    sram_bytes = _checks.integer("sram_bytes", sram_bytes, minimum=1)
    bpe = _checks.integer("bytes_per_element", bytes_per_element, minimum=1)
    m = sram_bytes // bpe
    if m < 4 * d:
        raise ValueError(f"sram_bytes must hold at least 4·d = {4 * d} elements ({4 * d * bpe} bytes); "
                         f"got {sram_bytes}")
    b_c = math.ceil(m / (4 * d))
    return min(b_c, d), b_c


@export("attention.flash_attention_io")
def flash_attention_io(
    n: int, d: int, sram_bytes: int, bytes_per_element: int = 2, variant: Literal["fa1", "fa2"] = "fa1"
) -> HbmTraffic:
    """HBM traffic of FlashAttention for one head, Θ(N²d²/M).

    Args:
        n: sequence length N.
        d: head dimension.
        sram_bytes: on-chip memory M, in bytes (e.g. 100 KiB of the 164 KiB of shared memory an A100 SM offers).
        bytes_per_element: 2 (fp16/bf16) or 4 (fp32).
        variant: ``"fa1"`` (Algorithm 1, K/V outer loop) or ``"fa2"`` (Q outer loop).

    Returns:
        The counts; fa1: reads ``2Nd + T_c(2Nd + 2N)``, writes ``Nd + 2N + T_c(Nd + 2N)`` with
        ``T_c = ⌈N/B_c⌉``; fa2: reads ``Nd + T_r·2Nd``, writes ``Nd + N`` with ``T_r = ⌈N/B⌉``,
        ``B = ⌈M/4d⌉``.

    Raises:
        ValueError: bad sizes, SRAM below ``4·d`` elements, an unknown variant.
    """
    n, d, bpe = _sizes(n, d, bytes_per_element)
    _checks.one_of("variant", variant, ("fa1", "fa2"))
    _, b_c = flash_block_sizes(d, sram_bytes, bpe)
    if variant == "fa1":
        t_c = math.ceil(n / b_c)
        reads = 2 * n * d + t_c * (2 * n * d + 2 * n)  # K_j, V_j once; per K/V block: Q_i, O_i, l_i, m_i
        writes = n * d + 2 * n + t_c * (n * d + 2 * n)  # O, l, m initialised; per K/V block written back
    else:
        t_r = math.ceil(n / b_c)
        reads = n * d + t_r * 2 * n * d  # Q once; K, V once per Q block
        writes = n * d + n  # O and L once
    return HbmTraffic(reads, writes, bpe)
