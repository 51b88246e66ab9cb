"""FP8 scaling: per-tensor, fine-grained block, and delayed (amax-history) scaling.

E4M3 holds magnitudes from 2^-9 to 448 with 3 mantissa bits: too narrow for raw activations or
gradients. FP8 training therefore stores ``q = fp8(x · s)`` with a scale ``s`` chosen so the
largest magnitude maps to the format's max, and computes with ``x ≈ q / s``:

    s = fmt_max / amax(x_block)          (amax = max |x| over the block; s = 1 when amax = 0)

* **per-tensor** scaling (``block=None``): one ``s`` for the whole tensor — Micikevicius et al.,
  *FP8 Formats for Deep Learning* (2022); Transformer Engine calls this *current* scaling. One
  outlier shrinks every other value towards the subnormals, where precision is lost.
* **block** scaling (``block=b``): one ``s`` per ``b`` consecutive elements of the last dimension
  — DeepSeek-V3 uses 1×128 tiles for activations (and 128×128 blocks for weights), the OCP MX
  formats 32-element blocks with a power-of-two scale. An outlier only costs its own block.
* **delayed** scaling (:class:`DelayedScaler`, Transformer Engine's ``DelayedScaling`` recipe):
  the scale of step ``t`` comes from the amaxes of steps *before* ``t``, so the cast needs no
  extra pass over the tensor. After each step (:func:`delayed_scale_update`)

      amax  = max(history)  ("max")   or   history[0]  ("most_recent": the step just done)
      s     = fmt_max / amax / 2^margin      (kept from the step before if amax is 0, inf or NaN)

  and the history rolls by one. A tensor that grows faster than the history predicts is
  clipped at ``±fmt_max``; a spike in the history keeps ``s`` small for ``amax_history_len``
  steps afterwards.

Differences from the references: scales are float32 (not MX's E8M0 powers of two), blocks run
along the last dimension only; the delayed scaler keeps one scale per tensor and neither reduces
amaxes across ranks nor recomputes only every ``interval`` steps. The cast clamps to
``±fmt_max`` explicitly before torch's FP8 cast (a saturating cast, as Transformer Engine's), so
the result does not depend on torch's E4M3 overflow convention (NaN in 2.11, saturation in
2.14; see :mod:`course_lib.numerics.formats`).

Notebook: ``03_floating_point`` ("FP8 scaling", "Delayed scaling"). Tests:
``tests/test_numerics_training.py`` (per-tensor, block), ``tests/test_numerics_delayed.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from course_lib import _checks
from course_lib._export import export
from course_lib.numerics.formats import FloatFormat, get_format

AmaxAlgo = Literal["max", "most_recent"]
FP8_FORMATS = ("fp8_e4m3", "fp8_e5m2")


def _scaled_cast(x: torch.Tensor, scale: torch.Tensor, f: FloatFormat) -> torch.Tensor:
    """``fp8(clamp(x · scale, ±max))``: clamped first, so no value relies on the cast's overflow rule."""
    top = torch.finfo(f.dtype()).max
    return (x.float() * scale).clamp(-top, top).to(f.dtype())


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
    f = get_format(_checks.one_of("fmt", fmt, FP8_FORMATS))
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
    # full_like(top) / amax: one correctly rounded division (a Python float / tensor is computed as
    # reciprocal x float, two roundings), the same scale as DelayedScaler gives for the same amax.
    scale = torch.where(amax > 0, torch.full_like(amax, top) / amax, torch.ones_like(amax))  # all-zero block: 1
    q = _scaled_cast(xf, scale, f)  # the clamp matters: x · (max / amax) can round a hair above max
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


@export("numerics.delayed_scale_update")
def delayed_scale_update(amax_history: torch.Tensor, scale: torch.Tensor, fmt_max: float, margin: int = 0,
                         amax_compute_algo: AmaxAlgo = "max") -> tuple[torch.Tensor, torch.Tensor]:
    """One delayed-scaling update after a step: the next scale from the amax history, and the rolled history.

    Transformer Engine's rule as its default CUDA kernel computes it
    (``transformer_engine/common/recipe/delayed_scaling.cu``, behind
    ``nvte_delayed_scaling_recipe_amax_and_scale_update``). Its Python fallback
    (``_default_sf_compute`` in ``transformer_engine/pytorch/quantization.py``) writes
    ``(fp8_max / amax) / 2**margin``: the same number, except that torch evaluates
    ``float / tensor`` as a reciprocal times the float (one rounding more) and that the quotient
    can overflow to inf before the margin is applied; and its ``torch.max`` propagates NaN where
    the kernel's ``fmaxf`` skips it. ``tests/test_numerics_delayed.py`` compares with a
    transcription of the fallback carrying the kernel's arithmetic.

    * ``history[0]`` holds the amax of the step just done, the rest the amaxes of earlier steps;
    * ``amax = max(history)`` (``"max"``; NaN entries are skipped, as CUDA's ``fmaxf`` skips
      them) or ``amax = history[0]`` (``"most_recent"``);
    * ``scale = (fmt_max · 2^-margin) / amax`` in float32 — but the previous ``scale`` is kept
      when ``amax`` is 0 (nothing seen yet: an all-zero tensor must not give an infinite scale)
      or not finite (an inf/NaN tensor says nothing about the next one), and an amax so small
      that the quotient overflows gives float32's max instead of inf;
    * the history rolls by one (``torch.roll(history, -1)``: the step just done moves to the end)
      and slot 0 is zeroed for the next step's amax.

    Args:
        amax_history (Tensor[L]): past amaxes, ``L = amax_history_len`` ≥ 1.
        scale (Tensor[]): the scale used in the step just done (1.0 before the first update).
        fmt_max: the FP8 format's largest value (448 for E4M3, 57344 for E5M2).
        margin: headroom exponent ≥ 0: the amax maps to ``fmt_max / 2^margin``.
        amax_compute_algo: ``"max"`` or ``"most_recent"``.

    Returns:
        ``(history, scale)``: the rolled Tensor[L] (float32, slot 0 = 0) and the new scale
        (Tensor[], float32). The inputs are not modified.

    Raises:
        TypeError: ``amax_history`` or ``scale`` not a floating tensor; ``margin`` not an int.
        ValueError: ``amax_history`` not 1-D or empty, ``scale`` not 0-dim, ``fmt_max`` not
            positive, ``margin`` < 0, an unknown ``amax_compute_algo``.
    """
    _checks.tensor("amax_history", amax_history, ndim=1, floating=True)
    if not amax_history.numel():
        raise ValueError("amax_history must hold at least one step (amax_history_len >= 1); got shape (0,)")
    _checks.tensor("scale", scale, ndim=0, floating=True)
    _checks.real("fmt_max", fmt_max, minimum=0.0, open_min=True)
    _checks.integer("margin", margin, minimum=0)
    _checks.one_of("amax_compute_algo", amax_compute_algo, ("max", "most_recent"))
    history = amax_history.detach().float()
    if amax_compute_algo == "max":
        amax = torch.where(history.isnan(), torch.zeros_like(history), history).amax()
    else:
        amax = history[0]
    scaled_max = torch.tensor(fmt_max * 2.0**-margin, dtype=torch.float32, device=history.device)
    usable = torch.isfinite(amax) & (amax > 0)
    new_scale = torch.where(usable, scaled_max / amax, scale.detach().float().to(history.device))
    fp32_max = torch.finfo(torch.float32).max
    new_scale = torch.where(new_scale.isinf(), torch.full_like(new_scale, fp32_max), new_scale)
    rolled = torch.roll(history, -1, 0)  # (L,): [h1, ..., h_{L-1}, h0]
    rolled[0] = 0.0  # the slot the next step's amax goes into
    return rolled, new_scale


@export("numerics.DelayedScaling")
@dataclass(frozen=True)
class DelayedScaling:
    """The delayed-scaling recipe, as Transformer Engine's ``recipe.DelayedScaling`` (same defaults).

    Raises:
        TypeError / ValueError: a field of the wrong kind or out of range (the message names it).
    """

    margin: int = 0  # the amax maps to fmt_max / 2^margin: 2^margin of headroom for growth
    amax_history_len: int = 1024  # how many steps of amax the "max" looks back over
    amax_compute_algo: AmaxAlgo = "max"  # "max" over the history, or "most_recent" (the last step)
    fmt: str = "fp8_e4m3"  # the FP8 format (TE's HYBRID: E4M3 forward, E5M2 for gradients)

    def __post_init__(self) -> None:
        _checks.integer("margin", self.margin, minimum=0)
        _checks.integer("amax_history_len", self.amax_history_len, minimum=1)
        _checks.one_of("amax_compute_algo", self.amax_compute_algo, ("max", "most_recent"))
        _checks.one_of("fmt", self.fmt, FP8_FORMATS)


@export("numerics.DelayedScaler")
class DelayedScaler:
    """One tensor's delayed FP8 scaling: quantize with the scale from past steps, then update.

    Per step, as Transformer Engine does inside and at the exit of ``fp8_autocast``::

        q, s = scaler.quantize(x)   # fp8(clamp(x · s)) with s from earlier steps; records amax(x)
        ...                         # compute with q / s (fp8_dequantize(q, s))
        scaler.update()             # delayed_scale_update: the scale for the next step

    The first step quantizes with scale 1 (TE's initial scale), since no amax has been seen.

    Args:
        recipe: a :class:`DelayedScaling` (defaults if None).

    Attributes:
        amax_history (Tensor[L]): slot 0 = the current step's amax, then earlier steps'.
        scale (Tensor[]): the scale the next :meth:`quantize` uses.

    Raises:
        TypeError: ``recipe`` is not a :class:`DelayedScaling`.
    """

    def __init__(self, recipe: DelayedScaling | None = None) -> None:
        self.recipe = _checks.instance("recipe", recipe or DelayedScaling(), DelayedScaling)
        self.format = get_format(self.recipe.fmt)
        self.fmt_max = float(torch.finfo(self.format.dtype()).max)
        self.amax_history = torch.zeros(self.recipe.amax_history_len)
        self.scale = torch.ones(())

    def quantize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(fp8(clamp(x · scale, ±fmt_max)), scale)`` with the current (delayed) scale; records ``amax(x)``.

        Values with ``|x · scale| > fmt_max`` are clipped to ``±fmt_max``; NaN stays NaN. An
        inf or NaN in ``x`` is recorded as the amax (the update then keeps the scale).

        Args:
            x (Tensor[...]): floating-point values.

        Raises:
            TypeError: ``x`` is not a floating-point tensor.
        """
        _checks.tensor("x", x, floating=True)
        self.amax_history = self.amax_history.to(x.device)
        self.scale = self.scale.to(x.device)
        scale = self.scale.clone()
        q = _scaled_cast(x.detach(), scale, self.format)
        self.amax_history[0] = x.detach().abs().amax().float() if x.numel() else 0.0
        return q, scale

    def update(self) -> torch.Tensor:
        """Roll the history and compute the next scale (:func:`delayed_scale_update`); return it."""
        r = self.recipe
        self.amax_history, self.scale = delayed_scale_update(self.amax_history, self.scale, self.fmt_max,
                                                             r.margin, r.amax_compute_algo)
        return self.scale
