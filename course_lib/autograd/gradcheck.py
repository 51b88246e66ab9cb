"""Central-difference gradient checking: does an op's backward agree with its forward?

A hand-written vjp is easy to get subtly wrong (a missing transpose, a forgotten factor of 2,
a gradient not summed back over a broadcast dim). The forward pass alone defines the right
answer, so we estimate the derivative numerically and compare:

    ∂f/∂x_i ≈ (f(x + ε e_i) - f(x - ε e_i)) / 2ε            error O(ε²), vs O(ε) one-sided

For a non-scalar output ``f(x) ∈ R^m`` we check the vector-Jacobian product against one fixed
random vector ``v`` — ``v · J`` from backward vs ``(v·f(x+εe_i) - v·f(x-εe_i)) / 2ε`` — which
catches a wrong Jacobian with probability 1 at the cost of one backward pass (torch calls this
``fast_mode``). In float64 with ``ε = 1e-6`` the estimate is good to about 1e-9 for smooth ops;
it is meaningless at kinks (relu at 0) and for ops whose backward is a deliberate surrogate
(the straight-through estimator of :mod:`course_lib.autograd.functions`).

Like ``torch.autograd.gradcheck``, but for :class:`~course_lib.autograd.tensor.Tensor`, and the
failure message names the op, the input and the element, with received vs expected gradient.

Notebook: ``01_autograd`` ("Checking a backward numerically"). Tests: ``tests/test_autograd_functions.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from course_lib import _checks
from course_lib._export import export
from course_lib.autograd.grad_mode import no_grad
from course_lib.autograd.tensor import Tensor


@export("autograd.GradcheckError")
class GradcheckError(AssertionError):
    """A backward disagrees with central differences of the forward."""


@export("autograd.gradcheck")
def gradcheck(
    fn: Callable[..., Tensor],
    inputs: Sequence[Tensor],
    *,
    eps: float = 1e-6,
    atol: float = 1e-6,
    rtol: float = 1e-4,
    name: str | None = None,
    seed: int = 0,
) -> bool:
    """Compare ``fn``'s backward with central differences of its forward, for every input element.

    Args:
        fn: maps the input Tensors to one Tensor.
        inputs: the Tensors to differentiate with respect to (those with ``requires_grad``).
        eps: the finite-difference step.
        atol, rtol: the agreement required: ``|received - expected| <= atol + rtol·|expected|``.
        name: what to call the op in the message (default: ``fn``'s name, or the output's op).
        seed: seeds the random vector ``v`` that projects a non-scalar output.

    Returns:
        True when every element agrees.

    Raises:
        GradcheckError: names the op, the input, the element, the received and expected gradient.
        TypeError: ``fn`` is not callable, an input is not a Tensor, or ``fn`` returns a non-Tensor.
        ValueError: no input requires grad, or ``eps`` is not positive.

    Example:
        >>> x = Tensor([0.5, -1.0], requires_grad=True)
        >>> gradcheck(lambda t: t.tanh(), [x])
        True
    """
    if not callable(fn):
        raise TypeError(f"fn must be a function of Tensors; got {type(fn).__name__}")
    inputs = list(inputs)
    for i, x in enumerate(inputs):
        _checks.instance(f"inputs[{i}]", x, Tensor)
    if not any(x.requires_grad for x in inputs):
        raise ValueError("gradcheck needs at least one input with requires_grad=True; got none")
    _checks.real("eps", eps, minimum=0.0, open_min=True)

    out = fn(*inputs)
    _checks.instance("fn(*inputs)", out, Tensor)
    label = name or (fn.__name__ if getattr(fn, "__name__", "<lambda>") != "<lambda>" else out._op)
    v = np.random.default_rng(seed).standard_normal(out.shape)  # projects a non-scalar output
    received = _backward_grads(fn, inputs, v)

    for i, x in enumerate(inputs):
        if not x.requires_grad:
            continue
        for idx in np.ndindex(x.shape):
            expected = _central_difference(fn, inputs, i, idx, v, eps)
            got = received[i][idx]
            if not abs(got - expected) <= atol + rtol * abs(expected):
                where = f"input {i}" + (f" ({x.name!r})" if x.name else "") + f" of shape {x.shape}"
                raise GradcheckError(
                    f"gradcheck failed for op {label!r}: {where}, element {idx}: received gradient "
                    f"{got:.10g} from backward, expected {expected:.10g} from central differences "
                    f"(eps={eps:g}); |difference| {abs(got - expected):.3g} > atol + rtol·|expected| "
                    f"= {atol + rtol * abs(expected):.3g}")
    return True


def _backward_grads(fn: Callable[..., Tensor], inputs: list[Tensor], v: np.ndarray) -> list[np.ndarray]:
    """``v · ∂fn/∂input`` for each input, from the engine (fresh leaves: ``.grad`` untouched)."""
    leaves = [Tensor(x.data, requires_grad=x.requires_grad) for x in inputs]
    out = fn(*leaves)
    if out.requires_grad:
        out.backward(v)
    return [np.zeros_like(x.data) if x.grad is None else x.grad.data for x in leaves]


def _central_difference(fn: Callable[..., Tensor], inputs: list[Tensor], i: int,
                        idx: tuple[int, ...], v: np.ndarray, eps: float) -> float:
    """``(v·f(x + ε e_idx) - v·f(x - ε e_idx)) / 2ε`` for input ``i``."""
    values = []
    for sign in (1.0, -1.0):
        moved = [x.data.copy() for x in inputs]
        moved[i][idx] += sign * eps
        with no_grad():
            values.append(float(np.sum(v * fn(*(Tensor(m) for m in moved)).data)))
    return (values[0] - values[1]) / (2 * eps)
