"""Exercises for chapter 2 (notebook ``02_nn_vs_functional``): the functional ops by hand.

1. :data:`inverted_dropout` — apply a given keep-mask the way ``F.dropout`` does (scale 1/(1-p)).
2. :data:`batch_norm_train` — batch norm in training mode *and* its running-statistics update.
3. :data:`per_sample_linear_grads` — the per-sample gradients of a squared error, in closed form.
4. :data:`per_sample_grads_ex` — per-sample gradients of a real ``nn.Module`` with
   ``vmap(grad(...))`` over ``functional_call``. The check runs the learner's function on
   :class:`~course_lib.functional.model.Net` against the library's loop (the oracle), and
   *rejects a Python loop*: it counts the model's calls (a forward pre-hook) and the autograd
   passes (``torch.autograd.grad`` and ``torch.autograd.backward``, which ``torch.func.grad`` and
   ``Tensor.backward`` go through, wrapped for the duration of the call). ``vmap`` runs the
   function once on batched tensors: one model call, one autograd pass, whatever ``N``; a loop
   makes ``N`` of either.

Tests: ``tests/test_functional.py``.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from course_lib.exercises import Case, Exercise, randn
from course_lib.functional.model import Net, NetConfig
from course_lib.functional.per_sample import per_sample_grads_loop


def _t(*values: float) -> torch.Tensor:
    """A float64 tensor of the given values (keeps the edge cases readable)."""
    return torch.tensor(values, dtype=torch.float64)


def _inverted_dropout_solution(x: torch.Tensor, keep: torch.Tensor, p: float) -> torch.Tensor:
    if p == 1.0:
        return torch.zeros_like(x)  # nothing is kept; 1/(1-p) would turn 0·x into nan
    return x * keep / (1.0 - p)


def _random_dropout(rng: random.Random) -> dict[str, Any]:
    shape = (rng.randint(1, 4), rng.randint(1, 9))
    p = rng.choice([0.0, 0.1, 0.5, 0.9, 1.0])
    keep = (torch.rand(shape, generator=torch.Generator().manual_seed(rng.randrange(2**31))) >= p)
    return {"x": randn(rng, *shape), "keep": keep.to(torch.float64), "p": p}


inverted_dropout = Exercise(
    title="inverted dropout with a given mask",
    task="""
        Write `inverted_dropout(x, keep, p)`: `keep` is a 0/1 tensor shaped like `x` (1 = keep the
        unit), `p` the dropout probability. Return what F.dropout returns for that mask: kept units
        scaled so that the expected value is unchanged, dropped units 0. For p = 1 every unit is
        dropped: return zeros (not nan).
    """,
    reference=_inverted_dropout_solution,
    edge_cases=[
        {"x": _t(1.0, -2.0, 3.0), "keep": _t(1.0, 0.0, 1.0), "p": 0.5},
        {"x": torch.tensor([[1.0, 2.0]], dtype=torch.float64), "keep": torch.ones(1, 2, dtype=torch.float64), "p": 0.0},
        {"x": _t(4.0, 5.0), "keep": _t(0.0, 0.0), "p": 1.0},
    ],
    random_case=_random_dropout,
    hints=[
        "A unit is kept with probability 1 - p; to keep E[output] == x, scale the kept ones.",
        "p == 1 is its own case: 0 * x / 0 is nan, but F.dropout returns zeros.",
    ],
)


def _batch_norm_train_solution(x: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor,
                               weight: torch.Tensor, bias: torch.Tensor, momentum: float, eps: float
                               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    running_mean, running_var = running_mean.clone(), running_var.clone()
    y = F.batch_norm(x, running_mean, running_var, weight, bias, True, momentum, eps)
    return y, running_mean, running_var


def _random_bn(rng: random.Random) -> dict[str, Any]:
    n, h = rng.randint(2, 9), rng.randint(1, 6)
    return {"x": 2 * randn(rng, n, h) + 1, "running_mean": randn(rng, h), "running_var": randn(rng, h).abs() + 0.5,
            "weight": randn(rng, h), "bias": randn(rng, h), "momentum": rng.choice([0.1, 0.5, 1.0]),
            "eps": rng.choice([1e-5, 1e-3])}


batch_norm_train = Exercise(
    title="batch norm in training mode, running statistics included",
    task="""
        Write `batch_norm_train(x, running_mean, running_var, weight, bias, momentum, eps)` for
        x of shape (N, H). Return `(y, new_running_mean, new_running_var)` exactly as
        F.batch_norm(..., training=True) computes them (it updates the running tensors in place;
        you return new ones): y normalises each feature with the batch mean and the *biased*
        batch variance; the running statistics move by `momentum` towards the batch mean and
        the *unbiased* batch variance.
    """,
    reference=_batch_norm_train_solution,
    edge_cases=[
        {"x": _t(1.0, 3.0)[:, None], "running_mean": _t(0.0), "running_var": _t(1.0), "weight": _t(1.0),
         "bias": _t(0.0), "momentum": 0.1, "eps": 1e-5},
        {"x": torch.tensor([[0.0, 2.0], [4.0, 2.0], [8.0, 2.0]], dtype=torch.float64),
         "running_mean": _t(1.0, -1.0), "running_var": _t(2.0, 3.0), "weight": _t(2.0, 1.0), "bias": _t(0.5, -0.5),
         "momentum": 1.0, "eps": 1e-3},
    ],
    random_case=_random_bn,
    hints=[
        "Batch statistics are over dim 0: `x.mean(0)`, `x.var(0, unbiased=False)` for normalising.",
        "The running variance uses the unbiased estimate: `x.var(0, unbiased=True)` — N-1 in the denominator.",
        "running = (1 - momentum) * running + momentum * batch_statistic.",
    ],
)


def _per_sample_linear_grads_solution(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    residual = x @ w - y  # (N,): x_i · w - y_i
    return residual[:, None] * x  # (N, D): dL_i/dw = (x_i · w - y_i) x_i


def _random_linear(rng: random.Random) -> dict[str, Any]:
    n, d = rng.randint(1, 9), rng.randint(1, 6)
    return {"w": randn(rng, d), "x": randn(rng, n, d), "y": randn(rng, n)}


per_sample_linear_grads = Exercise(
    title="per-sample gradients of a squared error",
    task="""
        For a linear model with weights w (D,), inputs x (N, D) and targets y (N,), sample i has
        loss L_i(w) = 0.5 * (x_i · w - y_i)**2. Write `per_sample_linear_grads(w, x, y)` returning
        the (N, D) tensor whose row i is dL_i/dw, in closed form (one line of tensor algebra).
        The next exercise does the same for any model, with vmap; this check compares values only.
    """,
    reference=_per_sample_linear_grads_solution,
    edge_cases=[
        {"w": _t(1.0, 2.0), "x": _t(1.0, 0.0)[None, :], "y": _t(1.0)},
        {"w": _t(0.5, -1.0, 2.0), "x": torch.eye(3, dtype=torch.float64), "y": _t(0.0, 1.0, 2.0)},
    ],
    random_case=_random_linear,
    hints=[
        "By the chain rule, dL_i/dw = (x_i · w - y_i) * x_i: a residual times the input.",
        "All residuals at once: `x @ w - y` has shape (N,); broadcast it against x with `[:, None]`.",
    ],
)

# ---- per-sample gradients of a module, with vmap: a loop is rejected --------------------------

EXERCISE_CONFIG = NetConfig(in_features=5, hidden=7, classes=3, p_drop=0.5)


def _per_sample_grads_solution(model, x, y):  # noqa: ANN001, ANN202 — the learner's signature, untyped
    params = {name: p.detach() for name, p in model.named_parameters()}
    buffers = dict(model.named_buffers())

    def loss_one(theta, xi, yi):  # noqa: ANN001, ANN202 — one sample, as a function of the parameters
        logits = functional_call(model, (theta, buffers), (xi.unsqueeze(0),))  # the module as a function: (1, C)
        return F.cross_entropy(logits, yi.unsqueeze(0))

    # grad differentiates loss_one w.r.t. theta; vmap maps it over the samples (dim 0 of x and y)
    return vmap(grad(loss_one), in_dims=(None, 0, 0))(params, x, y)  # {name: (N, *shape)}


def _random_batch(rng: random.Random) -> Case:
    return {"seed": rng.randrange(2**31), "n": rng.randint(2, 9)}


def _model_and_batch(case: Case) -> tuple[Net, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(case["seed"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(case["seed"])
        model = Net(EXERCISE_CONFIG).double().eval()
    x = torch.randn(case["n"], EXERCISE_CONFIG.in_features, generator=gen, dtype=torch.float64)  # (N, D_in)
    y = torch.randint(0, EXERCISE_CONFIG.classes, (case["n"],), generator=gen)  # (N,)
    return model, x, y


@contextlib.contextmanager
def _counting_autograd_passes() -> Iterator[list[int]]:
    """Count calls of torch.autograd.grad / backward while the block runs (restored afterwards)."""
    count = [0]
    originals = torch.autograd.grad, torch.autograd.backward

    def counted(fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            count[0] += 1
            return fn(*args, **kwargs)
        return wrapper

    torch.autograd.grad, torch.autograd.backward = counted(originals[0]), counted(originals[1])
    try:
        yield count
    finally:
        torch.autograd.grad, torch.autograd.backward = originals


def _run_per_sample(fn: Callable[..., Any], case: Case) -> dict[str, torch.Tensor | None]:
    """The learner's function on Net, counting model calls and autograd passes: more than one is a loop."""
    model, x, y = _model_and_batch(case)
    calls = [0]
    handle = model.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    try:
        with _counting_autograd_passes() as passes:
            result = fn(model=model, x=x, y=y)
    finally:
        handle.remove()
    if calls[0] > 1 or passes[0] > 1:
        raise ValueError(f"the model was called {calls[0]} time(s) and autograd ran {passes[0]} time(s) for "
                         f"{case['n']} samples: that is a Python loop. vmap(grad(loss_one)) runs loss_one once, "
                         "on all samples at the same time")
    if not isinstance(result, dict):
        raise TypeError(f"return a dict {{parameter name: Tensor[N, *shape]}}; got {type(result).__name__}")
    return {name: result[name].detach() if name in result else None for name, _ in model.named_parameters()}


def _loop_oracle(case: Case) -> dict[str, torch.Tensor]:
    model, x, y = _model_and_batch(case)
    return per_sample_grads_loop(model, x, y)


per_sample_grads_ex = Exercise(
    title="per-sample gradients of a module with vmap",
    task="""
        Write `my_per_sample_grads(model, x, y)` for a classifier `model` (an nn.Module in eval
        mode), inputs x (N, D) and labels y (N,): return {parameter name: Tensor[N, *param.shape]}
        whose row i is the gradient of F.cross_entropy(model(x_i[None]), y_i[None]) — one pass,
        no Python loop: write the loss of ONE sample as a function of a parameter dict with
        torch.func.functional_call, then vmap(grad(...)) over the samples. The check counts
        the model's calls and the autograd passes: a loop over the N samples is rejected.
    """,
    reference=_per_sample_grads_solution,
    edge_cases=[{"seed": 0, "n": 2}, {"seed": 1, "n": 9}],
    random_case=_random_batch,
    run=_run_per_sample,
    oracle=_loop_oracle,
    n_random=6,
    hints=[
        "params = {name: p.detach() for name, p in model.named_parameters()}; buffers = dict(model.named_buffers())",
        "def loss_one(theta, xi, yi): logits = functional_call(model, (theta, buffers), (xi.unsqueeze(0),)); "
        "return F.cross_entropy(logits, yi.unsqueeze(0))",
        "vmap(grad(loss_one), in_dims=(None, 0, 0))(params, x, y): None = the same parameters for every sample, "
        "0 = map over dim 0 of x and y.",
    ],
)

EXERCISES = (inverted_dropout, batch_norm_train, per_sample_linear_grads, per_sample_grads_ex)
