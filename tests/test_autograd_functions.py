"""The central-difference checker (its verdicts and its failure message) and the custom
torch.autograd.Functions (stable logsumexp, straight-through sign) under torch's gradcheck."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd.gradcheck import GradcheckError as TorchGradcheckError

from course_lib.autograd import GradcheckError, Tensor, gradcheck, logsumexp, straight_through_sign


def x64(*shape: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).requires_grad_()


# ---- our central-difference checker -----------------------------------------------------------------
@pytest.mark.parametrize("fn", [
    lambda a, b: (a * b).tanh(),
    lambda a, b: (a @ b.T).log_softmax(dim=1),
    lambda a, b: (a / (b * b + 1)).sigmoid().sum(dim=0),
    lambda a, b: (a.exp() - b.relu()).mean(),
    lambda a, b: a[np.array([0, 2, 2])] ** 3 + b[::-1],
])
def test_gradcheck_passes_for_every_correct_op(fn):
    rng = np.random.default_rng(0)
    a = Tensor(rng.standard_normal((3, 4)) + 0.1, requires_grad=True)  # away from relu's kink
    b = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    assert gradcheck(fn, [a, b]) is True
    assert a.grad is None and b.grad is None  # checking leaves the inputs' .grad alone


def _buggy_sigmoid(x: Tensor) -> Tensor:
    s = 1 / (1 + np.exp(-x.data))
    return Tensor.from_op("sigmoid", s, (x,), lambda g: (g * s,))  # forgot the (1 - s) factor


def test_gradcheck_failure_names_op_input_received_and_expected():
    x = Tensor([0.5, -1.0, 2.0], requires_grad=True, name="logits")
    with pytest.raises(GradcheckError) as info:
        gradcheck(_buggy_sigmoid, [x])
    message = str(info.value)
    s = 1 / (1 + np.exp(-0.5))
    v0 = np.random.default_rng(0).standard_normal(3)[0]  # the checker's projection vector
    assert "op '_buggy_sigmoid'" in message and "input 0 ('logits') of shape (3,)" in message
    assert "element (0,)" in message
    received, expected = map(float, re.search(r"received gradient (\S+) from backward, expected (\S+) from central "
                                              r"differences", message).groups())
    assert received == pytest.approx(v0 * s, rel=1e-9) and expected == pytest.approx(v0 * s * (1 - s), rel=1e-6)


def test_gradcheck_names_the_second_input_and_a_lambdas_op():
    a = Tensor([1.0, 2.0], requires_grad=True)
    b = Tensor([3.0, 4.0], requires_grad=True)

    def wrong_mul(x, y):  # right gradient for x, wrong (doubled) for y
        return Tensor.from_op("mul", x.data * y.data, (x, y), lambda g: (g * y.data, 2 * g * x.data))

    with pytest.raises(GradcheckError, match=r"op 'wrong_mul': input 1 of shape \(2,\), element \(0,\)"):
        gradcheck(wrong_mul, [a, b])
    with pytest.raises(GradcheckError, match="op 'mul'"):
        gradcheck(lambda x, y: wrong_mul(x, y), [a, b])
    assert gradcheck(wrong_mul, [a, Tensor([3.0, 4.0])])  # y is a constant: its gradient is never checked


def test_gradcheck_bad_input():
    x = Tensor([1.0], requires_grad=True)
    with pytest.raises(TypeError, match="fn must be a function"):
        gradcheck(3, [x])
    with pytest.raises(TypeError, match=r"inputs\[0\] must be Tensor; got ndarray"):
        gradcheck(lambda t: t, [np.ones(1)])
    with pytest.raises(ValueError, match="at least one input with requires_grad=True"):
        gradcheck(lambda t: t, [Tensor([1.0])])
    with pytest.raises(TypeError, match=r"fn\(\*inputs\) must be Tensor; got float"):
        gradcheck(lambda t: 1.0, [x])
    with pytest.raises(ValueError, match="eps must be a number in"):
        gradcheck(lambda t: t, [x], eps=0.0)


# ---- logsumexp ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape, dim", [((17,), 0), ((3, 97), 1), ((5, 4, 3), 0), ((2, 257), -1), ((1, 1), 0)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_logsumexp_matches_torch(shape, dim, keepdim):
    x = x64(*shape, scale=30.0)
    ref_x = x.detach().clone().requires_grad_()
    out, ref = logsumexp(x, dim, keepdim), torch.logsumexp(ref_x, dim, keepdim)
    assert torch.allclose(out, ref, rtol=1e-12, atol=1e-12)
    g = torch.randn(ref.shape, dtype=torch.float64)
    out.backward(g)
    ref.backward(g)
    assert torch.allclose(x.grad, ref_x.grad, rtol=1e-12, atol=1e-12)


def test_logsumexp_gradcheck_float64():
    assert torch.autograd.gradcheck(lambda t: logsumexp(t, 1), (x64(3, 5),))
    assert torch.autograd.gradcheck(lambda t: logsumexp(t, 0, True), (x64(4, 2, seed=1, scale=5.0),))
    assert torch.autograd.gradgradcheck(lambda t: logsumexp(t, -1), (x64(2, 3, seed=2),))
    noncontiguous = x64(6, 4, seed=3).detach().t().requires_grad_()
    assert not noncontiguous.is_contiguous() and torch.autograd.gradcheck(lambda t: logsumexp(t, 1), (noncontiguous,))


def test_logsumexp_is_stable_where_the_naive_formula_overflows():
    x = torch.tensor([[1000.0, 1001.0, float("-inf")], [float("-inf")] * 3], dtype=torch.float64, requires_grad=True)
    assert torch.isinf(x.exp().sum(1).log()[0])  # the naive formula
    out = logsumexp(x, 1)
    assert out[0].item() == pytest.approx(1001 + np.log1p(np.exp(-1)), rel=1e-15) and out[1].item() == -np.inf
    out[0].backward()
    assert torch.allclose(x.grad[0], torch.tensor([1 / (1 + np.e), np.e / (1 + np.e), 0.0], dtype=torch.float64))
    assert torch.all(x.grad[1] == 0)  # an all -inf row: gradient 0 (torch.logsumexp gives nan)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-700, 700), min_size=1, max_size=12), st.floats(-50, 50))
def test_logsumexp_shift_invariance(values, c):
    x = torch.tensor(values, dtype=torch.float64)
    assert logsumexp(x + c).item() == pytest.approx(logsumexp(x).item() + c, rel=1e-12, abs=1e-9)
    assert logsumexp(x).item() >= x.max().item()


def test_logsumexp_bad_input():
    with pytest.raises(TypeError, match="x must have a floating-point dtype; got torch.int64"):
        logsumexp(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"dim must be an int in \[-2, 1\]; got 2"):
        logsumexp(torch.zeros(2, 3), dim=2)
    with pytest.raises(TypeError, match="keepdim must be bool"):
        logsumexp(torch.zeros(2, 3), keepdim=1)
    with pytest.raises(TypeError, match="x must be Tensor; got list"):
        logsumexp([1.0])


# ---- straight-through estimator ---------------------------------------------------------------------
def test_straight_through_sign_forward_and_backward():
    x = torch.tensor([-2.0, -0.5, 0.0, 0.3, 1.0, 1.7], dtype=torch.float64, requires_grad=True)
    out = straight_through_sign(x)
    assert torch.equal(out, torch.sign(x))
    out.backward(torch.arange(1.0, 7.0, dtype=torch.float64))
    assert x.grad.tolist() == [0.0, 2.0, 3.0, 4.0, 5.0, 0.0]  # passed straight through where |x| <= 1


def test_straight_through_sign_gradcheck_against_its_surrogate():
    # sign's true derivative is 0: torch's gradcheck must reject the STE's backward ...
    x = x64(11, seed=4)
    with pytest.raises(TorchGradcheckError):
        torch.autograd.gradcheck(straight_through_sign, (x,))

    # ... and accept it as the backward of hardtanh: f(x) = ste(x) + (hardtanh(x) - sign(x)) has
    # hardtanh's values (so central differences see hardtanh) but the STE's backward.
    def surrogate(t):
        return straight_through_sign(t) + (torch.nn.functional.hardtanh(t) - torch.sign(t)).detach()

    inputs = torch.tensor([-1.9, -0.6, -0.2, 0.4, 0.9, 1.3], dtype=torch.float64, requires_grad=True)  # off the kinks
    assert torch.autograd.gradcheck(surrogate, (inputs,))


def test_straight_through_sign_bad_input():
    with pytest.raises(TypeError, match="x must have a floating-point dtype"):
        straight_through_sign(torch.tensor([1, -1]))


# ---- special values (issue 13): torch's semantics, and the pinned differences -------------------
SPECIALS = [0.0, -0.0, 1.0, -1.0, float("inf"), float("-inf"), float("nan"), 5e-324, 1.7976931348623157e308, 700.0]


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, rtol=1e-12, atol=1e-12, equal_nan=True)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_logsumexp_matches_torch_at_special_values_and_empty_dims(data):
    rows, cols = data.draw(st.sampled_from([0, 1, 2])), data.draw(st.sampled_from([0, 1, 2, 3]))
    vals = data.draw(st.lists(st.one_of(st.sampled_from(SPECIALS), st.floats(-5, 5)), min_size=rows * cols,
                              max_size=rows * cols))
    x = torch.tensor(vals, dtype=torch.float64).reshape(rows, cols).requires_grad_()
    ref_x = x.detach().clone().requires_grad_()
    dim = data.draw(st.sampled_from([0, 1, -1]))
    out, ref = logsumexp(x, dim), torch.logsumexp(ref_x, dim)
    assert _same(out, ref)
    out.sum().backward()
    ref.sum().backward()
    all_minus_inf = (ref_x.detach() == float("-inf")).all(dim=dim, keepdim=True).expand_as(x)
    assert torch.all(x.grad[all_minus_inf] == 0)  # the pinned difference: torch gives nan there
    assert _same(x.grad[~all_minus_inf], ref_x.grad[~all_minus_inf])


def test_straight_through_sign_special_values_and_pinned_differences():
    x = torch.tensor([-1.0, 1.0, float("nan"), float("inf"), -2.0, 0.5], dtype=torch.float64, requires_grad=True)
    straight_through_sign(x).backward(torch.tensor([1.0, 1.0, 1.0, float("inf"), float("inf"), 2.0],
                                                   dtype=torch.float64))
    assert x.grad.tolist() == [1.0, 1.0, 0.0, 0.0, 0.0, 2.0]  # an inf upstream gradient masked to 0, not nan
    ref = x.detach().clone().requires_grad_()
    torch.nn.functional.hardtanh(ref).backward(torch.ones(6, dtype=torch.float64))
    assert ref.grad[:3].tolist()[:2] == [0.0, 0.0] and ref.grad[2].item() == 1.0  # hardtanh: 0 at ±1, passes nan
