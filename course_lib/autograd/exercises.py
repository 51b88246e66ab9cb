"""Exercises for chapter 1: write the backward of three ops, checked against the reference.

* :data:`unbroadcast_grad` — sum a gradient back to the shape of a broadcast input.
* :data:`matmul_backward` — the two vjps of ``a @ b``.
* :data:`log_softmax_backward` — the vjp of ``log_softmax`` from its output alone.

Inputs and outputs are float64 torch tensors, so learners write torch code; the references
are the same math as :mod:`course_lib.autograd.tensor`'s vjps. Notebook: ``01_autograd``
("Exercises"). Tests: ``tests/test_autograd_exercises.py``.
"""

from __future__ import annotations

import random

import torch

from course_lib.exercises import Exercise, randn


def _unbroadcast_solution(grad: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    extra = grad.dim() - len(shape)
    if extra:
        grad = grad.sum(dim=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(dim=stretched, keepdim=True)
    return grad


def _random_broadcast_case(rng: random.Random) -> dict:
    full = tuple(rng.randint(1, 4) for _ in range(rng.randint(1, 4)))
    kept = full[rng.randint(0, len(full)):]  # a suffix: the dims the input had
    shape = tuple(1 if rng.random() < 0.4 else n for n in kept)  # some of them stretched from 1
    return {"grad": randn(rng, *full), "shape": shape}


unbroadcast_grad = Exercise(
    title="unbroadcast a gradient",
    task="""
        `a + b` broadcasts: a of shape (3,) acts like a (2, 3) tensor whose rows are copies of a.
        Each copy receives its share of the output's gradient, and a's gradient is their sum.
        Write `unbroadcast(grad, shape)`: given `grad` (the gradient of the broadcast result)
        and `shape` (the input's shape before broadcasting, a tuple), return the input's
        gradient, a tensor of exactly `shape`.
            unbroadcast(torch.ones(2, 3), (3,))    -> tensor([2., 2., 2.])
            unbroadcast(torch.ones(2, 3), (2, 1))  -> tensor([[3.], [3.]])
    """,
    reference=_unbroadcast_solution,
    edge_cases=[
        {"grad": torch.ones(2, 3, dtype=torch.float64), "shape": (3,)},
        {"grad": torch.ones(2, 3, dtype=torch.float64), "shape": (2, 1)},
        {"grad": torch.arange(6.0, dtype=torch.float64).reshape(2, 3), "shape": ()},
        {"grad": torch.arange(24.0, dtype=torch.float64).reshape(2, 3, 4), "shape": (3, 1)},
        {"grad": torch.ones(1, 1, dtype=torch.float64), "shape": (1, 1)},
    ],
    random_case=_random_broadcast_case,
    hints=[
        "Two kinds of stretched dims: leading dims the input did not have, and dims where the input had size 1.",
        "Sum the leading dims away first (`grad.sum(dim=tuple(range(extra)))`), then sum the size-1 dims "
        "with keepdim=True.",
    ],
)


def _matmul_backward_solution(a: torch.Tensor, b: torch.Tensor, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return grad_out @ b.T, a.T @ grad_out  # (n, k), (k, m)


def _random_matmul_case(rng: random.Random) -> dict:
    n, k, m = (rng.randint(1, 6) for _ in range(3))
    return {"a": randn(rng, n, k), "b": randn(rng, k, m), "grad_out": randn(rng, n, m)}


matmul_backward = Exercise(
    title="the backward of matmul",
    task="""
        out = a @ b with a (n, k) and b (k, m), so out is (n, m). Given grad_out = ∂L/∂out
        (n, m), write `matmul_backward(a, b, grad_out)` returning the tuple
        (∂L/∂a of shape (n, k), ∂L/∂b of shape (k, m)).
    """,
    reference=_matmul_backward_solution,
    edge_cases=[
        {"a": torch.eye(2, dtype=torch.float64), "b": torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64),
         "grad_out": torch.ones(2, 2, dtype=torch.float64)},
        {"a": torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64), "b": torch.tensor([[1.0], [0.0], [-1.0]], dtype=torch.float64),
         "grad_out": torch.tensor([[2.0]], dtype=torch.float64)},
        {"a": torch.arange(6.0, dtype=torch.float64).reshape(2, 3), "b": torch.arange(12.0, dtype=torch.float64).reshape(3, 4),
         "grad_out": torch.arange(8.0, dtype=torch.float64).reshape(2, 4)},
    ],
    random_case=_random_matmul_case,
    hints=[
        "Check shapes first: ∂L/∂a must be (n, k); the only way to get it from grad_out (n, m) and b (k, m) is "
        "grad_out @ (something of shape (m, k)).",
        "out[i, j] = Σ_p a[i, p] b[p, j], so ∂L/∂a[i, p] = Σ_j grad_out[i, j] b[p, j].",
    ],
)


def _log_softmax_backward_solution(out: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
    return grad_out - out.exp() * grad_out.sum(dim=-1, keepdim=True)


def _random_log_softmax_case(rng: random.Random) -> dict:
    shape = (rng.randint(1, 4), rng.randint(1, 7))
    return {"out": torch.log_softmax(3 * randn(rng, *shape), dim=-1), "grad_out": randn(rng, *shape)}


log_softmax_backward = Exercise(
    title="the backward of log_softmax",
    task="""
        out = log_softmax(x) over the last dim: out_i = x_i - log Σ_j exp(x_j).
        Given the forward's output `out` and grad_out = ∂L/∂out (same shape), write
        `log_softmax_backward(out, grad_out)` returning ∂L/∂x — using only `out`, not x.
    """,
    reference=_log_softmax_backward_solution,
    edge_cases=[
        {"out": torch.log_softmax(torch.zeros(1, 4, dtype=torch.float64), -1), "grad_out": torch.ones(1, 4, dtype=torch.float64)},
        {"out": torch.log_softmax(torch.tensor([[0.0, 1.0, 2.0]], dtype=torch.float64), -1),
         "grad_out": torch.tensor([[-1.0, 0.0, 0.0]], dtype=torch.float64)},
        {"out": torch.log_softmax(torch.tensor([[50.0, -50.0], [1.0, 1.0]], dtype=torch.float64), -1),
         "grad_out": torch.tensor([[1.0, 2.0], [3.0, -3.0]], dtype=torch.float64)},
    ],
    random_case=_random_log_softmax_case,
    hints=[
        "∂out_i/∂x_k = [i == k] - softmax(x)_k, and softmax(x) = exp(out).",
        "Summing over i: ∂L/∂x_k = grad_out_k - softmax_k · Σ_i grad_out_i (sum over the last dim, keepdim=True).",
    ],
)

EXERCISES = (unbroadcast_grad, matmul_backward, log_softmax_backward)
