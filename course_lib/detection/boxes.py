"""Boxes: area, IoU, clipping, and Faster R-CNN's box encoding (dx, dy, dw, dh).

Every box is ``(x1, y1, x2, y2)`` in pixels, ``x1 <= x2`` and ``y1 <= y2``. Two quantities
drive a detector:

* **IoU** (intersection over union, the Jaccard index) of boxes ``a`` and ``b``:
  ``|a ∩ b| / (|a| + |b| - |a ∩ b|)`` — 1 for identical boxes, 0 for disjoint ones.
* **The box encoding** of Faster R-CNN (Ren et al., 2015, https://arxiv.org/abs/1506.01497,
  eq. 2; first in R-CNN, Girshick et al. 2014). A ground-truth box ``g`` is described relative
  to a reference box ``a`` (an anchor or a proposal), with centres ``(x, y)`` and sizes
  ``(w, h)``::

      dx = wx · (g_x - a_x) / a_w        dw = ww · log(g_w / a_w)
      dy = wy · (g_y - a_y) / a_h        dh = wh · log(g_h / a_h)

  Shifts are in units of the reference's size and scale factors are logs, so the targets
  are independent of the box's size. ``(wx, wy, ww, wh)`` are constant weights ((1, 1, 1, 1)
  for the RPN, (10, 10, 5, 5) for the RoI heads) that bring the targets to unit scale.
  Decoding inverts this; ``dw``, ``dh`` are clamped at ``log(1000/16)`` first so that ``exp``
  cannot overflow on an untrained network's wild outputs.

Differences from torchvision: none intended — :func:`box_iou` equals ``torchvision.ops.box_iou``
(``nan`` for two zero-area boxes, as there), :func:`encode_boxes` / :func:`decode_boxes` equal
``torchvision.models.detection._utils.BoxCoder.encode_single`` / ``decode_single``,
:func:`clip_boxes` and :func:`remove_small_boxes` the ``torchvision.ops`` functions of those
names. Limitation: ``xyxy`` format only (torchvision also accepts ``xywh``, ``cxcywh``).

Notebook: ``07_faster_rcnn`` §2 (IoU and box encoding). Tests: ``tests/test_detection.py``.
"""

from __future__ import annotations

import math

import torch

from course_lib import _checks
from course_lib._export import export

BBOX_XFORM_CLIP = math.log(1000.0 / 16)  # the largest dw, dh decoded: a box grows at most 62.5x


def _boxes(name: str, boxes: torch.Tensor) -> torch.Tensor:
    _checks.tensor(name, boxes, ndim=2)
    if boxes.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4) as (x1, y1, x2, y2); got {tuple(boxes.shape)}")
    return boxes


def _upcast(t: torch.Tensor) -> torch.Tensor:
    # As torchvision: integer boxes are promoted so products of sides cannot overflow.
    if t.is_floating_point():
        return t if t.dtype in (torch.float32, torch.float64) else t.float()
    return t if t.dtype in (torch.int32, torch.int64) else t.int()


@export("detection.box_area")
def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas ``(x2 - x1)(y2 - y1)`` of ``boxes (Tensor[N, 4])``; returns ``Tensor[N]``."""
    boxes = _upcast(_boxes("boxes", boxes))
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


@export("detection.box_iou")
def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of two sets of boxes.

    Args:
        boxes1 (Tensor[N, 4]): ``(x1, y1, x2, y2)`` boxes.
        boxes2 (Tensor[M, 4]): ``(x1, y1, x2, y2)`` boxes.

    Returns:
        Tensor[N, M]: ``iou[i, j]`` of ``boxes1[i]`` and ``boxes2[j]``, in [0, 1]; ``nan`` where
        both boxes have zero area and do not overlap (0 / 0, as in torchvision).

    Raises:
        TypeError: not tensors. ValueError: not of shape (N, 4).

    Example:
        >>> box_iou(torch.tensor([[0., 0, 2, 2]]), torch.tensor([[1., 1, 3, 3]]))
        tensor([[0.1429]])
    """
    _boxes("boxes1", boxes1)
    _boxes("boxes2", boxes2)
    area1, area2 = box_area(boxes1), box_area(boxes2)
    lt = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])  # (N, M, 2): top-left of the intersection
    rb = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])  # (N, M, 2): bottom-right
    wh = _upcast(rb - lt).clamp(min=0)  # (N, M, 2): empty intersections have size 0
    inter = wh[..., 0] * wh[..., 1]  # (N, M)
    return inter / (area1[:, None] + area2[None, :] - inter)


@export("detection.clip_boxes")
def clip_boxes(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Clamp ``boxes (Tensor[N, 4])`` into an image of ``size = (height, width)``."""
    _boxes("boxes", boxes)
    if len(size) != 2:
        raise ValueError(f"size must be (height, width); got {size!r}")
    height, width = size
    x = boxes[:, 0::2].clamp(min=0, max=width)  # (N, 2)
    y = boxes[:, 1::2].clamp(min=0, max=height)  # (N, 2)
    return torch.stack((x, y), dim=2).reshape(boxes.shape)  # (N, 4) as x1, y1, x2, y2


@export("detection.remove_small_boxes")
def remove_small_boxes(boxes: torch.Tensor, min_size: float) -> torch.Tensor:
    """Indices (``Tensor[K]``, int64) of the boxes whose both sides are at least ``min_size``."""
    _boxes("boxes", boxes)
    min_size = _checks.real("min_size", min_size, minimum=0)
    ws, hs = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return torch.where((ws >= min_size) & (hs >= min_size))[0]


def _centres(boxes: torch.Tensor) -> tuple[torch.Tensor, ...]:
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return boxes[:, 0] + 0.5 * w, boxes[:, 1] + 0.5 * h, w, h


def _weights(weights: tuple[float, float, float, float]) -> tuple[float, ...]:
    if len(weights) != 4:
        raise ValueError(f"weights must be 4 numbers (wx, wy, ww, wh); got {weights!r}")
    return tuple(_checks.real(f"weights[{i}]", w, minimum=0, open_min=True) for i, w in enumerate(weights))


@export("detection.encode_boxes")
def encode_boxes(reference: torch.Tensor, boxes: torch.Tensor,
                 weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)) -> torch.Tensor:
    """Encode ``boxes`` relative to ``reference`` boxes as ``(dx, dy, dw, dh)`` (module docstring).

    Args:
        reference (Tensor[N, 4]): anchors or proposals, positive widths and heights.
        boxes (Tensor[N, 4]): the boxes to encode (e.g. each anchor's matched ground truth).
        weights: ``(wx, wy, ww, wh)``; (1, 1, 1, 1) in the RPN, (10, 10, 5, 5) in the RoI heads.

    Returns:
        Tensor[N, 4]: the regression targets.

    Raises:
        TypeError: not floating tensors. ValueError: wrong shapes or weights.

    Note the argument order: torchvision's ``BoxCoder.encode_single(reference_boxes, proposals)``
    calls the *ground truth* ``reference_boxes`` and the anchors ``proposals``; here
    ``encode_boxes(reference=anchors, boxes=gt)`` equals ``encode_single(gt, anchors)``.
    """
    _checks.tensor("reference", reference, floating=True)
    _checks.tensor("boxes", boxes, floating=True)
    dims = _checks.shape("reference", _boxes("reference", reference), "N 4")
    _checks.shape("boxes", _boxes("boxes", boxes), "N 4", dims)
    wx, wy, ww, wh = _weights(weights)
    ax, ay, aw, ah = _centres(reference)
    gx, gy, gw, gh = _centres(boxes)
    return torch.stack((wx * (gx - ax) / aw, wy * (gy - ay) / ah,
                        ww * torch.log(gw / aw), wh * torch.log(gh / ah)), dim=1)  # (N, 4)


@export("detection.decode_boxes")
def decode_boxes(reference: torch.Tensor, deltas: torch.Tensor,
                 weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
                 clip: float = BBOX_XFORM_CLIP) -> torch.Tensor:
    """Apply ``deltas`` to ``reference`` boxes: the inverse of :func:`encode_boxes`.

    Args:
        reference (Tensor[N, 4]): anchors or proposals.
        deltas (Tensor[N, 4 * C]): ``(dx, dy, dw, dh)`` per box, for ``C >= 1`` classes.
        weights: as for :func:`encode_boxes`.
        clip: ``dw`` and ``dh`` (after dividing by the weights) are clamped to at most this,
            ``log(1000/16)`` by default, so ``exp`` cannot overflow.

    Returns:
        Tensor[N, 4 * C]: decoded ``(x1, y1, x2, y2)`` boxes, in ``deltas``' dtype.

    Raises:
        TypeError: not floating tensors. ValueError: wrong shapes or weights.
    """
    _boxes("reference", reference)
    _checks.tensor("deltas", deltas, ndim=2, floating=True)
    if deltas.shape[1] % 4 != 0 or deltas.shape[1] == 0 or deltas.shape[0] != reference.shape[0]:
        raise ValueError(f"deltas must have shape ({reference.shape[0]}, 4 * C) to match reference; "
                         f"got {tuple(deltas.shape)}")
    wx, wy, ww, wh = _weights(weights)
    clip = _checks.real("clip", clip)
    ax, ay, aw, ah = (t[:, None] for t in _centres(reference.to(deltas.dtype)))  # (N, 1) each
    dx, dy = deltas[:, 0::4] / wx, deltas[:, 1::4] / wy  # (N, C)
    dw = torch.clamp(deltas[:, 2::4] / ww, max=clip)  # (N, C)
    dh = torch.clamp(deltas[:, 3::4] / wh, max=clip)
    cx, cy = dx * aw + ax, dy * ah + ay
    half_w, half_h = 0.5 * (torch.exp(dw) * aw), 0.5 * (torch.exp(dh) * ah)  # torchvision's rounding order
    return torch.stack((cx - half_w, cy - half_h, cx + half_w, cy + half_h), dim=2).flatten(1)  # (N, 4C)
