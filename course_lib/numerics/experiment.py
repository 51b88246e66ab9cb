"""The chapter's experiment: one small classifier trained four ways, and where its gradients fall.

Modes of :func:`train` (all from the same initial weights and the same batches):

* ``"fp32"`` — the baseline.
* ``"fp16"`` — *pure* FP16: FP16 weights, activations and gradients, SGD applied to the FP16
  weights, no loss scaling. Gradients below 2^-25 flush to zero and updates below half an ulp of
  the weight are rounded away.
* ``"fp16_master"`` — FP16 forward/backward, :class:`DynamicLossScaler` and FP32
  :class:`MasterWeights` (the recipe of Micikevicius et al., 2018).
* ``"autocast"`` — FP32 weights with ``torch.autocast``: bfloat16 on the CPU, float16 (plus the
  loss scaler) on CUDA, as :func:`autocast_dtype` decides.

:func:`flushed_fraction` measures what the issue's histogram shows: the fraction of non-zero FP32
gradient values that become 0 when cast to FP16, with and without a loss scale.

Notebook: ``03_floating_point`` (sections "Gradients underflow" and "The experiment"). Tests:
``tests/test_numerics_training.py``.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from course_lib import _checks, runtime
from course_lib._export import export
from course_lib.numerics.loss_scaling import DynamicLossScaler
from course_lib.numerics.mixed_precision import MasterWeights, autocast, autocast_dtype

Mode = Literal["fp32", "fp16", "fp16_master", "autocast"]
MODES: tuple[Mode, ...] = ("fp32", "fp16", "fp16_master", "autocast")
LABEL_DTYPES = (torch.int64, torch.uint8)  # the target dtypes F.cross_entropy takes as class indices


@export("numerics.experiment.TrainConfig")
@dataclass
class TrainConfig:
    """How :func:`train` trains."""

    hidden: int = 64  # width of each hidden layer
    depth: int = 4  # number of hidden layers
    steps: int = 500  # optimizer steps
    batch_size: int = 64  # examples per step
    lr: float = 0.05  # SGD learning rate
    momentum: float = 0.9  # SGD momentum (its buffer has the weights' dtype)
    seed: int = 0  # seeds the initial weights and the batch order (the same for every mode)
    init_scale: float = 2.0**16  # the loss scaler's first scale
    growth_interval: int = 50  # good steps before the scale grows (GradScaler's default: 2000)


@export("numerics.experiment.TrainResult")
@dataclass
class TrainResult:
    """What one training run measured."""

    mode: str  # one of MODES
    losses: list[float]  # training loss at each step (unscaled, in FP32)
    final_loss: float  # mean cross-entropy on the evaluation set, computed in FP32
    accuracy: float  # accuracy on the evaluation set
    scales: list[float] = field(default_factory=list)  # loss scale at each step (scaled modes)
    skipped: list[bool] = field(default_factory=list)  # steps skipped for inf/NaN gradients
    seconds: float = 0.0  # wall time of the training loop
    model: nn.Module | None = field(default=None, repr=False)  # the trained model, in FP32


@export("numerics.experiment.make_model")
def make_model(n_in: int, n_out: int, config: TrainConfig) -> nn.Sequential:
    """An MLP ``n_in → hidden × depth → n_out`` with ReLU, seeded by ``config.seed``, in FP32."""
    torch.manual_seed(config.seed)
    layers: list[nn.Module] = []
    width = n_in
    for _ in range(config.depth):
        layers += [nn.Linear(width, config.hidden), nn.ReLU()]
        width = config.hidden
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def _batches(n: int, config: TrainConfig) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(config.seed)
    return [torch.randint(0, n, (config.batch_size,), generator=gen) for _ in range(config.steps)]


@export("numerics.experiment.evaluate")
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """``(mean cross-entropy, accuracy)`` of ``model`` on ``(x, y)``, computed in FP32."""
    with torch.no_grad():
        logits = model.float()(x.float())  # (N, classes)
        return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def _check_config(config: TrainConfig) -> TrainConfig:
    """Refuse a config that would train on nothing or diverge by construction."""
    _checks.instance("config", config, TrainConfig)
    for name in ("hidden", "steps", "batch_size", "growth_interval"):
        _checks.integer(f"config.{name}", getattr(config, name), minimum=1)
    _checks.integer("config.depth", config.depth, minimum=0)
    _checks.integer("config.seed", config.seed, minimum=0)
    _checks.real("config.lr", config.lr, minimum=0.0, open_min=True)
    _checks.real("config.momentum", config.momentum, minimum=0.0, maximum=1.0)
    _checks.real("config.init_scale", config.init_scale, minimum=0.0, open_min=True)
    return config


@export("numerics.experiment.train")
def train(mode: Mode, x: torch.Tensor, y: torch.Tensor, x_eval: torch.Tensor, y_eval: torch.Tensor,
          config: TrainConfig | None = None) -> TrainResult:
    """Train :func:`make_model` with SGD in one precision ``mode`` (see the module docstring).

    Args:
        mode: ``"fp32"``, ``"fp16"``, ``"fp16_master"`` or ``"autocast"``.
        x (Tensor[N, F]), y (Tensor[N]): training inputs and integer labels.
        x_eval (Tensor[M, F]), y_eval (Tensor[M]): evaluation set.
        config: a :class:`TrainConfig` (defaults if None).

    Returns:
        A :class:`TrainResult`.

    Raises:
        TypeError: float inputs that are not floating point, labels that are not int64/uint8, a
            ``config`` that is not a :class:`TrainConfig`.
        ValueError: an unknown mode, shapes that do not fit together, no examples, labels
            outside ``[0, y.max()]`` (the model has ``y.max() + 1`` outputs), or a config field
            out of range (``steps``, ``batch_size`` < 1, ``lr`` <= 0 ...).
    """
    _checks.one_of("mode", mode, MODES)
    config = _check_config(config or TrainConfig())
    dims = _checks.shape("x", _checks.tensor("x", x, floating=True), "N F")
    _checks.shape("y", _checks.tensor("y", y, dtypes=LABEL_DTYPES), "N", dims)
    _checks.shape("x_eval", _checks.tensor("x_eval", x_eval, floating=True), "M F", dims)
    _checks.shape("y_eval", _checks.tensor("y_eval", y_eval, dtypes=LABEL_DTYPES), "M", dims)
    if not y.numel():
        raise ValueError("x and y must hold at least one example; got N=0")
    classes = int(y.max()) + 1
    for name, labels in (("y", y), ("y_eval", y_eval)):
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= classes):
            raise ValueError(f"{name} must hold class labels in [0, {classes - 1}] (the classes of y); "
                             f"got labels from {int(labels.min())} to {int(labels.max())}")
    dev = runtime.device()
    model = make_model(dims["F"], classes, config).to(dev)
    x, y = x.to(dev), y.to(dev)
    low = torch.float16 if mode in ("fp16", "fp16_master") else torch.float32
    if low == torch.float16:
        model.half()
    master = MasterWeights(model) if mode == "fp16_master" else None
    params = master.params if master else list(model.parameters())
    optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum)
    scaled = mode == "fp16_master" or (mode == "autocast" and autocast_dtype(dev) == torch.float16)
    scaler = DynamicLossScaler(config.init_scale, growth_interval=config.growth_interval) if scaled else None

    losses: list[float] = []
    start = time.perf_counter()
    for idx in _batches(len(x), config):
        xb, yb = x[idx].to(low), y[idx]  # (B, F), (B,)
        optimizer.zero_grad(set_to_none=True)
        if master:
            master.zero_grad()
        context = autocast(dev) if mode == "autocast" else contextlib.nullcontext()
        with context:
            loss = F.cross_entropy(model(xb), yb)
        losses.append(loss.item())
        (scaler.scale(loss) if scaler else loss).backward()
        if master:
            master.grads_to_master()
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        if master:
            master.master_to_model()
    seconds = time.perf_counter() - start
    final_loss, accuracy = evaluate(model, x_eval.to(dev), y_eval.to(dev))
    return TrainResult(mode, losses, final_loss, accuracy,
                       scales=scaler.scales if scaler else [], skipped=scaler.skipped if scaler else [],
                       seconds=seconds, model=model)


@export("numerics.experiment.gradients")
def gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """All parameter gradients of the cross-entropy of ``model`` on ``(x, y)``, in FP32, flattened.

    Returns:
        Tensor[P]: one entry per parameter element (P = the number of parameters).
    """
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    # A parameter the loss does not use has no gradient: its entries are 0, as torch.autograd.grad(
    # ..., materialize_grads=True) gives them.
    return torch.cat([(torch.zeros_like(p) if p.grad is None else p.grad).detach().float().flatten()
                      for p in model.parameters()])  # (P,)


@export("numerics.experiment.flushed_fraction")
def flushed_fraction(grads: torch.Tensor, loss_scale: float = 1.0, dtype: torch.dtype = torch.float16) -> float:
    """The fraction of non-zero gradient values that become zero when ``grads * loss_scale`` is cast to ``dtype``.

    ``grads`` without a non-zero value (empty, or all zeros) gives NaN — 0 of 0, as torch's mean
    of nothing — not 0.0, which would claim that nothing was lost.

    Raises:
        TypeError: ``grads`` is not a floating-point tensor.
        ValueError: ``loss_scale`` is not positive.
    """
    _checks.tensor("grads", grads, floating=True)
    scale = _checks.real("loss_scale", loss_scale, minimum=0.0, open_min=True)
    nonzero = grads[grads != 0].double()
    return ((nonzero * scale).to(dtype) == 0).double().mean().item()  # NaN when nonzero is empty
