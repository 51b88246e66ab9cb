"""The sampling-offsets visualiser: where a 3×3 deformable conv reads, for one output position.

:func:`sampling_view` draws a digit (scikit-learn's, upsampled to 16×16) and, for the chosen
output position ``(y, x)`` of a 3×3 deformable conv with padding 1:

* left — the regular 3×3 grid (hollow circles), the deformed sampling points (dots; their size
  is the DCNv2 mask value when ``modulated``), an arrow from each regular point to its deformed
  one, and for the chosen tap the four pixels bilinear sampling blends, shaded and labelled with
  their weights;
* right — the nine values the conv actually multiplies with its weights for this position
  (the im2col column: sampled value × mask), laid out as the kernel.

Offsets come from a preset — ``zero`` (a plain conv), ``scale`` (``s = 1 + strength``; ``s = 2``
is a dilation-2 conv), ``rotation`` (``45°·strength``), ``random`` (i.i.d. normal, std
``strength``, different at every position) — built by :mod:`course_lib.deform.offsets`. Positions,
weights and values come from the library's own :func:`sampling_positions`,
:func:`bilinear_neighbours` and :func:`bilinear_sample`, the code :func:`deform_conv2d` runs.
:func:`sampling_widget` wires controls to the view.

Notebook: ``08_deformable_conv`` §5 (widget). Tests: ``tests/test_deform_view.py``.
"""

from __future__ import annotations

from functools import cache

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Rectangle

from course_lib import _checks
from course_lib._export import export
from course_lib.deform.deform_conv import sampling_positions
from course_lib.deform.experiment import digit_images
from course_lib.deform.offsets import offset_field, random_offsets, rotation_offsets, scale_offsets
from course_lib.deform.sampling import bilinear_neighbours, bilinear_sample
from course_lib.widgets import View, ViewWidget

SIZE = 16  # the image is SIZE×SIZE; with a 3×3 kernel and padding 1 so is the output
PRESETS = ("zero", "scale", "rotation", "random")


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


@export("deform.sampling_view")
def sampling_view(preset: str = "rotation", strength: float = 0.5, y: int = 8, x: int = 8, tap: int = 0,
                  modulated: bool = False, digit: int = 0) -> View:
    """Where a 3×3 deformable conv (padding 1) samples for output ``(y, x)``; see the module docstring.

    Args:
        preset: ``"zero"``, ``"scale"``, ``"rotation"`` or ``"random"``.
        strength: 0..4; the preset's parameter (see the module docstring).
        y, x: the output position, 0..15.
        tap: the kernel tap ``k = i·3 + j`` (0..8) whose bilinear neighbours are shown.
        modulated: use :func:`example_mask` as the DCNv2 mask (else all ones: DCNv1).
        digit: which digit image, 0..9.

    Returns:
        A :class:`View`; the caption lists, per tap, the regular and the sampled position and the
        mask, then the chosen tap's four neighbours with their weights and the blended value.

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
    column = values * mask  # (9,): what the weights multiply (one im2col column)
    nb = bilinear_neighbours(py[tap], px[tap])  # fields (4,)

    fig, (ax, ax_col) = plt.subplots(1, 2, figsize=(10.5, 5), gridspec_kw={"width_ratios": [1.6, 1]})
    ax.imshow(image[0, 0].numpy(), cmap="gray_r", vmin=0, vmax=1, extent=(-0.5, SIZE - 0.5, SIZE - 0.5, -0.5))
    for (r, c), wt in zip(zip(nb.rows.tolist(), nb.cols.tolist()), nb.weights.tolist()):
        ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor="tab:orange", alpha=0.15 + 0.7 * wt,
                               edgecolor="tab:orange", linewidth=1.5))
        ax.text(c - 0.45, r - 0.45, f"w={wt:.2f}", ha="left", va="top", fontsize=7, color="black")
    ry = torch.tensor([y - 1 + i for i in range(3) for _ in range(3)], dtype=torch.float64)  # (9,) regular rows
    rx = torch.tensor([x - 1 + j for _ in range(3) for j in range(3)], dtype=torch.float64)  # (9,) regular cols
    ax.scatter(rx, ry, s=70, facecolors="none", edgecolors="tab:blue", linewidths=1.5, label="regular grid")
    for k in range(9):
        if (py[k] - ry[k]).abs() + (px[k] - rx[k]).abs() > 1e-9:
            ax.annotate("", xy=(px[k].item(), py[k].item()), xytext=(rx[k].item(), ry[k].item()),
                        arrowprops={"arrowstyle": "->", "color": "tab:red", "lw": 1.2})
    sizes = 15 + 110 * mask
    colors = ["tab:orange" if k == tap else "tab:red" for k in range(9)]
    ax.scatter(px, py, s=sizes, c=colors, zorder=3, label="deformed points (size = mask)")
    ax.plot([x], [y], "x", color="tab:green", markersize=10, mew=2, label=f"output position ({y}, {x})")
    ax.set_xlim(x - 5.5, x + 5.5)  # zoomed on the window: offsets of a few pixels stay visible
    ax.set_ylim(y + 5.5, y - 5.5)
    ax.set_title(f"{description}; tap {tap} and its 4 bilinear neighbours")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=3, fontsize=7)
    ax_col.imshow(column.reshape(3, 3).numpy(), cmap="viridis", vmin=0, vmax=1)
    for k in range(9):
        ax_col.text(k % 3, k // 3, f"{column[k].item():.2f}", ha="center", va="center",
                    color="white" if column[k] < 0.5 else "black", fontweight="bold" if k == tap else None)
    ax_col.set_xticks(range(3))
    ax_col.set_yticks(range(3))
    ax_col.set_xlabel("tap column j")
    ax_col.set_ylabel("tap row i")
    ax_col.set_title("what the kernel sees: mask × sampled value")
    fig.tight_layout()

    lines = [f"output ({y}, {x}), digit {digit}, 3x3 kernel, padding 1: {description}; "
             f"{'DCNv2 mask' if modulated else 'no mask (DCNv1)'}"]
    for k in range(9):
        lines.append(f"tap {k} (i={k // 3}, j={k % 3}): regular ({ry[k].item():.0f}, {rx[k].item():.0f}) -> "
                     f"sampled ({py[k].item():.2f}, {px[k].item():.2f}), mask {mask[k].item():.2f}, "
                     f"value {values[k].item():.3f}")
    corners = ", ".join(f"({r}, {c}) w={wt:.3f}" for r, c, wt in
                        zip(nb.rows.tolist(), nb.cols.tolist(), nb.weights.tolist()))
    outside = sum(not (0 <= r < SIZE and 0 <= c < SIZE) for r, c in zip(nb.rows.tolist(), nb.cols.tolist()))
    lines.append(f"tap {tap} blends {corners}" + (f" ({outside} outside the image, read as 0)" if outside else "")
                 + f" = {values[tap].item():.3f}")
    return View(fig, "\n".join(lines))


@export("deform.sampling_widget")
def sampling_widget(preset: str = "rotation", strength: float = 0.5) -> ViewWidget:
    """A preset menu, a strength slider, the output position, the tap, the mask and the digit."""
    def slider(value: int, hi: int, name: str) -> widgets.IntSlider:
        return widgets.IntSlider(value=value, min=0, max=hi, description=name, continuous_update=False)

    return ViewWidget(
        sampling_view,
        preset=widgets.Dropdown(options=PRESETS, value=preset, description="offsets"),
        strength=widgets.FloatSlider(value=strength, min=0.0, max=2.0, step=0.05, description="strength",
                                     continuous_update=False),
        y=slider(8, SIZE - 1, "y"),
        x=slider(8, SIZE - 1, "x"),
        tap=slider(0, 8, "tap"),
        modulated=widgets.Checkbox(value=False, description="DCNv2 mask"),
        digit=slider(0, 9, "digit"),
    )
