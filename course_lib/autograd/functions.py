"""Custom ``torch.autograd.Function``\\ s: a stable logsumexp and a straight-through estimator.

When PyTorch's automatic backward is not what you want, you write the vjp yourself: a
``torch.autograd.Function`` with a static ``forward(ctx, ...)`` that saves what backward needs
(``ctx.save_for_backward``) and a static ``backward(ctx, grad_out)`` that returns one gradient
per forward input (``None`` for non-tensors). Two classic reasons:

* **Numerics — logsumexp.** ``lse(x) = log Σ_j exp(x_j)`` overflows as written for ``x_j ≳ 710``
  (float64). Forward: ``m + log Σ_j exp(x_j - m)`` with ``m = max_j x_j`` (every exponent ≤ 0).
  Backward: ``∂lse/∂x_j = exp(x_j - lse) = softmax(x)_j``, computed from the saved output, so the
  backward is as stable as the forward and needs no second pass over ``exp``. Special values as
  ``torch.logsumexp`` (a ``+inf`` entry gives ``+inf``, a NaN gives NaN, an empty ``dim`` gives
  ``-inf``), with one deliberate difference: a row of all ``-inf`` gives ``-inf`` and gradient 0,
  where torch's gradient is ``exp(-inf - -inf) = nan`` (a row with no mass sends no gradient).
* **A surrogate gradient — the straight-through estimator** (Bengio, Léonard & Courville,
  *Estimating or Propagating Gradients Through Stochastic Neurons*, 2013; Hubara et al.,
  *Binarized Neural Networks*, 2016). ``sign(x)`` has derivative 0 almost everywhere, so
  nothing upstream would learn. The STE keeps ``sign`` in the forward and passes the gradient
  straight through in the backward, clipped where ``|x| > 1``: ``∂/∂x ≈ 1[|x| ≤ 1]`` — the
  derivative of ``hardtanh``. ``torch.autograd.gradcheck`` therefore *fails* on the STE by
  design; the tests check instead that its backward equals ``hardtanh``'s. Two deliberate
  differences from torch's ``hardtanh`` backward, both pinned in the tests: at ``|x| = 1``
  exactly the STE passes the gradient (the paper's ``1[|x| ≤ 1]``; torch's hardtanh gives 0 at
  its kinks), and at ``x = nan`` it gives 0 (hardtanh's ``x <= -1 or x >= 1`` test is false for
  NaN, so torch passes the gradient).

Checks: values and gradients vs ``torch.logsumexp``; ``torch.autograd.gradcheck`` and
``gradgradcheck`` (the backward is built from torch ops on the saved output, so it is itself
differentiable) in float64; the STE's backward vs ``hardtanh``'s gradient via gradcheck.

Notebook: ``01_autograd`` ("Custom autograd Functions"). Tests: ``tests/test_autograd_functions.py``.
"""

from __future__ import annotations

from typing import Any

import torch

from course_lib import _checks
from course_lib._export import export


class _LogSumExp(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, dim: int, keepdim: bool) -> torch.Tensor:
        if x.shape[dim] == 0:  # amax refuses an empty dim; the sum of no terms is 0, its log -inf
            m = x.new_zeros(x.shape[:dim % x.dim()] + (1,) + x.shape[dim % x.dim() + 1:])
        else:
            m = x.amax(dim=dim, keepdim=True)
        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # a ±inf max: avoid inf - inf
        lse = m + (x - m).exp().sum(dim=dim, keepdim=True).log()  # every exponent <= 0
        out = lse if keepdim else lse.squeeze(dim)
        ctx.save_for_backward(x, out)  # the output itself, so double backward can see through it
        ctx.dim, ctx.keepdim = dim, keepdim
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        x, out = ctx.saved_tensors
        g, lse = (grad_out, out) if ctx.keepdim else (grad_out.unsqueeze(ctx.dim), out.unsqueeze(ctx.dim))
        softmax = (x - lse).exp()  # exp(x - lse) <= 1; a -inf entry gives exactly 0
        # only an all -inf row is special-cased (0, not torch's nan); +inf and nan propagate as in torch
        softmax = torch.where(lse == float("-inf"), torch.zeros_like(softmax), softmax)
        return g * softmax, None, None


@export("autograd.logsumexp")
def logsumexp(x: torch.Tensor, dim: int = -1, keepdim: bool = False) -> torch.Tensor:
    """``log Σ exp(x)`` over ``dim``, stable for large inputs, with a hand-written backward.

    Args:
        x (Tensor[..., N, ...]): floating-point input; ``-inf`` entries contribute nothing.
        dim: the dim to reduce.
        keepdim: keep ``dim`` with size 1.

    Returns:
        Tensor[...] (``dim`` removed unless ``keepdim``): equal to ``torch.logsumexp(x, dim)``.

    Raises:
        TypeError: ``x`` is not a floating-point tensor, ``dim`` not an int, ``keepdim`` not a bool.
        ValueError: ``dim`` is out of range.

    Example:
        >>> logsumexp(torch.tensor([1000.0, 1000.0]))
        tensor(1000.6931)
    """
    _checks.tensor("x", x, floating=True)
    _checks.integer("dim", dim, minimum=-max(x.dim(), 1), maximum=max(x.dim(), 1) - 1)
    _checks.instance("keepdim", keepdim, bool)
    return _LogSumExp.apply(x, dim, keepdim)


class _StraightThroughSign(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.sign(x)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        # where, not grad_out * mask: an inf gradient at |x| > 1 must give 0, not inf · 0 = nan
        return torch.where(x.abs() <= 1, grad_out, torch.zeros_like(grad_out))


@export("autograd.straight_through_sign")
def straight_through_sign(x: torch.Tensor) -> torch.Tensor:
    """``sign(x)`` forward; gradient passed straight through where ``|x| ≤ 1``, zero elsewhere.

    Args:
        x (Tensor[...]): floating-point input (e.g. real-valued weights to binarise).

    Returns:
        Tensor[...]: ``torch.sign(x)``, values in {-1, 0, 1}.

    Raises:
        TypeError: ``x`` is not a floating-point tensor.
    """
    _checks.tensor("x", x, floating=True)
    return _StraightThroughSign.apply(x)
