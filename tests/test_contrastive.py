"""course_lib.contrastive: InfoNCE, NT-Xent and NCE against torch's cross-entropies and slow
loops, forward and backward; the MI ground truth and bounds; the widget; the exercises.
CPC: tests/test_contrastive_cpc.py."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.contrastive import (
    GaussianToy,
    dv_bound,
    fit_log_ratio,
    gaussian_log_density_ratio,
    gaussian_mi,
    info_nce,
    info_nce_from_logits,
    info_nce_state,
    info_nce_view,
    info_nce_widget,
    infonce_bound,
    nce_loss,
    nt_xent,
    nt_xent_targets,
    nwj_bound,
    sample_correlated_gaussians,
    train_critic,
)
from course_lib.contrastive import exercises as ex
from course_lib.contrastive.infonce_view import TEMPERATURES

TOL = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float64: dict(rtol=1e-10, atol=1e-12)}
SIZES = [1, 3, 17]


def pairs(n: int, d: int, dtype: torch.dtype, seed: int = 0, contiguous: bool = True):
    gen = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, n, d, generator=gen, dtype=dtype)
    k = 0.7 * q + 0.5 * k  # correlated, so the positives matter
    if not contiguous:  # every other column of a buffer twice as wide: stride (2d, 2)
        wide = torch.zeros(2, n, 2 * d, dtype=dtype)
        wide[..., ::2] = torch.stack([q, k])
        q, k = wide[..., ::2]
        assert not q.is_contiguous() and not k.is_contiguous()
    return q.requires_grad_(), k.requires_grad_()


def info_nce_torch(q, k, tau, symmetric=False):
    """The production route: cosine logits into F.cross_entropy with the diagonal as targets."""
    logits = F.normalize(q, dim=1) @ F.normalize(k, dim=1).T / tau
    target = torch.arange(len(q))
    loss = F.cross_entropy(logits, target)
    return 0.5 * (loss + F.cross_entropy(logits.T, target)) if symmetric else loss


def info_nce_loop(q, k, tau):
    """Per example, as the paper writes it: -log exp(s_ii) / Σ_j exp(s_ij)."""
    losses = []
    for i in range(len(q)):
        sims = [torch.dot(q[i], k[j]) / (q[i].norm() * k[j].norm()) / tau for j in range(len(k))]
        losses.append(-torch.log(torch.exp(sims[i]) / sum(torch.exp(s) for s in sims)))
    return torch.stack(losses).mean()


def nt_xent_loop(z1, z2, tau):
    """SimCLR's Algorithm 1, literally: ℓ(i, j) = -log exp(s_ij/τ) / Σ_{k≠i} exp(s_ik/τ)."""
    z = torch.cat([z1, z2])
    n2 = len(z)
    sim = [[torch.dot(z[a], z[b]) / (z[a].norm() * z[b].norm()) for b in range(n2)] for a in range(n2)]
    losses = []
    for i in range(n2):
        j = (i + n2 // 2) % n2
        denominator = sum(torch.exp(sim[i][m] / tau) for m in range(n2) if m != i)
        losses.append(-torch.log(torch.exp(sim[i][j] / tau) / denominator))
    return torch.stack(losses).mean()


def assert_same_forward_backward(fn, ref, inputs, dtype):
    out, expected = fn(*inputs), ref(*inputs)
    torch.testing.assert_close(out, expected, **TOL[dtype])
    grads = torch.autograd.grad(out, inputs)
    expected_grads = torch.autograd.grad(expected, inputs)
    for g, e in zip(grads, expected_grads):
        torch.testing.assert_close(g, e, **TOL[dtype])


# --- InfoNCE ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("contiguous", [True, False])
@pytest.mark.parametrize("n", SIZES)
def test_info_nce_matches_cross_entropy(n, contiguous, symmetric, dtype):
    q, k = pairs(n, 5, dtype, contiguous=contiguous)
    assert_same_forward_backward(lambda a, b: info_nce(a, b, 0.07, symmetric=symmetric),
                                 lambda a, b: info_nce_torch(a, b, 0.07, symmetric), (q, k), dtype)


@pytest.mark.parametrize("n", SIZES)
def test_info_nce_matches_per_example_loop(n):
    q, k = pairs(n, 4, torch.float64, seed=1)
    assert_same_forward_backward(lambda a, b: info_nce(a, b, 0.3), lambda a, b: info_nce_loop(a, b, 0.3),
                                 (q, k), torch.float64)


def test_info_nce_options():
    q, k = pairs(6, 3, torch.float64)
    per_example = info_nce(q, k, 0.5, reduction="none")
    assert per_example.shape == (6,)
    torch.testing.assert_close(info_nce(q, k, 0.5, reduction="sum"), per_example.sum())
    logits = q @ k.T / 0.5  # normalize=False: raw dot products
    torch.testing.assert_close(info_nce(q, k, 0.5, normalize=False), F.cross_entropy(logits, torch.arange(6)))
    assert info_nce(q, q.detach().clone(), 0.01) < 1e-6 < info_nce(q, k, 0.01)  # identical views: no loss


def test_info_nce_gradcheck():
    q, k = pairs(3, 4, torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: info_nce(a, b, 0.2, symmetric=True), (q, k))
    logits = torch.randn(5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(info_nce_from_logits, (logits,))


def test_info_nce_is_stable_for_huge_logits():
    logits = torch.tensor([[1e4, 0.0], [0.0, -1e4]], dtype=torch.float32)
    got = info_nce_from_logits(logits, reduction="none")
    torch.testing.assert_close(got, F.cross_entropy(logits, torch.arange(2), reduction="none"))
    assert torch.isfinite(got).all() and got[1] == 1e4


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_info_nce_invariant_to_batch_permutation(n, seed):
    q, k = pairs(n, 4, torch.float64, seed=seed)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(info_nce(q[perm], k[perm], 0.1), info_nce(q, k, 0.1))
    torch.testing.assert_close(info_nce(q, k, 0.1, reduction="none")[perm],
                               info_nce(q[perm], k[perm], 0.1, reduction="none"))


# --- NT-Xent ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("contiguous", [True, False])
@pytest.mark.parametrize("n", SIZES)
def test_nt_xent_matches_loop(n, contiguous, dtype):
    z1, z2 = pairs(n, 6, dtype, seed=2, contiguous=contiguous)
    assert_same_forward_backward(lambda a, b: nt_xent(a, b, 0.5), lambda a, b: nt_xent_loop(a, b, 0.5),
                                 (z1, z2), dtype)


def test_nt_xent_matches_cross_entropy_and_gradcheck():
    z1, z2 = pairs(4, 3, torch.float64, seed=3)
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = (z @ z.T / 0.2).fill_diagonal_(float("-inf"))
    torch.testing.assert_close(nt_xent(z1, z2, 0.2), F.cross_entropy(logits, nt_xent_targets(4)))
    assert torch.autograd.gradcheck(lambda a, b: nt_xent(a, b, 0.2), (z1, z2))


def test_nt_xent_targets_pair_the_views():
    t = nt_xent_targets(3)
    assert t.tolist() == [3, 4, 5, 0, 1, 2]
    assert (t[t] == torch.arange(6)).all()  # an involution without fixed points


# --- NCE ----------------------------------------------------------------------------------------


def nce_loss_bce(data, noise):
    """Gutmann & Hyvärinen as a logistic regression: label 1 for data, 0 for noise, logit r - log k."""
    n, k = noise.shape
    logits = torch.cat([data, noise.flatten()]) - math.log(k)
    labels = torch.cat([torch.ones(n, dtype=data.dtype), torch.zeros(n * k, dtype=data.dtype)])
    return F.binary_cross_entropy_with_logits(logits, labels, reduction="sum") / n


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n, k", [(1, 1), (3, 5), (17, 4)])
def test_nce_loss_matches_bce_with_logits(n, k, dtype):
    gen = torch.Generator().manual_seed(n * 10 + k)
    data = (3 * torch.randn(n, generator=gen, dtype=dtype)).requires_grad_()
    noise = (3 * torch.randn(k, n, generator=gen, dtype=dtype)).T.requires_grad_()  # non-contiguous
    assert_same_forward_backward(nce_loss, nce_loss_bce, (data, noise), dtype)


def test_nce_loss_gradcheck():
    data = torch.randn(3, dtype=torch.float64, requires_grad=True)
    noise = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(nce_loss, (data, noise))


def test_nce_recovers_the_true_log_ratio():
    toy = GaussianToy()
    u = torch.linspace(toy.data_mean - 2 * toy.data_std, toy.data_mean + 2 * toy.data_std, 41, dtype=torch.float64)
    model = fit_log_ratio(toy, n=4000, k=10, seed=0)
    error = (model(u) - toy.log_ratio(u)).abs().max().item()
    # Measured: max error 0.047 (median) to 0.15 (worst) over seeds 0..19 within ±2σ of the data.
    assert error < 0.25
    # The constant is learnt too: NCE self-normalises. A model stuck at r = 0 is far off.
    assert (toy.log_ratio(u)).abs().max() > 1.0


def test_nce_optimum_does_not_depend_on_k():
    """The optimum is r* = log p_d/p_n only because the logit subtracts log k: checked by
    fitting with k = 1 and k = 10 — both must land on the same (true) ratio."""
    toy = GaussianToy()
    u = torch.linspace(0.5, 1.5, 11, dtype=torch.float64)
    one, ten = fit_log_ratio(toy, k=1, n=8000), fit_log_ratio(toy, k=10, n=8000)
    assert (one(u) - ten(u)).abs().max() < 0.25 < math.log(10)


# --- mutual information ---------------------------------------------------------------------


@pytest.mark.parametrize("rho, dim", [(0.0, 1), (0.5, 1), (-0.8, 3), (0.99, 2)])
def test_gaussian_mi_matches_entropies(rho, dim):
    eye = torch.eye(dim, dtype=torch.float64)
    joint = torch.cat([torch.cat([eye, rho * eye], 1), torch.cat([rho * eye, eye], 1)])
    mvn = torch.distributions.MultivariateNormal
    marginal = mvn(torch.zeros(dim, dtype=torch.float64), eye).entropy()
    expected = 2 * marginal - mvn(torch.zeros(2 * dim, dtype=torch.float64), joint).entropy()
    assert gaussian_mi(rho, dim) == pytest.approx(expected.item(), abs=1e-10)


def test_optimal_critic_is_the_log_density_ratio():
    x, y = sample_correlated_gaussians(5, 3, 0.6, torch.Generator().manual_seed(0))
    normal = torch.distributions.Normal
    expected = (normal(0.6 * x[:, None, :], math.sqrt(1 - 0.36)).log_prob(y[None]).sum(-1)
                - normal(0.0, 1.0).log_prob(y).sum(-1)[None])
    torch.testing.assert_close(gaussian_log_density_ratio(x, y, 0.6), expected)


def test_sample_correlated_gaussians_has_the_correlation():
    x, y = sample_correlated_gaussians(20000, 2, 0.7, torch.Generator().manual_seed(0))
    corr = torch.corrcoef(torch.stack([x[:, 0], y[:, 0]]))[0, 1]
    assert corr == pytest.approx(0.7, abs=0.02) and y.std() == pytest.approx(1.0, abs=0.02)


def bounds_loop(scores):
    n = len(scores)
    joint = sum(scores[i, i] for i in range(n)) / n
    marginal = [scores[i, j] for i in range(n) for j in range(n) if i != j]
    nwj = joint - sum(torch.exp(s - 1) for s in marginal) / len(marginal)
    dv = joint - torch.log(sum(torch.exp(s) for s in marginal) / len(marginal))
    nce = sum(math.log(n) + scores[i, i] - torch.log(sum(torch.exp(scores[i]))) for i in range(n)) / n
    return nce, nwj, dv


@pytest.mark.parametrize("n", [2, 3, 17])
def test_bounds_match_loops(n):
    scores = torch.randn(n, n, dtype=torch.float64) + 2 * torch.eye(n, dtype=torch.float64)
    for got, expected in zip((infonce_bound(scores), nwj_bound(scores), dv_bound(scores)), bounds_loop(scores)):
        torch.testing.assert_close(got, expected)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 20), scale=st.floats(0.1, 50.0), seed=st.integers(0, 2**16))
def test_infonce_bound_never_exceeds_log_n_and_nwj_below_dv(n, scale, seed):
    gen = torch.Generator().manual_seed(seed)
    scores = scale * torch.randn(n, n, generator=gen, dtype=torch.float64) + scale * torch.eye(n, dtype=torch.float64)
    assert infonce_bound(scores) <= math.log(n) + 1e-12
    assert nwj_bound(scores) <= dv_bound(scores) + 1e-9  # z/e >= log z


def test_infonce_with_optimal_critic_tracks_min_of_mi_and_log_n():
    gen = torch.Generator().manual_seed(0)
    # Measured over seeds 0..29: |estimate - I| <= 0.16 when I << log N; the estimate sits
    # 0.03..0.12 below log N when I >> log N.
    x, y = sample_correlated_gaussians(512, 2, 0.5, gen)
    scores = gaussian_log_density_ratio(x, y, 0.5)
    assert infonce_bound(scores).item() == pytest.approx(gaussian_mi(0.5, 2), abs=0.25)
    assert nwj_bound(scores + 1).item() == pytest.approx(gaussian_mi(0.5, 2), abs=0.25)
    x, y = sample_correlated_gaussians(512, 5, 0.99, gen)
    big = infonce_bound(gaussian_log_density_ratio(x, y, 0.99)).item()
    assert gaussian_mi(0.99, 5) > 9.0 and math.log(512) - 0.25 < big <= math.log(512)


def test_trained_critic_learns_a_positive_bound():
    _, history = train_critic(0.8, 2, batch=64, steps=120)
    late = sum(history[-30:]) / 30
    assert abs(sum(history[:5]) / 5) < 0.3  # untrained: about 0
    assert late > 0.6 * gaussian_mi(0.8, 2) and late <= math.log(64)


# --- errors -------------------------------------------------------------------------------------


def test_bad_inputs_are_named():
    q = torch.randn(4, 3)
    with pytest.raises(TypeError, match="queries must be Tensor; got list"):
        info_nce([[1.0]], q)
    with pytest.raises(ValueError, match=r"keys must have 2 dims; got shape \(4,\)"):
        info_nce(q, torch.randn(4))
    with pytest.raises(ValueError, match="keys has N=5 .* but an earlier argument has N=4"):
        info_nce(q, torch.randn(5, 3))
    with pytest.raises(TypeError, match="queries, keys must have the same dtype"):
        info_nce(q, q.double())
    with pytest.raises(TypeError, match="queries must have a floating-point dtype; got torch.int64"):
        info_nce(q.long(), q.long())
    with pytest.raises(ValueError, match=r"temperature must be a number in \(0.0, inf\]; got 0"):
        info_nce(q, q, 0)
    with pytest.raises(ValueError, match="reduction must be one of 'mean', 'sum', 'none'; got 'max'"):
        nt_xent(q, q, reduction="max")
    with pytest.raises(ValueError, match=r"logits must have 2 dims \(N, N\); got shape \(2, 3\)|logits has N=3"):
        info_nce_from_logits(torch.randn(2, 3))
    with pytest.raises(ValueError, match="noise_log_ratio has N=2 .* earlier argument has N=3"):
        nce_loss(torch.randn(3), torch.randn(2, 4))
    with pytest.raises(ValueError, match=r"noise_log_ratio must have 2 dims; got shape \(3,\)"):
        nce_loss(torch.randn(3), torch.randn(3))
    with pytest.raises(ValueError, match=r"rho must be a number in \(-1, 1\)"):
        gaussian_mi(1.0)
    with pytest.raises(ValueError, match=r"rho must be a number in \(-1, 1\) .*; got -1.0"):
        gaussian_mi(-1)
    with pytest.raises(TypeError, match="rho must be a real number; got str"):
        gaussian_mi("0.5")
    with pytest.raises(ValueError, match=r"dim must be an int in \[1, inf\]; got 0"):
        gaussian_mi(0.5, 0)
    with pytest.raises(ValueError, match="scores must be at least 2×2"):
        infonce_bound(torch.zeros(1, 1))
    with pytest.raises(ValueError, match=r"n must be an int in \[0, inf\]; got -1"):
        nt_xent_targets(-1)
    assert nt_xent_targets(0).shape == (0,)


# --- the widget -----------------------------------------------------------------------------


def test_info_nce_state_is_pure_and_states_the_numbers():
    """The state, without matplotlib: loss, bound, hits and probabilities from the same batch."""
    state = info_nce_state(temperature=0.2, rho=0.8, n=8)
    x, y = sample_correlated_gaussians(8, 8, 0.8, torch.Generator().manual_seed(0))
    assert state.loss == info_nce(x, y, 0.2).item() and state.log_n == math.log(8)
    assert state.bound == pytest.approx(math.log(8) - state.loss, abs=0)
    assert state.true_mi == gaussian_mi(0.8, 8)
    assert torch.allclose(state.probs.sum(1), torch.ones(8, dtype=state.probs.dtype))
    assert state.hits == int((state.similarity.argmax(1) == torch.arange(8)).sum())
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.loss = 0.0  # type: ignore[misc]
    strong = info_nce_state(temperature=0.2, rho=0.99, n=8)  # more correlation: every row picks its positive
    assert strong.hits == 8 and strong.loss < state.loss
    assert math.log(8) - 0.1 < info_nce_state(temperature=10.0).loss < math.log(8)  # flat rows: loss → log N
    for bad, kind, match in [({"n": 1}, ValueError, r"n must be an int in \[2, 32\]; got 1"),
                             ({"temperature": 0.0}, ValueError, "temperature"),
                             ({"rho": 1.0}, ValueError, "rho"), ({"seed": 0.5}, TypeError, "seed must be an int")]:
        with pytest.raises(kind, match=match):
            info_nce_state(**bad)


def test_info_nce_view_caption_states_the_numbers():
    view = info_nce_view(temperature=0.2, rho=0.8, n=8)
    state = info_nce_state(temperature=0.2, rho=0.8, n=8)
    assert view.figure.axes and "N = 8 pairs" in view.caption and "log N = 2.0794" in view.caption
    assert f"InfoNCE loss = {state.loss:.4f}" in view.caption and "τ = 0.2\n" in view.caption
    assert f"log N - loss = {state.bound:.4f}" in view.caption
    assert f"true MI = {state.true_mi:.4f}" in view.caption
    ticks = view.figure.axes[0].get_xticks()
    assert all(float(t).is_integer() for t in ticks)  # integer axes: whole keys
    assert "8/8" in info_nce_view(temperature=0.2, rho=0.99, n=8).caption


def test_info_nce_widget_moves_headlessly_on_the_stated_values():
    w = info_nce_widget()
    assert w.controls["temperature"].value == 0.2 and "τ = 0.2\n" in w.caption.value  # not 0.1995
    caption, image = w.caption.value, w.image.value
    w.controls["temperature"].value = 1.0
    assert w.caption.value != caption and w.image.value != image and "τ = 1\n" in w.caption.value
    assert list(w.controls["temperature"].options) == list(TEMPERATURES)
    caption = w.caption.value
    w.controls["rho"].value = 0.1
    assert w.caption.value != caption and "ρ = 0.10" in w.caption.value
    w.controls["n"].value = 16
    assert "N = 16 pairs" in w.caption.value and w.renders == 4
    with pytest.raises(ValueError, match="temperature must be one of"):
        info_nce_widget(temperature=0.3)


# --- exercises ------------------------------------------------------------------------------


def _correct_info_nce(similarity, temperature):
    return F.cross_entropy(similarity / temperature, torch.arange(len(similarity)))


def _wrong_no_temperature(similarity, temperature):
    return F.cross_entropy(similarity, torch.arange(len(similarity)))


def _wrong_overflow(similarity, temperature):
    e = torch.exp(similarity / temperature)
    return -torch.log(e.diagonal() / e.sum(1)).mean()


def _wrong_columns(similarity, temperature):
    return F.cross_entropy(similarity.T / temperature, torch.arange(len(similarity)))


@pytest.mark.parametrize("exercise, right, wrongs", [
    (ex.info_nce_from_similarity, _correct_info_nce, [_wrong_no_temperature, _wrong_overflow, _wrong_columns]),
    (ex.nt_xent_positives,
     lambda n: torch.cat([torch.arange(n, 2 * n), torch.arange(n)]),
     [lambda n: torch.arange(2 * n).flip(0), lambda n: (torch.arange(2 * n) + 1) % (2 * n)]),
    (ex.gaussian_mi_formula,
     lambda rho, dim: dim * (-0.5) * math.log1p(-rho**2),
     [lambda rho, dim: -0.5 * math.log(1 - rho**2), lambda rho, dim: -dim * math.log(1 - rho**2),
      lambda rho, dim: -0.5 * dim * math.log(1 - abs(rho))]),
    (ex.infonce_bound,
     lambda scores: math.log(len(scores)) - F.cross_entropy(scores, torch.arange(len(scores))),
     [lambda scores: -F.cross_entropy(scores, torch.arange(len(scores))),
      lambda scores: math.log(len(scores)) - F.cross_entropy(scores.T * 2, torch.arange(len(scores))),
      lambda scores: math.log(len(scores) - 1) - F.cross_entropy(scores, torch.arange(len(scores)))]),
])
def test_exercises_accept_right_and_reject_wrong(exercise, right, wrongs):
    assert exercise.check(right, quiet=True).passed
    for wrong in wrongs:
        result = exercise.check(wrong, quiet=True)
        assert not result.passed and result.attempted and result.failing_case is not None
        assert "wrong on" in result.message and "expected:" in result.message


def test_exercise_stub_is_not_attempted():
    def stub(**_):
        raise NotImplementedError

    for exercise in ex.ALL:
        result = exercise.check(stub, quiet=True)
        assert not result.attempted and "not attempted yet" in result.message


# --- the notebook's MI experiment (course_lib.contrastive.experiment) -------------------------------


def test_optimal_bounds_spread_infonce_is_tight_nwj_and_dv_are_noisy():
    from course_lib.contrastive.experiment import optimal_bounds

    low, high = optimal_bounds(0.3, 64, batches=8), optimal_bounds(0.99, 64, batches=8)
    assert len(high.infonce) == len(high.nwj) == len(high.dv) == 8
    assert high.true_mi == gaussian_mi(0.99, 4)
    assert high.mean("infonce") <= math.log(64)  # the ceiling
    assert high.std("infonce") < 0.1 < 0.5 < min(high.std("nwj"), high.std("dv"))
    assert abs(low.mean("infonce") - low.true_mi) < 0.15
    with pytest.raises(ValueError, match="bound must be one of"):
        high.mean("mine")
    with pytest.raises(ValueError, match=r"batches must be an int in \[2, inf\]"):
        optimal_bounds(0.5, 8, batches=1)
