"""The backward pass, one node at a time: the chapter's widget, as state → picture → controls.

:func:`trace_backward` runs the engine's backward on a small graph and records, after each node
is processed, which gradients are *complete* (the node and everything downstream of it is done)
and which are still *partial* (some consumers have sent their contribution, others not yet).
:func:`backward_state` is the pure part: what the picture shows at step ``s`` — each node's
text and status, and a layered layout (inputs left, the loss right) in which every edge runs
between neighbouring columns, through waypoints where it spans several (Sugiyama et al., 1981:
long edges get dummy nodes, and rows are ordered by the barycentre of their neighbours), so no
edge crosses a node. :func:`backward_view` draws a state; each box is sized by its own text.
:func:`backward_widget` wires a step slider to it. matplotlib and ipywidgets are imported inside
the last two, so ``import course_lib.autograd`` loads neither.

The default graph (:func:`example_graph`) is one tanh neuron with a squared error and a weight
penalty, chosen so that ``w`` is used twice: watch its gradient arrive in two parts.

    u = w·x   z = u + b   y = tanh(z)   e = y - t   L = e² + 0.1·w²

Notebook: ``01_autograd`` ("Widget: watch the backward pass"). Tests: ``tests/test_autograd_view.py``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast

import numpy as np

from course_lib import _checks
from course_lib._export import export
from course_lib.autograd.engine import run_backward, topological_order
from course_lib.autograd.tensor import Tensor
from course_lib.widgets import View

if TYPE_CHECKING:
    from course_lib._view_widget import ViewWidget

Status = Literal["current", "complete", "partial", "waiting", "no grad"]
COLORS = {"current": "tab:orange", "complete": "#9be39b", "partial": "#fff3a0", "waiting": "white", "no grad": "0.92"}


@export("autograd.BackwardTrace")
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
    nodes = cast("list[Tensor]", topological_order(root))  # Tensors in, Tensors out
    index = {node: i for i, node in enumerate(nodes)}
    edges = tuple((index[p], index[n]) for n in nodes for p in n._parents)
    order: list[int] = []
    complete: list[dict[int, np.ndarray]] = [{}]
    partial: list[dict[int, np.ndarray]] = [{}]

    def record(node: object, grad: np.ndarray, pending: dict) -> None:
        i = index[cast(Tensor, node)]
        order.append(i)
        complete.append({**complete[-1], i: grad.copy()})
        partial.append({index[n]: g.copy() for n, g in pending.items()})

    run_backward(root, np.ones_like(root.data), accumulate=False, on_node=record)
    labels = tuple(n.name or (n._op if n._op != "leaf" else np.format_float_positional(n.data.item(), 4))
                   for n in nodes)
    return BackwardTrace(tuple(nodes), labels, edges, tuple(order), tuple(complete), tuple(partial))


# ---- the pure state: what is shown, and where ---------------------------------------------------

@export("autograd.BackwardState")
@dataclass(frozen=True)
class BackwardState:
    """What the backward widget shows after ``step`` nodes (pure data: no matplotlib)."""

    step: int  # nodes processed so far, 0 = forward only
    n_steps: int  # nodes backward processes in all
    texts: tuple[str, ...]  # each node's box text: label, op, value, gradient (one per line)
    status: tuple[Status, ...]  # each node's colour: current / complete / partial / waiting / no grad
    xy: tuple[tuple[float, float], ...]  # each node's centre: x = column, y = row
    routes: tuple[tuple[tuple[float, float], ...], ...]  # one polyline per distinct edge, parent to child
    multiplicity: tuple[int, ...]  # how often each routed edge occurs (w·w uses w twice)
    caption: str  # the same in words and numbers


def _fmt(g: np.ndarray) -> str:
    return f"{g.item():.4g}" if g.size == 1 else f"array{g.shape}"


def _columns(n: int, edges: tuple[tuple[int, int], ...]) -> list[int]:
    """Ops at their longest distance from an input; inputs one column before their first consumer."""
    parents: dict[int, list[int]] = {i: [] for i in range(n)}
    children: dict[int, list[int]] = {i: [] for i in range(n)}
    for p, c in edges:
        parents[c].append(p)
        children[p].append(c)
    col = [0] * n
    for i in range(n):  # topological order: parents come first
        if parents[i]:
            col[i] = max(col[p] for p in parents[i]) + 1
    for i in range(n):
        if not parents[i] and children[i]:  # an input: next to where it is used
            col[i] = min(col[c] for c in children[i]) - 1
    return col


def _layout(n: int, edges: tuple[tuple[int, int], ...]) -> tuple[list[tuple[float, float]], list[list[tuple[float, float]]], list[tuple[int, int]]]:  # noqa: E501
    """Node centres and one polyline per distinct edge; an edge spanning k columns gets k-1 waypoints."""
    col = _columns(n, edges)
    distinct = list(dict.fromkeys(edges))
    layers: dict[int, list[tuple]] = {}  # column -> items: ("n", node) or ("d", edge index, column)
    for i in range(n):
        layers.setdefault(col[i], []).append(("n", i))
    chain: list[list[tuple]] = []  # per distinct edge: its items from parent to child
    for k, (p, c) in enumerate(distinct):
        dummies = [("d", k, x) for x in range(col[p] + 1, col[c])]
        for d in dummies:
            layers.setdefault(d[2], []).append(d)
        chain.append([("n", p), *dummies, ("n", c)])
    before: dict[tuple, list[tuple]] = {}
    after: dict[tuple, list[tuple]] = {}
    for items in chain:
        for a, b in zip(items, items[1:]):
            after.setdefault(a, []).append(b)
            before.setdefault(b, []).append(a)
    cols = sorted(layers)
    for _ in range(4):  # barycentre sweeps, left to right then right to left
        for sweep, neighbours in ((cols[1:], before), (cols[-2::-1], after)):
            for x in sweep:
                pos = {item: r for column in layers.values() for r, item in enumerate(column)}
                layer = layers[x]
                keys = {item: (np.mean([pos[m] for m in neighbours[item]]) if neighbours.get(item) else pos[item])
                        for item in layer}
                layer.sort(key=lambda item: keys[item])
    place = {item: (float(x), (len(layer) - 1) / 2 - r) for x, layer in layers.items() for r, item in enumerate(layer)}
    xy = [place[("n", i)] for i in range(n)]
    routes = [[place[item] for item in items] for items in chain]
    return xy, routes, distinct


@export("autograd.backward_state")
def backward_state(step: int, trace: BackwardTrace | None = None) -> BackwardState:
    """What the graph shows after ``step`` nodes of the backward pass (0 = forward only).

    Args:
        step: how many nodes backward has processed, in ``[0, trace.n_steps]``.
        trace: from :func:`trace_backward`; default: that of :func:`example_graph`.

    Returns:
        A :class:`BackwardState`; its caption lists every gradient known so far.

    Raises:
        TypeError / ValueError: ``step`` is not an int in range, ``trace`` not a BackwardTrace.
    """
    trace = trace_backward(example_graph()) if trace is None else _checks.instance("trace", trace, BackwardTrace)
    step = _checks.integer("step", step, minimum=0, maximum=trace.n_steps)
    done, pending = trace.complete[step], trace.partial[step]
    current = trace.order[step - 1] if step else None
    texts: list[str] = []
    status: list[Status] = []
    for i, (node, label) in enumerate(zip(trace.nodes, trace.labels)):
        if i == current:
            state, grad = "current", f"grad {_fmt(done[i])}"
        elif i in done:
            state, grad = "complete", f"grad {_fmt(done[i])}"
        elif i in pending:
            state, grad = "partial", f"grad {_fmt(pending[i])}…"
        elif node.requires_grad:
            state, grad = "waiting", "grad ?"
        else:
            state, grad = "no grad", "no grad"
        op = "" if node._op == "leaf" else f"\n{node._op}"
        texts.append(f"{label}{op}\n= {_fmt(node.data)}\n{grad}")
        status.append(state)  # type: ignore[arg-type]
    xy, routes, distinct = _layout(len(trace.nodes), trace.edges)
    multiplicity = tuple(trace.edges.count(e) for e in distinct)

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
    return BackwardState(step, trace.n_steps, tuple(texts), tuple(status), tuple(xy),
                         tuple(tuple(r) for r in routes), multiplicity, caption)


# ---- drawing and controls ----------------------------------------------------------------------

def _clip(centre: tuple[float, float], towards: tuple[float, float], box: tuple[float, float]) -> tuple[float, float]:
    """Where the segment from a box's ``centre`` towards a point leaves the box (half-sizes ``box``)."""
    dx, dy = towards[0] - centre[0], towards[1] - centre[1]
    t = min(box[0] / abs(dx) if dx else np.inf, box[1] / abs(dy) if dy else np.inf, 1.0)
    return centre[0] + t * dx, centre[1] + t * dy


@export("autograd.backward_view")
def backward_view(step: int, trace: BackwardTrace | None = None) -> View:
    """Draw :func:`backward_state` ``(step, trace)``: boxes sized to their text, edges between columns.

    Returns:
        A :class:`~course_lib.widgets.View` whose caption is the state's.

    Raises:
        TypeError / ValueError: as :func:`backward_state`.
    """
    import matplotlib.pyplot as plt

    state = backward_state(step, trace)
    xs = [x for x, _ in state.xy]
    ys = [y for _, y in state.xy] + [y for route in state.routes for _, y in route]
    n_cols, n_rows = max(xs) - min(xs) + 1, max(ys) - min(ys) + 1
    fig, ax = plt.subplots(figsize=(min(8.4, 1.05 * n_cols + 0.3), 0.8 * n_rows + 0.7))
    ax.set_xlim(min(xs) - 0.5, max(xs) + 0.5)
    ax.set_ylim(min(ys) - 0.55, max(ys) + 0.55)
    ax.set_axis_off()
    boxes = [ax.text(x, y, text, ha="center", va="center", fontsize=8, zorder=3, linespacing=1.15,
                     bbox={"boxstyle": "round,pad=0.3", "fc": COLORS[s], "ec": "0.3",
                           "lw": 1.6 if s == "current" else 0.8})
             for (x, y), text, s in zip(state.xy, state.texts, state.status)]
    fig.canvas.draw()  # lay out the text once, so each box's extent is known in data coordinates
    to_data = ax.transData.inverted()
    half = []
    for box in boxes:
        patch = box.get_bbox_patch()
        assert patch is not None  # every node text was given a bbox
        (x0, y0), (x1, y1) = to_data.transform(patch.get_window_extent())
        half.append(((x1 - x0) / 2 + 0.02, (y1 - y0) / 2 + 0.02))
    ends = {tuple(p): i for i, p in enumerate(state.xy)}
    for route, times in zip(state.routes, state.multiplicity):
        points = list(route)
        points[0] = _clip(route[0], route[1], half[ends[route[0]]])
        points[-1] = _clip(route[-1], route[-2], half[ends[route[-1]]])
        for a, b in zip(points[:-2], points[1:-1]):
            ax.plot([a[0], b[0]], [a[1], b[1]], color="0.55", lw=1, zorder=1)
        ax.annotate("", xy=points[-1], xytext=points[-2], zorder=2,
                    arrowprops={"arrowstyle": "->", "color": "0.55", "lw": 1, "shrinkA": 0, "shrinkB": 0})
        if times > 1:
            mid = ((points[0][0] + points[1][0]) / 2, (points[0][1] + points[1][1]) / 2)
            ax.text(*mid, f"×{times}", fontsize=8, ha="center", va="bottom", color="0.3", zorder=2)
    ax.set_title(f"backward step {state.step} of {state.n_steps}: green complete, yellow partial sum, "
                 "orange just processed", fontsize=9)
    return View(fig, state.caption)


@export("autograd.backward_widget")
def backward_widget(root: Tensor | None = None) -> ViewWidget:
    """A slider stepping :func:`backward_view` through the backward pass of ``root``, one node a step.

    Args:
        root: a one-element Tensor that requires grad; default :func:`example_graph`.
    """
    import ipywidgets as widgets

    from course_lib.widgets import ViewWidget

    trace = trace_backward(example_graph() if root is None else root)
    slider = widgets.IntSlider(value=0, min=0, max=trace.n_steps, step=1, description="step",
                               continuous_update=False)
    return ViewWidget(functools.partial(backward_view, trace=trace), step=slider)
