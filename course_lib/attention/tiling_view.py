"""The tiling visualiser: FlashAttention's loops over the N×N score matrix, one tile at a time.

Three layers, as every widget of the course:

* :func:`tiling_state` — pure: the tile schedule, how many tiles have been folded in after
  ``step`` steps (``0..n_steps``, one step per tile, skipped tiles included), and for one chosen
  query row the running max ``m``, running sum ``l`` and partial output after each of its K/V
  blocks, next to the exact softmax row. A frozen :class:`TilingState`, tested without matplotlib.
* :func:`tiling_view` — draws the state: left, the score matrix cut into tiles (folded in, active
  with its Q rows and K/V columns, skipped, still to come); middle, ``m`` and ``l`` per K/V block
  of the row; right, the row's partial output against the exact softmax row. Values are ``V = I``
  (the identity), so the output *is* the softmax row and convergence is visible entry by entry.
* :func:`tiling_widget` — sliders wired to the view; the ``step`` slider runs over the tiles of the
  current N and block sizes (its end follows them), ``row`` over the current N.

The state comes from :func:`course_lib.attention.online_softmax.merge_states` on a fixed random
Q and K, the same code the PyTorch tiling runs.

Notebook: ``09_flash_attention`` §7 (widget). Tests: ``tests/test_attention_tiling.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from course_lib import _checks
from course_lib._export import export
from course_lib.attention.online_softmax import SoftmaxState, block_state, merge_states
from course_lib.attention.reference import causal_mask
from course_lib.attention.tiling import TileStep, tile_schedule
from course_lib.widgets import View

if TYPE_CHECKING:
    from course_lib.widgets import ViewWidget

HEAD_DIM = 8  # of the example Q and K; small so the scores spread out
MAX_N = 256  # longest sequence the view takes
COLORS = {"done": "#9ecae1", "active": "#e6550d", "skipped": "#d9d9d9", "todo": "white"}
FIGSIZE = (9.2, 3.5)  # inches: 830 px at the widget's 90 dpi, inside the ~850 px output area


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


@export("attention.TilingState")
@dataclass(frozen=True)
class TilingState:
    """What the widget shows after ``step`` tiles of the loops (see :func:`tiling_state`)."""

    n: int  # sequence length (queries and keys)
    block_m: int  # query rows per tile
    block_n: int  # key columns per tile
    causal: bool  # causal mask, causal tiles skipped
    steps: tuple[TileStep, ...]  # every tile in loop order, skipped ones included
    step: int  # tiles processed so far, 0..len(steps); steps[step - 1] is the active one
    row: int  # the query row whose running state is shown
    row_states: tuple[SoftmaxState, ...]  # the row's state after each K/V block the kernel visits
    seen: int  # how many of those blocks have been folded in at this step
    exact: torch.Tensor  # Tensor[n]: the row's exact softmax
    partial: torch.Tensor  # Tensor[n]: acc / l so far (zeros before the first block)

    @property
    def n_steps(self) -> int:
        """Tiles in the loops, skipped ones included: the last value of ``step``."""
        return len(self.steps)

    @property
    def active(self) -> TileStep | None:
        """The tile being folded in at this step (``None`` at step 0)."""
        return self.steps[self.step - 1] if self.step else None

    @property
    def state(self) -> SoftmaxState | None:
        """The row's running state at this step (``None`` before its first block)."""
        return self.row_states[self.seen - 1] if self.seen else None

    @property
    def gap(self) -> float:
        """``max |partial - exact|`` over the row."""
        return (self.partial - self.exact).abs().max().item()

    def counts(self) -> dict[str, int]:
        """How many tiles are full, masked (on the diagonal) and skipped."""
        return {kind: sum(s.kind == kind for s in self.steps) for kind in ("full", "masked", "skipped")}


@export("attention.tiling_state")
def tiling_state(n: int = 24, block_m: int = 8, block_n: int = 6, step: int = 0, row: int = 20,
                 causal: bool = True) -> TilingState:
    """The loops after ``step`` tiles, and the running softmax of query row ``row``.

    Args:
        n: sequence length, 1..256.
        block_m: rows per Q block (>= 1).
        block_n: columns per K/V block (>= 1).
        step: tiles processed, 0..n_steps (clamped to n_steps); skipped tiles count as steps.
        row: the query row whose running state is shown (clamped to ``n - 1``).
        causal: apply the causal mask (and skip tiles above the diagonal).

    Returns:
        A :class:`TilingState`.

    Raises:
        TypeError, ValueError: a size that is not a positive int, or n > 256.
    """
    n = _checks.integer("n", n, minimum=1, maximum=MAX_N)
    steps = tuple(tile_schedule(n, block_m, block_n, causal))
    step = min(_checks.integer("step", step, minimum=0), len(steps))
    row = min(_checks.integer("row", row, minimum=0), n - 1)
    scores = example_scores(n, causal)
    exact = torch.softmax(scores[row], dim=-1)  # (n,)
    row_block = row // block_m
    # The kernel visits this row's K/V blocks up to the last one that is not skipped.
    visited = [st for st in steps if st.i == row_block and st.kind != "skipped"]
    states = tuple(row_states(scores[row], block_n, len(visited)))
    done = steps[:step]  # the tiles processed so far
    seen = min(sum(st.i == row_block and st.kind != "skipped" for st in done), len(states))
    last = states[seen - 1] if seen else None
    partial = (last.acc / last.l if last is not None and last.acc is not None
               else torch.zeros(n, dtype=exact.dtype))  # (n,)
    return TilingState(n, block_m, block_n, bool(causal), steps, step, row, states, seen, exact, partial)


def tiling_caption(state: TilingState) -> str:
    """The numbers the picture shows, in words (what tests and screen readers read)."""
    counts = state.counts()
    lines = [f"N = {state.n}, block_m = {state.block_m}, block_n = {state.block_n}, causal = {state.causal}: "
             f"{state.n_steps} tiles ({counts['full']} full, {counts['masked']} on the diagonal, "
             f"{counts['skipped']} skipped)"]
    cur = state.active
    if cur is None:
        lines.append(f"step 0/{state.n_steps}: no tile processed yet")
    else:
        lines.append(f"step {state.step}/{state.n_steps}: Q block {cur.i} (rows {cur.rows.start}-{cur.rows.stop - 1}) "
                     f"x K/V block {cur.j} (cols {cur.cols.start}-{cur.cols.stop - 1}): {cur.kind}")
    st = state.state
    m_text = "not started (m = -inf, l = 0)" if st is None else f"m = {st.m.item():.3f}, l = {st.l.item():.3f}"
    lines.append(f"row {state.row}: {state.seen}/{len(state.row_states)} K/V blocks folded in; {m_text}; "
                 f"max |partial - exact| = {state.gap:.3g}")
    return "\n".join(lines)


def _draw_matrix(ax, state: TilingState) -> None:
    from matplotlib.patches import Rectangle

    n = state.n
    for index, st in enumerate(state.steps, start=1):
        if st.kind == "skipped":
            color = COLORS["skipped"]
        elif index < state.step:
            color = COLORS["done"]
        elif index == state.step:
            color = COLORS["active"]
        else:
            color = COLORS["todo"]
        ax.add_patch(Rectangle((st.cols.start, st.rows.start), len(st.cols), len(st.rows), facecolor=color,
                               edgecolor="black", linewidth=0.8, hatch="//" if st.kind == "skipped" else None))
    active = state.active
    if active is not None:
        ax.add_patch(Rectangle((0, active.rows.start), n, len(active.rows), fill=False, edgecolor="tab:red",
                               linewidth=2, linestyle="--"))  # the Q block held on chip
        ax.add_patch(Rectangle((active.cols.start, 0), len(active.cols), n, fill=False, edgecolor="tab:green",
                               linewidth=2, linestyle="--"))  # the K/V block streamed in
    ax.axhline(state.row + 0.5, color="tab:purple", linewidth=1.5)
    ax.set_xlim(0, n)
    ax.set_ylim(n, 0)
    ax.set_aspect("equal")
    ax.set_xlabel("key j (K/V blocks: inner loop)")
    ax.set_ylabel("query i (Q blocks: outer)")


@export("attention.tiling_view")
def tiling_view(n: int = 24, block_m: int = 8, block_n: int = 6, step: int = 0, row: int = 20,
                causal: bool = True) -> View:
    """Draw :func:`tiling_state` (same arguments): the tiles, ``m`` and ``l``, the partial row.

    Returns:
        A :class:`View`; its caption (:func:`tiling_caption`) gives the active tile, the tile counts
        and, for ``row``, ``m``, ``l`` and the largest gap between the partial output and the exact row.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    state = tiling_state(n, block_m, block_n, step, row, causal)
    fig, (ax_m, ax_ml, ax_row) = plt.subplots(1, 3, figsize=FIGSIZE, gridspec_kw={"width_ratios": [1.05, 1, 1.2]})
    _draw_matrix(ax_m, state)
    cur = state.active
    where = "not started" if cur is None else f"Q block {cur.i} x K/V block {cur.j}"
    ax_m.set_title(f"tile {state.step}/{state.n_steps}: {where}", fontsize=10)
    shown = state.row_states[:state.seen]  # the future is not drawn: the loop has not got there yet
    xs = list(range(1, state.seen + 1))
    total = len(state.row_states)
    ax_ml.plot(xs, [st.m.item() for st in shown], "o-", color="tab:red")
    ax_ml.set_xlim(0.5, total + 0.5)
    ax_ml.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_ml.set_xlabel(f"K/V blocks folded into row {state.row}")
    ax_ml.set_ylabel("running max m", color="tab:red")
    ax_l = ax_ml.twinx()
    ax_l.plot(xs, [st.l.item() for st in shown], "s-", color="tab:blue")
    ax_l.set_ylabel("running sum l", color="tab:blue")
    ax_ml.set_title(f"row {state.row}: m and l", fontsize=10)
    ax_row.bar(range(state.n), state.exact.tolist(), color="lightgray", label="exact softmax row")
    ax_row.plot(range(state.n), state.partial.tolist(), "o", color="tab:orange", markersize=3, label="acc / l so far")
    ax_row.set_xlabel("key j")
    ax_row.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_row.set_ylim(0, max(1e-9, state.exact.max().item(), state.partial.max().item()) * 1.35)  # room for the legend
    ax_row.set_title(f"row {state.row}: output vs exact (V = I)", fontsize=10)
    ax_row.legend(loc="upper left", fontsize=8, ncol=2, frameon=False)
    fig.tight_layout()
    return View(fig, tiling_caption(state))


def _n_steps(n: int, block_m: int, block_n: int) -> int:
    return math.ceil(n / block_m) * math.ceil(n / block_n)


@export("attention.tiling_widget")
def tiling_widget(n: int = 24, block_m: int = 8, block_n: int = 6, causal: bool = True) -> ViewWidget:
    """Sliders for N, the block sizes, the loop step (in tiles) and the row, wired to :func:`tiling_view`.

    The ``step`` slider runs from 0 (nothing processed) to the number of tiles of the current N and
    block sizes, and ``row`` over the current N: their ends follow the other sliders.
    """
    import ipywidgets as widgets

    from course_lib.widgets import ViewWidget

    def slider(value: int, lo: int, hi: int, name: str) -> widgets.IntSlider:
        return widgets.IntSlider(value=value, min=lo, max=hi, description=name, continuous_update=False)

    step = slider(0, 0, _n_steps(n, block_m, block_n), "tile step")
    row = slider(min(20, n - 1), 0, n - 1, "row")
    sizes = {"n": slider(n, 4, 64, "N"), "block_m": slider(block_m, 1, 32, "block_m"),
             "block_n": slider(block_n, 1, 32, "block_n")}

    def follow(_change: object) -> None:
        # Bounds first (so a value never exceeds them), then the view re-renders once per change.
        step.max = _n_steps(sizes["n"].value, sizes["block_m"].value, sizes["block_n"].value)
        row.max = sizes["n"].value - 1

    for control in sizes.values():
        control.observe(follow, names="value")
    return ViewWidget(tiling_view, **sizes, step=step, row=row,
                      causal=widgets.Checkbox(value=causal, description="causal", indent=False))
