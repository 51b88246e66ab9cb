"""Non-maximum suppression: keep the best-scoring box of each cluster of overlapping boxes.

A detector (and the RPN) fires many boxes around each object. Greedy NMS (used for detection
since Felzenszwalb et al. 2010; Faster R-CNN, Ren et al. 2015, §3.3) visits the boxes from the
highest score down::

    order = boxes sorted by score, descending (stable: ties keep their input order)
    for i in order:
        if i is not suppressed:
            keep i
            suppress every later j with IoU(i, j) > iou_threshold

``batched_nms`` runs NMS independently per category (class, or feature-map level in the RPN):
boxes of different categories never suppress each other.

Differences from torchvision: none intended — :func:`nms` equals ``torchvision.ops.nms``
(strict ``>`` of the IoU, in the boxes' dtype, against the threshold in float64; a stable
descending sort, so equal scores keep their input order; a pair of zero-area boxes has
IoU ``nan``, which suppresses nothing) and :func:`batched_nms` ``torchvision.ops.batched_nms``
— its per-category path. For small inputs torchvision instead offsets each category's boxes by
``idx · (max coordinate + 1)`` and runs one NMS; the offset can round tiny (subnormal) extents
away or turn ``inf`` coordinates into ``nan``, so there its answer can differ from its own
per-category path. course_lib always runs the per-category definition (pinned in
``tests/test_detection_edges.py``).
This version loops in Python over the kept boxes after one
vectorised IoU matrix: O(N²) memory, fine for the few thousand boxes of a course example,
where torchvision's C++/CUDA kernels are faster. :func:`nms_with_suppressors` also reports
*which* box suppressed each one (the widget's caption).

Notebook: ``07_faster_rcnn`` §4 (NMS). Tests: ``tests/test_detection.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from course_lib import _checks
from course_lib._export import export
from course_lib.detection.boxes import _boxes, box_iou


@export("detection.NmsResult")
@dataclass
class NmsResult:
    """What greedy NMS did to each box."""

    keep: torch.Tensor  # Tensor[K] int64: the kept boxes' indices, by decreasing score
    suppressed_by: torch.Tensor  # Tensor[N] int64: the kept box that suppressed box i; -1 if i is kept


def _check(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> float:
    _boxes("boxes", boxes)
    _checks.tensor("scores", scores, ndim=1)
    if scores.shape[0] != boxes.shape[0]:
        raise ValueError(f"scores must have shape ({boxes.shape[0]},), one per box; got {tuple(scores.shape)}")
    _checks.same_device(boxes=boxes, scores=scores)
    return _checks.real("iou_threshold", iou_threshold)


@export("detection.nms_with_suppressors")
def nms_with_suppressors(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> NmsResult:
    """Greedy NMS that records, for every suppressed box, the kept box that suppressed it.

    Args:
        boxes (Tensor[N, 4]): ``(x1, y1, x2, y2)``.
        scores (Tensor[N]): higher is better.
        iou_threshold: a box is suppressed by a kept one when their IoU is *greater* than this.

    Returns:
        :class:`NmsResult`.

    Raises:
        TypeError, ValueError: shapes, devices or a threshold that is not a number.
    """
    iou_threshold = _check(boxes, scores, iou_threshold)
    n = boxes.shape[0]
    suppressed_by = torch.full((n,), -1, dtype=torch.int64)
    if n == 0:
        return NmsResult(torch.empty(0, dtype=torch.int64, device=boxes.device), suppressed_by.to(boxes.device))
    order = torch.sort(scores, descending=True, stable=True).indices  # (N,)
    iou = box_iou(boxes[order], boxes[order]).cpu()  # (N, N) in score order
    index = order.tolist()  # the loop below runs on the host, in Python ints
    # Compared in float64, as torchvision's kernel compares a float IoU with a double threshold:
    # a float32 IoU of exactly 3/10 is 0.3000000119 > 0.3. nan > t is False: zero-area pairs never suppress.
    over = (iou.double() > iou_threshold).tolist()
    alive = [True] * n
    keep = []
    for a in range(n):  # a, b: positions in score order
        if not alive[a]:
            continue
        keep.append(a)
        row = over[a]
        for b in range(a + 1, n):
            if alive[b] and row[b]:
                alive[b] = False
                suppressed_by[index[b]] = index[a]
    return NmsResult(order[keep], suppressed_by.to(boxes.device))


@export("detection.nms")
def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression, as ``torchvision.ops.nms``.

    Args:
        boxes (Tensor[N, 4]): ``(x1, y1, x2, y2)``.
        scores (Tensor[N]): higher is better.
        iou_threshold: suppress boxes whose IoU with a kept box is greater than this.

    Returns:
        Tensor[K] int64: indices of the kept boxes, by decreasing score.

    Example:
        >>> b = torch.tensor([[0., 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]])
        >>> nms(b, torch.tensor([0.9, 0.8, 0.7]), 0.5)
        tensor([0, 2])
    """
    return nms_with_suppressors(boxes, scores, iou_threshold).keep


@export("detection.batched_nms")
def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """NMS run independently for each category ``idxs`` (as ``torchvision.ops.batched_nms``).

    Args:
        boxes (Tensor[N, 4]), scores (Tensor[N]): as for :func:`nms`.
        idxs (Tensor[N], integer): the category of each box.
        iou_threshold: as for :func:`nms`.

    Returns:
        Tensor[K] int64: the kept boxes' indices, by decreasing score over all categories.
    """
    iou_threshold = _check(boxes, scores, iou_threshold)
    _checks.tensor("idxs", idxs, ndim=1, dtypes=(torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8))
    if idxs.shape[0] != boxes.shape[0]:
        raise ValueError(f"idxs must have shape ({boxes.shape[0]},), one per box; got {tuple(idxs.shape)}")
    keep = torch.zeros(boxes.shape[0], dtype=torch.bool, device=boxes.device)
    for category in torch.unique(idxs):
        members = torch.where(idxs == category)[0]  # (n_c,)
        keep[members[nms(boxes[members], scores[members], iou_threshold)]] = True
    kept = torch.where(keep)[0]
    return kept[torch.sort(scores[kept], descending=True, stable=True).indices]
