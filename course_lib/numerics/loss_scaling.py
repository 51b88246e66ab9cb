"""Dynamic loss scaling: keep small FP16 gradients from flushing to zero, and back off on overflow.

FP16's smallest subnormal is 2^-24 ≈ 6e-8: gradients below half of it become 0 in FP16, and
below 2^-14 they lose precision. Multiplying the loss by a scale ``S`` multiplies every gradient
by ``S`` (the chain rule is linear), lifting them into range; dividing by ``S`` again in FP32
before the optimizer step gives the true gradient (Micikevicius et al., *Mixed Precision
Training*, ICLR 2018). ``S`` too large makes a gradient overflow to inf. The dynamic rule finds
a good ``S`` on the fly:

    if any gradient is inf/NaN:  skip the optimizer step;  S ← S · backoff_factor;  good ← 0
    else:                        step;  good ← good + 1
                                 if good == growth_interval:  S ← S · growth_factor (if finite);  good ← 0

This is exactly ``torch.amp.GradScaler``'s rule (``_amp_update_scale_``), including that the scale
is a float32 number and that a grown scale which would be infinite is not taken.
:class:`DynamicLossScaler` has GradScaler's methods — ``scale``, ``unscale_``, ``step``,
``update``, ``get_scale`` — and records the scale and skipped steps for plotting.

Differences from GradScaler: one device, no sparse gradients, no ``state_dict``; ``step``
returns whether the optimizer stepped (GradScaler returns the optimizer's return value or None);
FP16 gradients are unscaled in place without complaint (GradScaler refuses them unless the
gradients live in FP32 master weights — see :mod:`course_lib.numerics.mixed_precision`).

Notebook: ``03_floating_point`` (section "Loss scaling"). Tests: ``tests/test_numerics_training.py``
(the same scripted gradients through this class and through GradScaler).
"""

from __future__ import annotations

import math

import torch

from course_lib import _checks
from course_lib._export import export
from course_lib.numerics.codec import round_to


@export("numerics.update_scale")
def update_scale(
    scale: float,
    growth_tracker: int,
    found_inf: bool,
    growth_factor: float = 2.0,
    backoff_factor: float = 0.5,
    growth_interval: int = 2000,
) -> tuple[float, int]:
    """One application of the dynamic loss-scale rule; returns ``(new_scale, new_growth_tracker)``.

    The scale is kept a float32 value, as GradScaler keeps it in a float32 tensor.

    Example:
        >>> update_scale(65536.0, 0, found_inf=True)
        (32768.0, 0)
        >>> update_scale(65536.0, 1999, found_inf=False)
        (131072.0, 0)
    """
    if found_inf:
        return round_to(scale * backoff_factor, "fp32"), 0
    successful = growth_tracker + 1
    if successful == growth_interval:
        grown = round_to(scale * growth_factor, "fp32")
        return (grown if math.isfinite(grown) else scale), 0
    return scale, successful


def _grads(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]


@export("numerics.DynamicLossScaler")
class DynamicLossScaler:
    """Loss scaling with GradScaler's semantics, written out (see the module docstring).

    Args:
        init_scale: the first scale (GradScaler's default 2^16).
        growth_factor: > 1; the scale is multiplied by it after ``growth_interval`` good steps.
        backoff_factor: in (0, 1); the scale is multiplied by it after a step with inf/NaN gradients.
        growth_interval: how many consecutive good steps before the scale grows.

    Attributes:
        scales: the scale used at each step (appended by :meth:`update`).
        skipped: whether each step was skipped because of inf/NaN gradients.

    Usage (the same lines as with GradScaler)::

        scaler.scale(loss).backward()
        scaler.step(optimizer)   # unscales, checks for inf/NaN, steps or skips
        scaler.update()
    """

    def __init__(self, init_scale: float = 2.0**16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000) -> None:
        self._scale = round_to(_checks.real("init_scale", init_scale, minimum=0.0, open_min=True), "fp32")
        self.growth_factor = _checks.real("growth_factor", growth_factor, minimum=1.0, open_min=True)
        self.backoff_factor = _checks.real("backoff_factor", backoff_factor, minimum=0.0, maximum=1.0, open_min=True)
        self.growth_interval = _checks.integer("growth_interval", growth_interval, minimum=1)
        self._growth_tracker = 0
        self._found_inf: bool | None = None  # None: this step's gradients are not unscaled yet
        self.scales: list[float] = []
        self.skipped: list[bool] = []

    def get_scale(self) -> float:
        """The scale the next ``scale(loss)`` multiplies by."""
        return self._scale

    def get_growth_tracker(self) -> int:
        """Consecutive good steps since the scale last changed."""
        return self._growth_tracker

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        """``loss * scale``, computed in float32 (a 0-dim FP16 loss would overflow at 2^16)."""
        _checks.tensor("loss", loss, floating=True)
        return loss * torch.tensor(self._scale, dtype=torch.float32, device=loss.device)

    def unscale_(self, optimizer: torch.optim.Optimizer) -> bool:
        """Divide the optimizer's gradients by the scale in place; return whether any is inf/NaN.

        Call it before gradient clipping; :meth:`step` calls it if you did not.

        Raises:
            RuntimeError: called twice in one step.
        """
        if self._found_inf is not None:
            raise RuntimeError("unscale_() was already called for this step; call update() first")
        # The reciprocal in float64, then float32: the inverse scale GradScaler multiplies by.
        inv_scale = round_to(1.0 / self._scale, "fp32")
        found_inf = False
        with torch.no_grad():
            for grad in _grads(optimizer):
                found_inf |= not bool(torch.isfinite(grad).all())
                grad.mul_(inv_scale)
        self._found_inf = found_inf
        return found_inf

    def step(self, optimizer: torch.optim.Optimizer) -> bool:
        """Unscale (if not done yet) and take the optimizer step unless a gradient is inf/NaN.

        Returns:
            True if the optimizer stepped, False if the step was skipped.
        """
        if self._found_inf is None:
            self.unscale_(optimizer)
        if self._found_inf:
            return False
        optimizer.step()
        return True

    def update(self) -> float:
        """Apply the scale rule to this step's outcome, record it, and return the new scale.

        Raises:
            RuntimeError: no step's gradients were checked since the last update.
        """
        if self._found_inf is None:
            raise RuntimeError("update() needs a step first: call step(optimizer) (or unscale_) before update()")
        self.scales.append(self._scale)
        self.skipped.append(self._found_inf)
        self._scale, self._growth_tracker = update_scale(
            self._scale, self._growth_tracker, self._found_inf,
            self.growth_factor, self.backoff_factor, self.growth_interval)
        self._found_inf = None
        return self._scale
