"""Exercises for chapter 1: build the engine's two pieces, then the backward of three ops.

* :data:`topological_order_ex` — the order backward visits the graph in. The check plugs the
  learner's function into the library's engine (``run_backward(..., order=fn)``) and compares
  the gradients it produces on random graphs with ``torch.autograd``'s.
* :data:`backward_loop_ex` — the backward loop itself: seed, reverse order, vjps, sums. Run on
  the library's recorded graphs (its ops and vjps), compared with ``torch.autograd``.
* :data:`unbroadcast_grad` — sum a gradient back to the shape of a broadcast input.
* :data:`matmul_backward` — the two vjps of ``a @ b``.
* :data:`log_softmax_backward` — the vjp of ``log_softmax`` from its output alone.

The op exercises take and return float64 torch tensors, so learners write torch code; their
references are the same math as :mod:`course_lib.autograd.tensor`'s vjps. The references of the
first two are written out (a depth-first search, the loop), never a call of the engine's own
functions. Notebook: ``01_autograd`` ("Exercises"). Tests: ``tests/test_autograd_exercises.py``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from course_lib.autograd.engine import run_backward
from course_lib.autograd.tensor import Tensor
from course_lib.exercises import Case, Exercise, randn

# ---- random graphs, built on both engines ------------------------------------------------------

OPS: dict[str, Callable[[Any, Any], Any]] = {  # every op works on a course Tensor and a torch tensor alike
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "tanh": lambda a, _: a.tanh(),
    "sigmoid": lambda a, _: a.sigmoid(),
    "square": lambda a, _: a * a,  # one input used twice by one op
}


@dataclass(frozen=True)
class Program:
    """A random expression graph: inputs, then ``v_k = op(v_i, v_j)``, then ``loss = Σ v_last + Σ v_m``."""

    inputs: tuple[tuple[float, ...], ...]  # each input a vector of the same length
    requires_grad: tuple[bool, ...]  # which inputs are leaves that want a gradient
    steps: tuple[tuple[str, int, int], ...]  # (op, i, j): v_{len} = op(v_i, v_j)
    also: int  # a second node summed into the loss: makes the graph a DAG, not a chain

    def __repr__(self) -> str:
        names = [f"x{i}" for i in range(len(self.inputs))] + [f"v{k}" for k in range(len(self.steps))]
        lines = [f"x{i} = {list(v)}" + (" (requires grad)" if r else "")
                 for i, (v, r) in enumerate(zip(self.inputs, self.requires_grad))]
        offset = len(self.inputs)
        for k, (op, i, j) in enumerate(self.steps):
            args = names[i] if op in ("tanh", "sigmoid", "square") else f"{names[i]}, {names[j]}"
            lines.append(f"{names[offset + k]} = {op}({args})")
        lines.append(f"loss = sum({names[-1]}) + sum({names[self.also]})")
        return "Program(" + "; ".join(lines) + ")"

    def build(self, make: Callable[[tuple[float, ...], bool], Any]) -> tuple[list[Any], Any]:
        """The inputs and the loss, on whichever engine ``make`` creates tensors for."""
        nodes = [make(v, r) for v, r in zip(self.inputs, self.requires_grad)]
        inputs = list(nodes)
        for op, i, j in self.steps:
            nodes.append(OPS[op](nodes[i], nodes[j]))
        return inputs, nodes[-1].sum() + nodes[self.also].sum()


def _random_program(rng: random.Random) -> Case:
    n_inputs, length = rng.randint(1, 3), rng.randint(1, 3)
    inputs = tuple(tuple(round(rng.uniform(-1.5, 1.5), 3) for _ in range(length)) for _ in range(n_inputs))
    wants = tuple(rng.random() < 0.75 or i == 0 for i in range(n_inputs))
    steps = []
    for k in range(rng.randint(1, 7)):
        pool = n_inputs + k
        steps.append((rng.choice(sorted(OPS)), rng.randrange(pool), rng.randrange(pool)))
    return {"program": Program(inputs, wants, tuple(steps), rng.randrange(n_inputs + len(steps)))}


EDGE_PROGRAMS = [
    # one input, one op
    Program(((2.0,),), (True,), (("tanh", 0, 0),), 0),
    # w used twice by one op (w·w) and again elsewhere: three contributions to sum
    Program(((-0.8,), (1.5,)), (True, False), (("square", 0, 0), ("mul", 0, 1), ("add", 2, 3)), 2),
    # a diamond: v0 feeds two branches that meet again
    Program(((0.5, -1.0),), (True,), (("sigmoid", 0, 0), ("tanh", 1, 1), ("square", 1, 1), ("mul", 2, 3)), 1),
    # a chain of six ops, and a constant input that needs no gradient
    Program(((0.3,), (2.0,)), (True, False), (("mul", 0, 1), ("tanh", 2, 2), ("mul", 3, 1), ("tanh", 4, 4),
                                              ("mul", 5, 1), ("tanh", 6, 6)), 0),
]


def _torch_grads(case: Case) -> list[torch.Tensor]:
    """The oracle: torch.autograd's gradient for every input that requires grad."""
    program: Program = case["program"]
    inputs, loss = program.build(lambda v, r: torch.tensor(v, dtype=torch.float64, requires_grad=r))
    loss.backward()
    return [x.grad if x.grad is not None else torch.zeros_like(x) for x in inputs if x.requires_grad]


def _our_inputs_and_loss(case: Case) -> tuple[list[Tensor], Tensor]:
    return case["program"].build(lambda v, r: Tensor(list(v), requires_grad=r))


def _as_grads(inputs: list[Tensor], leaves: dict) -> list[torch.Tensor]:
    if not isinstance(leaves, dict):
        raise TypeError(f"the function must return a dict {{leaf: gradient}}; got {type(leaves).__name__}")
    out = []
    for x in inputs:
        if x.requires_grad:
            g = leaves.get(x)
            out.append(torch.zeros(x.shape, dtype=torch.float64) if g is None else torch.as_tensor(np.asarray(g)))
    return out


def _run_with_order(order_fn: Callable[..., Any], case: Case) -> list[torch.Tensor]:
    """The library's engine with the learner's topological order plugged in."""
    inputs, loss = _our_inputs_and_loss(case)
    return _as_grads(inputs, run_backward(loss, np.ones_like(loss.data), accumulate=False,
                                          order=lambda root: list(order_fn(root=root))))


def _run_backward_loop(loop_fn: Callable[..., Any], case: Case) -> list[torch.Tensor]:
    """The learner's backward loop on a graph recorded by the library's Tensor ops."""
    inputs, loss = _our_inputs_and_loss(case)
    return _as_grads(inputs, loop_fn(root=loss))


def _topological_order_solution(root):  # noqa: ANN001, ANN202 — the learner's signature, untyped
    order, visited = [], set()

    def visit(node):  # noqa: ANN001, ANN202
        if node in visited:
            return
        visited.add(node)
        for parent in node._parents:  # every parent first ...
            visit(parent)
        order.append(node)  # ... then the node: parents before children

    visit(root)
    return order


topological_order_ex = Exercise(
    title="the topological order",
    task="""
        Backward must visit a node only after every node that used it. Write
        `my_topological_order(root)`: a list of every node `root` depends on (follow
        `node._parents`, a tuple of Tensors; leaves have none), each node after all of its
        parents, `root` last, each node once. The check plugs your function into the library's
        engine — run_backward(loss, seed, order=my_topological_order) — on random graphs and
        compares the gradients it computes with torch.autograd's.
    """,
    reference=_topological_order_solution,
    edge_cases=[{"program": p} for p in EDGE_PROGRAMS],
    random_case=_random_program,
    run=_run_with_order,
    oracle=_torch_grads,
    hints=[
        "A depth-first search: before you append a node, visit (and append) all of its parents.",
        "Keep a `visited` set so a node reached along two paths is appended once (Tensors hash by identity).",
        "def visit(node): if node in visited: return; visited.add(node); for p in node._parents: visit(p); "
        "order.append(node)",
    ],
)


def _backward_loop_solution(root):  # noqa: ANN001, ANN202 — the learner's signature, untyped
    order, visited = [], set()  # the topological order, as in the first exercise

    def visit(node):  # noqa: ANN001, ANN202
        if node not in visited:
            visited.add(node)
            for parent in node._parents:
                visit(parent)
            order.append(node)

    visit(root)
    grads = {root: np.ones_like(root.data)}  # seed: dL/dL = 1
    leaves = {}
    for node in reversed(order):  # consumers before producers
        g = grads.pop(node, None)
        if g is None:  # no gradient reaches this node
            continue
        if node._vjp is None:  # a leaf: its gradient is complete
            if node.requires_grad:
                leaves[node] = g
            continue
        for parent, g_parent in zip(node._parents, node._vjp(g)):  # the chain rule, one edge at a time
            if parent.requires_grad:
                grads[parent] = grads[parent] + g_parent if parent in grads else g_parent  # sum over uses
    return leaves


backward_loop_ex = Exercise(
    title="the backward loop",
    task="""
        Write `my_backward(root)` for a one-element Tensor `root`: return a dict
        {leaf Tensor: gradient ndarray} for every leaf with requires_grad=True that root
        depends on. Each non-leaf node has `node._parents` (a tuple) and `node._vjp`, a function
        mapping the gradient of the node (an ndarray shaped like node.data) to one gradient per
        parent, in order; a leaf has `node._vjp is None`. Visit the nodes in reverse topological
        order (your `my_topological_order`, or course_lib.autograd.engine.topological_order), and
        *sum* the contributions a node receives from each of its uses. Checked on graphs recorded
        by the library's Tensor ops, against torch.autograd.
    """,
    reference=_backward_loop_solution,
    edge_cases=[{"program": p} for p in EDGE_PROGRAMS],
    random_case=_random_program,
    run=_run_backward_loop,
    oracle=_torch_grads,
    hints=[
        "Start from grads = {root: np.ones_like(root.data)} and walk reversed(order).",
        "When a node is reached its gradient is complete: pop it, call node._vjp(g), and add each result into "
        "grads[parent] — adding, not assigning: w·w sends two contributions to w.",
        "Leaves (node._vjp is None) end the walk: put their gradient in the result if node.requires_grad.",
    ],
)


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


def _matmul_backward_solution(a: torch.Tensor, b: torch.Tensor,
                              grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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
        {"a": torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64),
         "b": torch.tensor([[1.0], [0.0], [-1.0]], dtype=torch.float64),
         "grad_out": torch.tensor([[2.0]], dtype=torch.float64)},
        {"a": torch.arange(6.0, dtype=torch.float64).reshape(2, 3),
         "b": torch.arange(12.0, dtype=torch.float64).reshape(3, 4),
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
        {"out": torch.log_softmax(torch.zeros(1, 4, dtype=torch.float64), -1),
         "grad_out": torch.ones(1, 4, dtype=torch.float64)},
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

EXERCISES = (topological_order_ex, backward_loop_ex, unbroadcast_grad, matmul_backward, log_softmax_backward)
