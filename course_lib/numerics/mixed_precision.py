"""Mixed-precision training: an FP16 model with FP32 master weights, and torch's autocast path.

Two ways to train in low precision (Micikevicius et al., *Mixed Precision Training*, 2018):

* **By hand — FP16 model, FP32 master weights.** The model's parameters are FP16, so forward and
  backward run in FP16. The optimizer updates an FP32 copy (the *master weights*): an update
  ``lr · g`` smaller than half an FP16 ulp of the weight (2^-11 · |w|) would be rounded away if
  applied to the FP16 weight itself — at w = 1 that is any update below 4.9e-4. After each step
  the master weights are rounded into the FP16 model. With :class:`DynamicLossScaler` this is
  the recipe of the paper:

      loss = loss_fn(model16(x16), y)             # forward in FP16
      scaler.scale(loss).backward()               # scaled FP16 gradients
      master.grads_to_master()                    # FP16 grads → FP32 .grad of the masters
      scaler.step(optimizer); scaler.update()     # unscale in FP32, skip on inf/NaN
      master.master_to_model()                    # FP32 masters → FP16 model (one rounding)

* **torch.autocast.** Parameters stay FP32; inside ``torch.autocast`` matmuls and convolutions
  run in a low-precision dtype while reductions and losses stay in FP32. The dtype comes from
  :func:`autocast_dtype`: **bfloat16 on the CPU** (the CPU autocast dtype; FP16 matmuls on CPUs
  are slow emulations) and **float16 on CUDA** (with a loss scaler, since FP16's range is
  narrow). BF16 has FP32's exponent range, so it needs no loss scaling.

Limitations: one device; ``MasterWeights`` covers parameters, not buffers.

Notebook: ``03_floating_point`` (section "The experiment"). Tests: ``tests/test_numerics_training.py``.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from course_lib import _checks, runtime
from course_lib._export import export

LOW_PRECISION = (torch.float16, torch.bfloat16)


@export("numerics.autocast_dtype")
def autocast_dtype(device: torch.device | str | None = None) -> torch.dtype:
    """The low-precision dtype autocast uses here: bfloat16 on the CPU, float16 on CUDA.

    Args:
        device: defaults to :func:`course_lib.runtime.device`.

    Raises:
        ValueError: a device type other than ``cpu`` or ``cuda``.
    """
    kind = torch.device(device if device is not None else runtime.device()).type
    _checks.one_of("device type", kind, ("cpu", "cuda"))
    return torch.bfloat16 if kind == "cpu" else torch.float16


@export("numerics.autocast")
def autocast(device: torch.device | str | None = None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``device`` (default: the course's device) with :func:`autocast_dtype`."""
    kind = torch.device(device if device is not None else runtime.device()).type
    return torch.autocast(device_type=kind, dtype=autocast_dtype(kind))


@export("numerics.MasterWeights")
class MasterWeights:
    """FP32 master copies of a low-precision model's parameters.

    Args:
        model: a module whose parameters are all float16 or bfloat16 (``model.half()``).

    Attributes:
        model: the low-precision model (forward/backward run on it).
        params: the FP32 master parameters, in ``model.parameters()`` order: give them to the optimizer.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``, or has a parameter that is not FP16/BF16.
    """

    def __init__(self, model: nn.Module) -> None:
        _checks.instance("model", model, nn.Module)
        self.model = model
        self._model_params = [p for p in model.parameters()]
        for i, p in enumerate(self._model_params):
            if p.dtype not in LOW_PRECISION:
                raise TypeError(f"model parameters must be float16 or bfloat16 (call model.half()); "
                                f"parameter {i} has dtype {p.dtype}")
        self.params = [nn.Parameter(p.detach().float().clone()) for p in self._model_params]

    def grads_to_master(self) -> None:
        """Copy the model's low-precision gradients into the masters' FP32 ``.grad`` (exactly)."""
        for low, master in zip(self._model_params, self.params):
            master.grad = None if low.grad is None else low.grad.detach().float()

    def master_to_model(self) -> None:
        """Round the FP32 masters into the low-precision model (round to nearest even)."""
        with torch.no_grad():
            for low, master in zip(self._model_params, self.params):
                low.copy_(master)

    def zero_grad(self) -> None:
        """Drop the gradients of the model and of the masters."""
        for p in (*self._model_params, *self.params):
            p.grad = None
