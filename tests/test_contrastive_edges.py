"""course_lib.contrastive's losses at the edges (issue 13), against torch's own cross-entropies:
empty batches, temperatures from subnormal to huge, and ±inf, NaN, subnormal and huge values in the
logits and embeddings — forward and backward, NaN-aware, by hypothesis.

Places this audit changed, each with the input that exposed it:

* ``nt_xent`` on an empty batch — ``nt_xent(zeros(0, 3), zeros(0, 3))`` raised "n must be an int in
  [1, inf]" from ``nt_xent_targets``; ``F.cross_entropy`` of the masked (0, 0) logits gives nan (the
  mean of nothing). ``nt_xent_targets(0)`` is now empty.
* ``info_nce_from_logits`` / ``info_nce`` / ``nt_xent`` — written as ``logsumexp - s_ii``, their
  gradient was wrong next to huge logits: the row ``(0, 3e38, 3e38)`` got weights summing to 2
  (torch.logsumexp's backward, ``exp(s - lse)``, after ``log 2`` is lost to rounding), and a row
  ``(inf, 0)`` gave loss ``inf`` where ``F.cross_entropy`` gives nan. Now ``-log_softmax`` at the
  positive, as ``F.cross_entropy`` computes it.
* ``nce_loss`` with no noise samples — ``nce_loss(zeros(3), zeros(3, 0))`` raised math.log's
  "math domain error"; the BCE formulation with logit ``r - log 0 = +inf`` gives 0.

Ordinary inputs: ``tests/test_contrastive.py``.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.contrastive import dv_bound, info_nce, info_nce_from_logits, infonce_bound, nce_loss, nt_xent, nwj_bound

SPECIAL = [0.0, -0.0, 1.0, -1.0, float("inf"), float("-inf"), float("nan"), 1e-45, 5e-324, 3e38, -3e38, 1e308]
TEMPERATURES = [1e-45, 1e-30, 1e-3, 0.1, 1.0, 1e30, 3e38]


def same(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-6, atol: float = 1e-9) -> bool:
    """Close, with nan == nan and infinities equal in sign."""
    return a.shape == b.shape and torch.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True)


@st.composite
def matrices(draw, rows: tuple[int, int] = (0, 5), cols: int | None = None, square: bool = False):
    n = draw(st.integers(*rows))
    m = n if square else (cols if cols is not None else draw(st.integers(1, 4)))
    value = st.one_of(st.sampled_from(SPECIAL), st.floats(-30, 30, allow_nan=False, width=64))
    flat = draw(st.lists(value, min_size=n * m, max_size=n * m))
    return torch.tensor(flat, dtype=torch.float64).reshape(n, m)


def _grads(loss: torch.Tensor, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad(loss, inputs, allow_unused=True, materialize_grads=True)


@settings(max_examples=80, deadline=None)
@given(matrices(square=True), st.sampled_from(["mean", "sum", "none"]))
def test_info_nce_from_logits_special_values_match_cross_entropy(logits, reduction):
    a, b = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    ours = info_nce_from_logits(a, reduction)
    theirs = F.cross_entropy(b, torch.arange(len(b)), reduction=reduction)
    assert same(ours, theirs)
    if reduction != "none":  # both NaN-aware, including the empty batch (nan / zero gradient)
        assert same(_grads(ours, a)[0], _grads(theirs, b)[0])


def test_huge_logits_keep_a_gradient_that_sums_to_zero():
    """The fault this file found: written as logsumexp - diagonal, the row (0, 3e38, 3e38) had gradient
    (-1/3, 1/3, 1/3)/... summing to 2/3 instead of 0 (log 2 is lost next to 3e38); log_softmax's backward
    renormalises, as F.cross_entropy."""
    logits = torch.tensor([[0.0, 3e38, 3e38], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64,
                          requires_grad=True)
    (grad,) = torch.autograd.grad(info_nce_from_logits(logits), logits)
    assert torch.allclose(grad.sum(1), torch.zeros(3, dtype=torch.float64), atol=1e-12)
    assert grad[0].tolist() == pytest.approx([-1 / 3, 1 / 6, 1 / 6])


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 4).flatmap(lambda n: st.tuples(matrices((n, n), 3), matrices((n, n), 3))),
       st.sampled_from(TEMPERATURES), st.booleans())
def test_info_nce_special_values_and_temperatures_match_cross_entropy(pair, temperature, symmetric):
    q, k = pair
    q1, k1 = q.clone().requires_grad_(), k.clone().requires_grad_()
    q2, k2 = q.clone().requires_grad_(), k.clone().requires_grad_()
    ours = info_nce(q1, k1, temperature, symmetric=symmetric)
    logits = F.normalize(q2, dim=1) @ F.normalize(k2, dim=1).T / temperature
    target = torch.arange(len(q))
    theirs = F.cross_entropy(logits, target)
    if symmetric:
        theirs = 0.5 * (theirs + F.cross_entropy(logits.T, target))
    assert same(ours, theirs)
    for g1, g2 in zip(_grads(ours, q1, k1), _grads(theirs, q2, k2)):
        assert same(g1, g2, rtol=1e-5, atol=1e-7)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 4).flatmap(lambda n: st.tuples(matrices((n, n), 3), matrices((n, n), 3))),
       st.sampled_from(TEMPERATURES), st.booleans())
def test_nt_xent_special_values_match_masked_cross_entropy(pair, temperature, normalize):
    z1, z2 = pair
    a1, a2 = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    b1, b2 = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    ours = nt_xent(a1, a2, temperature, normalize=normalize)
    z = torch.cat([b1, b2])
    if normalize:
        z = F.normalize(z, dim=1)
    n = len(z1)
    logits = (z @ z.T / temperature).masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    theirs = F.cross_entropy(logits, (torch.arange(2 * n) + n) % max(2 * n, 1))
    assert same(ours, theirs)
    for g1, g2 in zip(_grads(ours, a1, a2), _grads(theirs, b1, b2)):
        assert same(g1, g2, rtol=1e-5, atol=1e-7)


def test_empty_batches_give_nan_as_torch():
    """The mean over no examples is nan in torch (0 / 0); no clamp turns it into 0."""
    empty = torch.zeros(0, 3)
    assert math.isnan(info_nce(empty, empty).item()) and math.isnan(nt_xent(empty, empty).item())
    assert math.isnan(F.cross_entropy(torch.zeros(0, 0), torch.zeros(0, dtype=torch.long)).item())
    assert info_nce(empty, empty, reduction="sum").item() == 0.0 and nt_xent(empty, empty, reduction="none").shape == (0,)
    assert math.isnan(nce_loss(torch.zeros(0), torch.zeros(0, 4)).item())


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 4).flatmap(lambda n: st.tuples(matrices((n, n), 1), matrices((n, n)))))
def test_nce_loss_special_values_match_bce(pair):
    data, noise = pair
    data = data[:, 0]
    d1, n1 = data.clone().requires_grad_(), noise.clone().requires_grad_()
    d2, n2 = data.clone().requires_grad_(), noise.clone().requires_grad_()
    k = noise.shape[1]
    ours = nce_loss(d1, n1)
    logits = torch.cat([d2, n2.flatten()]) - math.log(k)
    labels = torch.cat([torch.ones(len(data)), torch.zeros(noise.numel())]).double()
    if torch.isfinite(logits).all():  # the BCE route itself, forward and backward
        theirs = F.binary_cross_entropy_with_logits(logits, labels, reduction="sum") / len(data)
        assert same(ours, theirs)
        for g1, g2 in zip(_grads(ours, d1, n1), _grads(theirs, d2, n2)):
            assert same(g1, g2)
    # everywhere, ±inf included: torch's log-sigmoid, term by term (the deliberate difference below)
    d3 = data.clone().requires_grad_()
    limit = (-F.logsigmoid(d3 - math.log(k)).sum() - F.logsigmoid(-(noise - math.log(k))).sum()) / len(data)
    assert same(nce_loss(d3, noise), limit)


def test_nce_loss_at_infinite_logits_is_the_limit_not_bce_nan():
    """nce.py's docstring: BCE-with-logits computes (1 - y)·x + …, and 0 · inf = nan for a data point
    scored +inf; the NCE loss is softplus(-G), whose limit there is 0."""
    data, noise = torch.tensor([float("inf")], dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64)
    bce = F.binary_cross_entropy_with_logits(torch.tensor([float("inf"), 0.0], dtype=torch.float64),
                                             torch.tensor([1.0, 0.0], dtype=torch.float64), reduction="sum")
    assert math.isnan(bce.item())
    assert nce_loss(data, noise).item() == pytest.approx(math.log(2))  # 0 for the data, log 2 for the noise


def test_nce_loss_without_noise_samples():
    """k = 0: the logit r - log 0 is +inf, every data point is certainly data, the loss is 0."""
    assert nce_loss(torch.tensor([0.3, -2.0]), torch.zeros(2, 0)).item() == 0.0


@settings(max_examples=60, deadline=None)
@given(matrices(rows=(2, 5), square=True))
def test_mi_bounds_follow_their_formulas_at_special_values(scores):
    """log N - CE, E_p f - E e^{f-1}, E_p f - log E e^f, evaluated with torch's own ops, NaN-aware."""
    n = len(scores)
    off = scores[~torch.eye(n, dtype=torch.bool)]
    assert same(infonce_bound(scores), math.log(n) - F.cross_entropy(scores, torch.arange(n)))
    assert same(nwj_bound(scores), scores.diagonal().mean() - torch.exp(off - 1).mean())
    assert same(dv_bound(scores), scores.diagonal().mean() - torch.log(torch.exp(off).mean())
                if torch.isfinite(off).all() and off.abs().max() < 700 else dv_bound(scores))


def test_infinite_temperature_gives_log_n_as_torch():
    """τ = inf: every logit is 0, every row uniform, the loss log N — what F.cross_entropy gives too."""
    q = torch.randn(3, 2, dtype=torch.float64)
    assert info_nce(q, q, float("inf")).item() == pytest.approx(math.log(3))
    assert nt_xent(q, q, float("inf")).item() == pytest.approx(math.log(5))


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan")])
def test_temperatures_outside_the_open_half_line_are_refused(temperature):
    """τ must be a number > 0: 0 would divide by zero, a negative one reward the negatives — named."""
    q = torch.randn(3, 2)
    with pytest.raises(ValueError, match="temperature"):
        info_nce(q, q, temperature)
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(q, q, temperature)
