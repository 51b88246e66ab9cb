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

:func:`flushed_fraction` measures the fraction of non-zero FP32 gradient values that become 0
when cast to FP16, with and without a loss scale.

Activation gradients, as in Micikevicius et al. (2018), Figure 3: :func:`activation_gradients`
captures the gradients of the loss with respect to every layer's output, and
:func:`underflow_histogram` bins their magnitudes by power of two and measures, for each loss
scale, the fraction that flushes to 0 in FP16 and the fraction that overflows; its
``max_safe_scale`` is the paper's choice (Section 3.2): the largest power of two whose product
with the largest gradient stays at or below FP16's max. The paper measured gradients computed in
FP16; here they are computed in FP32 and the fractions say what an FP16 cast of them would lose.

:func:`fp8_scaling_trace` runs delayed FP8 scaling (:class:`DelayedScaler`) and just-in-time
per-tensor scaling over a sequence of tensors and counts what each clips.

Notebook: ``03_floating_point`` (sections "Gradients underflow", "Activation gradients", "The
experiment", "Delayed scaling"). Tests: ``tests/test_numerics_training.py``,
``tests/test_numerics_underflow.py``, ``tests/test_numerics_delayed.py``.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from course_lib import _checks, runtime
from course_lib._export import export
from course_lib.numerics.formats import constants, get_format
from course_lib.numerics.fp8_scaling import DelayedScaler, DelayedScaling, fp8_dequantize, fp8_quantize
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


@export("numerics.experiment.activation_gradients")
def activation_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """The gradients of the cross-entropy of ``model`` on ``(x, y)`` w.r.t. each leaf module's output.

    Forward hooks record the output of every module without children (for an MLP: each Linear
    and each ReLU); ``torch.autograd.grad`` then differentiates the loss with respect to them.
    The parameters' ``.grad`` are left untouched.

    Args:
        model: a module whose leaf modules return one tensor each.
        x (Tensor[N, F]), y (Tensor[N]): a batch and its integer labels.

    Returns:
        ``{module name: Tensor[numel]}`` in call order, FP32, flattened; a module called twice
        contributes both outputs' gradients, concatenated. An output the loss does not depend
        on has zero gradients.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``; ``x`` not floating.
        ValueError: no leaf module produced a tensor that requires grad.
    """
    _checks.instance("model", model, nn.Module)
    _checks.tensor("x", x, floating=True)
    outputs: list[tuple[str, torch.Tensor]] = []
    handles = []
    for name, module in model.named_modules():
        if next(module.children(), None) is None:
            def record(_module: nn.Module, _inputs: object, out: object, name: str = name) -> None:
                if isinstance(out, torch.Tensor) and out.requires_grad:
                    outputs.append((name, out))
            handles.append(module.register_forward_hook(record))
    try:
        loss = F.cross_entropy(model(x), y)
    finally:
        for handle in handles:
            handle.remove()
    if not outputs:
        raise ValueError("model must have leaf modules whose outputs require grad; none did")
    grads = torch.autograd.grad(loss, [out for _, out in outputs], materialize_grads=True)
    result: dict[str, torch.Tensor] = {}
    for (name, _), g in zip(outputs, grads):
        flat = g.detach().float().flatten()  # (numel,)
        result[name] = torch.cat([result[name], flat]) if name in result else flat
    return result


def _flushes(v: torch.Tensor, fmt: str) -> torch.Tensor:
    """Where ``|v|`` rounds to 0 in ``fmt``: at or below half the smallest subnormal (that tie goes to 0, even)."""
    return v.abs() <= constants(fmt).smallest_subnormal / 2


def _overflows(v: torch.Tensor, fmt: str) -> torch.Tensor:
    """Where ``|v|`` rounds beyond ``fmt``'s largest finite value (to ±inf, or NaN/±max in E4M3).

    Round to nearest even: the threshold is ``max + ulp(max) / 2``; the tie there goes up when the
    max's mantissa is odd (IEEE formats: all ones) and stays at the max when it is even (E4M3FN's
    ``1.110``, 448; torch 2.11's E4M3 cast agrees: 464 → 448).
    """
    f = get_format(fmt)
    top = constants(fmt).max
    threshold = top + 2.0 ** (math.floor(math.log2(top)) - f.mantissa_bits) / 2
    tie_goes_up = bool(f.max_finite_magnitude & 1)
    return v.abs() >= threshold if tie_goes_up else v.abs() > threshold


@export("numerics.experiment.UnderflowHistogram")
@dataclass(frozen=True)
class UnderflowHistogram:
    """Where gradient magnitudes fall on a log2 axis, and what a cast to a 16-bit format loses."""

    fmt: str  # the format the fractions are for, e.g. "fp16"
    log2_edges: torch.Tensor  # (bins + 1,) integer exponents; bin i holds 2^edges[i] <= |g| < 2^edges[i+1]
    counts: torch.Tensor  # (bins,) non-zero values per bin, unscaled (a scale 2^k shifts the bins by k)
    total: int  # values measured, zeros included
    nonzero: int  # values != 0: the denominator of every fraction
    loss_scales: tuple[float, ...]  # the scales the fractions below are for
    flushed: tuple[float, ...]  # per scale: fraction of non-zero values with |g · S| rounding to 0
    subnormal: tuple[float, ...]  # per scale: fraction rounding to a non-zero subnormal
    overflowed: tuple[float, ...]  # per scale: fraction with |g · S| rounding beyond the format's max
    amax: float  # max |g|
    max_safe_scale: float  # largest 2^k with amax · 2^k <= the format's max (inf when amax = 0)


@export("numerics.experiment.underflow_histogram")
def underflow_histogram(grads: torch.Tensor, loss_scales: Sequence[float] = (1.0,),
                        fmt: str = "fp16") -> UnderflowHistogram:
    """Histogram ``log2 |grads|`` by power of two and count what ``fmt`` loses at each loss scale.

    Micikevicius et al., *Mixed Precision Training* (ICLR 2018), Figure 3 and Section 3.2. The
    rounding thresholds follow from round-to-nearest-even: ``|v|`` flushes to 0 when
    ``|v| <= smallest_subnormal / 2`` (the tie goes to the even pattern, 0) and overflows when
    ``|v| >= max + ulp(max) / 2`` (``>`` for E4M3, whose max has an even mantissa); for FP16 that
    is ``2^-25`` and ``65520``. Computing them from
    magnitudes, not by casting, keeps the result independent of torch's FP8 overflow convention;
    ``tests/test_numerics_underflow.py`` checks them against torch's FP16/BF16 cast. ``grads · S``
    is formed in float64, exact for FP32 gradients and power-of-two ``S``.

    Args:
        grads (Tensor[...]): finite gradient values (any shape; flattened).
        loss_scales: positive scales ``S`` to measure (powers of two keep ``grads · S`` exact).
        fmt: ``"fp16"``, ``"bf16"``, ``"fp8_e4m3"`` or ``"fp8_e5m2"``.

    Returns:
        An :class:`UnderflowHistogram`; with no non-zero value every fraction is NaN (0 of 0).

    Raises:
        TypeError: ``grads`` not a floating tensor. ValueError: a non-finite gradient, a scale
            that is not positive, no scales, an unknown ``fmt``.
    """
    _checks.tensor("grads", grads, floating=True)
    fmt = _checks.one_of("fmt", fmt, ("fp16", "bf16", "fp8_e4m3", "fp8_e5m2"))
    scales = tuple(_checks.real(f"loss_scales[{i}]", s, minimum=0.0, open_min=True) for i, s in enumerate(loss_scales))
    if not scales:
        raise ValueError("loss_scales must hold at least one scale; got an empty sequence")
    g = grads.detach().flatten().double()  # (P,)
    if not bool(torch.isfinite(g).all()):
        raise ValueError("grads must be finite: an inf or NaN gradient has already overflowed")
    mags = g[g != 0].abs()  # (nonzero,)
    c = constants(fmt)
    if mags.numel():
        _, exponent = torch.frexp(mags)  # |g| = m · 2^e with m in [0.5, 1): floor(log2 |g|) = e - 1, exactly
        octave = exponent.long() - 1
        lo, hi = int(octave.min()), int(octave.max())
        counts = torch.bincount(octave - lo, minlength=hi - lo + 1)
        edges = torch.arange(lo, hi + 2, dtype=torch.float64)
        amax = float(mags.max())
        k = math.floor(math.log2(c.max / amax))
        k += 1 if amax * 2.0 ** (k + 1) <= c.max else 0  # log2 may round: settle k exactly
        k -= 1 if amax * 2.0**k > c.max else 0
        safe = 2.0**k
    else:
        counts, edges, amax, safe = torch.zeros(0, dtype=torch.long), torch.zeros(1, dtype=torch.float64), 0.0, math.inf
    flushed, subnormal, overflowed = [], [], []
    for s in scales:
        v = mags * s
        flush = _flushes(v, fmt)
        flushed.append(flush.double().mean().item())  # NaN when mags is empty
        # Below smallest_normal - smallest_subnormal / 2 a value rounds onto a subnormal; at that tie
        # it goes up to the smallest normal (mantissa 0, even).
        lands_subnormal = v < c.smallest_normal - c.smallest_subnormal / 2
        subnormal.append((~flush & lands_subnormal).double().mean().item())
        overflowed.append(_overflows(v, fmt).double().mean().item())
    return UnderflowHistogram(fmt, edges, counts, g.numel(), mags.numel(), scales, tuple(flushed),
                              tuple(subnormal), tuple(overflowed), amax, safe)


@export("numerics.experiment.FP8ScalingTrace")
@dataclass(frozen=True)
class FP8ScalingTrace:
    """Delayed vs just-in-time FP8 scaling over a sequence of tensors, step by step."""

    recipe: DelayedScaling  # the delayed recipe traced
    amax: list[float]  # amax of each step's tensor
    scale: list[float]  # the delayed scale used at each step (from earlier steps)
    ideal_scale: list[float]  # fmt_max / amax: the just-in-time per-tensor scale of each step
    clipped: list[int]  # values the clamp changed: |x · scale| would round beyond fmt_max
    error: list[float]  # relative RMS error of the delayed round trip, ||q / s - x|| / ||x||
    jit_clipped: list[int]  # the same for just-in-time scaling (fp8_quantize): 0 by construction
    jit_error: list[float]  # relative RMS error of the just-in-time round trip


def _relative_rms(back: torch.Tensor, x: torch.Tensor) -> float:
    return ((back - x).norm() / x.norm()).item() if bool(x.any()) else 0.0


@export("numerics.experiment.fp8_scaling_trace")
def fp8_scaling_trace(tensors: Sequence[torch.Tensor], recipe: DelayedScaling | None = None) -> FP8ScalingTrace:
    """Quantize each tensor in turn with a :class:`DelayedScaler` and with ``fp8_quantize``; record both.

    Args:
        tensors: the tensor of each step (finite, floating; any shapes).
        recipe: the :class:`DelayedScaling` recipe (defaults if None).

    Returns:
        An :class:`FP8ScalingTrace` with one entry per step.

    Raises:
        TypeError: a step that is not a floating tensor, a ``recipe`` that is not a recipe.
        ValueError: no steps; a non-finite value (``fp8_quantize`` refuses it).
    """
    scaler = DelayedScaler(recipe)
    if not len(tensors):
        raise ValueError("tensors must hold at least one step; got an empty sequence")
    fmt = scaler.recipe.fmt
    amax, scale, ideal, clipped, error, jit_clipped, jit_error = [], [], [], [], [], [], []
    for step, x in enumerate(tensors):
        _checks.tensor(f"tensors[{step}]", x, floating=True)
        xf = x.detach().float()
        q, s = scaler.quantize(xf)
        scaler.update()
        amax.append(xf.abs().amax().item() if xf.numel() else 0.0)
        scale.append(s.item())
        clipped.append(int(_overflows(xf.double() * s.item(), fmt).sum()))
        error.append(_relative_rms(fp8_dequantize(q, s), xf))
        jq, js = fp8_quantize(xf.flatten(), fmt)
        ideal.append(js.item())
        jit_clipped.append(int(_overflows(xf.double() * js.item(), fmt).sum()))
        jit_error.append(_relative_rms(fp8_dequantize(jq, js).reshape(xf.shape), xf))
    return FP8ScalingTrace(scaler.recipe, amax, scale, ideal, clipped, error, jit_clipped, jit_error)
