"""The anchors-and-NMS visualiser: how the RPN labels and samples anchors, and which proposals NMS keeps.

:func:`anchors_nms_state` computes, on a synthetic image (:func:`example_scene`: three
rectangles and a cloud of scored, jittered proposals around them) — pure torch, no matplotlib,
returned as a frozen :class:`AnchorsNmsState`:

* the anchors of the whole 8×8 feature map (:func:`~course_lib.detection.generate_anchors` at
  stride 16) for the chosen size and aspect ratios, each labelled by the RPN's **full rule**
  (:func:`~course_lib.detection.label_anchors`): positive when its best IoU with a ground-truth
  box is ≥ 0.7 *or* it is (one of) the best anchor(s) of some ground-truth box, negative below
  0.3, ignored in between;
* the training minibatch the RPN's loss would see (:func:`~course_lib.detection.sample_anchors`:
  ``batch`` anchors, at most half positive), drawn with a seed;
* the proposals after greedy NMS at the chosen IoU threshold
  (:func:`~course_lib.detection.nms_with_suppressors`), with the kept box that suppressed each.

:func:`anchors_nms_view` draws it — left: the chosen cell's anchors (thick, coloured by label)
over every positive anchor of the map (thin green; solid when sampled into the minibatch,
dotted when not) and the sampled negatives' centres; right: kept proposals solid and numbered,
suppressed ones faded and dashed — and states it in the caption. :func:`anchors_nms_widget`
wires controls to it. Notebook: ``07_faster_rcnn`` §7 (widget). Tests: ``tests/test_detection_view.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from course_lib import _checks
from course_lib._export import export
from course_lib.detection.anchors import generate_anchors
from course_lib.detection.boxes import box_iou
from course_lib.detection.nms import nms_with_suppressors
from course_lib.detection.rpn import label_anchors, sample_anchors

if TYPE_CHECKING:  # matplotlib and ipywidgets load only when a picture is drawn
    from course_lib.widgets import View, ViewWidget

IMAGE_SIZE = 128  # pixels, square
STRIDE = 16  # pixels per feature cell: an 8x8 feature map
CELLS = IMAGE_SIZE // STRIDE
RATIO_SETS = {"1": (1.0,), "0.5, 1, 2": (0.5, 1.0, 2.0), "0.25 … 4": (0.25, 0.5, 1.0, 2.0, 4.0)}
LABEL_COLOURS = {"positive": "tab:green", "ignored": "tab:orange", "negative": "tab:gray"}
HIGH, LOW = 0.7, 0.3  # the RPN's IoU thresholds


@export("detection.Scene")
@dataclass(frozen=True)
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


@export("detection.AnchorsNmsState")
@dataclass(frozen=True)
class AnchorsNmsState:
    """What the anchors-and-NMS widget shows for one setting of its controls."""

    row: int  # the chosen feature cell's row (0..7)
    col: int  # and column
    size: int  # anchor size, pixels (sqrt of the area)
    ratios: tuple[float, ...]  # aspect ratios h / w
    iou_threshold: float  # NMS suppresses IoU > this
    scene: Scene  # the image, its objects and the proposals
    anchors: torch.Tensor  # Tensor[A, 4]: every anchor of the 8x8 map, cell-major then ratio
    best_iou: torch.Tensor  # Tensor[A]: each anchor's best IoU with a gt box
    labels: torch.Tensor  # Tensor[A]: 1 positive, 0 negative, -1 ignored (the full RPN rule)
    low_quality: torch.Tensor  # Tensor[A] bool: positive only through the best-anchor-for-a-gt rule
    cell: torch.Tensor  # Tensor[k]: indices into anchors of the chosen cell's anchors
    batch: int  # the minibatch size asked for
    sampled_positive: torch.Tensor  # Tensor[P]: the minibatch's positive anchors
    sampled_negative: torch.Tensor  # Tensor[Q]: its negative anchors
    keep: torch.Tensor  # Tensor[K]: kept proposals, by decreasing score
    suppressed_by: torch.Tensor  # Tensor[P]: the kept proposal that suppressed each; -1 if kept
    suppressor_iou: torch.Tensor  # Tensor[P]: IoU with that suppressor (nan if kept)

    def label_name(self, a: int) -> str:
        """``"positive"``, ``"ignored"`` or ``"negative"`` for anchor ``a``."""
        return {1.0: "positive", 0.0: "negative", -1.0: "ignored"}[self.labels[a].item()]


@export("detection.anchors_nms_state")
def anchors_nms_state(row: int = 2, col: int = 2, size: int = 32, ratios: str = "0.5, 1, 2",
                      iou_threshold: float = 0.5, seed: int = 0, batch: int = 32,
                      sample_seed: int = 0) -> AnchorsNmsState:
    """Label, sample and NMS on the synthetic scene (module docstring).

    Args:
        row, col: the feature cell (0..7 on the 8×8 map of stride 16).
        size: the anchor size in pixels (sqrt of its area).
        ratios: a key of ``RATIO_SETS``: the aspect ratios h / w.
        iou_threshold: NMS suppresses a box whose IoU with a kept one exceeds this.
        seed: of the synthetic scene.
        batch: anchors in the RPN's minibatch (256 in Faster R-CNN; 32 here, so that on this
            small map the sampling is visible), at most half of them positive.
        sample_seed: seeds the minibatch draw.

    Returns:
        :class:`AnchorsNmsState`.

    Raises:
        TypeError / ValueError: an argument of the wrong kind or out of range (named).
    """
    row = _checks.integer("row", row, minimum=0, maximum=CELLS - 1)
    col = _checks.integer("col", col, minimum=0, maximum=CELLS - 1)
    size = _checks.integer("size", size, minimum=1, maximum=4 * IMAGE_SIZE)
    _checks.one_of("ratios", ratios, RATIO_SETS)
    iou_threshold = _checks.real("iou_threshold", iou_threshold, minimum=0, maximum=1)
    batch = _checks.integer("batch", batch, minimum=0)
    sample_seed = _checks.integer("sample_seed", sample_seed, minimum=0)
    scene = example_scene(seed)
    ratio_values = RATIO_SETS[ratios]
    anchors = generate_anchors([(CELLS, CELLS)], [(STRIDE, STRIDE)], [(size,)], [ratio_values])  # (A, 4)
    k = len(ratio_values)
    iou = box_iou(scene.gt_boxes, anchors)  # (G, A)
    best = iou.max(dim=0).values  # (A,)
    labels, _ = label_anchors(anchors, scene.gt_boxes, HIGH, LOW, allow_low_quality_matches=True)
    positive, negative = sample_anchors(labels, batch, 0.5, torch.Generator().manual_seed(sample_seed))
    result = nms_with_suppressors(scene.proposals, scene.scores, iou_threshold)
    pair_iou = box_iou(scene.proposals, scene.proposals)  # (P, P)
    by = result.suppressed_by
    suppressor_iou = torch.where(by >= 0, pair_iou[torch.arange(len(by)), by.clamp(min=0)], float("nan"))
    first = (row * CELLS + col) * k
    return AnchorsNmsState(
        row=row, col=col, size=size, ratios=ratio_values, iou_threshold=iou_threshold, scene=scene,
        anchors=anchors, best_iou=best, labels=labels, low_quality=(labels == 1) & (best < HIGH),
        cell=torch.arange(first, first + k), batch=batch, sampled_positive=positive,
        sampled_negative=negative, keep=result.keep, suppressed_by=by, suppressor_iou=suppressor_iou,
    )


def anchors_nms_caption(state: AnchorsNmsState) -> str:
    """The numbers of ``state`` in words (the view's caption)."""
    n_pos = int((state.labels == 1).sum())
    n_lq = int(state.low_quality.sum())
    lines = [f"cell ({state.row}, {state.col}) -> anchor centre ({state.col * STRIDE}, {state.row * STRIDE}) px; "
             f"size {state.size}, ratios {', '.join(f'{r:g}' for r in state.ratios)}:"]
    for a, r in zip(state.cell.tolist(), state.ratios):
        rule = " (best anchor of a gt box)" if state.low_quality[a] else ""
        lines.append(f"  ratio {r:g}: box {[round(v) for v in state.anchors[a].tolist()]}, "
                     f"best IoU {state.best_iou[a].item():.2f} -> {state.label_name(a)}{rule}")
    lines.append(f"all {len(state.anchors)} anchors (full RPN rule): {n_pos} positive ({n_pos - n_lq} with IoU >= "
                 f"{HIGH}, {n_lq} as a gt's best anchor), {int((state.labels == -1).sum())} ignored, "
                 f"{int((state.labels == 0).sum())} negative")
    lines.append(f"minibatch of {state.batch} (at most half positive): {len(state.sampled_positive)} positive + "
                 f"{len(state.sampled_negative)} negative sampled")
    n = len(state.scene.proposals)
    lines.append(f"NMS at IoU threshold {state.iou_threshold:.2f}: kept {len(state.keep)} of {n} proposals "
                 f"({', '.join(map(str, state.keep.tolist()))})")
    scores = state.scene.scores
    for i in torch.argsort(scores, descending=True, stable=True).tolist():
        by = state.suppressed_by[i].item()
        verdict = "kept" if by < 0 else f"suppressed by box {by} (IoU {state.suppressor_iou[i].item():.2f})"
        lines.append(f"  box {i} (score {scores[i].item():.2f}): {verdict}")
    return "\n".join(lines)


def _draw_box(ax, box: torch.Tensor, colour: str, **kwargs) -> None:
    from matplotlib.patches import Rectangle

    x1, y1, x2, y2 = box.tolist()
    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, **kwargs))


@export("detection.anchors_nms_view")
def anchors_nms_view(row: int = 2, col: int = 2, size: int = 32, ratios: str = "0.5, 1, 2",
                     iou_threshold: float = 0.5, seed: int = 0, batch: int = 32, sample_seed: int = 0) -> View:
    """Draw :func:`anchors_nms_state` (arguments as there); the caption lists every number shown."""
    import matplotlib.pyplot as plt

    from course_lib.widgets import View

    state = anchors_nms_state(row, col, size, ratios, iou_threshold, seed, batch, sample_seed)
    scene = state.scene
    fig, (ax_a, ax_n) = plt.subplots(1, 2, figsize=(8.4, 4.4))
    margin = min(size, 64)
    for ax, pad in ((ax_a, margin), (ax_n, 0)):
        ax.imshow(scene.image.numpy(), extent=(0, IMAGE_SIZE, IMAGE_SIZE, 0))
        ax.set_xlim(-pad, IMAGE_SIZE + pad)
        ax.set_ylim(IMAGE_SIZE + pad, -pad)
        ax.set_xticks(range(0, IMAGE_SIZE + 1, 2 * STRIDE))  # every 32 px: labels never run together
        ax.set_yticks(range(0, IMAGE_SIZE + 1, 2 * STRIDE))
        ax.set_xticks(range(0, IMAGE_SIZE + 1, STRIDE), minor=True)  # the cell grid, unlabelled
        ax.set_yticks(range(0, IMAGE_SIZE + 1, STRIDE), minor=True)
        ax.grid(which="both", color="white", alpha=0.15)
        ax.tick_params(labelsize=9)
    sampled = set(state.sampled_positive.tolist())
    for a in torch.where(state.labels == 1)[0].tolist():  # every positive of the map, thin
        _draw_box(ax_a, state.anchors[a], LABEL_COLOURS["positive"], linewidth=1,
                  linestyle="-" if a in sampled else ":", alpha=0.9 if a in sampled else 0.6)
    neg = state.anchors[state.sampled_negative]
    ax_a.plot((neg[:, 0] + neg[:, 2]) / 2, (neg[:, 1] + neg[:, 3]) / 2, ".", color="lightgray", markersize=4)
    for a in state.cell.tolist():  # the chosen cell, thick
        _draw_box(ax_a, state.anchors[a], LABEL_COLOURS[state.label_name(a)], linewidth=2.5)
    ax_a.plot([col * STRIDE], [row * STRIDE], "w+", markersize=12)
    ax_a.set_title(f"cell ({row}, {col}) anchors, size {size}\nthin green: positives (solid = sampled)",
                   fontsize=10)
    kept = set(state.keep.tolist())
    for i, box in enumerate(scene.proposals):
        if i in kept:
            _draw_box(ax_n, box, "lime", linewidth=2)
            ax_n.text(box[0].item() + 1, box[1].item() + 9, str(i), color="lime", fontsize=9)
        else:
            _draw_box(ax_n, box, "white", linewidth=1, linestyle="--", alpha=0.35)
    ax_n.set_title(f"NMS at IoU > {state.iou_threshold:.2f}:\n{len(kept)} kept of {len(scene.proposals)}",
                   fontsize=10)
    fig.tight_layout()
    return View(fig, anchors_nms_caption(state))


@export("detection.anchors_nms_widget")
def anchors_nms_widget(seed: int = 0) -> ViewWidget:
    """Controls for the feature cell, anchor size and ratios, the minibatch draw and NMS's IoU threshold."""
    import ipywidgets as widgets

    from course_lib.widgets import ViewWidget

    seed = _checks.integer("seed", seed, minimum=0)

    def slider(value: int, lo: int, hi: int, name: str, step: int = 1) -> widgets.IntSlider:
        return widgets.IntSlider(value=value, min=lo, max=hi, step=step, description=name, continuous_update=False)

    def view(**kw) -> View:
        return anchors_nms_view(**kw, seed=seed)

    return ViewWidget(
        view,
        row=slider(2, 0, CELLS - 1, "cell row"),
        col=slider(2, 0, CELLS - 1, "cell col"),
        size=slider(32, 8, 128, "size (px)", 8),
        ratios=widgets.Dropdown(options=list(RATIO_SETS), value="0.5, 1, 2", description="ratios"),
        sample_seed=slider(0, 0, 9, "minibatch draw"),
        iou_threshold=widgets.SelectionSlider(options=[round(0.05 * i, 2) for i in range(1, 20)], value=0.5,
                                              description="NMS IoU", continuous_update=False),
    )
