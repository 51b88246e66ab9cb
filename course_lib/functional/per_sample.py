"""Per-sample gradients: ``torch.func.functional_call`` + ``vmap(grad(...))`` versus a Python loop.

A normal backward gives ``∇_θ (1/N) Σ_i L_i`` — the per-sample terms ``∇_θ L_i`` are summed
away. Differential privacy (clipping each sample's gradient), influence functions and gradient
-noise studies need them one by one. The loop is obvious: N forward/backward passes of batch 1.
``torch.func`` vectorises it:

    loss_i(θ)   = L(functional_call(model, (θ, buffers), x_i[None]), y_i[None])
    grads (N,…) = vmap(grad(loss_i), in_dims=(None, 0, 0))(θ, x, y)

``functional_call`` is the bridge between the two spellings of this chapter: it runs a
*module* as a *pure function* of a parameter dict (it swaps the dict in for the registered
tensors for the duration of the call), which is what ``grad`` needs to differentiate w.r.t.
``θ``, and ``vmap`` adds the batch dimension back so the N small passes become one batched pass.

An empty batch (``N = 0``) gives ``(0, *param.shape)`` tensors from both functions: the loop
would have nothing to stack and ``vmap`` refuses a size-0 mapped dim, so both return the empty
result before running (``tests/test_functional.py`` pins it).

Limitations: the model must be in ``eval()`` mode — in training mode batch norm mixes the
samples of a batch (a per-sample gradient is then ill-defined) and dropout would need
``vmap(randomness=...)``. The loss is cross-entropy.

Notebook: ``02_nn_vs_functional`` (section "Per-sample gradients"). Tests: ``tests/test_functional.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from course_lib import _checks
from course_lib._export import export


def _check(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    _checks.instance("model", model, nn.Module)
    if model.training:
        raise ValueError("model must be in eval mode (call model.eval()): in training mode batch norm mixes "
                         "the samples of a batch and dropout is random; got a model in training mode")
    dims = _checks.shape("x", _checks.tensor("x", x, floating=True), "N D")
    _checks.shape("y", _checks.tensor("y", y, dtypes=(torch.int64,)), "N", dims)
    weight = next((p for p in model.parameters() if p.requires_grad), None)
    if weight is None:
        raise ValueError("model must have at least one parameter with requires_grad=True; got none")
    _checks.same_device(x=x, y=y, model=weight)


def _empty(model: nn.Module) -> dict[str, torch.Tensor]:
    """The per-sample gradients of an empty batch: ``(0, *param.shape)`` per trainable parameter."""
    return {n: p.new_zeros((0, *p.shape)) for n, p in model.named_parameters() if p.requires_grad}


@export("functional.per_sample_grads_loop")
def per_sample_grads_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample gradients of the cross-entropy, one ``autograd.grad`` per sample (the oracle).

    Args:
        model: a classifier in eval mode.
        x (Tensor[N, D]): inputs.
        y (Tensor[N], int64): class labels.

    Returns:
        ``{parameter name: Tensor[N, *param.shape]}`` — row i is ``∇ L(model(x_i), y_i)``.

    Raises:
        ValueError: model in training mode, mismatched N, tensors on different devices.
        TypeError: non-float ``x`` or non-int64 ``y``.
    """
    _check(model, x, y)
    if x.shape[0] == 0:
        return _empty(model)
    names, params = zip(*[(n, p) for n, p in model.named_parameters() if p.requires_grad])
    rows = []
    for i in range(x.shape[0]):
        loss = F.cross_entropy(model(x[i:i + 1]), y[i:i + 1])
        rows.append(torch.autograd.grad(loss, params))
    return {name: torch.stack([row[k] for row in rows]) for k, name in enumerate(names)}  # (N, *shape)


@export("functional.per_sample_grads_vmap")
def per_sample_grads_vmap(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample gradients with ``vmap(grad(loss))`` over ``functional_call`` — one batched pass.

    Same arguments, result and errors as :func:`per_sample_grads_loop`.
    """
    _check(model, x, y)
    if x.shape[0] == 0:
        return _empty(model)
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    buffers = dict(model.named_buffers())

    def loss_one(theta: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, (theta, frozen, buffers), (xi.unsqueeze(0),))  # (1, C)
        return F.cross_entropy(logits, yi.unsqueeze(0))

    return vmap(grad(loss_one), in_dims=(None, 0, 0))(params, x, y)
