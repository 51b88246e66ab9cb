"""Exercises of chapter 7 (Faster R-CNN), checked automatically.

* :data:`iou_of_two_boxes` — the IoU of two boxes given as plain tuples.
* :data:`encode_box` — Faster R-CNN's ``(dx, dy, dw, dh)`` of a ground-truth box w.r.t. an anchor.
* :data:`greedy_nms` — non-maximum suppression, the greedy loop.

Each reference solution (what ``solution()`` prints) is written out from the definition — the
clamps of IoU, the centres and logs of the encoding, the greedy loop of NMS — never a call of the
library function the exercise teaches; ``tests/test_detection_view.py`` checks both that and that
each solution equals the library on every case.

Notebook: ``07_faster_rcnn`` §8. Tests: ``tests/test_detection_view.py``.
"""

from __future__ import annotations

import random
from typing import Any

import torch

from course_lib.detection.boxes import box_iou
from course_lib.exercises import Exercise


def _random_box(rng: random.Random, lo: float = 0.0, hi: float = 40.0, min_side: float = 0.5) -> tuple[float, ...]:
    x1, y1 = rng.uniform(lo, hi), rng.uniform(lo, hi)
    return (x1, y1, x1 + rng.uniform(min_side, 30), y1 + rng.uniform(min_side, 30))


# --- 1. IoU -------------------------------------------------------------------------------------------


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    # The intersection is itself a box: the larger of the top-left corners, the smaller of the
    # bottom-right ones.
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[2], b[2]), min(a[3], b[3])
    # Apart boxes give a negative width or height: clamp each side at 0 *separately* — boxes apart
    # in x and in y would otherwise multiply two negatives into a positive area.
    inter = max(0.0, right - left) * max(0.0, bottom - top)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter  # counted once
    return inter / union


iou_of_two_boxes = Exercise(
    title="IoU of two boxes",
    task="""
        Write `iou(a, b) -> float`. `a` and `b` are boxes (x1, y1, x2, y2) as tuples of floats,
        with x1 < x2 and y1 < y2. Return |a ∩ b| / |a ∪ b| (0.0 when they do not overlap).
    """,
    reference=iou,
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


def encode(anchor: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    aw, ah = anchor[2] - anchor[0], anchor[3] - anchor[1]  # sizes
    ax, ay = anchor[0] + 0.5 * aw, anchor[1] + 0.5 * ah  # centres
    gw, gh = gt[2] - gt[0], gt[3] - gt[1]
    gx, gy = gt[0] + 0.5 * gw, gt[1] + 0.5 * gh
    # Shifts in units of the anchor's size, scale changes as logs: the same targets for a box of
    # any size, and exp() in the decoder keeps predicted sizes positive.
    return torch.stack([(gx - ax) / aw, (gy - ay) / ah, torch.log(gw / aw), torch.log(gh / ah)])


encode_box = Exercise(
    title="encode a box relative to an anchor",
    task="""
        Write `encode(anchor, gt) -> Tensor[4]`. Both are Tensor[4] (x1, y1, x2, y2), float64.
        With centres (x, y) and sizes (w, h) of each box, return
            (dx, dy, dw, dh) = ((gx - ax) / aw,  (gy - ay) / ah,  log(gw / aw),  log(gh / ah))
        as one float64 tensor — Faster R-CNN's regression target (weights 1, 1, 1, 1).
    """,
    reference=encode,
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


def greedy(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    # Stable: boxes with equal scores are visited in input order, as torchvision does.
    order = torch.sort(scores, descending=True, stable=True).indices.tolist()
    overlap = box_iou(boxes, boxes)  # (N, N), computed once
    suppressed = [False] * len(order)
    keep = []
    for i in order:
        if suppressed[i]:  # only kept boxes suppress: a suppressed box never removes another
            continue
        keep.append(i)
        for j in order:
            if overlap[i, j] > iou_threshold:  # strictly greater: IoU == threshold survives
                suppressed[j] = True
    return torch.tensor(keep, dtype=torch.int64)


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
    reference=greedy,
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
        # a 17-way tie behind one far box: an unstable sort visits the tied boxes out of input order
        {"boxes": torch.tensor([[50.0, 50, 60, 60]] + [[0.1 * i, 0, 10 + 0.1 * i, 10] for i in range(17)],
                               dtype=torch.float64),
         "scores": torch.tensor([0.7] + [0.5] * 17, dtype=torch.float64), "iou_threshold": 0.5},
        # IoU exactly at the threshold: 50 / 100 = 0.5 is not > 0.5, so both boxes stay (>= would drop one)
        {"boxes": torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 5]], dtype=torch.float64),
         "scores": torch.tensor([0.9, 0.8], dtype=torch.float64), "iou_threshold": 0.5},
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
