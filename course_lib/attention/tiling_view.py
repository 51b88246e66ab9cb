"""The tiling visualiser: FlashAttention's loops over the N×N score matrix, one tile at a time.

:func:`tiling_view` draws, for one step of the loops (outer over Q blocks, inner over K/V blocks):

* left — the N×N score matrix cut into tiles: tiles already folded in, the active tile with its
  Q rows and K/V columns, the causal tiles that are skipped (never loaded), those still to come;
* right — for one chosen query row: the running max ``m`` and running sum ``l`` after each of
  its tiles, and the partial output next to the exact softmax row. The values are ``V = I``
  (the identity), so the output *is* the softmax row, and convergence is visible entry by entry:
  the output matches the exact row only once the row's last tile has been folded in.

The state comes from :func:`course_lib.attention.online_softmax.merge_states` on a fixed random
Q and K, the same code the PyTorch tiling runs. :func:`tiling_widget` wires sliders to the view.

Notebook: ``09_flash_attention`` §5 (widget). Tests: ``tests/test_attention_tiling.py``.
"""

from __future__ import annotations

import math

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Rectangle

from course_lib import _checks
from course_lib._export import export
from course_lib.attention.online_softmax import SoftmaxState, block_state, merge_states
from course_lib.attention.reference import causal_mask
from course_lib.attention.tiling import TileStep, tile_schedule
from course_lib.widgets import View, ViewWidget

HEAD_DIM = 8  # of the example Q and K; small so the scores spread out
COLORS = {"done": "#9ecae1", "active": "#e6550d", "skipped": "#d9d9d9", "todo": "white"}


def example_scores(n: int, causal: bool, seed: int = 0) -> torch.Tensor:
    """Scores ``S = QKᵀ/√d`` of a fixed random Q, K (float64, ``Tensor[n, n]``), -inf above a causal diagonal."""
    gen = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, n, HEAD_DIM, generator=gen, dtype=torch.float64)
    s = 2.0 * q @ k.T / math.sqrt(HEAD_DIM)  # (n, n); x2 widens the spread so m visibly moves
    return s.masked_fill(~causal_mask(n, n), float("-inf")) if causal else s


def row_states(scores_row: torch.Tensor, block_n: int, n_blocks: int | None = None) -> list[SoftmaxState]:
    """The running state of one row after each of its first ``n_blocks`` K/V blocks (default: all).

    Values are ``V = I``, so ``acc / l`` is the softmax row over the keys seen so far.
    """
    n = scores_row.shape[0]
    stop = n if n_blocks is None else min(n, n_blocks * block_n)
    eye = torch.eye(n, dtype=scores_row.dtype)  # (n, n): values = identity
    state = SoftmaxState(torch.tensor(float("-inf"), dtype=scores_row.dtype), torch.tensor(0.0, dtype=scores_row.dtype),
                         torch.zeros(n, dtype=scores_row.dtype))
    states = []
    for start in range(0, stop, block_n):
        state = merge_states(state, block_state(scores_row[start:start + block_n], eye[start:start + block_n]))
        states.append(state)
    return states


def _draw_matrix(ax, steps: list[TileStep], current: int, row: int, n: int) -> None:
    for index, st in enumerate(steps):
        if st.kind == "skipped":
            color = COLORS["skipped"]
        elif index < current:
            color = COLORS["done"]
        elif index == current:
            color = COLORS["active"]
        else:
            color = COLORS["todo"]
        ax.add_patch(Rectangle((st.cols.start, st.rows.start), len(st.cols), len(st.rows), facecolor=color,
                               edgecolor="black", linewidth=0.8, hatch="//" if st.kind == "skipped" else None))
    active = steps[current]
    ax.add_patch(Rectangle((0, active.rows.start), n, len(active.rows), fill=False, edgecolor="tab:red",
                           linewidth=2, linestyle="--"))  # the Q block held on chip
    ax.add_patch(Rectangle((active.cols.start, 0), len(active.cols), n, fill=False, edgecolor="tab:green",
                           linewidth=2, linestyle="--"))  # the K/V block streamed in
    ax.axhline(row + 0.5, color="tab:purple", linewidth=1.5)
    ax.set_xlim(0, n)
    ax.set_ylim(n, 0)
    ax.set_aspect("equal")
    ax.set_xlabel("key j (K/V blocks, inner loop)")
    ax.set_ylabel("query i (Q blocks, outer loop)")


@export("attention.tiling_view")
def tiling_view(n: int = 24, block_m: int = 8, block_n: int = 6, step: int = 0, row: int = 20,
                causal: bool = True) -> View:
    """One step of FlashAttention's loops, and the running softmax of one query row.

    Args:
        n: sequence length (1..256).
        block_m: rows per Q block.
        block_n: columns per K/V block.
        step: index into the loop order (clamped to the last step); skipped tiles count as steps.
        row: the query row whose running state is shown (clamped to ``n - 1``).
        causal: apply the causal mask (and skip tiles above the diagonal).

    Returns:
        A :class:`View`; its caption gives the active tile, the tile counts and, for ``row``,
        ``m``, ``l`` and the largest gap between the partial output and the exact softmax row.

    Raises:
        TypeError, ValueError: a size that is not a positive int, or n > 256.
    """
    n = _checks.integer("n", n, minimum=1, maximum=256)
    steps = tile_schedule(n, block_m, block_n, causal)
    step = min(_checks.integer("step", step, minimum=0), len(steps) - 1)
    row = min(_checks.integer("row", row, minimum=0), n - 1)
    cur = steps[step]
    scores = example_scores(n, causal)
    exact = torch.softmax(scores[row], dim=-1)  # (n,)
    row_block = row // block_m
    # The kernel visits this row's K/V blocks up to the last one that is not skipped.
    visited = [st for st in steps if st.i == row_block and st.kind != "skipped"]
    states = row_states(scores[row], block_n, len(visited))
    if cur.i < row_block:
        seen = 0
    elif cur.i > row_block:
        seen = len(states)
    else:
        seen = min(cur.j + 1, len(states))
    state = states[seen - 1] if seen else None
    partial = state.acc / state.l if state is not None else torch.zeros(n, dtype=exact.dtype)  # (n,)
    gap = (partial - exact).abs().max().item()

    fig, (ax_m, ax_ml, ax_row) = plt.subplots(1, 3, figsize=(13, 4.2), gridspec_kw={"width_ratios": [1.1, 1, 1.3]})
    _draw_matrix(ax_m, steps, step, row, n)
    ax_m.set_title(f"step {step + 1}/{len(steps)}: Q block {cur.i}, K/V block {cur.j} ({cur.kind})")
    shown = states[:seen]  # the future is not drawn: the loop has not got there yet
    xs = list(range(1, seen + 1))
    ax_ml.plot(xs, [st.m.item() for st in shown], "o-", color="tab:red", label="running max m")
    ax_ml.set_xlim(0.5, len(states) + 0.5)
    ax_ml.set_xticks(range(1, len(states) + 1))
    ax_ml.set_xlabel(f"K/V blocks folded into row {row}")
    ax_ml.set_ylabel("running max m", color="tab:red")
    ax_l = ax_ml.twinx()
    ax_l.plot(xs, [st.l.item() for st in shown], "s-", color="tab:blue", label="running sum l")
    ax_l.set_ylabel("running sum l", color="tab:blue")
    ax_ml.set_title(f"row {row}: m and l per K/V block")
    ax_row.bar(range(n), exact.tolist(), color="lightgray", label="exact softmax row")
    ax_row.plot(range(n), partial.tolist(), "o", color="tab:orange", markersize=3, label="partial output acc/l")
    ax_row.set_xlabel("key j")
    ax_row.set_title(f"row {row}: output so far vs exact (V = I)")
    ax_row.legend(loc="upper right", fontsize=8)
    fig.tight_layout()

    counts = {kind: sum(s.kind == kind for s in steps) for kind in ("full", "masked", "skipped")}
    if state is None:
        m_text = "not started (m = -inf, l = 0)"
    else:
        m_text = f"m = {state.m.item():.3f}, l = {state.l.item():.3f}"
    caption = (
        f"N = {n}, block_m = {block_m}, block_n = {block_n}, causal = {causal}: {len(steps)} tiles "
        f"({counts['full']} full, {counts['masked']} on the diagonal, {counts['skipped']} skipped)\n"
        f"step {step + 1}/{len(steps)}: Q block {cur.i} (rows {cur.rows.start}-{cur.rows.stop - 1}) x "
        f"K/V block {cur.j} (cols {cur.cols.start}-{cur.cols.stop - 1}): {cur.kind}\n"
        f"row {row}: {seen}/{len(states)} K/V blocks folded in; {m_text}; "
        f"max |partial - exact| = {gap:.3g}"
    )
    return View(fig, caption)


@export("attention.tiling_widget")
def tiling_widget(n: int = 24, block_m: int = 8, block_n: int = 6, causal: bool = True) -> ViewWidget:
    """Sliders for N, the block sizes, the loop step and the row, wired to :func:`tiling_view`."""
    def slider(value: int, lo: int, hi: int, name: str) -> widgets.IntSlider:
        return widgets.IntSlider(value=value, min=lo, max=hi, description=name, continuous_update=False)

    return ViewWidget(
        tiling_view,
        n=slider(n, 4, 64, "N"),
        block_m=slider(block_m, 1, 32, "block_m"),
        block_n=slider(block_n, 1, 32, "block_n"),
        step=slider(0, 0, 4095, "step"),
        row=slider(min(20, n - 1), 0, 63, "row"),
        causal=widgets.Checkbox(value=causal, description="causal"),
    )
