"""course_lib.autograd's Tensor and engine against torch.autograd, in float64.

Random expression graphs (hypothesis) are run on both engines — values and leaf gradients must
agree to float64 precision — plus one test per piece of autograd semantics the chapter teaches:
broadcasting, accumulation, detach, no_grad, define-by-run, non-scalar backward, bad input.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from course_lib.autograd import Tensor, is_grad_enabled, no_grad, unbroadcast
from course_lib.autograd.engine import topological_order

RTOL = {torch.float64: 1e-9}  # float64 only: our engine computes in float64
ATOL = 1e-10


def close(ours: np.ndarray, ref: torch.Tensor) -> bool:
    ref = ref.detach().numpy()
    scale = max(1.0, float(np.max(np.abs(ref), initial=0.0)))
    return ours.shape == ref.shape and np.allclose(ours, ref, rtol=RTOL[torch.float64], atol=ATOL * scale, equal_nan=True)


def both(array: np.ndarray, requires_grad: bool = True) -> tuple[Tensor, torch.Tensor]:
    return Tensor(array, requires_grad=requires_grad), torch.tensor(array, dtype=torch.float64, requires_grad=requires_grad)


# ---- random expression graphs -------------------------------------------------------------------
# A program is a list of instructions over a growing pool of nodes; every node's shape broadcasts
# to (n, n), so any two nodes can be combined. Ops with a restricted domain get a safe argument
# (log(x² + ½), a / (b² + ½)) so both engines stay finite.

UNARY = ("neg", "exp", "log", "tanh", "relu", "sigmoid", "pow", "sum", "mean", "transpose",
         "log_softmax", "flip", "gather", "reshape_back")
BINARY = ("add", "sub", "mul", "div", "matmul", "rsub_const", "radd_const")


def apply(op: str, args: list, param: int, n: int, index: np.ndarray):
    x = args[0]
    if op == "neg":
        return -x
    if op == "exp":
        return x.exp()
    if op == "log":
        return (x * x + 0.5).log()
    if op == "tanh":
        return x.tanh()
    if op == "relu":
        return x.relu()
    if op == "sigmoid":
        return x.sigmoid()
    if op == "pow":
        return (x * x + 0.5) ** [-1.5, 0.5, 2.0, 3.0][param % 4]
    if op in ("sum", "mean"):
        if x.dim() == 0 or param % 3 == 0:
            return getattr(x, op)()
        return getattr(x, op)(dim=param % x.dim(), keepdim=param % 2 == 0)
    if op == "transpose":
        return x.transpose(0, 1) if x.dim() == 2 else x
    if op == "log_softmax":
        return x.log_softmax(dim=-1) if x.dim() else x
    if op == "flip":  # a negative-step slice; torch spells it flip
        return x if not x.dim() else x[::-1] if isinstance(x, Tensor) else x.flip(0)
    if op == "gather":  # advanced indexing with repeated rows: the scatter-add backward
        idx = index if isinstance(x, Tensor) else torch.from_numpy(index)
        return x[idx] if x.dim() and x.shape[0] == n else x
    if op == "reshape_back":
        return x.reshape(-1).reshape(tuple(x.shape))
    y = args[1]
    if op == "add":
        return x + y
    if op == "sub":
        return x - y
    if op == "mul":
        return x * y
    if op == "div":
        return x / (y * y + 0.5)
    if op == "radd_const":
        return 1.5 + x
    if op == "rsub_const":
        return 2.0 - x * 0.5
    if op == "matmul":
        fits = x.dim() >= 1 and y.dim() >= 1 and x.shape[-1] == y.shape[0 if y.dim() == 1 else -2]
        return x @ y if fits else x + y
    raise AssertionError(op)


LEAF_SHAPES = lambda n: [(n, n), (n,), (1, n), (n, 1), ()]  # noqa: E731 — all broadcast to (n, n)


@st.composite
def programs(draw):
    n = draw(st.sampled_from([1, 2, 3, 5]))
    n_leaves = draw(st.integers(1, 4))
    leaves = []
    for _ in range(n_leaves):
        shape = draw(st.sampled_from(LEAF_SHAPES(n)))
        values = draw(st.lists(st.floats(-2, 2, allow_nan=False, allow_subnormal=False),
                               min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
        leaves.append((np.array(values, dtype=np.float64).reshape(shape), draw(st.booleans()) or len(leaves) == 0))
    steps = []
    for i in range(draw(st.integers(1, 8))):
        pool = n_leaves + i
        op = draw(st.sampled_from(UNARY + BINARY))
        steps.append((op, [draw(st.integers(0, pool - 1)) for _ in range(2)], draw(st.integers(0, 11))))
    index = np.array(draw(st.lists(st.integers(0, n - 1), min_size=n, max_size=n)))
    return n, leaves, steps, index


def run(program, engine):
    n, leaves, steps, index = program
    make = (lambda a, r: Tensor(a, requires_grad=r)) if engine == "ours" else \
        (lambda a, r: torch.tensor(a, dtype=torch.float64, requires_grad=r))
    inputs = [make(a, r) for a, r in leaves]
    pool = list(inputs)
    for op, operands, param in steps:
        pool.append(apply(op, [pool[k] for k in operands], param, n, index))
    return inputs, pool[-1]


@settings(max_examples=120, deadline=None)
@given(programs(), st.integers(0, 2**31 - 1))
def test_random_graphs_match_torch(program, seed):
    ours_in, ours_out = run(program, "ours")
    ref_in, ref_out = run(program, "torch")
    assert close(ours_out.data, ref_out), "forward values differ"
    ref = ref_out.detach()
    assume(ref.numel() > 0 and bool(torch.isfinite(ref).all()) and float(ref.abs().max()) < 1e8)
    if not ref_out.requires_grad:
        assert not ours_out.requires_grad
        return
    v = np.random.default_rng(seed).standard_normal(ref_out.shape)  # a random vector for v·J
    ours_out.backward(v)
    ref_out.backward(torch.from_numpy(v))
    for i, (a, b) in enumerate(zip(ours_in, ref_in)):
        if b.grad is None:
            assert a.grad is None, f"leaf {i}: torch has no grad, ours does"
        else:
            assert a.grad is not None and close(a.grad.data, b.grad), f"leaf {i}: gradients differ"


# ---- single ops at awkward shapes ------------------------------------------------------------------
@pytest.mark.parametrize("a_shape, b_shape", [
    ((17,), (17,)), ((3, 17), (17,)), ((17,), (17, 5)), ((4, 1, 3, 17), (2, 17, 5)), ((97, 13), (13, 1)), ((1, 1), (1, 1))])
def test_matmul_shapes(a_shape, b_shape):
    rng = np.random.default_rng(0)
    (a, at), (b, bt) = both(rng.standard_normal(a_shape)), both(rng.standard_normal(b_shape))
    out, ref = a @ b, at @ bt
    assert close(out.data, ref)
    g = rng.standard_normal(ref.shape)
    out.backward(g)
    ref.backward(torch.from_numpy(g))
    assert close(a.grad.data, at.grad) and close(b.grad.data, bt.grad)


def test_non_contiguous_input_and_indexing():
    base = np.random.default_rng(1).standard_normal((6, 8))[:, ::2].T  # (4, 6), non-contiguous
    assert not base.flags.c_contiguous
    (x, xt) = both(base)
    idx = np.array([0, 3, 3, 1])
    out, ref = x[idx, 1:5:2] * x[:, None, 2], xt[torch.from_numpy(idx), 1:5:2] * xt[:, None, 2]
    assert close(out.data, ref)
    out.sum().backward()
    ref.sum().backward()
    assert close(x.grad.data, xt.grad)


def test_log_softmax_is_stable_and_matches():
    (x, xt) = both(np.array([[1000.0, 1001.0, 1002.0], [-1000.0, 0.0, 3.0]]))
    out, ref = x.log_softmax(dim=1), xt.log_softmax(dim=1)
    assert np.isfinite(out.data).all() and close(out.data, ref)
    out[:, 0].sum().backward()
    ref[:, 0].sum().backward()
    assert close(x.grad.data, xt.grad)


def test_tensor_exponent_and_reverse_ops():
    (a, at), (b, bt) = both(np.array([0.5, 2.0, 3.0])), both(np.array([[1.5], [-0.5]]))
    out, ref = a**b + 2**a - 1 / a, at**bt + 2**at - 1 / at
    assert close(out.data, ref)
    out.sum().backward()
    ref.sum().backward()
    assert close(a.grad.data, at.grad) and close(b.grad.data, bt.grad)
    assert close((np.ones(3) + a).data, 1 + at)  # ndarray + Tensor defers to Tensor.__radd__


# ---- autograd semantics -----------------------------------------------------------------------------
def test_broadcasting_gradients_sum_over_stretched_dims():
    (a, at), (b, bt) = both(np.arange(3.0)), both(np.array([[1.0], [2.0]]))
    (a * b).sum().backward()
    (at * bt).sum().backward()
    assert a.grad.shape == (3,) and b.grad.shape == (2, 1)
    assert close(a.grad.data, at.grad) and close(b.grad.data, bt.grad)
    assert unbroadcast(np.ones((4, 2, 3)), (2, 1)).tolist() == [[12.0], [12.0]]


def test_grad_accumulates_across_backward_calls_until_zeroed():
    (x, xt) = both(np.array([1.0, -2.0]))
    for _ in range(3):
        (x * x).sum().backward()
        (xt * xt).sum().backward()
    assert close(x.grad.data, xt.grad) and x.grad.data.tolist() == [6.0, -12.0]  # 3 × 2x
    x.grad = None
    (x * x).sum().backward()
    assert x.grad.data.tolist() == [2.0, -4.0]


def test_shared_subexpression_gets_both_contributions():
    x = Tensor(3.0, requires_grad=True)
    y = x * x
    (y + y * x).backward()  # d/dx (x² + x³) = 2x + 3x² = 33
    assert x.grad.item() == 33.0 and y.grad is None  # non-leaf: no .grad, as in torch


def test_detach_cuts_the_graph():
    (x, xt) = both(np.array([2.0, 3.0]))
    out = (x * x.detach()).sum()  # gradient only through the first factor
    ref = (xt * xt.detach()).sum()
    out.backward()
    ref.backward()
    assert close(x.grad.data, xt.grad) and x.grad.data.tolist() == [2.0, 3.0]
    d = x.detach()
    assert not d.requires_grad and d.is_leaf and np.shares_memory(d.data, x.data)  # like torch: same storage


def test_no_grad_records_nothing_and_restores():
    x = Tensor([1.0, 2.0], requires_grad=True)
    assert is_grad_enabled()
    with no_grad():
        assert not is_grad_enabled()
        y = (x * 2).exp()
    assert is_grad_enabled() and not y.requires_grad and y.is_leaf
    with pytest.raises(ValueError, match="does not require grad"):
        y.sum().backward()

    @no_grad()
    def evaluate(t):
        return t * t

    assert not evaluate(x).requires_grad and is_grad_enabled()
    with pytest.raises(RuntimeError), no_grad():
        raise RuntimeError("restored even when the block raises")
    assert is_grad_enabled()


def test_define_by_run_graph_follows_python_control_flow():
    def f(x, steps):
        y = x
        for _ in range(steps):  # the graph depends on the data: a different length each call
            y = y.tanh() * 2 if float(y.sum().item()) > 0 else y * y - 1
        return y.sum()

    for start in ([0.3, -0.2], [-1.0, 0.1], [2.0, 2.0]):
        for steps in (1, 4, 7):
            (x, xt) = both(np.array(start))
            f(x, steps).backward()
            f(xt, steps).backward()
            assert close(x.grad.data, xt.grad)


def test_non_scalar_backward_with_gradient():
    (x, xt) = both(np.array([[1.0, 2.0], [3.0, 4.0]]))
    v = np.array([[1.0, 0.0], [0.5, -1.0]])
    (x * x).backward(gradient=v)
    (xt * xt).backward(gradient=torch.from_numpy(v))
    assert close(x.grad.data, xt.grad)
    with pytest.raises(ValueError, match=r"backward\(\) on a tensor of shape \(2, 2\) needs gradient="):
        (x * x).backward()
    with pytest.raises(ValueError, match=r"gradient must have the shape of the tensor, \(2, 2\); got \(2,\)"):
        (x * x).backward(gradient=[1.0, 2.0])


def test_deep_graph_needs_no_recursion():
    x = Tensor(1.0, requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.backward()
    assert x.grad.item() == pytest.approx(1.0001**5000)
    assert len(topological_order(y)) == 1 + 2 * 5000  # x, each constant, each product


# ---- bad input ----------------------------------------------------------------------------------------
def test_bad_inputs_raise_clear_errors():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(TypeError, match="data must be a real number.*got str"):
        Tensor("abc")
    with pytest.raises(TypeError, match="data must hold real numbers; got an array of dtype complex128"):
        Tensor([1j])
    with pytest.raises(TypeError, match="requires_grad must be a bool; got int"):
        Tensor(1.0, requires_grad=1)
    with pytest.raises(ValueError, match=r"add: cannot broadcast shapes \(2, 3\) and \(4,\)"):
        x + Tensor(np.ones(4))
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(2, 3\) do not fit"):
        x @ x
    with pytest.raises(ValueError, match=r"matmul: both operands need at least 1 dim; got shapes \(2, 3\) and \(\)"):
        x @ Tensor(2.0)
    with pytest.raises(TypeError, match="other is a torch.Tensor; mix engines explicitly"):
        x * torch.ones(2, 3)
    with pytest.raises(ValueError, match="sum: dim 2 is out of range for a tensor with 2 dims"):
        x.sum(dim=2)
    with pytest.raises(TypeError, match="log_softmax: dim must be an int"):
        x.log_softmax(dim=1.0)
    with pytest.raises(ValueError, match=r"reshape: cannot reshape a tensor of shape \(2, 3\) \(6 elements\) into \(4,\)"):
        x.reshape(4)
    with pytest.raises(TypeError, match="index arrays must hold integers or bools; got dtype float64"):
        x[np.array([0.0])]
    with pytest.raises(ValueError, match="item\\(\\) needs a tensor with one element"):
        x.item()
    with pytest.raises(ValueError, match="does not require grad"):
        Tensor(1.0).backward()
    with pytest.raises(ValueError, match="transpose: needs a tensor with at least 1 dim"):
        Tensor(1.0).transpose(0, 0)


def test_zero_dim_tensors():
    s = Tensor(3.0, requires_grad=True)
    out = s.log_softmax() + s.sum(dim=0) + s.mean() + s.reshape(1, 1)[0, 0]
    st = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    ref = st.log_softmax(0) + st.sum(dim=0) + st.mean() + st.reshape(1, 1)[0, 0]
    out.backward()
    ref.backward()
    assert out.shape == () and close(out.data, ref) and close(s.grad.data, st.grad)
