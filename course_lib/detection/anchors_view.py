"""The anchors-and-NMS visualiser: which anchors sit at a feature cell, and which proposals NMS keeps.

:func:`anchors_nms_view` draws, on a synthetic image (:func:`example_scene`: three rectangles
and a cloud of scored, jittered proposals around them):

* left — the anchors of one feature-map cell (:func:`~course_lib.detection.generate_anchors` at
  stride 16) for the chosen size and aspect ratios, each labelled with its best IoU with a
  ground-truth box and coloured by the RPN's label (positive ≥ 0.7, negative < 0.3, ignored
  between; :func:`~course_lib.detection.match_anchors` without low-quality matches);
* right — the proposals after greedy NMS at the chosen IoU threshold
  (:func:`~course_lib.detection.nms_with_suppressors`): kept boxes solid, suppressed ones faded
  and dashed; the caption names, for every suppressed box, the kept box that suppressed it.

:func:`anchors_nms_widget` wires sliders to it. Notebook: ``07_faster_rcnn`` §7 (widget).
Tests: ``tests/test_detection_view.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Rectangle

from course_lib import _checks
from course_lib._export import export
from course_lib.detection.anchors import generate_anchors
from course_lib.detection.boxes import box_iou
from course_lib.detection.nms import nms_with_suppressors
from course_lib.detection.rpn import match_anchors
from course_lib.widgets import View, ViewWidget

IMAGE_SIZE = 128  # pixels, square
STRIDE = 16  # pixels per feature cell: an 8x8 feature map
RATIO_SETS = {"1": (1.0,), "0.5, 1, 2": (0.5, 1.0, 2.0), "0.25 … 4": (0.25, 0.5, 1.0, 2.0, 4.0)}
LABEL_COLOURS = {"positive": "tab:green", "ignored": "tab:orange", "negative": "tab:gray"}


@export("detection.Scene")
@dataclass
class Scene:
    """A synthetic image with objects and scored proposals around them."""

    image: torch.Tensor  # Tensor[H, W, 3] in [0, 1]
    gt_boxes: torch.Tensor  # Tensor[G, 4]: the objects
    proposals: torch.Tensor  # Tensor[P, 4]: jittered copies of the objects (what an RPN would emit)
    scores: torch.Tensor  # Tensor[P]: their scores, in (0, 1)


@export("detection.example_scene")
def example_scene(seed: int = 0, per_object: int = 4) -> Scene:
    """Three coloured rectangles on a dark background, and ``per_object`` jittered proposals each."""
    gen = torch.Generator().manual_seed(seed)
    gt = torch.tensor([[14.0, 20.0, 62.0, 52.0], [70.0, 12.0, 100.0, 74.0], [36.0, 78.0, 116.0, 118.0]])
    colours = torch.tensor([[0.9, 0.3, 0.2], [0.2, 0.6, 0.9], [0.9, 0.8, 0.2]])
    image = 0.1 + 0.05 * torch.rand(IMAGE_SIZE, IMAGE_SIZE, 3, generator=gen)
    for (x1, y1, x2, y2), colour in zip(gt.long().tolist(), colours):
        image[y1:y2, x1:x2] = colour
    size = torch.cat([gt[:, 2:] - gt[:, :2]] * 2, dim=1)  # (G, 4): jitter in proportion to the object
    jitter = 0.15 * torch.randn(len(gt), per_object, 4, generator=gen) * size[:, None]  # (G, n, 4)
    proposals = (gt[:, None] + jitter).reshape(-1, 4).clamp(0, IMAGE_SIZE)  # (G*n, 4)
    scores = torch.rand(len(proposals), generator=gen) * 0.5 + 0.45  # (G*n,)
    return Scene(image, gt, proposals, scores)


def _draw_box(ax, box, colour: str, **kwargs) -> None:
    x1, y1, x2, y2 = box.tolist()
    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, **kwargs))


@export("detection.anchors_nms_view")
def anchors_nms_view(row: int = 2, col: int = 2, size: int = 32, ratios: str = "0.5, 1, 2",
                     iou_threshold: float = 0.5, seed: int = 0) -> View:
    """Anchors at feature cell ``(row, col)`` and NMS of the scene's proposals at ``iou_threshold``.

    Args:
        row, col: the feature cell (0..7 on the 8×8 map of stride 16).
        size: the anchor size in pixels (sqrt of its area).
        ratios: a key of ``RATIO_SETS``: the aspect ratios h / w drawn.
        iou_threshold: NMS suppresses a box whose IoU with a kept one exceeds this.
        seed: of the synthetic scene.

    Returns:
        A :class:`View`; the caption lists each anchor with its best IoU and label, and each
        proposal: kept, or suppressed by which kept box at what IoU.
    """
    cells = IMAGE_SIZE // STRIDE
    row = _checks.integer("row", row, minimum=0, maximum=cells - 1)
    col = _checks.integer("col", col, minimum=0, maximum=cells - 1)
    size = _checks.integer("size", size, minimum=1, maximum=4 * IMAGE_SIZE)
    _checks.one_of("ratios", ratios, RATIO_SETS)
    iou_threshold = _checks.real("iou_threshold", iou_threshold, minimum=0, maximum=1)
    scene = example_scene(seed)
    ratio_values = RATIO_SETS[ratios]
    anchors = generate_anchors([(1, 1)], [(STRIDE, STRIDE)], [(size,)], [ratio_values])  # (R, 4) at the origin
    anchors = anchors + torch.tensor([col, row, col, row], dtype=anchors.dtype) * STRIDE
    iou = box_iou(scene.gt_boxes, anchors)  # (G, R)
    matches = match_anchors(iou, 0.7, 0.3, allow_low_quality_matches=False)
    labels = ["positive" if m >= 0 else ("negative" if m == -1 else "ignored") for m in matches.tolist()]
    result = nms_with_suppressors(scene.proposals, scene.scores, iou_threshold)
    pair_iou = box_iou(scene.proposals, scene.proposals)  # (P, P)

    fig, (ax_a, ax_n) = plt.subplots(1, 2, figsize=(10, 5))
    for ax in (ax_a, ax_n):
        ax.imshow(scene.image.numpy(), extent=(0, IMAGE_SIZE, IMAGE_SIZE, 0))
        ax.set_xlim(-size, IMAGE_SIZE + size)
        ax.set_ylim(IMAGE_SIZE + size, -size)
        ax.set_xticks(range(0, IMAGE_SIZE + 1, STRIDE))
        ax.set_yticks(range(0, IMAGE_SIZE + 1, STRIDE))
        ax.grid(color="white", alpha=0.15)
    ax_a.plot([col * STRIDE], [row * STRIDE], "w+", markersize=12)
    for anchor, label in zip(anchors, labels):
        _draw_box(ax_a, anchor, LABEL_COLOURS[label], linewidth=2)
    ax_a.set_title(f"anchors at cell ({row}, {col}), size {size}")
    ax_n.set_xlim(0, IMAGE_SIZE)
    ax_n.set_ylim(IMAGE_SIZE, 0)
    kept = set(result.keep.tolist())
    for i, box in enumerate(scene.proposals):
        if i in kept:
            _draw_box(ax_n, box, "lime", linewidth=2)
            ax_n.text(box[0].item() + 1, box[1].item() + 5, str(i), color="lime", fontsize=8)
        else:
            _draw_box(ax_n, box, "white", linewidth=1, linestyle="--", alpha=0.35)
    ax_n.set_title(f"NMS at IoU > {iou_threshold:.2f}: {len(kept)} kept of {len(scene.proposals)}")
    fig.tight_layout()

    anchor_lines = [f"  ratio {r:g}: box {[round(v) for v in a.tolist()]}, best IoU {iou[:, k].max().item():.2f}"
                    f" -> {labels[k]}" for k, (a, r) in enumerate(zip(anchors, ratio_values))]
    nms_lines = []
    for i in torch.argsort(scene.scores, descending=True, stable=True).tolist():
        s = scene.scores[i].item()
        by = result.suppressed_by[i].item()
        if by < 0:
            nms_lines.append(f"  box {i} (score {s:.2f}): kept")
        else:
            nms_lines.append(f"  box {i} (score {s:.2f}): suppressed by box {by} (IoU {pair_iou[i, by].item():.2f})")
    caption = (f"cell ({row}, {col}) -> anchor centre ({col * STRIDE}, {row * STRIDE}) px; size {size}, "
               f"ratios {ratios}:\n" + "\n".join(anchor_lines)
               + f"\nNMS at IoU threshold {iou_threshold:.2f}: kept {len(kept)} of {len(scene.proposals)} proposals "
               f"({', '.join(map(str, result.keep.tolist()))})\n" + "\n".join(nms_lines))
    return View(fig, caption)


@export("detection.anchors_nms_widget")
def anchors_nms_widget(seed: int = 0) -> ViewWidget:
    """Sliders for the feature cell, anchor size and ratios, and NMS's IoU threshold."""
    def slider(value: int, lo: int, hi: int, name: str, step: int = 1) -> widgets.IntSlider:
        return widgets.IntSlider(value=value, min=lo, max=hi, step=step, description=name, continuous_update=False)

    cells = IMAGE_SIZE // STRIDE
    return ViewWidget(
        lambda **kw: anchors_nms_view(**kw, seed=seed),
        row=slider(2, 0, cells - 1, "row"),
        col=slider(2, 0, cells - 1, "col"),
        size=slider(32, 8, 128, "size", 8),
        ratios=widgets.Dropdown(options=list(RATIO_SETS), value="0.5, 1, 2", description="ratios"),
        iou_threshold=widgets.FloatSlider(value=0.5, min=0.05, max=0.95, step=0.05, description="IoU thr",
                                          continuous_update=False, readout_format=".2f"),
    )
