"""Anchors: the fixed reference boxes the RPN scores and regresses, tiled over each feature map.

Faster R-CNN (Ren et al., 2015, https://arxiv.org/abs/1506.01497, §3.1.1) places ``k`` boxes
of several sizes and aspect ratios at every cell of a feature map; the RPN predicts, per
anchor, an objectness score and the four deltas of :func:`~course_lib.detection.decode_boxes`.

For ``size s`` and ``aspect ratio r = h / w`` the base anchor, centred on 0, has
``w = s / √r`` and ``h = s · √r`` (area ``s²``), rounded to whole pixels::

    base = round([-w/2, -h/2, w/2, h/2])

and the anchors of a feature map with stride ``(sy, sx)`` are ``base + (j·sx, i·sy, j·sx, i·sy)``
for every cell ``(i, j)``. The order is: cells row by row; within a cell, ratio-major
(``for r in ratios: for s in sizes``); feature maps one after the other.

Differences from torchvision: none intended — :func:`generate_anchors` equals
``torchvision.models.detection.anchor_utils.AnchorGenerator``'s output for one image (which
takes the strides as ``image_size // feature_size``; here they are given). Note the anchors
are centred on the cell's *top-left* corner ``j·sx``, not its centre ``(j + 0.5)·sx``, as in
torchvision and in Detectron2 by default (``MODEL.ANCHOR_GENERATOR.OFFSET = 0.0``; its config
comment recommends 0.5, half a stride). The original Caffe Faster R-CNN and Detectron (v1) built
the base anchor as the pixel box ``[0, 0, s-1, s-1]``, centred at ``((s-1)/2, (s-1)/2)`` — (7.5,
7.5) at stride 16. ``round`` is ``torch.round`` (half to even), so ``w/2 = 22.5`` becomes 22.

Notebook: ``07_faster_rcnn`` §3 (anchors). Tests: ``tests/test_detection.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from course_lib import _checks
from course_lib._export import export


@export("detection.base_anchors")
def base_anchors(sizes: Sequence[float], aspect_ratios: Sequence[float],
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The zero-centred anchors of one cell: ``Tensor[len(ratios) * len(sizes), 4]``, ratio-major."""
    if len(sizes) == 0 or len(aspect_ratios) == 0:
        raise ValueError(f"sizes and aspect_ratios must be non-empty; got {sizes!r} and {aspect_ratios!r}")
    for i, s in enumerate(sizes):
        _checks.real(f"sizes[{i}]", s, minimum=0, open_min=True)
    for i, r in enumerate(aspect_ratios):
        _checks.real(f"aspect_ratios[{i}]", r, minimum=0, open_min=True)
    scales = torch.as_tensor(sizes, dtype=dtype)
    h_ratios = torch.sqrt(torch.as_tensor(aspect_ratios, dtype=dtype))  # √r
    w_ratios = 1 / h_ratios
    ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)  # (R * S,): ratio-major
    hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)
    return (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round()  # (R * S, 4)


@export("detection.generate_anchors")
def generate_anchors(feature_sizes: Sequence[tuple[int, int]], strides: Sequence[tuple[int, int]],
                     sizes: Sequence[Sequence[float]], aspect_ratios: Sequence[Sequence[float]],
                     dtype: torch.dtype = torch.float32, device: torch.device | None = None) -> torch.Tensor:
    """All anchors of an image, over several feature maps (one entry per map in each argument).

    Args:
        feature_sizes: ``(height, width)`` of each feature map, in cells.
        strides: ``(stride_y, stride_x)`` of each map: image pixels per cell.
        sizes: the anchor sizes (sqrt of the area, in pixels) of each map.
        aspect_ratios: the ratios ``h / w`` of each map.
        dtype, device: of the result.

    Returns:
        Tensor[A, 4]: ``A = Σ_levels H·W·len(ratios)·len(sizes)`` anchors in the order of the
        module docstring.

    Raises:
        ValueError: the four sequences differ in length, or a size/stride is not positive.
        TypeError: a size or stride is not an int.
    """
    n = len(feature_sizes)
    if not (len(strides) == len(sizes) == len(aspect_ratios) == n) or n == 0:
        raise ValueError("feature_sizes, strides, sizes and aspect_ratios must have one entry per feature map; "
                         f"got {n}, {len(strides)}, {len(sizes)} and {len(aspect_ratios)}")
    out = []
    for level, ((height, width), (stride_y, stride_x)) in enumerate(zip(feature_sizes, strides)):
        _checks.integer(f"feature_sizes[{level}][0]", height, minimum=0)  # 0: no cells, no anchors
        _checks.integer(f"feature_sizes[{level}][1]", width, minimum=0)
        _checks.integer(f"strides[{level}][0]", stride_y, minimum=1)
        _checks.integer(f"strides[{level}][1]", stride_x, minimum=1)
        base = base_anchors(sizes[level], aspect_ratios[level], dtype).to(device)  # (k, 4)
        shift_y, shift_x = torch.meshgrid(torch.arange(height, device=device) * stride_y,
                                          torch.arange(width, device=device) * stride_x, indexing="ij")
        shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=-1).reshape(-1, 1, 4)  # (H*W, 1, 4)
        out.append((shifts + base[None]).reshape(-1, 4))  # (H*W*k, 4): cell-major, then ratio, then size
    return torch.cat(out).to(dtype)
