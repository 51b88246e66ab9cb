"""Offset fields that make a deformable convolution sample a scaled, rotated or random grid.

The offset of tap ``k = i·kw + j`` moves its sampling point from the regular grid point
``(i, j)`` (relative to the window's corner) to wherever the field says. Written relative to
the kernel's centre ``c = ((kh-1)/2, (kw-1)/2)``, a geometric transform ``T`` of the grid is the
offset ``Δp_k = T(p_k - c) - (p_k - c)``:

* scale ``s``: ``Δp_k = (s - 1)·(p_k - c)``. With ``s = d`` (an integer), a 'same'-padded
  deformable conv (padding ``(k-1)/2``) equals ``F.conv2d`` with ``dilation=d, padding=d·(k-1)/2``:
  a dilated convolution is a deformable one with a constant offset field.
* rotation by ``θ``: ``Δp_k = R(θ)(p_k - c) - (p_k - c)``; the taps now fall between pixels, and
  bilinear sampling blends their neighbours.
* random: i.i.d. normal offsets per tap and output position, what an untrained offset conv
  with non-zero weights would produce.

Each function returns the per-tap vector ``Tensor[2·kh·kw]`` in torchvision's interleaved
(dy, dx) order; :func:`offset_field` broadcasts it to the ``(B, 2K, H_out, W_out)`` tensor that
:func:`~course_lib.deform.deform_conv.deform_conv2d` takes.

Notebook: ``08_deformable_conv`` §2 and the widget. Tests: ``tests/test_deform.py``.
"""

from __future__ import annotations

import math

import torch

from course_lib import _checks
from course_lib._export import export
from course_lib.deform.deform_conv import kernel_grid


def _centred(kh: int, kw: int) -> tuple[torch.Tensor, torch.Tensor]:
    kh = _checks.integer("kh", kh, minimum=1)
    kw = _checks.integer("kw", kw, minimum=1)
    i, j = kernel_grid(kh, kw)
    return i - (kh - 1) / 2, j - (kw - 1) / 2  # (K,) each: tap positions relative to the centre


def _interleave(dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    return torch.stack([dy, dx], dim=-1).reshape(-1)  # (2K,): dy0, dx0, dy1, dx1, ...


@export("deform.scale_offsets")
def scale_offsets(kh: int, kw: int, scale: float) -> torch.Tensor:
    """Offsets that scale the ``kh×kw`` grid by ``scale`` about its centre (``Tensor[2·kh·kw]``, float64).

    ``scale = 2`` turns a 3×3 'same' conv into a dilation-2 conv (see the module docstring).
    """
    scale = _checks.real("scale", scale)
    u, v = _centred(kh, kw)
    return _interleave((scale - 1) * u, (scale - 1) * v)


@export("deform.rotation_offsets")
def rotation_offsets(kh: int, kw: int, degrees: float) -> torch.Tensor:
    """Offsets that rotate the ``kh×kw`` grid by ``degrees`` (counter-clockwise on screen, rows down).

    Returns ``Tensor[2·kh·kw]`` (float64).
    """
    theta = math.radians(_checks.real("degrees", degrees))
    u, v = _centred(kh, kw)  # u: down, v: right
    cos, sin = math.cos(theta), math.sin(theta)
    # counter-clockwise on screen, where the row axis points down: (u, v) -> (cos·u - sin·v, sin·u + cos·v)
    return _interleave(cos * u - sin * v - u, sin * u + cos * v - v)


@export("deform.random_offsets")
def random_offsets(kh: int, kw: int, h_out: int, w_out: int, std: float = 1.0, seed: int = 0) -> torch.Tensor:
    """I.i.d. normal offsets with standard deviation ``std`` per tap and output position.

    Returns ``Tensor[1, 2·kh·kw, h_out, w_out]`` (float64), a full offset field for batch 1.
    """
    std = _checks.real("std", std, minimum=0)
    gen = torch.Generator().manual_seed(_checks.integer("seed", seed))
    shape = (1, 2 * _checks.integer("kh", kh, minimum=1) * _checks.integer("kw", kw, minimum=1),
             _checks.integer("h_out", h_out, minimum=1), _checks.integer("w_out", w_out, minimum=1))
    return std * torch.randn(shape, generator=gen, dtype=torch.float64)


@export("deform.offset_field")
def offset_field(per_tap: torch.Tensor, batch: int, h_out: int, w_out: int) -> torch.Tensor:
    """Broadcast a per-tap offset vector ``Tensor[2K]`` to ``Tensor[batch, 2K, h_out, w_out]`` (a view)."""
    _checks.tensor("per_tap", per_tap, ndim=1, floating=True)
    return per_tap[None, :, None, None].expand(batch, per_tap.shape[0], h_out, w_out)
