"""RoI pooling and RoI Align: a fixed-size feature grid for every region proposal.

The detection head of Faster R-CNN needs the same input size (e.g. 7×7×C) for every proposal,
whatever the proposal's size. Both ops cut the region ``spatial_scale · (x1, y1, x2, y2)`` of
the feature map into ``PH × PW`` bins and reduce each bin to one number per channel:

* **RoI pooling** (Fast R-CNN, Girshick 2015, https://arxiv.org/abs/1504.08083; used by Faster
  R-CNN) *rounds* the region to whole feature cells, cuts it into bins of whole cells
  (``floor`` of the start, ``ceil`` of the end) and takes each bin's **max**. The rounding
  ("quantisation") moves the region by up to half a cell — 8 image pixels at stride 16 — so the
  output does not change smoothly as a box moves, and the gradient w.r.t. the box is 0.
* **RoI Align** (Mask R-CNN, He et al. 2017, https://arxiv.org/abs/1703.06870, §3) keeps the
  real-valued region, places ``gh × gw`` sample points evenly in each bin, reads each by
  **bilinear interpolation** of the 4 nearest cells and **averages** them. With
  ``sampling_ratio = -1`` the grid is adaptive: ``gh = ceil(roi_height / PH)`` (likewise
  ``gw``). ``aligned=True`` shifts the region by -0.5 cell so that a cell's value sits at its
  centre (Detectron2's fix of a half-pixel misalignment).

Bilinear reading of a sample point ``(y, x)`` on an ``H × W`` map (torchvision's kernel): a
point with ``y < -1`` or ``y > H`` (likewise x) reads 0; otherwise ``y`` is clamped to
``[0, H - 1]`` and ``v = Σ (1-|y-yi|)(1-|x-xi|) · f[yi, xi]`` over the 4 neighbours.

Boxes come as ``Tensor[K, 5]`` rows ``(batch_index, x1, y1, x2, y2)`` or as a list with one
``Tensor[L_i, 4]`` per image. Both ops are written with differentiable torch indexing, so
autograd gives the gradient w.r.t. the features: RoI pooling sends each output's gradient to
its bin's argmax (the first maximum in row-major order), RoI Align spreads it over the sample
points' neighbours with the bilinear weights.

Differences from torchvision: :func:`roi_pool` / :func:`roi_align` equal
``torchvision.ops.roi_pool`` / ``roi_align`` forward and backward w.r.t. the features
(including ``std::round``'s half-away-from-zero rounding in RoI pooling), at the edges too:
RoI pooling skips NaN and -inf as the kernel's ``value > max`` does, and a bin holding nothing
else gives ``-FLT_MAX`` (float32's lowest, whatever the dtype) with no gradient; a batch of 0
images or 0 boxes gives an empty ``(K, C, PH, PW)``. One deliberate difference, pinned by
``tests/test_detection_edges.py``: torchvision computes a sample point outside ``[-1, size]`` as
``0 · input[b, c, 0, 0]``, so a NaN or inf in the map's first cell turns every such point — and
the whole bin — into NaN; here the point is 0, as the op's definition says. Limitations: no
gradient w.r.t. the boxes (torchvision has none either); memory is ``O(K·C·PH·PW·H·W)`` for RoI
pooling and ``O(K·C·PH·PW·gh·gw)`` for RoI Align, where the C++ kernels loop — fine for course
sizes, not for production.

Notebook: ``07_faster_rcnn`` §5 (RoI pooling and RoI Align). Tests: ``tests/test_detection_roi.py``.
"""

from __future__ import annotations

import math

import torch

from course_lib import _checks
from course_lib._export import export


def _output_size(output_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(output_size, int) and not isinstance(output_size, bool):
        output_size = (output_size, output_size)
    if not isinstance(output_size, tuple | list) or len(output_size) != 2:
        raise ValueError(f"output_size must be an int or (height, width); got {output_size!r}")
    return (_checks.integer("output_size[0]", output_size[0], minimum=1),
            _checks.integer("output_size[1]", output_size[1], minimum=1))


@export("detection.rois_from_boxes")
def rois_from_boxes(boxes: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
    """RoIs as ``Tensor[K, 5]`` ``(batch_index, x1, y1, x2, y2)`` from either accepted form.

    Args:
        boxes: ``Tensor[K, 5]`` (returned as is) or a list of ``Tensor[L_i, 4]``, one per image.

    Raises:
        TypeError: neither form. ValueError: wrong shapes.
    """
    if isinstance(boxes, torch.Tensor):
        if boxes.dim() != 2 or boxes.shape[1] != 5:
            raise ValueError(f"boxes as a Tensor must have shape (K, 5) as (batch_index, x1, y1, x2, y2); "
                             f"got {tuple(boxes.shape)}")
        return boxes
    if not isinstance(boxes, list | tuple):
        raise TypeError(f"boxes must be a Tensor[K, 5] or a list of Tensor[L, 4]; got {type(boxes).__name__}")
    rows = []
    for i, b in enumerate(boxes):
        _checks.tensor(f"boxes[{i}]", b, ndim=2)
        if b.shape[1] != 4:
            raise ValueError(f"boxes[{i}] must have shape (L, 4) as (x1, y1, x2, y2); got {tuple(b.shape)}")
        rows.append(torch.cat([torch.full_like(b[:, :1], i), b], dim=1))  # (L_i, 5)
    if not rows:
        raise ValueError("boxes must hold one Tensor[L, 4] per image; got an empty list")
    return torch.cat(rows)


def _check(input: torch.Tensor, boxes, output_size, spatial_scale) -> tuple[torch.Tensor, int, int, float]:
    _checks.tensor("input", input, ndim=4, floating=True)
    rois = rois_from_boxes(boxes)
    _checks.same_device(input=input, boxes=rois)
    _checks.same_dtype(input=input, boxes=rois)
    ph, pw = _output_size(output_size)
    spatial_scale = _checks.real("spatial_scale", spatial_scale, minimum=0, open_min=True)
    if rois.shape[0] and (rois[:, 0].min() < 0 or rois[:, 0].max() >= input.shape[0]):
        raise ValueError(f"boxes' batch indices must be in [0, {input.shape[0] - 1}] (input has N = "
                         f"{input.shape[0]} images); got {rois[:, 0].min().item()}..{rois[:, 0].max().item()}")
    return rois, ph, pw, spatial_scale


FLT_LOWEST = torch.finfo(torch.float32).min  # the kernel's -FLT_MAX, the same for every dtype


def _round_half_away(x: torch.Tensor) -> torch.Tensor:
    # C's round(), which torchvision's kernel calls; torch.round rounds half to even.
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


@export("detection.roi_pool")
def roi_pool(input: torch.Tensor, boxes: torch.Tensor | list[torch.Tensor],
             output_size: int | tuple[int, int], spatial_scale: float = 1.0) -> torch.Tensor:
    """RoI max pooling (Fast R-CNN), as ``torchvision.ops.roi_pool``.

    Args:
        input (Tensor[N, C, H, W]): feature maps.
        boxes (Tensor[K, 5] or list of Tensor[L_i, 4]): regions in image coordinates.
        output_size: ``(PH, PW)`` bins, or one int for both.
        spatial_scale: feature cells per image pixel (1 / stride).

    Returns:
        Tensor[K, C, PH, PW]: the max of each bin; 0 for a bin that lies outside the map.

    Raises:
        TypeError, ValueError: shapes, dtypes, devices, sizes or batch indices (each named).
    """
    rois, ph, pw, scale = _check(input, boxes, output_size, spatial_scale)
    n, c, height, width = input.shape
    k = rois.shape[0]
    # The region in whole cells: rounded start and end, inclusive (+1), at least 1x1.
    start_w, start_h = _round_half_away(rois[:, 1] * scale), _round_half_away(rois[:, 2] * scale)  # (K,)
    end_w, end_h = _round_half_away(rois[:, 3] * scale), _round_half_away(rois[:, 4] * scale)
    roi_w = torch.clamp(end_w - start_w + 1, min=1)
    roi_h = torch.clamp(end_h - start_h + 1, min=1)

    def bin_mask(start: torch.Tensor, length: torch.Tensor, bins: int, size: int) -> torch.Tensor:
        bin_size = length / bins  # (K,)
        p = torch.arange(bins, dtype=input.dtype, device=input.device)
        lo = torch.floor(p[None] * bin_size[:, None]) + start[:, None]  # (K, P): first cell of each bin
        hi = torch.ceil((p[None] + 1) * bin_size[:, None]) + start[:, None]  # (K, P): one past the last
        lo, hi = lo.clamp(0, size), hi.clamp(0, size)
        cells = torch.arange(size, dtype=input.dtype, device=input.device)
        return (cells[None, None] >= lo[..., None]) & (cells[None, None] < hi[..., None])  # (K, P, size)

    rows = bin_mask(start_h, roi_h, ph, height)  # (K, PH, H)
    cols = bin_mask(start_w, roi_w, pw, width)  # (K, PW, W)
    inside = rows[:, :, None, :, None] & cols[:, None, :, None, :]  # (K, PH, PW, H, W)
    feats = input[rois[:, 0].long()]  # (K, C, H, W)
    # The kernel keeps a running max that starts at -FLT_MAX and is replaced only when `value > max`:
    # NaN and -inf never win a bin. torch.argmax would pick a NaN, so they are masked out first.
    readable = feats > FLT_LOWEST  # (K, C, H, W)
    masked = torch.where(inside[:, None] & readable[:, :, None, None], feats[:, :, None, None],
                         float("-inf"))  # (K, C, PH, PW, H, W)
    argmax = masked.reshape(k, c, ph, pw, height * width).argmax(dim=-1)  # first maximum, row-major
    flat = feats.reshape(k, c, 1, height * width).expand(k, c, ph, height * width)  # (K, C, PH, H*W)
    out = torch.gather(flat, 3, argmax.reshape(k, c, ph, pw))  # (K, C, PH, PW); autograd: grad to the argmax
    found = (masked > float("-inf")).reshape(k, c, ph, pw, height * width).any(-1)  # (K, C, PH, PW)
    empty = ~inside.flatten(3).any(-1)  # (K, PH, PW): the bin lies outside the map
    fill = torch.where(empty[:, None], 0.0, FLT_LOWEST).to(input.dtype)  # (K, 1, PH, PW)
    return torch.where(found, out, fill)  # where, not a product: no gradient to an unread cell


def _bilinear(input: torch.Tensor, batch: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Values at sample rows ``y (Tensor[K, PH, IY])`` × columns ``x (Tensor[K, PW, IX])`` of image
    ``batch (Tensor[K])``: ``Tensor[K, C, PH, PW, IY, IX]`` (the module docstring's rule)."""
    _, c, height, width = input.shape

    def axis(t: torch.Tensor, size: int) -> tuple[torch.Tensor, ...]:
        valid = (t >= -1.0) & (t <= size)  # outside [-1, size] a point reads 0
        t = t.clamp(min=0)
        low = torch.floor(t).long()
        last = low >= size - 1  # at or past the last cell: no neighbour beyond it
        low = torch.where(last, size - 1, low)
        high = torch.where(last, size - 1, low + 1)
        frac = torch.where(last, torch.zeros_like(t), t - low)  # the weight of `high`
        return low, high, frac, valid

    y_lo, y_hi, ly, y_ok = axis(y, height)
    x_lo, x_hi, lx, x_ok = axis(x, width)
    b = batch[:, None, None, None, None, None]
    ch = torch.arange(c, device=input.device)[None, :, None, None, None, None]

    def read(yi: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        return input[b, ch, yi[:, None, :, None, :, None], xi[:, None, None, :, None, :]]  # (K, C, PH, PW, IY, IX)

    def outer(wy: torch.Tensor, wx: torch.Tensor) -> torch.Tensor:
        return wy[:, None, :, None, :, None] * wx[:, None, None, :, None, :]  # (K, 1, PH, PW, IY, IX)

    hy, hx = 1 - ly, 1 - lx
    val = (outer(hy, hx) * read(y_lo, x_lo) + outer(hy, lx) * read(y_lo, x_hi)
           + outer(ly, hx) * read(y_hi, x_lo) + outer(ly, lx) * read(y_hi, x_hi))
    # where, not `val * mask`: a NaN or inf read at a clamped neighbour must not leak into a point
    # that reads 0 (0 * nan = nan).
    ok = y_ok[:, None, :, None, :, None] & x_ok[:, None, None, :, None, :]  # (K, 1, PH, PW, IY, IX)
    return torch.where(ok, val, 0.0)


def _grid_sizes(length: torch.Tensor, bins: int, sampling_ratio: int) -> torch.Tensor:
    if sampling_ratio > 0:
        return torch.full_like(length, sampling_ratio, dtype=torch.int64)
    return torch.ceil(length / bins).long().clamp(min=0)  # adaptive: about one sample per cell


@export("detection.roi_align_sample_points")
def roi_align_sample_points(box: tuple[float, float, float, float], output_size: int | tuple[int, int],
                            spatial_scale: float = 1.0, sampling_ratio: int = -1,
                            aligned: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Where RoI Align samples one box: ``(ys (Tensor[PH, gh]), xs (Tensor[PW, gw]))`` in cells.

    The sample points of bin ``(i, j)`` are all pairs ``(ys[i, a], xs[j, b])`` (float64).
    """
    ph, pw = _output_size(output_size)
    scale = _checks.real("spatial_scale", spatial_scale, minimum=0, open_min=True)
    sampling_ratio = _checks.integer("sampling_ratio", sampling_ratio)
    if len(box) != 4:
        raise ValueError(f"box must be (x1, y1, x2, y2); got {box!r}")
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (v * scale - offset for v in box)
    out = []
    for start, length, bins in ((y1, y2 - y1, ph), (x1, x2 - x1, pw)):
        length = length if aligned else max(length, 1.0)
        grid = sampling_ratio if sampling_ratio > 0 else max(math.ceil(length / bins), 0)
        bin_size = length / bins
        p, g = torch.arange(bins, dtype=torch.float64), torch.arange(grid, dtype=torch.float64)
        out.append(start + p[:, None] * bin_size + (g[None] + 0.5) * bin_size / grid)  # (P, grid)
    return out[0], out[1]


@export("detection.roi_align")
def roi_align(input: torch.Tensor, boxes: torch.Tensor | list[torch.Tensor], output_size: int | tuple[int, int],
              spatial_scale: float = 1.0, sampling_ratio: int = -1, aligned: bool = False) -> torch.Tensor:
    """RoI Align (Mask R-CNN), as ``torchvision.ops.roi_align``.

    Args:
        input (Tensor[N, C, H, W]): feature maps.
        boxes (Tensor[K, 5] or list of Tensor[L_i, 4]): regions in image coordinates.
        output_size: ``(PH, PW)`` bins, or one int for both.
        spatial_scale: feature cells per image pixel (1 / stride).
        sampling_ratio: sample points per bin along each axis; ``<= 0``: adaptive,
            ``ceil(roi_size / bins)``.
        aligned: shift the region by -0.5 cell (pixel centres); if False, regions smaller than
            one cell are stretched to one cell, as in the original Mask R-CNN.

    Returns:
        Tensor[K, C, PH, PW]: the average of each bin's bilinear samples.

    Raises:
        TypeError, ValueError: shapes, dtypes, devices, sizes or batch indices (each named).
    """
    rois, ph, pw, scale = _check(input, boxes, output_size, spatial_scale)
    sampling_ratio = _checks.integer("sampling_ratio", sampling_ratio)
    _checks.instance("aligned", aligned, bool)
    k = rois.shape[0]
    offset = 0.5 if aligned else 0.0
    x1, y1 = rois[:, 1] * scale - offset, rois[:, 2] * scale - offset  # (K,)
    roi_w, roi_h = rois[:, 3] * scale - offset - x1, rois[:, 4] * scale - offset - y1
    if not aligned:  # the legacy version stretches tiny regions to one cell
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    bin_h, bin_w = roi_h / ph, roi_w / pw  # (K,)
    grid_h, grid_w = _grid_sizes(roi_h, ph, sampling_ratio), _grid_sizes(roi_w, pw, sampling_ratio)  # (K,)
    iy_n = max(int(grid_h.max()) if k else 1, 1)  # pad every RoI to the largest grid, then mask
    ix_n = max(int(grid_w.max()) if k else 1, 1)
    iy = torch.arange(iy_n, device=input.device)
    ix = torch.arange(ix_n, device=input.device)
    p_h = torch.arange(ph, device=input.device, dtype=input.dtype)
    p_w = torch.arange(pw, device=input.device, dtype=input.dtype)
    gh, gw = grid_h.clamp(min=1).to(input.dtype), grid_w.clamp(min=1).to(input.dtype)
    # The kernel's expression, in its order: start + p * bin + (i + .5) * bin / grid
    y = y1[:, None, None] + p_h[None, :, None] * bin_h[:, None, None] \
        + (iy[None, None, :] + 0.5).to(input.dtype) * bin_h[:, None, None] / gh[:, None, None]  # (K, PH, IY)
    x = x1[:, None, None] + p_w[None, :, None] * bin_w[:, None, None] \
        + (ix[None, None, :] + 0.5).to(input.dtype) * bin_w[:, None, None] / gw[:, None, None]  # (K, PW, IX)
    val = _bilinear(input, rois[:, 0].long(), y, x)  # (K, C, PH, PW, IY, IX)
    used = (iy[None, :] < grid_h[:, None])[:, :, None] & (ix[None, :] < grid_w[:, None])[:, None, :]  # (K, IY, IX)
    val = torch.where(used[:, None, None, None], val, 0.0)  # padding points: 0, even where they read NaN
    count = (grid_h * grid_w).clamp(min=1).to(input.dtype)  # (K,)
    return val.sum(dim=(-1, -2)) / count[:, None, None, None]  # (K, C, PH, PW)
