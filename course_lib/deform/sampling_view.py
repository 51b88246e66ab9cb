"""The sampling-offsets visualiser: where a 3×3 deformable conv reads, for one output position.

Three layers, as every widget of the course:

* :func:`sampling_state` — pure: for a digit (scikit-learn's, upsampled to 16×16), an offset preset
  and an output position ``(y, x)`` of a 3×3 deformable conv with padding 1, the regular and the
  deformed sampling point of each tap, the DCNv2 mask, the sampled values, the im2col column the
  kernel multiplies (value × mask), and the chosen tap's four bilinear neighbours with their
  weights. A frozen :class:`SamplingState`, tested without matplotlib.
* :func:`sampling_view` — draws it: left, the regular grid (hollow circles), the deformed points
  (dots sized by the mask), the offsets (arrows) and the chosen tap's four neighbours, shaded and
  labelled with their weights; right, the nine values the kernel's weights multiply.
* :func:`sampling_widget` — controls wired to the view.

Offsets come from a preset — ``zero`` (a plain conv), ``scale`` (``s = 1 + strength``; ``s = 2``
is a dilation-2 conv), ``rotation`` (``45°·strength``), ``random`` (i.i.d. normal, std
``strength``, different at every position) — built by :mod:`course_lib.deform.offsets`. Positions,
weights and values come from the library's own :func:`sampling_positions`,
:func:`bilinear_neighbours` and :func:`bilinear_sample`, the code :func:`deform_conv2d` runs.

Notebook: ``08_deformable_conv`` §5 (widget). Tests: ``tests/test_deform_view.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import torch

from course_lib import _checks
from course_lib._export import export
from course_lib.deform.deform_conv import sampling_positions
from course_lib.deform.experiment import digit_images
from course_lib.deform.offsets import offset_field, random_offsets, rotation_offsets, scale_offsets
from course_lib.deform.sampling import Neighbours, bilinear_neighbours, bilinear_sample
from course_lib.widgets import View

if TYPE_CHECKING:
    from course_lib.widgets import ViewWidget

SIZE = 16  # the image is SIZE×SIZE; with a 3×3 kernel and padding 1 so is the output
PRESETS = ("zero", "scale", "rotation", "random")
FIGSIZE = (9.2, 4.4)  # inches: 830 px at the widget's 90 dpi, inside the ~850 px output area


@cache
def _digits() -> torch.Tensor:
    return digit_images(10, SIZE)  # (10, 1, SIZE, SIZE)


def preset_offsets(preset: str, strength: float) -> tuple[torch.Tensor, str]:
    """The offset field ``Tensor[1, 18, SIZE, SIZE]`` of a preset, and its description."""
    _checks.one_of("preset", preset, PRESETS)
    strength = _checks.real("strength", strength, minimum=0, maximum=4)
    if preset == "random":
        return random_offsets(3, 3, SIZE, SIZE, std=strength, seed=0), f"random, std {strength:.2f} px"
    if preset == "scale":
        per_tap, text = scale_offsets(3, 3, 1 + strength), f"scale s = {1 + strength:.2f}"
    elif preset == "rotation":
        per_tap, text = rotation_offsets(3, 3, 45 * strength), f"rotation by {45 * strength:.1f} degrees"
    else:
        per_tap, text = torch.zeros(18, dtype=torch.float64), "zero offsets (a plain conv)"
    return offset_field(per_tap, 1, SIZE, SIZE), text


def example_mask() -> torch.Tensor:
    """A fixed DCNv2 mask field ``Tensor[1, 9, SIZE, SIZE]`` in (0, 1): sigmoid of seeded normals."""
    gen = torch.Generator().manual_seed(1)
    return torch.sigmoid(2 * torch.randn(1, 9, SIZE, SIZE, generator=gen, dtype=torch.float64))


@export("deform.SamplingState")
@dataclass(frozen=True)
class SamplingState:
    """Where a 3×3 deformable conv (padding 1) reads for one output position (see :func:`sampling_state`)."""

    description: str  # the offset preset in words
    y: int  # output row
    x: int  # output column
    tap: int  # the tap k = i·3 + j whose bilinear neighbours are shown
    modulated: bool  # DCNv2 mask applied
    digit: int  # which digit image
    image: torch.Tensor  # Tensor[SIZE, SIZE]: the input
    regular: torch.Tensor  # Tensor[9, 2]: (row, col) of each tap on the regular grid
    sampled: torch.Tensor  # Tensor[9, 2]: (row, col) where each tap reads after its offset
    mask: torch.Tensor  # Tensor[9]: the DCNv2 mask of each tap (ones without modulation)
    values: torch.Tensor  # Tensor[9]: bilinear_sample at each sampled point
    neighbours: Neighbours  # the chosen tap's four corners (fields Tensor[4])

    @property
    def column(self) -> torch.Tensor:
        """Tensor[9]: what the kernel's weights multiply — mask × sampled value (one im2col column)."""
        return self.values * self.mask

    @property
    def outside(self) -> int:
        """How many of the chosen tap's four corners lie outside the image (they read 0)."""
        rows, cols = self.neighbours.rows.tolist(), self.neighbours.cols.tolist()
        return sum(not (0 <= r < SIZE and 0 <= c < SIZE) for r, c in zip(rows, cols))


@export("deform.sampling_state")
def sampling_state(preset: str = "rotation", strength: float = 0.5, y: int = 8, x: int = 8, tap: int = 0,
                   modulated: bool = False, digit: int = 0) -> SamplingState:
    """Where a 3×3 deformable conv (padding 1) samples for output ``(y, x)``; see the module docstring.

    Args:
        preset: ``"zero"``, ``"scale"``, ``"rotation"`` or ``"random"``.
        strength: 0..4; the preset's parameter (see the module docstring).
        y, x: the output position, 0..15.
        tap: the kernel tap ``k = i·3 + j`` (0..8) whose bilinear neighbours are shown.
        modulated: use :func:`example_mask` as the DCNv2 mask (else all ones: DCNv1).
        digit: which digit image, 0..9.

    Returns:
        A :class:`SamplingState`.

    Raises:
        TypeError, ValueError: an unknown preset or an out-of-range number.
    """
    offset, description = preset_offsets(preset, strength)
    y = _checks.integer("y", y, minimum=0, maximum=SIZE - 1)
    x = _checks.integer("x", x, minimum=0, maximum=SIZE - 1)
    tap = _checks.integer("tap", tap, minimum=0, maximum=8)
    digit = _checks.integer("digit", digit, minimum=0, maximum=9)
    image = _digits()[digit:digit + 1]  # (1, 1, SIZE, SIZE)
    mask = example_mask()[0, :, y, x] if modulated else torch.ones(9, dtype=torch.float64)  # (9,)
    py, px = sampling_positions(offset, (3, 3), padding=1)  # (1, 1, 9, SIZE, SIZE) each
    py, px = py[0, 0, :, y, x], px[0, 0, :, y, x]  # (9,): this position's sampling points
    values = bilinear_sample(image, py[None], px[None])[0, 0]  # (9,)
    taps = torch.arange(9)
    regular = torch.stack([y - 1 + taps // 3, x - 1 + taps % 3], dim=-1).to(torch.float64)  # (9, 2)
    return SamplingState(description, y, x, tap, bool(modulated), digit, image[0, 0], regular,
                         torch.stack([py, px], dim=-1), mask, values, bilinear_neighbours(py[tap], px[tap]))


def sampling_caption(state: SamplingState) -> str:
    """The numbers the picture shows, in words (what tests and screen readers read)."""
    lines = [f"output ({state.y}, {state.x}), digit {state.digit}, 3x3 kernel, padding 1: {state.description}; "
             f"{'DCNv2 mask' if state.modulated else 'no mask (DCNv1)'}"]
    for k in range(9):
        (ry, rx), (py, px) = state.regular[k].tolist(), state.sampled[k].tolist()
        lines.append(f"tap {k} (i={k // 3}, j={k % 3}): regular ({ry:.0f}, {rx:.0f}) -> sampled ({py:.2f}, {px:.2f}), "
                     f"mask {state.mask[k].item():.2f}, value {state.values[k].item():.3f}")
    nb = state.neighbours
    corners = ", ".join(f"({r}, {c}) w={wt:.3f}" for r, c, wt in
                        zip(nb.rows.tolist(), nb.cols.tolist(), nb.weights.tolist()))
    outside = f" ({state.outside} outside the image, read as 0)" if state.outside else ""
    lines.append(f"tap {state.tap} blends {corners}{outside} = {state.values[state.tap].item():.3f}")
    return "\n".join(lines)


def _draw_sampling(ax, state: SamplingState) -> None:
    from matplotlib.patches import Rectangle

    y, x, tap, nb = state.y, state.x, state.tap, state.neighbours
    ax.imshow(state.image.numpy(), cmap="gray_r", vmin=0, vmax=1, extent=(-0.5, SIZE - 0.5, SIZE - 0.5, -0.5))
    point_y, point_x = state.sampled[tap].tolist()
    for r, c, wt in zip(nb.rows.tolist(), nb.cols.tolist(), nb.weights.tolist()):
        ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor="tab:orange", alpha=0.15 + 0.7 * wt,
                               edgecolor="tab:orange", linewidth=1.5))
        # Each weight sits in the outer half of its pixel, away from the point between the four,
        # on a white box so it reads on dark pixels too.
        ty = r - 0.28 if r <= point_y else r + 0.28
        tx = c - 0.05 if c <= point_x else c + 0.05
        ax.text(tx, ty, f"{wt:.2f}", ha="right" if c <= point_x else "left", va="center", fontsize=8,
                color="black", bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "alpha": 0.85,
                                     "linewidth": 0})
    ry, rx = state.regular[:, 0], state.regular[:, 1]
    py, px = state.sampled[:, 0], state.sampled[:, 1]
    ax.scatter(rx, ry, s=70, facecolors="none", edgecolors="tab:blue", linewidths=1.5, label="regular grid")
    for k in range(9):
        if (py[k] - ry[k]).abs() + (px[k] - rx[k]).abs() > 1e-9:
            ax.annotate("", xy=(px[k].item(), py[k].item()), xytext=(rx[k].item(), ry[k].item()),
                        arrowprops={"arrowstyle": "->", "color": "tab:red", "lw": 1.2})
    colors = ["tab:orange" if k == tap else "tab:red" for k in range(9)]
    ax.scatter(px, py, s=15 + 110 * state.mask, c=colors, zorder=3, label="read here (size = mask)")
    ax.plot([x], [y], "x", color="tab:green", markersize=10, mew=2, label=f"output ({y}, {x})")
    ax.set_xlim(x - 5.5, x + 5.5)  # zoomed on the window: offsets of a few pixels stay visible
    ax.set_ylim(y + 5.5, y - 5.5)
    ax.set_title(f"{state.description}; tap {tap}: its 4 neighbours and weights", fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.07), ncol=3, fontsize=8, frameon=False)


@export("deform.sampling_view")
def sampling_view(preset: str = "rotation", strength: float = 0.5, y: int = 8, x: int = 8, tap: int = 0,
                  modulated: bool = False, digit: int = 0) -> View:
    """Draw :func:`sampling_state` (same arguments): the sampling points and the im2col column.

    Returns:
        A :class:`View`; the caption (:func:`sampling_caption`) lists, per tap, the regular and the
        sampled position and the mask, then the chosen tap's four neighbours with their weights
        and the blended value.
    """
    import matplotlib.pyplot as plt

    state = sampling_state(preset, strength, y, x, tap, modulated, digit)
    fig, (ax, ax_col) = plt.subplots(1, 2, figsize=FIGSIZE, gridspec_kw={"width_ratios": [1.5, 1]})
    _draw_sampling(ax, state)
    column = state.column
    ax_col.imshow(column.reshape(3, 3).numpy(), cmap="viridis", vmin=0, vmax=1)
    for k in range(9):
        ax_col.text(k % 3, k // 3, f"{column[k].item():.2f}", ha="center", va="center", fontsize=10,
                    color="white" if column[k] < 0.5 else "black", fontweight="bold" if k == tap else None)
    ax_col.set_xticks(range(3))
    ax_col.set_yticks(range(3))
    ax_col.set_xlabel("tap column j")
    ax_col.set_ylabel("tap row i")
    ax_col.set_title("what the kernel sees: mask × value", fontsize=10)
    fig.tight_layout()
    return View(fig, sampling_caption(state))


@export("deform.sampling_widget")
def sampling_widget(preset: str = "rotation", strength: float = 0.5) -> ViewWidget:
    """A preset menu, a strength slider, the output position, the tap, the mask and the digit."""
    import ipywidgets as widgets

    from course_lib.widgets import ViewWidget

    def slider(value: int, hi: int, name: str) -> widgets.IntSlider:
        return widgets.IntSlider(value=value, min=0, max=hi, description=name, continuous_update=False)

    return ViewWidget(
        sampling_view,
        preset=widgets.Dropdown(options=PRESETS, value=preset, description="offsets"),
        strength=widgets.FloatSlider(value=strength, min=0.0, max=2.0, step=0.05, description="strength",
                                     continuous_update=False),
        y=slider(8, SIZE - 1, "row y"),
        x=slider(8, SIZE - 1, "column x"),
        tap=slider(0, 8, "tap"),
        modulated=widgets.Checkbox(value=False, description="DCNv2 mask", indent=False),
        digit=slider(0, 9, "digit"),
    )
