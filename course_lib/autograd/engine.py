"""The backward pass: a topological sort of the recorded graph, then the chain rule in reverse.

Every :class:`~course_lib.autograd.tensor.Tensor` made by an op remembers its ``_parents`` (the
tensors it was computed from) and a ``_vjp``: the *vector-Jacobian product* that maps the
gradient of the final output with respect to this tensor, ``g = ∂L/∂out``, to the gradient with
respect to each parent, ``g · ∂out/∂parent``. The graph is recorded while the forward code runs
(*define-by-run*), so ``if``/``for`` in Python simply produce a different graph each time.

Backward then visits the nodes so that a node is handled only after **every** node that used
it — a reverse topological order — and sums the contributions a node receives from each use
(the multivariate chain rule):

    grads = {root: seed}
    for node in reversed(topological_order(root)):       # consumers before producers
        g = grads.pop(node)                             # complete: all consumers are done
        if node is a leaf: node.grad += g               # accumulate across backward() calls
        else: for parent, gp in zip(node.parents, node.vjp(g)): grads[parent] += gp

The cost is one vjp per node: a small constant times the forward pass ("cheap gradient
principle", Griewank & Walther, *Evaluating Derivatives*, 2008, ch. 4).

The engine knows nothing of :class:`~course_lib.autograd.tensor.Tensor`: it walks any object that
has the :class:`Node` protocol (``_parents``, ``_vjp``, ``requires_grad``, ``data`` and
``accumulate_grad``), as minitorch's ``Variable`` protocol does — so ``tensor`` imports
``engine`` and not the other way round.

Special values follow IEEE arithmetic, as in torch: a vjp that multiplies ``0 · inf`` gives
``nan`` without a warning (NumPy's floating-point warnings are silenced around each vjp).

Differences from ``torch.autograd``: the graph is kept after backward (torch frees it unless
``retain_graph=True``), so calling ``backward`` twice on one graph works here; no hooks, no
``retain_grad``, no higher-order gradients (a vjp works on NumPy arrays, not on Tensors).

Notebook: ``01_autograd`` ("The backward pass"). Tests: ``tests/test_autograd.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np


class Node(Protocol):
    """What the engine needs of a graph node (:class:`~course_lib.autograd.tensor.Tensor` has it).

    Read-only members (properties here; plain attributes satisfy them), so a class whose
    ``_parents`` is a ``tuple[Tensor, ...]`` is a ``Node``.
    """

    @property
    def data(self) -> np.ndarray:  # the forward value
        ...

    @property
    def requires_grad(self) -> bool:  # whether a gradient flows to (or through) this node
        ...

    @property
    def _parents(self) -> tuple[Node, ...]:  # the nodes this one was computed from; () for a leaf
        ...

    @property
    def _vjp(self) -> Callable[[np.ndarray], Sequence[np.ndarray | None]] | None:  # None for a leaf
        ...

    def accumulate_grad(self, grad: np.ndarray) -> None:
        """Add ``grad`` into this leaf's ``.grad``."""


def topological_order(root: Node) -> list[Node]:
    """Every node ``root`` depends on, each after all of its parents (``root`` last).

    An iterative depth-first search (a recursive one would hit Python's recursion limit on
    a graph a few thousand ops deep, e.g. an unrolled RNN).
    """
    order: list[Node] = []
    visited: set[int] = set()  # ids: a node hashes by identity, and nothing else is assumed of it
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, parents_done = stack.pop()
        if parents_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        stack.extend((p, False) for p in node._parents if id(p) not in visited)
    return order


def run_backward(
    root: Node,
    seed: np.ndarray,
    *,
    accumulate: bool = True,
    on_node: Callable[[Node, np.ndarray, dict[Node, np.ndarray]], None] | None = None,
    order: Callable[[Node], list[Node]] = topological_order,
) -> dict[Node, np.ndarray]:
    """Propagate ``seed = ∂L/∂root`` to every leaf that requires grad.

    Args:
        root: the node ``backward`` was called on.
        seed (ndarray[root.shape]): the gradient flowing into ``root``.
        accumulate: add each leaf's gradient into ``leaf.grad`` (what ``backward`` does).
        on_node: called after each node is processed with ``(node, its complete gradient,
            the gradients still pending for other nodes)``; the graph widget records it.
        order: the function that lists the nodes, parents before children (default
            :func:`topological_order`; the chapter's exercise plugs the learner's in here).

    Returns:
        ``{leaf: gradient}`` for the leaves reached.
    """
    grads: dict[Node, np.ndarray] = {root: seed}
    leaves: dict[Node, np.ndarray] = {}
    for node in reversed(order(root)):
        g = grads.pop(node, None)
        if g is None:  # no path to root through nodes that require grad
            continue
        if node._vjp is None:
            if node.requires_grad:
                leaves[node] = g
                if accumulate:  # += across calls: why optimisers must zero .grad each step
                    node.accumulate_grad(g)
        else:
            with np.errstate(all="ignore"):  # IEEE special values, silently, as torch computes them
                parent_grads = node._vjp(g)
            for parent, gp in zip(node._parents, parent_grads):
                if gp is None or not parent.requires_grad:
                    continue
                assert gp.shape == parent.data.shape, f"vjp shape {gp.shape} != {parent.data.shape}"
                grads[parent] = gp if parent not in grads else grads[parent] + gp
        if on_node is not None:
            on_node(node, g, grads)
    return leaves
