"""The tile schedule of FlashAttention: which (Q block, K/V block) pairs are visited, in order.

The N×N score matrix is cut into tiles of ``block_m`` query rows × ``block_n`` key columns. The
forward pass (FlashAttention-2 order) runs an outer loop over Q blocks ``i`` and an inner loop
over K/V blocks ``j``. With a causal mask (query ``r`` sees keys ``c <= r``) a tile is

* ``"skipped"`` when every key in it comes after every query: ``j·block_n > (i+1)·block_m - 1``.
  The kernel never loads it — for long sequences about half the work disappears;
* ``"masked"`` when the diagonal crosses it: computed, with ``-inf`` above the diagonal;
* ``"full"`` otherwise.

Pure functions only (no plotting): the widget (:mod:`course_lib.attention.tiling_view`), the
PyTorch tiling (:mod:`course_lib.attention.flash_torch`) and the tests share them.

Notebook: ``09_flash_attention`` §3 (tiling). Tests: ``tests/test_attention_tiling.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from course_lib import _checks
from course_lib._export import export

TileKind = Literal["full", "masked", "skipped"]


@export("attention.causal_tile_skipped")
def causal_tile_skipped(i: int, j: int, block_m: int, block_n: int) -> bool:
    """Whether tile ``(i, j)`` lies wholly above the causal diagonal, so it can be skipped.

    Rows ``i·block_m … (i+1)·block_m - 1``, columns ``j·block_n … (j+1)·block_n - 1``: the tile is
    empty when its first column comes after its last row.
    """
    return j * block_n > (i + 1) * block_m - 1


def tile_kind(rows: range, cols: range, causal: bool) -> TileKind:
    """``"full"``, ``"masked"`` (crossed by the diagonal) or ``"skipped"`` for the tile ``rows × cols``."""
    if not causal:
        return "full"
    if cols.start > rows.stop - 1:  # = causal_tile_skipped for the tile's block indices
        return "skipped"
    return "masked" if cols.stop - 1 > rows.start else "full"


@export("attention.TileStep")
@dataclass(frozen=True)
class TileStep:
    """One iteration of the inner loop."""

    i: int  # Q block (outer loop)
    j: int  # K/V block (inner loop)
    rows: range  # query positions of the tile
    cols: range  # key positions of the tile
    kind: TileKind  # "full", "masked" or "skipped"


@export("attention.tile_schedule")
def tile_schedule(n: int, block_m: int, block_n: int, causal: bool = False) -> list[TileStep]:
    """Every (Q block, K/V block) pair in loop order, including the causal tiles that are skipped.

    Args:
        n: sequence length (queries and keys), >= 1.
        block_m: query rows per tile (>= 1).
        block_n: key columns per tile (>= 1).
        causal: apply the causal mask.

    Returns:
        ``ceil(n/block_m) · ceil(n/block_n)`` steps, outer loop over ``i``, inner over ``j``;
        the last block in each direction may be shorter.

    Raises:
        TypeError, ValueError: a size that is not a positive int.
    """
    n = _checks.integer("n", n, minimum=1)
    block_m = _checks.integer("block_m", block_m, minimum=1)
    block_n = _checks.integer("block_n", block_n, minimum=1)
    steps = []
    for i in range(math.ceil(n / block_m)):
        rows = range(i * block_m, min(n, (i + 1) * block_m))
        for j in range(math.ceil(n / block_n)):
            cols = range(j * block_n, min(n, (j + 1) * block_n))
            steps.append(TileStep(i, j, rows, cols, tile_kind(rows, cols, causal)))
    return steps
