"""The backward pass, one node at a time: the data behind the chapter's widget.

:func:`trace_backward` runs the engine's backward on a small graph and records, after each node
is processed, which gradients are *complete* (the node and everything downstream of it is done)
and which are still *partial* (some consumers have sent their contribution, others not yet).
:func:`backward_view` draws the graph as a DAG — inputs on the left, the loss on the right,
columns by depth — with each node's value and, at step ``s``, its gradient; a caption says the
same in numbers. :func:`backward_widget` wires a step slider to it.

The default graph (:func:`example_graph`) is one tanh neuron with a squared error and a weight
penalty, chosen so that ``w`` is used twice: watch its gradient arrive in two parts.

    u = w·x   z = u + b   y = tanh(z)   e = y - t   L = e² + 0.1·w²

Notebook: ``01_autograd`` ("Widget: watch the backward pass"). Tests: ``tests/test_autograd_view.py``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyBboxPatch

from course_lib import _checks
from course_lib._export import export
from course_lib.autograd.engine import run_backward, topological_order
from course_lib.autograd.tensor import Tensor
from course_lib.widgets import View, ViewWidget


@dataclass(frozen=True)
class BackwardTrace:
    """A graph and the state of its gradients after each step of the backward pass."""

    nodes: tuple[Tensor, ...]  # topological order: inputs first, the root last
    labels: tuple[str, ...]  # the node's name, or its op
    edges: tuple[tuple[int, int], ...]  # (parent index, child index): forward direction
    order: tuple[int, ...]  # the nodes in the order backward processed them
    complete: tuple[dict[int, np.ndarray], ...]  # complete[s]: finished gradients after s steps
    partial: tuple[dict[int, np.ndarray], ...]  # partial[s]: gradients still being summed

    @property
    def n_steps(self) -> int:
        return len(self.order)


@export("autograd.example_graph")
def example_graph() -> Tensor:
    """The widget's default graph: ``L = (tanh(w·x + b) - t)² + 0.1·w²`` with scalars; returns ``L``."""
    x, t = Tensor(1.5, name="x"), Tensor(0.2, name="t")
    w, b = Tensor(-0.8, requires_grad=True, name="w"), Tensor(0.5, requires_grad=True, name="b")
    u = w * x
    z = u + b
    y = z.tanh()
    e = y - t
    sq = e**2
    ww = w * w
    reg = ww * 0.1
    loss = sq + reg
    for node, label in ((u, "u"), (z, "z"), (y, "y"), (e, "e"), (sq, "e²"), (ww, "w²"), (reg, "0.1·w²"), (loss, "L")):
        node.name = label
    return loss


@export("autograd.trace_backward")
def trace_backward(root: Tensor) -> BackwardTrace:
    """Record the backward pass from a one-element ``root`` step by step (``.grad`` untouched).

    Raises:
        TypeError: ``root`` is not a Tensor.
        ValueError: ``root`` does not require grad or has more than one element.
    """
    _checks.instance("root", root, Tensor)
    if not root.requires_grad or root.data.size != 1:
        raise ValueError(f"root must be a one-element Tensor that requires grad; got shape {root.shape}, "
                         f"requires_grad={root.requires_grad}")
    nodes = topological_order(root)
    index = {node: i for i, node in enumerate(nodes)}
    edges = tuple((index[p], index[n]) for n in nodes for p in n._parents)
    order: list[int] = []
    complete: list[dict[int, np.ndarray]] = [{}]
    partial: list[dict[int, np.ndarray]] = [{}]

    def record(node: Tensor, grad: np.ndarray, pending: dict[Tensor, np.ndarray]) -> None:
        order.append(index[node])
        complete.append({**complete[-1], index[node]: grad.copy()})
        partial.append({index[n]: g.copy() for n, g in pending.items()})

    run_backward(root, np.ones_like(root.data), accumulate=False, on_node=record)
    labels = tuple(n.name or (n._op if n._op != "leaf" else np.format_float_positional(n.data.item(), 4))
                   for n in nodes)
    return BackwardTrace(tuple(nodes), labels, edges, tuple(order), tuple(complete), tuple(partial))


def _layout(trace: BackwardTrace) -> list[tuple[float, float]]:
    """Column = longest path from an input; rows spread evenly within a column."""
    depth = [0] * len(trace.nodes)
    for parent, child in sorted(trace.edges, key=lambda e: e[1]):  # parents precede children
        depth[child] = max(depth[child], depth[parent] + 1)
    columns: dict[int, list[int]] = {}
    for i, d in enumerate(depth):
        columns.setdefault(d, []).append(i)
    xy = [(0.0, 0.0)] * len(trace.nodes)
    for d, members in columns.items():
        for row, i in enumerate(members):
            xy[i] = (float(d), (len(members) - 1) / 2 - row)
    return xy


def _fmt(g: np.ndarray) -> str:
    return f"{g.item():.4g}" if g.size == 1 else f"array{g.shape}"


@export("autograd.backward_view")
def backward_view(step: int, trace: BackwardTrace | None = None) -> View:
    """The graph after ``step`` nodes of the backward pass (0 = forward only).

    Args:
        step: how many nodes backward has processed, in ``[0, trace.n_steps]``.
        trace: from :func:`trace_backward`; default: that of :func:`example_graph`.

    Returns:
        A :class:`~course_lib.widgets.View`; the caption lists every gradient known so far.

    Raises:
        TypeError / ValueError: ``step`` is not an int in range.
    """
    trace = trace_backward(example_graph()) if trace is None else _checks.instance("trace", trace, BackwardTrace)
    step = _checks.integer("step", step, minimum=0, maximum=trace.n_steps)
    done, pending = trace.complete[step], trace.partial[step]
    current = trace.order[step - 1] if step else None
    xy = _layout(trace)

    fig, ax = plt.subplots(figsize=(10, 3.8))
    for parent, child in trace.edges:
        (x0, y0), (x1, y1) = xy[parent], xy[child]
        ax.annotate("", xy=(x1 - 0.28, y1), xytext=(x0 + 0.28, y0),
                    arrowprops={"arrowstyle": "->", "color": "0.55", "lw": 1})
    for i, (node, label) in enumerate(zip(trace.nodes, trace.labels)):
        if i == current:
            color, grad = "tab:orange", f"grad {_fmt(done[i])}"
        elif i in done:
            color, grad = "#9be39b", f"grad {_fmt(done[i])}"
        elif i in pending:
            color, grad = "#fff3a0", f"grad {_fmt(pending[i])}…"
        else:
            color, grad = ("0.92" if not node.requires_grad else "white"), ("no grad" if not node.requires_grad else "")
        x, y = xy[i]
        ax.add_patch(FancyBboxPatch((x - 0.28, y - 0.3), 0.56, 0.6, boxstyle="round,pad=0.02",
                                    fc=color, ec="0.3", lw=1.5 if i == current else 0.8))
        op = "" if node._op == "leaf" else f" ({node._op})"
        ax.text(x, y, f"{label}{op}\n= {_fmt(node.data)}\n{grad}", ha="center", va="center", fontsize=8)
    xs, ys = zip(*xy)
    ax.set_xlim(min(xs) - 0.5, max(xs) + 0.5)
    ax.set_ylim(min(ys) - 0.6, max(ys) + 0.6)
    ax.set_axis_off()
    ax.set_title(f"backward step {step} of {trace.n_steps}: green = complete, yellow = partial sum, "
                 "orange = just processed", fontsize=9)

    if current is None:
        head = f"step 0 of {trace.n_steps}: forward done, no gradients yet; next: seed ∂L/∂L = 1"
    else:
        node = trace.nodes[current]
        sent = [trace.labels[p] for p, c in trace.edges if c == current and trace.nodes[p].requires_grad]
        action = f"its vjp sends gradients to {', '.join(sent)}" if sent else "a leaf: its gradient goes to .grad"
        head = (f"step {step} of {trace.n_steps}: processed {trace.labels[current]} ({node._op}), "
                f"grad {_fmt(done[current])}; {action}")
    known = "  ".join(f"{trace.labels[i]}={_fmt(g)}" for i, g in done.items())
    summing = "  ".join(f"{trace.labels[i]}={_fmt(g)}" for i, g in pending.items())
    caption = f"{head}\ncomplete: {known or '-'}\npartial:  {summing or '-'}"
    return View(fig, caption)


@export("autograd.backward_widget")
def backward_widget(root: Tensor | None = None) -> ViewWidget:
    """A slider stepping :func:`backward_view` through the backward pass of ``root``.

    Args:
        root: a one-element Tensor that requires grad; default :func:`example_graph`.
    """
    trace = trace_backward(example_graph() if root is None else root)
    slider = widgets.IntSlider(value=0, min=0, max=trace.n_steps, description="step", continuous_update=False)
    return ViewWidget(functools.partial(backward_view, trace=trace), step=slider)
