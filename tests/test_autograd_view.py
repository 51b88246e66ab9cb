"""The backward-pass view: its recorded gradients equal torch's; the widget moves headlessly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib.autograd import Tensor, backward_view, backward_widget, example_graph, trace_backward
from course_lib.autograd.backward_view import backward_state


def torch_example() -> dict[str, float]:
    w = torch.tensor(-0.8, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    loss = ((w * 1.5 + b).tanh() - 0.2) ** 2 + 0.1 * w * w
    loss.backward()
    return {"L": loss.item(), "w": w.grad.item(), "b": b.grad.item()}


def test_trace_ends_with_torchs_gradients_and_leaves_grad_alone():
    root = example_graph()
    trace = trace_backward(root)
    ref = torch_example()
    final = {trace.labels[i]: g.item() for i, g in trace.complete[-1].items()}
    assert root.data.item() == pytest.approx(ref["L"], rel=1e-14)
    assert final["w"] == pytest.approx(ref["w"], rel=1e-14) and final["b"] == pytest.approx(ref["b"], rel=1e-14)
    assert final["L"] == 1.0 and trace.partial[-1] == {}
    assert all(n.grad is None for n in trace.nodes)  # tracing does not accumulate into .grad
    # every node that requires grad is processed exactly once, consumers before producers
    needs = [i for i, n in enumerate(trace.nodes) if n.requires_grad]
    assert sorted(trace.order) == needs and trace.order == tuple(sorted(trace.order, reverse=True))


def test_w_is_used_twice_so_its_gradient_is_partial_first():
    trace = trace_backward(example_graph())
    w = trace.labels.index("w")
    partial_steps = [s for s in range(trace.n_steps + 1) if w in trace.partial[s]]
    done_step = next(s for s in range(trace.n_steps + 1) if w in trace.complete[s])
    assert partial_steps and max(partial_steps) < done_step
    assert not np.isclose(trace.partial[partial_steps[0]][w], trace.complete[-1][w])  # one part of two


def test_view_caption_and_figure_follow_the_step():
    trace = trace_backward(example_graph())
    first, last = backward_view(0, trace), backward_view(trace.n_steps, trace)
    assert first.caption.startswith(f"step 0 of {trace.n_steps}: forward done") and "complete: -" in first.caption
    assert last.caption.startswith(f"step {trace.n_steps} of {trace.n_steps}: processed w (leaf)")
    assert f"w={torch_example()['w']:.4g}" in last.caption
    middle = backward_view(1, trace)
    assert "processed L (add)" in middle.caption and "its vjp sends gradients to e², 0.1·w²" in middle.caption
    assert first.figure.axes and len(first.figure.axes[0].texts) >= len(trace.nodes)
    assert max(first.figure.get_size_inches()) <= 8.5  # fits the ~850 px output area at 100 dpi
    assert backward_view(3).caption == backward_view(3, trace).caption  # default: the example graph


def test_widget_moves_headlessly():
    w = backward_widget()
    before_caption, before_image = w.caption.value, w.image.value
    assert "step 0 of 10" in before_caption and w.controls["step"].max == 10
    w.controls["step"].value = 5
    assert w.caption.value != before_caption and w.image.value != before_image
    assert "step 5 of 10" in w.caption.value


def test_widget_on_a_users_graph():
    x = Tensor([1.0, 2.0], requires_grad=True, name="x")
    w = backward_widget((x * x).sum())
    w.controls["step"].value = w.controls["step"].max
    assert "x=array(2,)" in w.caption.value


def test_bad_input():
    trace = trace_backward(example_graph())
    with pytest.raises(ValueError, match=r"step must be an int in \[0, 10\]; got 11"):
        backward_view(11, trace)
    with pytest.raises(TypeError, match="step must be an int; got float"):
        backward_view(1.0, trace)
    with pytest.raises(TypeError, match="root must be Tensor; got Tensor"):
        trace_backward(torch.tensor(1.0))
    with pytest.raises(ValueError, match=r"root must be a one-element Tensor that requires grad; got shape \(2,\)"):
        trace_backward(Tensor([1.0, 2.0], requires_grad=True) * 2)
    with pytest.raises(TypeError, match="trace must be BackwardTrace"):
        backward_view(0, trace="x")


def test_state_is_pure_and_its_layout_crosses_no_node():
    """Issue 14: an edge ran through three nodes. Every route now steps one column at a time, and
    its waypoints sit where no node is, so no straight segment can pass through a box."""
    trace = trace_backward(example_graph())
    for step in range(trace.n_steps + 1):
        state = backward_state(step, trace)
        assert len(state.texts) == len(state.status) == len(state.xy) == len(trace.nodes)
        nodes = set(state.xy)
        assert len(nodes) == len(state.xy)  # no two nodes share a place
        for route in state.routes:
            assert route[0] in nodes and route[-1] in nodes
            assert all(b[0] - a[0] == 1 for a, b in zip(route, route[1:]))  # neighbouring columns only
            assert not any(p in nodes for p in route[1:-1])  # waypoints never on a node
    assert sum(backward_state(0, trace).multiplicity) == len(trace.edges)
    assert dict(zip(trace.labels, backward_state(4, trace).status))["y"] == "current"


def test_state_needs_no_matplotlib():
    import subprocess
    import sys

    code = ("import sys; from course_lib.autograd.backward_view import backward_state; backward_state(3); "
            "print([m for m in ('matplotlib', 'ipywidgets') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
