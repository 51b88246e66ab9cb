"""The chapter's experiments: RoI pooling vs RoI Align on a moving box, ``aligned=True``'s half-pixel
bias, and a tiny torchvision Faster R-CNN trained on synthetic rectangles and measured by AP@0.5.

* :func:`shift_errors` — a feature map that is a linear ramp ``f(y, x) = x`` (in cells), a box slid
  right one image pixel at a time: every bin should then grow by exactly ``shift / stride``.
  RoI pooling's rounding makes it a staircase; RoI Align follows the box.
* :func:`aligned_bias` — the same ramp, now in *absolute* terms. A feature cell ``k`` covers the
  continuous interval ``[k, k + 1)`` and its value belongs at its centre ``k + 0.5``, so the true
  feature at continuous position ``p`` is ``p - 0.5``. ``aligned=False`` reads position ``p`` at
  index ``p`` — half a cell (8 image pixels at stride 16) to the right of where it belongs;
  ``aligned=True`` shifts the box by −0.5 cell first and reads the true value (Detectron2's fix).
* :func:`tiny_faster_rcnn`, :func:`rectangles`, :func:`train_tiny_detector` — torchvision's
  ``FasterRCNN`` with a 4-layer backbone (stride 16, random initialisation: nothing is
  downloaded) and a few SGD steps on 128×128 images of coloured rectangles, recording the four
  losses; :func:`average_precision` (AP@0.5, PASCAL VOC's all-point rule) measures it on held-out
  images once it has trained long enough to detect.

Reached as ``course_lib.detection.experiment.<name>`` (not re-exported by the package).
Notebook: ``07_faster_rcnn`` §5–6. Tests: ``tests/test_detection_roi.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from course_lib import _checks
from course_lib._export import export
from course_lib.detection.roi import roi_align, roi_pool

RAMP_CELLS = 40  # width and height of the ramp feature map, in cells


def _ramp() -> torch.Tensor:
    return torch.arange(RAMP_CELLS, dtype=torch.float64).expand(1, 1, RAMP_CELLS, RAMP_CELLS).contiguous()  # f = x


def _ops(stride: int) -> dict[str, Callable[[list[torch.Tensor]], torch.Tensor]]:
    ramp = _ramp()
    return {"RoI pooling": lambda b: roi_pool(ramp, b, 7, 1 / stride),
            "RoI Align (aligned=True)": lambda b: roi_align(ramp, b, 7, 1 / stride, 2, True),
            "RoI Align (aligned=False)": lambda b: roi_align(ramp, b, 7, 1 / stride, 2, False)}


@export("detection.experiment.shift_errors")
def shift_errors(max_shift: int = 32, stride: int = 16, box_size: float = 64.0,
                 start: float = 100.0) -> dict[str, list[float]]:
    """Mean ``|Δoutput - shift/stride|`` over the 7×7 bins, for shifts ``0..max_shift`` image pixels.

    Returns:
        ``{op name: [error at shift 0, 1, …, max_shift]}``, in feature cells.
    """
    max_shift = _checks.integer("max_shift", max_shift, minimum=0)
    stride = _checks.integer("stride", stride, minimum=1)
    errors: dict[str, list[float]] = {}
    for name, op in _ops(stride).items():
        at_zero = op([torch.tensor([[start, start, start + box_size, start + box_size]], dtype=torch.float64)])
        errors[name] = []
        for d in range(max_shift + 1):
            box = torch.tensor([[start + d, start, start + d + box_size, start + box_size]], dtype=torch.float64)
            moved = op([box])
            errors[name].append(((moved - at_zero) - d / stride).abs().mean().item())
    return errors


@export("detection.experiment.AlignedBias")
@dataclass(frozen=True)
class AlignedBias:
    """Signed error of RoI Align's bins against the true feature at each bin, in cells."""

    aligned: torch.Tensor  # Tensor[S]: mean over bins of (output - truth), aligned=True, per box position
    legacy: torch.Tensor  # Tensor[S]: the same for aligned=False
    stride: int  # image pixels per cell


@export("detection.experiment.aligned_bias")
def aligned_bias(positions: int = 17, stride: int = 16, box_size: float = 64.0, start: float = 100.0) -> AlignedBias:
    """Where does RoI Align read? The ramp's true value at each bin's centre vs what each mode returns.

    The box's left edge runs over ``start, start + 1, …`` (``positions`` image pixels). For bin ``j``
    of the 7 along x, its centre in feature coordinates is ``c_j = x1/stride + (j + 0.5)·w/7`` and the
    true feature there is ``c_j - 0.5`` (module docstring); a bilinear read of the ramp is exact, so
    the error is the sampling grid's offset alone.
    """
    positions = _checks.integer("positions", positions, minimum=1)
    stride = _checks.integer("stride", stride, minimum=1)
    ramp = _ramp()
    errs: dict[bool, list[float]] = {True: [], False: []}
    for d in range(positions):
        x1 = start + d
        box = [torch.tensor([[x1, start, x1 + box_size, start + box_size]], dtype=torch.float64)]
        centres = x1 / stride + (torch.arange(7, dtype=torch.float64) + 0.5) * (box_size / stride) / 7  # (7,)
        truth = (centres - 0.5)[None, :].expand(7, 7)  # (PH, PW): the ramp varies along x only
        for aligned in (True, False):
            out = roi_align(ramp, box, 7, 1 / stride, 2, aligned)[0, 0]  # (7, 7)
            errs[aligned].append((out - truth).mean().item())
    return AlignedBias(torch.tensor(errs[True], dtype=torch.float64), torch.tensor(errs[False], dtype=torch.float64),
                       stride)


@export("detection.experiment.DetectorConfig")
@dataclass(frozen=True)
class DetectorConfig:
    """The tiny detector of the notebook."""

    image_size: int = 128  # square images, pixels
    channels: int = 16  # backbone width
    anchor_sizes: tuple[int, ...] = (16, 32, 64)  # one feature map, stride 16
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    rpn_batch: int = 64  # anchors per image in the RPN loss (256 in the paper)
    box_batch: int = 64  # proposals per image in the heads' loss (512 in the paper)
    lr: float = 0.02  # SGD, momentum 0.9
    images_per_step: int = 2


@export("detection.experiment.tiny_faster_rcnn")
def tiny_faster_rcnn(config: DetectorConfig = DetectorConfig(), seed: int = 0) -> nn.Module:
    """torchvision's ``FasterRCNN`` with a 4-layer stride-16 backbone, two classes, random weights."""
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign

    torch.manual_seed(seed)
    c = config.channels
    backbone = nn.Sequential(nn.Conv2d(3, c, 3, 2, 1), nn.ReLU(), nn.Conv2d(c, c, 3, 2, 1), nn.ReLU(),
                             nn.Conv2d(c, c, 3, 2, 1), nn.ReLU(), nn.Conv2d(c, c, 3, 2, 1), nn.ReLU())
    backbone.out_channels = c  # type: ignore[assignment]  # FasterRCNN reads this attribute
    return FasterRCNN(backbone, num_classes=None, min_size=config.image_size, max_size=config.image_size,
                      rpn_anchor_generator=AnchorGenerator((config.anchor_sizes,), (config.aspect_ratios,)),
                      box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2), box_head=TwoMLPHead(c * 7 * 7, 64),
                      box_predictor=FastRCNNPredictor(64, 2), rpn_batch_size_per_image=config.rpn_batch,
                      box_batch_size_per_image=config.box_batch)


@export("detection.experiment.rectangles")
def rectangles(gen: torch.Generator, n: int = 2, size: int = 128) -> tuple[list[torch.Tensor], list[dict]]:
    """``n`` images of 1–3 random coloured rectangles and their targets (boxes, class 1)."""
    images, targets = [], []
    for _ in range(n):
        image = 0.1 * torch.rand(3, size, size, generator=gen)
        boxes = []
        for _ in range(int(torch.randint(1, 4, (1,), generator=gen))):
            x0, y0 = torch.randint(0, size - 38, (2,), generator=gen).tolist()
            w, h = torch.randint(16, 40, (2,), generator=gen).tolist()
            image[:, y0:y0 + h, x0:x0 + w] = torch.rand(3, 1, 1, generator=gen)
            boxes.append([x0, y0, min(x0 + w, size), min(y0 + h, size)])
        images.append(image)
        targets.append({"boxes": torch.tensor(boxes, dtype=torch.float32),
                        "labels": torch.ones(len(boxes), dtype=torch.int64)})
    return images, targets


@export("detection.experiment.train_tiny_detector")
def train_tiny_detector(model: nn.Module, steps: int, gen: torch.Generator,
                        config: DetectorConfig = DetectorConfig(), progress: bool = False) -> list[dict[str, float]]:
    """``steps`` SGD steps on fresh :func:`rectangles`; returns the four losses after each step."""
    from tqdm.auto import tqdm

    steps = _checks.integer("steps", steps, minimum=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9)
    history = []
    model.train()
    for _ in tqdm(range(steps), desc="training", disable=not progress):
        images, targets = rectangles(gen, config.images_per_step, config.image_size)
        losses = model(images, targets)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
        history.append({k: v.item() for k, v in losses.items()})
    return history


@export("detection.experiment.average_precision")
def average_precision(detections: list[dict[str, torch.Tensor]], targets: list[dict[str, torch.Tensor]],
                      iou_threshold: float = 0.5) -> float:
    """AP at one IoU threshold for one class (PASCAL VOC's all-point interpolation).

    Every detection, over all images, is visited by decreasing score; it is a true positive when its
    best-overlapping ground-truth box in the same image has IoU ≥ ``iou_threshold`` and was not
    matched by a higher-scored detection, else a false positive. AP is the area under the
    precision–recall curve after making precision non-increasing (``p(r) = max_{r' ≥ r} p(r')``).

    Args:
        detections: per image ``{"boxes": Tensor[D, 4], "scores": Tensor[D]}`` (a model's output).
        targets: per image ``{"boxes": Tensor[G, 4]}``.
        iou_threshold: 0.5 for AP@0.5.

    Returns:
        AP in [0, 1]; ``nan`` when there is no ground-truth box at all (recall undefined).
    """
    from course_lib.detection.boxes import box_iou

    if len(detections) != len(targets):
        raise ValueError(f"detections and targets must have one entry per image; got {len(detections)} and "
                         f"{len(targets)}")
    threshold = _checks.real("iou_threshold", iou_threshold, minimum=0.0, maximum=1.0)
    n_gt = sum(len(t["boxes"]) for t in targets)
    if n_gt == 0:
        return float("nan")
    found = []  # (score, is true positive)
    for det, tgt in zip(detections, targets):
        order = torch.sort(det["scores"], descending=True, stable=True).indices
        boxes, gt = det["boxes"][order], tgt["boxes"]
        taken = torch.zeros(len(gt), dtype=torch.bool)
        iou = box_iou(boxes, gt) if len(gt) else torch.zeros(len(boxes), 0)  # (D, G)
        for d in range(len(boxes)):
            hit = False
            if len(gt):
                best, g = iou[d].max(0)
                hit = bool(best >= threshold) and not bool(taken[g])
                if hit:
                    taken[g] = True
            found.append((det["scores"][order[d]].item(), hit))
    found.sort(key=lambda f: -f[0])  # Python's sort is stable: ties keep image order
    tp = torch.tensor([float(h) for _, h in found]).cumsum(0)  # (D_total,)
    precision = tp / torch.arange(1, len(found) + 1)
    recall = tp / n_gt
    # all-point interpolation: precision made non-increasing, integrated over recall steps
    r = torch.cat([torch.zeros(1), recall, torch.ones(1)])
    p = torch.cat([torch.zeros(1), precision, torch.zeros(1)])
    p = torch.flip(torch.cummax(torch.flip(p, [0]), 0).values, [0])
    steps = torch.where(r[1:] != r[:-1])[0]
    return float(((r[steps + 1] - r[steps]) * p[steps + 1]).sum())
