"""FP8 scaling: per-tensor and fine-grained block scaling, and the error each leaves.

E4M3 holds magnitudes from 2^-9 to 448 with 3 mantissa bits: too narrow for raw activations or
gradients. FP8 training therefore stores ``q = fp8(x · s)`` with a scale ``s`` chosen so the
largest magnitude maps to the format's max, and computes with ``x ≈ q / s``:

    s = fmt_max / amax(x_block)          (amax = max |x| over the block; s = 1 when amax = 0)

* **per-tensor** scaling (``block=None``): one ``s`` for the whole tensor — Micikevicius et al.,
  *FP8 Formats for Deep Learning* (2022); Transformer Engine's *delayed* variant takes ``amax``
  from a history of past steps instead of the current tensor (not done here). One outlier
  shrinks every other value towards the subnormals, where precision is lost.
* **block** scaling (``block=b``): one ``s`` per ``b`` consecutive elements of the last dimension
  — DeepSeek-V3 uses 1×128 tiles for activations (and 128×128 blocks for weights), the OCP MX
  formats 32-element blocks with a power-of-two scale. An outlier only costs its own block.

Differences from the references: scales are float32 (not MX's E8M0 powers of two), computed
from the current tensor (no amax history), blocks run along the last dimension only; the cast
is torch's, and ``|x · s| <= max`` by construction, so the result does not depend on torch's
E4M3 overflow convention (see :mod:`course_lib.numerics.formats`).

Notebook: ``03_floating_point`` ("FP8 scaling"). Tests: ``tests/test_numerics_training.py``.
"""

from __future__ import annotations

import torch

from course_lib import _checks
from course_lib._export import export
from course_lib.numerics.formats import get_format


@export("numerics.fp8_quantize")
def fp8_quantize(x: torch.Tensor, fmt: str = "fp8_e4m3", block: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale ``x`` so each block's amax maps to ``fmt``'s max, and cast to FP8.

    Args:
        x (Tensor[..., K]): floating-point values.
        fmt: ``"fp8_e4m3"`` or ``"fp8_e5m2"``.
        block: elements per scale along the last dimension (``K % block == 0``); None: one scale.

    Returns:
        ``(q, scale)``: ``q`` (Tensor[..., K], FP8) and ``scale`` (float32, shape ``(..., K // block, 1)``
        for blocks, ``()`` per tensor); :func:`fp8_dequantize` inverts.

    Raises:
        TypeError: ``x`` not a floating tensor. ValueError: unknown ``fmt``, ``x`` without a last
        dimension, ``block`` < 1 or not dividing ``K``; a non-finite value in ``x``.
    """
    _checks.tensor("x", x, floating=True)
    f = get_format(_checks.one_of("fmt", fmt, ("fp8_e4m3", "fp8_e5m2")))
    if x.ndim == 0:
        raise ValueError("x must have at least one dimension (blocks run along the last); got a 0-dim tensor")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x must be finite: an inf or NaN has no scale that maps it into FP8")
    top = torch.finfo(f.dtype()).max
    xf = x.float()
    if block is None:
        amax = xf.abs().amax() if xf.numel() else torch.zeros(())
    else:
        k = x.shape[-1]
        _checks.integer("block", block, minimum=1)
        if k % block:
            raise ValueError(f"block must divide the last dimension; got block={block} for x.shape[-1]={k}")
        xf = xf.reshape(*x.shape[:-1], k // block, block)  # (..., K / block, block)
        amax = xf.abs().amax(dim=-1, keepdim=True)  # (..., K / block, 1)
    scale = torch.where(amax > 0, top / amax, torch.ones_like(amax))  # an all-zero block keeps scale 1
    q = (xf * scale).clamp(-top, top).to(f.dtype())  # clamp: x · (max / amax) can round a hair above max
    return q.reshape(x.shape), scale


@export("numerics.fp8_dequantize")
def fp8_dequantize(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``q / scale`` in float32, the inverse of :func:`fp8_quantize` (up to FP8 rounding).

    Args:
        q (Tensor[..., K]): FP8 values. scale: as :func:`fp8_quantize` returned it.
    """
    _checks.tensor("q", q)
    if scale.ndim == 0:
        return q.float() / scale
    blocks = scale.shape[-2]
    qf = q.float().reshape(*q.shape[:-1], blocks, q.shape[-1] // blocks)  # (..., K / block, block)
    return (qf / scale).reshape(q.shape)
