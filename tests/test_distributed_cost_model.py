"""Tests for course_lib.distributed.cost_model: the α-β model of a ring all-reduce and its fit.

The fit is checked on synthetic timings with known α and β (exact, with noise, with one
coefficient zero), on its edge cases and bad input. Real timings are never asserted here.
"""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.distributed import AlphaBetaFit, fit_alpha_beta, ring_time

SIZES = [2**12, 2**14, 2**16, 2**18, 2**20, 2**22, 2**24]


def _synthetic(alpha: float, beta: float, ps: list[int], noise: float = 0.0, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    rows = [(n, p) for p in ps for n in SIZES]
    factors = (1 + noise * torch.randn(len(rows), generator=gen, dtype=torch.float64)).tolist()
    seconds = [ring_time(n, p, alpha, beta) * f for (n, p), f in zip(rows, factors)]
    return [n for n, _ in rows], [p for _, p in rows], seconds


def test_ring_time_is_the_textbook_formula() -> None:
    assert ring_time(1000, 4, 1e-5, 1e-9) == pytest.approx(6e-5 + 1.5e-6)
    assert ring_time(1000, 1, 1e-5, 1e-9) == 0.0  # one rank: nothing to send
    assert ring_time(0, 8, 2e-6, 1e-9) == pytest.approx(14 * 2e-6)  # latency only
    # bandwidth term bounded by 2 n β whatever p
    assert ring_time(10**9, 1000, 0.0, 1e-9) < 2.0


@pytest.mark.parametrize("ps", [[2], [2, 4], [2, 3, 5, 8]])
@pytest.mark.parametrize("relative", [True, False])
def test_fit_recovers_known_alpha_and_beta(ps: list[int], relative: bool) -> None:
    alpha, beta = 35e-6, 1 / 3.2e9  # 35 µs, 3.2 GB/s
    fit = fit_alpha_beta(*_synthetic(alpha, beta, ps), relative=relative)
    assert isinstance(fit, AlphaBetaFit)
    assert fit.alpha == pytest.approx(alpha, rel=1e-9) and fit.beta == pytest.approx(beta, rel=1e-9)
    assert fit.alpha_us == pytest.approx(35.0) and fit.bandwidth_gb_s == pytest.approx(3.2)
    assert max(abs(e) for e in fit.relative_errors) < 1e-9
    assert fit.predict(2**20, 4) == pytest.approx(ring_time(2**20, 4, alpha, beta))


def test_fit_with_noise_is_close_and_reports_its_errors() -> None:
    alpha, beta = 50e-6, 1e-9
    nbytes, ps, seconds = _synthetic(alpha, beta, [2, 4], noise=0.05, seed=3)
    fit = fit_alpha_beta(nbytes, ps, seconds)
    assert fit.alpha == pytest.approx(alpha, rel=0.15) and fit.beta == pytest.approx(beta, rel=0.15)
    expected = [(fit.predict(n, p) - t) / t for n, p, t in zip(nbytes, ps, seconds)]
    assert fit.relative_errors == pytest.approx(expected)
    assert max(abs(e) for e in fit.relative_errors) < 0.25


def test_fit_never_returns_a_negative_coefficient() -> None:
    """Pure bandwidth timings plus noise would give α < 0 unconstrained; the fit clamps it to 0."""
    nbytes, ps, _ = _synthetic(0.0, 1e-9, [2])
    seconds = [ring_time(n, p, 0.0, 1e-9) * (0.7 if n == SIZES[0] else 1.0) for n, p in zip(nbytes, ps)]
    unconstrained = torch.linalg.lstsq(
        torch.tensor([[2.0 * (p - 1) / t, 2.0 * (p - 1) / p * n / t] for n, p, t in zip(nbytes, ps, seconds)],
                     dtype=torch.float64), torch.ones(len(seconds), 1, dtype=torch.float64)).solution
    assert unconstrained[0, 0] < 0  # the case the constraint exists for
    fit = fit_alpha_beta(nbytes, ps, seconds)
    assert fit.alpha == 0.0 and fit.beta > 0
    latency_only = fit_alpha_beta([1, 2, 3], [2, 2, 2], [1e-4, 1e-4, 1e-4])
    assert latency_only.beta == 0.0 and latency_only.alpha_us == pytest.approx(50.0, rel=1e-3)
    assert math.isinf(latency_only.bandwidth_gb_s)


@pytest.mark.parametrize("args, error, match", [
    (([1, 2], [2], [1.0, 2.0]), ValueError, "same length"),
    (([1], [2], [1.0]), ValueError, "at least 2 timings"),
    (([1, 2], [1, 2], [1.0, 2.0]), ValueError, r"world_sizes\[0\] must be an int in \[2, inf\]; got 1"),
    (([1, 2], [2, 2], [1.0, 0.0]), ValueError, r"seconds\[1\] must be a number in \(0.0, inf\]"),
    (([1, -2], [2, 2], [1.0, 1.0]), ValueError, r"nbytes\[1\] must be a number in \[0.0, inf\]"),
    (([1, 2], [2, 2], [1.0, float("nan")]), ValueError, r"seconds\[1\]"),
    (([2, 4], [2, 4], [1.0, 2.0]), ValueError, "at least 2 different message sizes"),
    (([1, 2], [2, 2.5], [1.0, 2.0]), TypeError, r"world_sizes\[1\] must be an int"),
    (([1, "2"], [2, 2], [1.0, 2.0]), TypeError, r"nbytes\[1\] must be a real number"),
])
def test_fit_rejects_bad_input(args, error, match) -> None:
    with pytest.raises(error, match=match):
        fit_alpha_beta(*args)


def test_ring_time_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"world_size must be an int in \[1, inf\]; got 0"):
        ring_time(10, 0, 1e-6, 1e-9)
    with pytest.raises(ValueError, match=r"alpha must be a number in \[0.0, inf\]"):
        ring_time(10, 2, -1e-6, 1e-9)
    with pytest.raises(TypeError, match="relative must be bool"):
        fit_alpha_beta([1, 2], [2, 2], [1.0, 2.0], relative=1)
