"""Bilinear sampling with zeros outside the image, exactly as deformable convolution samples.

A deformable convolution reads its input at *fractional* positions ``p = (y, x)``. The value
there is the bilinear blend of the four pixels around ``p``: with ``y0 = ⌊y⌋, x0 = ⌊x⌋``,
``ly = y - y0, lx = x - x0`` (and ``hy = 1 - ly, hx = 1 - lx``),

    v(y, x) = hy·hx·v[y0, x0] + hy·lx·v[y0, x0+1] + ly·hx·v[y0+1, x0] + ly·lx·v[y0+1, x0+1]

where a pixel outside the image counts as 0 (zero padding). The four weights sum to 1, and
``v`` is piecewise linear in ``y`` and ``x``, so it has a gradient with respect to the *position*:
that is what lets a network learn where to sample (Dai et al., 2017, eq. 3-4,
https://arxiv.org/abs/1703.06211).

Matches torchvision's ``deform_conv2d`` CPU/CUDA kernels (``bilinear_interpolate``): a point with
``y <= -1``, ``y >= H``, ``x <= -1`` or ``x >= W`` gives exactly 0 — here because all four of its
neighbours lie outside; a point in ``(-1, 0)`` blends the border pixel with the zero padding.
The gradients that autograd derives from this formula are torchvision's hand-written ones
(``get_coordinate_weight`` for the position, ``deformable_col2im`` for the image), including at
integer positions, where torchvision takes the one-sided derivative toward ``y0 + 1`` as
``floor`` does here.

Special values follow torchvision: a point with ``y <= -1`` etc. (an infinite offset included)
gives exactly 0 and no gradient; an inf or nan pixel reaches only the outputs whose points blend
it (inf · 0 = nan when it is a corner with weight 0, as in torchvision's kernel); a nan position
gives nan (torchvision's CPU kernel crashes on it: it casts ``floor(nan)`` to an int); a batch of
0 gives an empty result.

Differences from torchvision: plain PyTorch (``torch.gather`` on four corners), so it stores
four index tensors per sample instead of recomputing them in backward; slower, same numbers.

Notebook: ``08_deformable_conv`` §2. Tests: ``tests/test_deform.py``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from course_lib import _checks
from course_lib._export import export


@export("deform.output_size")
def output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """The output length of a convolution along one axis (the same for deformable convolution).

    ``⌊(size + 2·padding - dilation·(kernel - 1) - 1) / stride⌋ + 1``: the number of positions of
    a window spanning ``dilation·(kernel - 1) + 1`` input pixels, moved by ``stride`` over the
    padded input.

    Raises:
        TypeError, ValueError: an argument that is not an int of the allowed range, or a window
            larger than the padded input.
    """
    size = _checks.integer("size", size, minimum=1)
    kernel = _checks.integer("kernel", kernel, minimum=1)
    stride = _checks.integer("stride", stride, minimum=1)
    padding = _checks.integer("padding", padding, minimum=0)
    dilation = _checks.integer("dilation", dilation, minimum=1)
    span = dilation * (kernel - 1) + 1
    if size + 2 * padding < span:
        raise ValueError(f"the kernel spans {span} pixels (dilation·(kernel-1)+1) but the padded input has only "
                         f"{size + 2 * padding} (size {size} + 2·padding {padding}); the output would be empty")
    return (size + 2 * padding - span) // stride + 1


class Neighbours(NamedTuple):
    """The four pixels around fractional positions and their bilinear weights.

    Each field has the shape of the positions; the corners are in the order
    (y0, x0), (y0, x0+1), (y0+1, x0), (y0+1, x0+1) along a new last dim of size 4.
    """

    rows: torch.Tensor  # Tensor[..., 4] int64: row index of each corner (may be outside the image)
    cols: torch.Tensor  # Tensor[..., 4] int64: column index of each corner
    weights: torch.Tensor  # Tensor[..., 4]: bilinear weights, sum to 1; differentiable in (y, x)


@export("deform.bilinear_neighbours")
def bilinear_neighbours(y: torch.Tensor, x: torch.Tensor) -> Neighbours:
    """The four corners around each ``(y, x)`` and their bilinear weights (see the module docstring).

    Args:
        y, x (Tensor[...]): fractional row and column positions, same shape, floating point.

    Returns:
        :class:`Neighbours` with fields of shape ``(..., 4)``.
    """
    y0, x0 = torch.floor(y), torch.floor(x)
    ly, lx = y - y0, x - x0  # distance to the top-left corner; gradients flow through these
    hy, hx = 1 - ly, 1 - lx
    weights = torch.stack([hy * hx, hy * lx, ly * hx, ly * lx], dim=-1)  # (..., 4)
    y0, x0 = y0.long(), x0.long()
    rows = torch.stack([y0, y0, y0 + 1, y0 + 1], dim=-1)  # (..., 4)
    cols = torch.stack([x0, x0 + 1, x0, x0 + 1], dim=-1)  # (..., 4)
    return Neighbours(rows, cols, weights)


@export("deform.bilinear_sample")
def bilinear_sample(input: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sample every channel of ``input`` at fractional positions, zero outside the image.

    Args:
        input (Tensor[B, C, H, W]): the images.
        y, x (Tensor[B, *S]): row and column of each sample point in pixel units (row 0 is the
            first row; no align_corners convention: integer positions hit pixel centres exactly).
            ``*S`` is any shape, e.g. ``(K, H_out, W_out)``.

    Returns:
        Tensor[B, C, *S]: the bilinear blend of the four neighbours of each point, where a
        neighbour outside the image counts as 0. Differentiable in ``input``, ``y`` and ``x``.

    Raises:
        TypeError: a non-tensor, non-floating dtype, or dtypes that differ.
        ValueError: wrong number of dims, ``y`` and ``x`` of different shapes or batch size
            different from ``input``'s, tensors on different devices.

    Example:
        >>> img = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
        >>> bilinear_sample(img, torch.tensor([[0.5]]), torch.tensor([[0.5]]))
        tensor([[[1.5000]]])
    """
    _checks.tensor("input", input, ndim=4, floating=True)
    _checks.tensor("y", y, floating=True)
    _checks.tensor("x", x, floating=True)
    _checks.same_dtype(input=input, y=y, x=x)
    _checks.same_device(input=input, y=y, x=x)
    if y.shape != x.shape:
        raise ValueError(f"y and x must have the same shape; got y {tuple(y.shape)} and x {tuple(x.shape)}")
    if y.dim() < 1 or y.shape[0] != input.shape[0]:
        raise ValueError(f"y and x must have shape (B, ...) with B = input.shape[0] = {input.shape[0]}; "
                         f"got {tuple(y.shape)}")
    return _bilinear_sample(input, y, x)


def _bilinear_sample(input: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """:func:`bilinear_sample` without the checks (the inner loop of :func:`deform_conv2d`)."""
    b, c, h, w = input.shape
    points = y.shape[1:]
    n_points = math.prod(points)  # not reshape(b, -1): that is ambiguous when b = 0
    y, x = y.reshape(b, n_points), x.reshape(b, n_points)  # (B, P)
    nb = bilinear_neighbours(y, x)  # fields (B, P, 4)
    inside = (nb.rows >= 0) & (nb.rows < h) & (nb.cols >= 0) & (nb.cols < w)  # (B, P, 4)
    # Outside corners read pixel 0 (any valid index) and are then *replaced* by 0 with torch.where:
    # zero padding without a padded copy of the image. Multiplying by a 0/1 mask instead would turn
    # an inf or nan in pixel 0 into nan everywhere (inf · 0 = nan), and send gradient to pixel 0.
    index = torch.where(inside, nb.rows * w + nb.cols, 0)  # (B, P, 4)
    flat = input.reshape(b, c, h * w)  # (B, C, H*W)
    index = index.reshape(b, 1, n_points * 4).expand(b, c, n_points * 4)  # (B, C, P*4)
    corners = torch.gather(flat, 2, index).reshape(b, c, n_points, 4)  # (B, C, P, 4)
    corners = torch.where(inside[:, None], corners, torch.zeros((), dtype=corners.dtype, device=corners.device))
    out = (corners * nb.weights[:, None]).sum(-1)  # (B, C, P)
    # torchvision returns exactly 0 for a point with y <= -1, y >= H, x <= -1 or x >= W without
    # computing weights, so an infinite offset gives 0 (its weights would be inf - inf = nan);
    # a nan position fails every comparison there and stays nan, here too.
    far = (y <= -1) | (y >= h) | (x <= -1) | (x >= w)  # (B, P)
    out = torch.where(far[:, None], torch.zeros((), dtype=out.dtype, device=out.device), out)  # (B, C, P)
    return out.reshape(b, c, *points)  # (B, C, *S)
