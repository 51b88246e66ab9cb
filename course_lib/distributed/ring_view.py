"""The ring all-reduce stepper: N ranks on a ring, N coloured chunks each, one step at a time.

:func:`ring_state` is the pure model (a frozen :class:`RingState`): it runs
:func:`~course_lib.distributed.simulate_ring` on inputs that *encode* which ranks contributed —
rank ``r`` holds ``2**r`` everywhere — so after ``t`` steps each chunk's value is a bitmask of
the ranks whose data it already sums. :func:`ring_view` draws that state (and the transfers of
the next step) and says the same in its caption; :func:`ring_widget` wires two sliders to it
(see :mod:`course_lib.widgets`).

Notebook: ``04_ddp`` ("The ring, step by step"). Tests: ``tests/test_distributed_view.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from course_lib import _checks
from course_lib._export import export
from course_lib.distributed.ring import Transfer, ring_schedule, simulate_ring

if TYPE_CHECKING:  # matplotlib and ipywidgets load only when a picture is drawn, never in workers
    from course_lib.widgets import View, ViewWidget

MAX_RANKS = 8  # 2**r must stay exact in float64 and the picture readable


@dataclass(frozen=True)
class RingState:
    """The ring after ``step`` of its ``2 (N - 1)`` steps (what :func:`ring_view` draws)."""

    world_size: int  # N
    step: int  # steps run so far, 0 .. 2 (N - 1)
    sums: tuple[tuple[tuple[int, ...], ...], ...]  # sums[r][c]: the ranks whose chunk c rank r's copy sums
    upcoming: tuple[Transfer, ...]  # the next step's messages, one per sending rank (() when done)

    @property
    def total_steps(self) -> int:
        return 2 * (self.world_size - 1)

    @property
    def phase(self) -> str:
        """``reduce-scatter``, ``all-gather`` (the next step's phase) or ``done``."""
        return self.upcoming[0].phase if self.upcoming else "done"

    @property
    def caption(self) -> str:
        n = self.world_size
        lines = [f"N={n}, after step {self.step} of {self.total_steps}; next phase: {self.phase}"]
        for r in range(n):
            chunks = " | ".join(f"c{c}={_describe(self.sums[r][c], n)}" for c in range(n))
            sends = f"; sends chunk {self.upcoming[r].chunk} to rank {self.upcoming[r].dst}" if self.upcoming else ""
            lines.append(f"rank {r}: {chunks}{sends}")
        return "\n".join(lines)


def _describe(ranks: tuple[int, ...], n: int) -> str:
    return "all" if len(ranks) == n else "+".join(map(str, ranks))


@export("distributed.ring_state")
def ring_state(world_size: int, step: int) -> RingState:
    """Which ranks' data each chunk of each rank sums after ``step`` steps of the ring (pure).

    Runs :func:`simulate_ring` on inputs ``2^r`` (one element per chunk), so the bits of each
    result name the ranks it sums.

    Returns:
        A :class:`RingState`; ``sums[r][c] == (r,)`` at step 0, every rank after ``2 (N - 1)`` steps.

    Raises:
        TypeError / ValueError: ``world_size`` not in [1, 8]; ``step`` not in [0, 2 (N - 1)].
    """
    n = _checks.integer("world_size", world_size, minimum=1, maximum=MAX_RANKS)
    step = _checks.integer("step", step, minimum=0, maximum=2 * (n - 1))
    inputs = [torch.full((n,), float(2**r), dtype=torch.float64) for r in range(n)]  # one element per chunk
    after = simulate_ring(inputs, stop_after=step)
    sums = tuple(tuple(tuple(b for b in range(n) if int(v) >> b & 1) for v in t.tolist()) for t in after)
    schedule = ring_schedule(n)
    return RingState(n, step, sums, tuple(schedule[step]) if step < len(schedule) else ())


@export("distributed.ring_view")
def ring_view(world_size: int = 4, step: int = 0) -> View:
    """Draw :func:`ring_state`: every rank's chunks, and the next step's messages as arrows.

    Args:
        world_size: ``N``, 1 to 8 ranks.
        step: how many steps have run; clamped to ``2 (N - 1)``.

    Returns:
        A :class:`~course_lib.widgets.View` whose caption lists, per rank, what each chunk sums
        and which chunk each rank sends next.
    """
    import matplotlib.pyplot as plt

    from course_lib.widgets import View

    n = _checks.integer("world_size", world_size, minimum=1, maximum=MAX_RANKS)
    state = ring_state(n, min(_checks.integer("step", step, minimum=0), 2 * (n - 1)))
    colors = [plt.get_cmap("tab10")(i) for i in range(10)]

    # An ellipse wider than tall: the figure is 4.6 in high (about 400 px at the widget's dpi 90),
    # so sliders, picture and caption fit on one laptop screen together.
    fig, ax = plt.subplots(figsize=(8.5, 4.6))
    rx, ry, cell = 5.6, 2.7, 0.42
    centers = [(rx * math.sin(2 * math.pi * r / n), ry * math.cos(2 * math.pi * r / n)) for r in range(n)]
    cols = min(n, 4)  # more than 4 chunks wrap onto a second row: boxes stay clear of the arrows
    rows = math.ceil(n / cols)
    for t in state.upcoming:  # arrows first, under the boxes
        (x0, y0), (x1, y1) = centers[t.src], centers[t.dst]
        length = math.hypot(x1 - x0, y1 - y0)
        nx, ny = 0.3 * (y1 - y0) / length, -0.3 * (x1 - x0) / length  # arrow's right: 0->1, 1->0 apart
        ax.annotate("", xy=(x0 + 0.7 * (x1 - x0) + nx, y0 + 0.7 * (y1 - y0) + ny),
                    xytext=(x0 + 0.3 * (x1 - x0) + nx, y0 + 0.3 * (y1 - y0) + ny),
                    arrowprops=dict(arrowstyle="-|>", color=colors[t.chunk % 10], lw=2.5))
        sideways = abs(nx) > abs(ny)  # a steep arrow: its label goes beside it, not across it
        ha = ("left" if nx > 0 else "right") if sideways else "center"
        ax.text((x0 + x1) / 2 + 1.8 * nx, (y0 + y1) / 2 + 1.8 * ny, f"chunk {t.chunk}", ha=ha,
                va="center", fontsize=9, color=colors[t.chunk % 10], fontweight="bold")
    for r, (cx, cy) in enumerate(centers):
        left, top = cx - cols * cell / 2, cy + rows * cell / 2
        for c in range(n):
            x, y = left + (c % cols) * cell, top - (c // cols + 1) * cell
            share = len(state.sums[r][c]) / n
            ax.add_patch(plt.Rectangle((x, y), cell, cell, facecolor=colors[c % 10],
                                       alpha=0.15 + 0.85 * share, edgecolor="black", lw=2.0 if share == 1 else 0.5))
            ax.text(x + cell / 2, y + cell / 2, f"{len(state.sums[r][c])}", ha="center", va="center", fontsize=9)
        ax.text(cx, top + 0.05, f"rank {r}", ha="center", va="bottom", fontsize=9)
    ax.set_xlim(-rx - cols * cell / 2 - 0.5, rx + cols * cell / 2 + 0.5)
    ax.set_ylim(-ry - rows * cell / 2 - 0.3, ry + rows * cell / 2 + 0.6)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"ring all-reduce, N={n}: after step {state.step} of {state.total_steps} — next: {state.phase}\n"
                 "(number in a chunk = how many ranks' data it sums; bold = complete)", fontsize=10)
    return View(fig, state.caption)


@export("distributed.ring_widget")
def ring_widget(world_size: int = 4) -> ViewWidget:
    """Sliders for the number of ranks and the step, wired to :func:`ring_view`."""
    import ipywidgets as widgets

    from course_lib.widgets import ViewWidget

    n = _checks.integer("world_size", world_size, minimum=2, maximum=MAX_RANKS)
    ranks = widgets.IntSlider(value=n, min=2, max=MAX_RANKS, description="ranks N")
    step = widgets.IntSlider(value=0, min=0, max=2 * (n - 1), description="step")
    view = ViewWidget(ring_view, world_size=ranks, step=step)

    def fit_steps(change: dict) -> None:
        step.max = 2 * (change["new"] - 1)  # clamps the value too, which re-renders

    ranks.observe(fit_steps, names="value")
    return view
