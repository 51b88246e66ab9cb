"""The learned-offsets visualiser: where the *trained* deformable layer reads, on digits of every scale.

Three layers, as every widget of the course:

* :func:`learned_offsets_state` — pure: for a test digit (chosen by its rank in scale: 0 is the
  smallest of :data:`GALLERY` test digits) and an output position ``(y, x)`` of the deformable
  layer of the committed :class:`~course_lib.deform.experiment.DigitClassifier`
  (:func:`~course_lib.deform.experiment.load_classifiers`), the nine points of the regular 3×3
  grid and the nine points the layer's offset conv moved them to, both in *input* pixels; the
  effective dilation (:func:`~course_lib.deform.experiment.sampling_spread`) at every position,
  its mean over the digit, and the network's prediction. A frozen :class:`LearnedOffsetsState`,
  tested without matplotlib.
* :func:`learned_offsets_view` — draws it: left, the digit with the regular grid (hollow
  circles), the sampling points (red dots) and the offsets (arrows); right, the map of the
  effective dilation over the image, the digit's outline on top.
* :func:`learned_offsets_widget` — three sliders (digit by scale, row, column) wired to the view.

The deformable layer works on the feature map after a 2×2 max-pool, so feature pixel ``p`` is
centred on input pixel ``STRIDE·p + (STRIDE - 1)/2`` and an offset of 1 moves a point by
``STRIDE`` input pixels.

Notebook: ``08_deformable_conv`` §6 (widget). Tests: ``tests/test_deform_scaled.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import torch

from course_lib import _checks
from course_lib._export import export
from course_lib.deform.deform_conv import sampling_positions
from course_lib.deform.experiment import (
    STRIDE,
    DigitClassifier,
    held_out_digits,
    load_classifiers,
    on_digit,
    sampling_spread,
)
from course_lib.deform.scaled_digits import ScaledDigits
from course_lib.widgets import View

if TYPE_CHECKING:
    from course_lib.widgets import ViewWidget

GALLERY = 40  # test digits the widget offers, sorted by scale
FIGSIZE = (9.2, 4.4)  # inches: 830 px at the widget's 90 dpi, inside the ~850 px output area


@cache
def _gallery() -> tuple[DigitClassifier, ScaledDigits]:
    models, config, _ = load_classifiers()
    data = held_out_digits(config, GALLERY)
    order = torch.argsort(data.scales)  # (GALLERY,): smallest digit first
    return models["deformable"], ScaledDigits(data.images[order], data.labels[order], data.scales[order],
                                              data.centres[order], data.index[order])


def to_input_pixels(p: torch.Tensor) -> torch.Tensor:
    """Feature-map coordinates -> input-pixel coordinates (the centre of the pooled 2×2 block)."""
    return STRIDE * p + (STRIDE - 1) / 2


@export("deform.LearnedOffsetsState")
@dataclass(frozen=True)
class LearnedOffsetsState:
    """Where the trained deformable layer reads for one digit and position (see :func:`learned_offsets_state`)."""

    digit: int  # rank of the test digit by scale, 0..GALLERY-1
    scale: float  # the digit covers 8·scale × 8·scale input pixels
    label: int  # the true class
    predicted: int  # the deformable network's class
    y: int  # output row of the deformable layer (feature map)
    x: int  # output column
    image: torch.Tensor  # Tensor[S, S]: the input image
    regular: torch.Tensor  # Tensor[9, 2]: (row, col) of the regular grid's taps, input pixels
    sampled: torch.Tensor  # Tensor[9, 2]: (row, col) where each tap reads, input pixels
    spread_map: torch.Tensor  # Tensor[S/2, S/2]: effective dilation at every position
    on: torch.Tensor  # Tensor[S/2, S/2] bool: positions on the digit

    @property
    def spread(self) -> float:
        """The effective dilation at ``(y, x)`` (1 = the regular grid)."""
        return self.spread_map[self.y, self.x].item()

    @property
    def digit_spread(self) -> float:
        """The effective dilation averaged over the positions on the digit."""
        return self.spread_map[self.on].mean().item()


@export("deform.learned_offsets_state")
def learned_offsets_state(digit: int = 20, y: int = 8, x: int = 8) -> LearnedOffsetsState:
    """Where the committed deformable layer samples for test digit ``digit`` at output ``(y, x)``.

    Args:
        digit: the test digit's rank by scale, 0 (smallest) .. ``GALLERY - 1`` (largest).
        y, x: the output position on the layer's 16×16 feature map, 0..15.

    Returns:
        A :class:`LearnedOffsetsState`.

    Raises:
        TypeError, ValueError: a number that is not an int in range.
    """
    model, data = _gallery()
    digit = _checks.integer("digit", digit, minimum=0, maximum=len(data) - 1)
    size = data.images.shape[-1] // STRIDE
    y = _checks.integer("y", y, minimum=0, maximum=size - 1)
    x = _checks.integer("x", x, minimum=0, maximum=size - 1)
    image = data.images[digit:digit + 1]  # (1, 1, S, S)
    with torch.no_grad():
        offset = model.offsets(image)  # (1, 18, S/2, S/2)
        predicted = int(model(image).argmax(1))
    py, px = sampling_positions(offset, 3, padding=1)  # (1, 1, 9, S/2, S/2) each
    sampled = torch.stack([py[0, 0, :, y, x], px[0, 0, :, y, x]], dim=-1)  # (9, 2), feature pixels
    taps = torch.arange(9)
    regular = torch.stack([y - 1 + taps // 3, x - 1 + taps % 3], dim=-1).to(sampled.dtype)  # (9, 2)
    return LearnedOffsetsState(digit, data.scales[digit].item(), int(data.labels[digit]), predicted, y, x,
                               image[0, 0], to_input_pixels(regular), to_input_pixels(sampled),
                               sampling_spread(offset)[0], on_digit(image)[0])


def learned_offsets_caption(state: LearnedOffsetsState) -> str:
    """The numbers the picture shows, in words (what tests and screen readers read)."""
    where = "on the digit" if state.on[state.y, state.x] else "off the digit"
    lines = [f"test digit {state.digit} (by scale): a {state.label}, scale {state.scale:.2f} "
             f"({8 * state.scale:.0f} px tall), predicted {state.predicted}",
             f"output ({state.y}, {state.x}) {where}: effective dilation {state.spread:.2f} here, "
             f"{state.digit_spread:.2f} averaged over the digit (1 = regular grid)"]
    for k in range(9):
        (ry, rx), (py, px) = state.regular[k].tolist(), state.sampled[k].tolist()
        lines.append(f"tap {k}: regular ({ry:.1f}, {rx:.1f}) -> sampled ({py:.2f}, {px:.2f}) input px")
    return "\n".join(lines)


def _draw_points(ax, state: LearnedOffsetsState) -> None:
    side = state.image.shape[-1]
    ax.imshow(state.image.numpy(), cmap="gray_r", vmin=0, vmax=1, extent=(-0.5, side - 0.5, side - 0.5, -0.5))
    ry, rx = state.regular[:, 0], state.regular[:, 1]
    py, px = state.sampled[:, 0], state.sampled[:, 1]
    ax.scatter(rx, ry, s=60, facecolors="none", edgecolors="tab:blue", linewidths=1.5, label="regular grid")
    for k in range(9):
        ax.annotate("", xy=(px[k].item(), py[k].item()), xytext=(rx[k].item(), ry[k].item()),
                    arrowprops={"arrowstyle": "->", "color": "tab:red", "lw": 1.2})
    ax.scatter(px, py, s=30, c="tab:red", zorder=3, label="learned sampling points")
    centre = (state.regular[4, 1].item(), state.regular[4, 0].item())
    ax.plot(*centre, "x", color="tab:green", markersize=10, mew=2, label=f"output ({state.y}, {state.x})")
    ax.set_xlim(-0.5, side - 0.5)
    ax.set_ylim(side - 0.5, -0.5)
    ax.set_title(f"a {state.label} at scale {state.scale:.2f}: where the layer reads", fontsize=10)
    ax.set_xlabel("input column (px)")
    ax.set_ylabel("input row (px)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, fontsize=8, frameon=False)


@export("deform.learned_offsets_view")
def learned_offsets_view(digit: int = 20, y: int = 8, x: int = 8) -> View:
    """Draw :func:`learned_offsets_state` (same arguments): the sampling points and the spread map.

    Returns:
        A :class:`View`; the caption (:func:`learned_offsets_caption`) gives the digit, its scale,
        the prediction, the effective dilation here and over the digit, and every tap's points.
    """
    import matplotlib.pyplot as plt

    state = learned_offsets_state(digit, y, x)
    fig, (ax, ax_map) = plt.subplots(1, 2, figsize=FIGSIZE)
    _draw_points(ax, state)
    side = state.image.shape[-1]
    shown = ax_map.imshow(state.spread_map.numpy(), cmap="magma", vmin=1.0, vmax=4.0,
                          extent=(-0.5, side - 0.5, side - 0.5, -0.5))
    ax_map.contour(state.image.numpy(), levels=[0.3], colors="tab:cyan", linewidths=1.0)
    ax_map.plot(state.regular[4, 1].item(), state.regular[4, 0].item(), "x", color="tab:green", markersize=10, mew=2)
    ax_map.set_title(f"effective dilation; {state.digit_spread:.2f} on the digit", fontsize=10)
    ax_map.set_xlabel("input column (px)")
    fig.colorbar(shown, ax=ax_map, fraction=0.046, pad=0.04, label="spread / regular grid's")
    fig.tight_layout()
    return View(fig, learned_offsets_caption(state))


@export("deform.learned_offsets_widget")
def learned_offsets_widget(digit: int = 20, y: int = 8, x: int = 8) -> ViewWidget:
    """Sliders for the test digit (ranked by scale) and the output position, wired to the view."""
    import ipywidgets as widgets

    from course_lib.widgets import ViewWidget

    size = _gallery()[1].images.shape[-1] // STRIDE

    def slider(value: int, hi: int, name: str) -> widgets.IntSlider:
        return widgets.IntSlider(value=value, min=0, max=hi, description=name, continuous_update=False)

    return ViewWidget(learned_offsets_view, digit=slider(digit, GALLERY - 1, "digit (by scale)"),
                      y=slider(y, size - 1, "row y"), x=slider(x, size - 1, "column x"))
