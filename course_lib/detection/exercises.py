"""Exercises of chapter 7 (Faster R-CNN), checked automatically.

* :data:`iou_of_two_boxes` — the IoU of two boxes given as plain tuples.
* :data:`encode_box` — Faster R-CNN's ``(dx, dy, dw, dh)`` of a ground-truth box w.r.t. an anchor.
* :data:`greedy_nms` — non-maximum suppression, the greedy loop.

Notebook: ``07_faster_rcnn`` §8. Tests: ``tests/test_detection_view.py``.
"""

from __future__ import annotations

import random
from typing import Any

import torch

from course_lib.detection.boxes import box_iou, encode_boxes
from course_lib.detection.nms import nms
from course_lib.exercises import Exercise


def _random_box(rng: random.Random, lo: float = 0.0, hi: float = 40.0, min_side: float = 0.5) -> tuple[float, ...]:
    x1, y1 = rng.uniform(lo, hi), rng.uniform(lo, hi)
    return (x1, y1, x1 + rng.uniform(min_side, 30), y1 + rng.uniform(min_side, 30))


# --- 1. IoU -------------------------------------------------------------------------------------------


def _iou_reference(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return box_iou(torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64)).item()


iou_of_two_boxes = Exercise(
    title="IoU of two boxes",
    task="""
        Write `iou(a, b) -> float`. `a` and `b` are boxes (x1, y1, x2, y2) as tuples of floats,
        with x1 < x2 and y1 < y2. Return |a ∩ b| / |a ∪ b| (0.0 when they do not overlap).
    """,
    reference=_iou_reference,
    edge_cases=[
        {"a": (0.0, 0.0, 2.0, 2.0), "b": (1.0, 1.0, 3.0, 3.0)},  # 1/7
        {"a": (0.0, 0.0, 2.0, 2.0), "b": (2.0, 0.0, 4.0, 2.0)},  # touching: 0
        {"a": (0.0, 0.0, 2.0, 2.0), "b": (5.0, 5.0, 6.0, 6.0)},  # far apart: 0, not negative
        {"a": (0.0, 5.0, 2.0, 6.0), "b": (5.0, 0.0, 6.0, 2.0)},  # apart in x and in y: (-)·(-) > 0 if unclamped
        {"a": (0.0, 0.0, 10.0, 10.0), "b": (2.0, 3.0, 4.0, 5.0)},  # contained
        {"a": (1.5, 2.5, 7.0, 3.0), "b": (1.5, 2.5, 7.0, 3.0)},  # identical
    ],
    random_case=lambda rng: {"a": _random_box(rng), "b": _random_box(rng)},
    n_random=40,
    hints=[
        "The intersection is the box (max of the x1s, max of the y1s, min of the x2s, min of the y2s).",
        "Its width and height can come out negative when the boxes are apart: clamp each at 0 "
        "separately — two negative sides would multiply to a positive area.",
        "union = area(a) + area(b) - intersection.",
    ],
)

# --- 2. box encoding ----------------------------------------------------------------------------------


def _encode_reference(anchor: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    return encode_boxes(anchor[None], gt[None])[0]


encode_box = Exercise(
    title="encode a box relative to an anchor",
    task="""
        Write `encode(anchor, gt) -> Tensor[4]`. Both are Tensor[4] (x1, y1, x2, y2), float64.
        With centres (x, y) and sizes (w, h) of each box, return
            (dx, dy, dw, dh) = ((gx - ax) / aw,  (gy - ay) / ah,  log(gw / aw),  log(gh / ah))
        as one float64 tensor — Faster R-CNN's regression target (weights 1, 1, 1, 1).
    """,
    reference=_encode_reference,
    edge_cases=[
        {"anchor": torch.tensor([0.0, 0.0, 10.0, 10.0], dtype=torch.float64),
         "gt": torch.tensor([0.0, 0.0, 10.0, 10.0], dtype=torch.float64)},  # identical: all zeros
        {"anchor": torch.tensor([0.0, 0.0, 10.0, 20.0], dtype=torch.float64),
         "gt": torch.tensor([5.0, 0.0, 15.0, 20.0], dtype=torch.float64)},  # shift by half a width
        {"anchor": torch.tensor([-8.0, -4.0, 8.0, 4.0], dtype=torch.float64),
         "gt": torch.tensor([-3.0, -6.0, 5.0, 10.0], dtype=torch.float64)},  # w != h: dx/aw, dy/ah
    ],
    random_case=lambda rng: {"anchor": torch.tensor(_random_box(rng, -20, 20, 2), dtype=torch.float64),
                             "gt": torch.tensor(_random_box(rng, -20, 20, 2), dtype=torch.float64)},
    hints=[
        "Centre x = x1 + w / 2 with w = x2 - x1; likewise y.",
        "The shifts are divided by the *anchor's* size; the sizes are compared as a log ratio.",
        "Return torch.stack([dx, dy, dw, dh]).",
    ],
)

# --- 3. greedy NMS ------------------------------------------------------------------------------------


def _nms_reference(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    return nms(boxes, scores, iou_threshold)


def _random_nms_case(rng: random.Random) -> dict[str, Any]:
    n = rng.randint(1, 12)
    centres = [_random_box(rng, 0, 30, 4) for _ in range(rng.randint(1, 3))]
    boxes = []
    for _ in range(n):  # clusters of overlapping boxes, so that NMS has something to do
        x1, y1, x2, y2 = rng.choice(centres)
        boxes.append([x1 + rng.uniform(-3, 3), y1 + rng.uniform(-3, 3), x2 + rng.uniform(-3, 3) + 6,
                      y2 + rng.uniform(-3, 3) + 6])
    scores = [round(rng.random(), 1) for _ in range(n)]  # rounded: ties happen
    return {"boxes": torch.tensor(boxes, dtype=torch.float64), "scores": torch.tensor(scores, dtype=torch.float64),
            "iou_threshold": rng.choice([0.3, 0.5, 0.7])}


greedy_nms = Exercise(
    title="greedy non-maximum suppression",
    task="""
        Write `nms(boxes, scores, iou_threshold) -> Tensor[K]` (int64 indices into boxes).
        boxes is Tensor[N, 4] (x1, y1, x2, y2), scores Tensor[N], float64. Visit the boxes by
        decreasing score; keep a box unless a box kept before it overlaps it with
        IoU > iou_threshold. Return the kept indices in the order they were kept. Equal scores
        are visited in input order (a stable sort). You may use course_lib.detection.box_iou.
    """,
    reference=_nms_reference,
    edge_cases=[
        {"boxes": torch.tensor([[0.0, 0, 10, 10]], dtype=torch.float64),
         "scores": torch.tensor([0.5], dtype=torch.float64), "iou_threshold": 0.5},
        {"boxes": torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], dtype=torch.float64),
         "scores": torch.tensor([0.6, 0.9, 0.7], dtype=torch.float64), "iou_threshold": 0.5},
        # a chain: 0 suppresses 1, so 1 must not suppress 2 (which overlaps 1 but not 0)
        {"boxes": torch.tensor([[0.0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10]], dtype=torch.float64),
         "scores": torch.tensor([0.9, 0.8, 0.7], dtype=torch.float64), "iou_threshold": 0.4},
        # a tie: the first box in input order wins
        {"boxes": torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10]], dtype=torch.float64),
         "scores": torch.tensor([0.5, 0.5], dtype=torch.float64), "iou_threshold": 0.5},
    ],
    random_case=_random_nms_case,
    n_random=40,
    hints=[
        "order = torch.sort(scores, descending=True, stable=True).indices; iou = box_iou(boxes, boxes).",
        "Keep a boolean `suppressed` per box. Walk `order`: skip suppressed boxes; otherwise keep the "
        "box and mark every box with iou > iou_threshold against it as suppressed.",
        "Only *kept* boxes suppress others — a box that was itself suppressed never does.",
    ],
)
