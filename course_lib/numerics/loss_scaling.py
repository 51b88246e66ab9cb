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
``update``, ``get_scale``, ``state_dict``/``load_state_dict`` — with its per-optimizer protocol:
with several optimizers each is unscaled once per iteration, each skips its own step if *its*
gradients hold an inf/NaN, and ``update`` backs off if *any* of them did. It also records the
scale and skipped iterations for plotting.

Edges, as GradScaler: the inverse scale is ``1/S`` in float64 rounded to float32, so a scale
driven to 0 by back-offs gives an inverse scale of inf and training carries on (no exception);
the inf/NaN check looks at the gradients as they arrive, before unscaling.

Differences from GradScaler: one device, no sparse gradients, no ``enabled`` switch, no
optimizer ``closure``/fused ``grad_scaler`` protocol; ``unscale_`` and ``step`` return whether
inf/NaN was found / whether the optimizer stepped (GradScaler returns None / the optimizer's
return value); an optimizer without any gradient counts as finite (GradScaler's ``step`` raises
``AssertionError: No inf checks were recorded``); FP16 gradients are unscaled in place without
complaint (GradScaler refuses them unless the gradients live in FP32 master weights — see
:mod:`course_lib.numerics.mixed_precision`); ``init_scale`` must be > 0.

Notebook: ``03_floating_point`` (section "Loss scaling"). Tests: ``tests/test_numerics_training.py``
(the same scripted gradients through this class and through GradScaler) and
``tests/test_numerics_scaler.py`` (PyTorch's ``test_grad_scaling_*`` cases, written anew).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

import torch

from course_lib import _checks
from course_lib._export import export
from course_lib.numerics.codec import round_to

Outputs = TypeVar("Outputs", torch.Tensor, list, tuple)  # what scale() takes and gives back


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


def _inverse(scale: float) -> float:
    """``1 / scale`` as GradScaler computes it: the reciprocal in float64, rounded to float32.

    IEEE's answers at the edges, not an exception: ``1 / 0 = inf`` (so a scale driven to 0 by
    back-offs carries on, as GradScaler's does) and a reciprocal above FP32's max is inf too.
    """
    return math.inf if scale == 0.0 else round_to(1.0 / scale, "fp32")


@dataclass
class _OptimizerState:
    """Where one optimizer is in the current step (GradScaler's ``_per_optimizer_states`` entry)."""

    stage: Literal["ready", "unscaled", "stepped"] = "ready"  # ready → unscaled → stepped
    found_inf: bool = False  # did this optimizer's gradients hold an inf/NaN (valid once unscaled)


@export("numerics.DynamicLossScaler")
class DynamicLossScaler:
    """Loss scaling with GradScaler's semantics, written out (see the module docstring).

    One scale serves every optimizer; the bookkeeping is per optimizer, as in GradScaler:
    each optimizer is unscaled at most once per step (explicitly with :meth:`unscale_`, or by
    :meth:`step`), an optimizer whose own gradients hold an inf/NaN skips its step, and
    :meth:`update` backs the scale off if *any* optimizer found one.

    Args:
        init_scale: the first scale (GradScaler's default 2^16).
        growth_factor: > 1; the scale is multiplied by it after ``growth_interval`` good steps.
        backoff_factor: in (0, 1]; the scale is multiplied by it after a step with inf/NaN gradients.
        growth_interval: how many consecutive good steps before the scale grows.

    Attributes:
        scales: the scale used at each step (appended by :meth:`update`).
        skipped: whether each step found inf/NaN gradients in some optimizer (so backed off).

    Usage (the same lines as with GradScaler)::

        scaler.scale(loss).backward()
        scaler.unscale_(opt0)    # optional: to clip opt0's gradients at their true size
        scaler.step(opt0)        # unscales (if not yet), checks for inf/NaN, steps or skips
        scaler.step(opt1)
        scaler.update()          # once per iteration, after every optimizer's step
    """

    def __init__(self, init_scale: float = 2.0**16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000) -> None:
        self._scale = round_to(_checks.real("init_scale", init_scale, minimum=0.0, open_min=True), "fp32")
        self.growth_factor = _checks.real("growth_factor", growth_factor, minimum=1.0, open_min=True)
        self.backoff_factor = _checks.real("backoff_factor", backoff_factor, minimum=0.0, maximum=1.0, open_min=True)
        self.growth_interval = _checks.integer("growth_interval", growth_interval, minimum=1)
        self._growth_tracker = 0
        # {id(optimizer): its state this step}; emptied by update(). Keyed by id, as GradScaler,
        # because optimizers are not hashable by value and live at least until update().
        self._per_optimizer: dict[int, _OptimizerState] = {}
        self.scales: list[float] = []
        self.skipped: list[bool] = []

    def get_scale(self) -> float:
        """The scale the next ``scale(loss)`` multiplies by."""
        return self._scale

    def get_growth_tracker(self) -> int:
        """Consecutive good steps since the scale last changed."""
        return self._growth_tracker

    def scale(self, outputs: Outputs) -> Outputs:
        """``outputs * scale``; a tensor, or a (nested) list/tuple of tensors like GradScaler.scale.

        The scale is a 0-dim float32 tensor, so type promotion gives a float32 result for a 0-dim
        FP16 loss (which would overflow at 2^16 in FP16) and an FP16 result for an FP16 tensor with
        dimensions — the same dtypes as GradScaler.

        Raises:
            TypeError: an output is not a floating-point tensor.
        """
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        _checks.tensor("outputs", outputs, floating=True)
        return outputs * torch.tensor(self._scale, dtype=torch.float32, device=outputs.device)

    def unscale_(self, optimizer: torch.optim.Optimizer) -> bool:
        """Divide this optimizer's gradients by the scale in place; return whether any was inf/NaN.

        Call it before gradient clipping; :meth:`step` calls it if you did not. The check looks at
        the gradients as they arrive (scaled), as GradScaler's fused kernel does.

        Raises:
            RuntimeError: called twice for this optimizer in one step, or after its :meth:`step`.
        """
        state = self._per_optimizer.setdefault(id(optimizer), _OptimizerState())
        if state.stage == "unscaled":
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update()")
        if state.stage == "stepped":
            raise RuntimeError("unscale_() is being called after step() for this optimizer; call update() first")
        inv_scale = _inverse(self._scale)
        found_inf = False
        with torch.no_grad():
            for grad in _grads(optimizer):
                found_inf |= not bool(torch.isfinite(grad).all())
                grad.mul_(inv_scale)
        state.stage, state.found_inf = "unscaled", found_inf
        return found_inf

    def step(self, optimizer: torch.optim.Optimizer) -> bool:
        """Unscale this optimizer (if not done yet) and step it unless its gradients hold inf/NaN.

        Returns:
            True if the optimizer stepped, False if its step was skipped.

        Raises:
            RuntimeError: ``step`` was already called for this optimizer since the last update().
        """
        state = self._per_optimizer.get(id(optimizer))
        if state is not None and state.stage == "stepped":
            raise RuntimeError("step() has already been called on this optimizer since the last update()")
        if state is None or state.stage == "ready":
            self.unscale_(optimizer)
            state = self._per_optimizer[id(optimizer)]
        stepped = not state.found_inf
        if stepped:
            optimizer.step()
        state.stage = "stepped"
        return stepped

    def update(self, new_scale: float | None = None) -> float:
        """Apply the scale rule to this iteration's outcome, record it, and return the new scale.

        The iteration found inf/NaN if *any* optimizer unscaled since the last update found one.
        ``new_scale`` sets the scale by hand instead (GradScaler's ``update(new_scale)``).

        Raises:
            RuntimeError: no optimizer was unscaled or stepped since the last update.
            ValueError: ``new_scale`` is negative or NaN.
        """
        if new_scale is not None:
            self._scale = round_to(_checks.real("new_scale", new_scale, minimum=0.0), "fp32")
            self._per_optimizer = {}
            return self._scale
        if not self._per_optimizer:
            raise RuntimeError("update() needs a step first: call step(optimizer) (or unscale_) before update()")
        found_inf = any(state.found_inf for state in self._per_optimizer.values())
        self.scales.append(self._scale)
        self.skipped.append(found_inf)
        self._scale, self._growth_tracker = update_scale(
            self._scale, self._growth_tracker, found_inf,
            self.growth_factor, self.backoff_factor, self.growth_interval)
        self._per_optimizer = {}
        return self._scale

    def state_dict(self) -> dict[str, float | int]:
        """The scaler's state under GradScaler's keys, so either class loads the other's."""
        return {"scale": self._scale, "growth_factor": self.growth_factor, "backoff_factor": self.backoff_factor,
                "growth_interval": self.growth_interval, "_growth_tracker": self._growth_tracker}

    def load_state_dict(self, state_dict: Mapping[str, float | int]) -> None:
        """Restore a :meth:`state_dict` (ours or GradScaler's).

        Raises:
            ValueError: ``state_dict`` is empty (GradScaler's state when disabled) or lacks a key.
        """
        keys = ("scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker")
        missing = [k for k in keys if k not in state_dict]
        if missing:
            raise ValueError(f"state_dict must have the keys {list(keys)}; missing {missing}")
        self._scale = round_to(_checks.real("state_dict['scale']", state_dict["scale"], minimum=0.0), "fp32")
        self.growth_factor = _checks.real("state_dict['growth_factor']", state_dict["growth_factor"],
                                          minimum=1.0, open_min=True)
        self.backoff_factor = _checks.real("state_dict['backoff_factor']", state_dict["backoff_factor"],
                                           minimum=0.0, maximum=1.0, open_min=True)
        self.growth_interval = _checks.integer("state_dict['growth_interval']", state_dict["growth_interval"],
                                               minimum=1)
        self._growth_tracker = _checks.integer("state_dict['_growth_tracker']", state_dict["_growth_tracker"],
                                               minimum=0)

    def __getstate__(self) -> dict[str, object]:
        """Pickle between iterations only: mid-iteration state is keyed by ``id(optimizer)``."""
        if self._per_optimizer:
            raise RuntimeError("a DynamicLossScaler may only be pickled before an iteration's first "
                               "unscale_/step or after update(), as GradScaler")
        return self.__dict__.copy()
