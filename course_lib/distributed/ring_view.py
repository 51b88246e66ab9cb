"""The ring all-reduce stepper: N ranks on a ring, N coloured chunks each, one step at a time.

:func:`ring_state` is the pure model: it runs :func:`~course_lib.distributed.simulate_ring` on
inputs that *encode* which ranks contributed — rank ``r`` holds ``2**r`` everywhere — so after
``t`` steps each chunk's value is a bitmask of the ranks whose data it already sums.
:func:`ring_view` draws that state (and the transfers of the next step) and says the same in
its caption; :func:`ring_widget` wires two sliders to it (see :mod:`course_lib.widgets`).

Notebook: ``04_ddp`` ("The ring, step by step"). Tests: ``tests/test_distributed.py``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from course_lib import _checks
from course_lib._export import export
from course_lib.distributed.ring import ring_schedule, simulate_ring

if TYPE_CHECKING:  # matplotlib and ipywidgets load only when a picture is drawn, never in workers
    from course_lib.widgets import View, ViewWidget

MAX_RANKS = 8  # 2**r must stay exact in float64 and the picture readable


@export("distributed.ring_state")
def ring_state(world_size: int, step: int) -> list[list[tuple[int, ...]]]:
    """Which ranks' data each chunk of each rank sums after ``step`` steps of the ring.

    Returns:
        ``state[r][c]``: the sorted ranks whose chunk ``c`` is included in rank ``r``'s copy.
        At step 0, ``state[r][c] == (r,)``; after all ``2 (N - 1)`` steps it is every rank.
    """
    n = _checks.integer("world_size", world_size, minimum=1, maximum=MAX_RANKS)
    step = _checks.integer("step", step, minimum=0, maximum=2 * (n - 1))
    inputs = [torch.full((n,), float(2**r), dtype=torch.float64) for r in range(n)]  # one element per chunk
    after = simulate_ring(inputs, stop_after=step)
    return [[tuple(b for b in range(n) if int(v) >> b & 1) for v in t.tolist()] for t in after]


def _describe(ranks: tuple[int, ...], n: int) -> str:
    return "all" if len(ranks) == n else "+".join(map(str, ranks))


@export("distributed.ring_view")
def ring_view(world_size: int = 4, step: int = 0) -> View:
    """Draw the ring after ``step`` of its ``2 (N - 1)`` steps, with the next step's messages.

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
    step = min(_checks.integer("step", step, minimum=0), 2 * (n - 1))
    state = ring_state(n, step)
    schedule = ring_schedule(n)
    upcoming = schedule[step] if step < len(schedule) else []
    phase = upcoming[0].phase if upcoming else "done"
    colors = plt.get_cmap("tab10").colors

    fig, ax = plt.subplots(figsize=(7.5, 6.0))
    radius, cell = 3.0, 0.42
    centers = [(radius * math.sin(2 * math.pi * r / n), radius * math.cos(2 * math.pi * r / n)) for r in range(n)]
    for t in upcoming:  # arrows first, under the boxes
        (x0, y0), (x1, y1) = centers[t.src], centers[t.dst]
        length = math.hypot(x1 - x0, y1 - y0)
        nx, ny = 0.3 * (y1 - y0) / length, -0.3 * (x1 - x0) / length  # arrow's right: 0->1, 1->0 apart
        ax.annotate("", xy=(x0 + 0.75 * (x1 - x0) + nx, y0 + 0.75 * (y1 - y0) + ny),
                    xytext=(x0 + 0.25 * (x1 - x0) + nx, y0 + 0.25 * (y1 - y0) + ny),
                    arrowprops=dict(arrowstyle="-|>", color=colors[t.chunk % 10], lw=2.5))
        ax.text((x0 + x1) / 2 + 3.2 * nx, (y0 + y1) / 2 + 3.2 * ny, f"chunk {t.chunk}", ha="center",
                va="center", fontsize=8, color=colors[t.chunk % 10], fontweight="bold")
    for r, (cx, cy) in enumerate(centers):
        left = cx - n * cell / 2
        for c in range(n):
            share = len(state[r][c]) / n
            ax.add_patch(plt.Rectangle((left + c * cell, cy - cell / 2), cell, cell, facecolor=colors[c % 10],
                                       alpha=0.15 + 0.85 * share, edgecolor="black", lw=2.0 if share == 1 else 0.5))
            ax.text(left + (c + 0.5) * cell, cy, f"{len(state[r][c])}", ha="center", va="center", fontsize=8)
        ax.text(cx, cy + cell * 0.9, f"rank {r}", ha="center", va="bottom", fontsize=9)
    ax.set_xlim(-radius - n * cell / 2 - 0.5, radius + n * cell / 2 + 0.5)
    ax.set_ylim(-radius - 1.0, radius + 1.0)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"ring all-reduce, N={n}: after step {step} of {2 * (n - 1)} — next: {phase}\n"
                 "(number in a chunk = how many ranks' data it sums; bold = complete)", fontsize=10)

    lines = [f"N={n}, after step {step} of {2 * (n - 1)}; next phase: {phase}"]
    for r in range(n):
        chunks = " | ".join(f"c{c}={_describe(state[r][c], n)}" for c in range(n))
        sends = f"; sends chunk {upcoming[r].chunk} to rank {upcoming[r].dst}" if upcoming else ""
        lines.append(f"rank {r}: {chunks}{sends}")
    return View(fig, "\n".join(lines))


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
