"""The α-β cost model of a ring all-reduce, and its least-squares fit to measured timings.

Hockney's model of one message of ``n`` bytes: ``t = α + n β`` — a fixed latency ``α`` (seconds)
plus ``β`` seconds per byte (``1/β`` is the link's bandwidth). A ring all-reduce on ``p`` ranks
runs ``2(p-1)`` steps (reduce-scatter, then all-gather), each sending one chunk of ``n/p`` bytes
to the right neighbour while receiving one from the left, all links busy at once, so

    t(n, p) = 2(p-1) · α  +  2(p-1)/p · n · β

(Thakur, Rabenseifner & Gropp, "Optimization of Collective Communication Operations in MPICH",
IJHPCA 2005, section 4 and table 1; Patarasuk & Yuan, JPDC 2009). The first term is the
*latency* term — it grows with ``p`` and dominates small messages; the second the *bandwidth*
term, bounded by ``2 n β`` whatever ``p``.

:func:`ring_time` evaluates the model; :func:`fit_alpha_beta` fits ``α`` and ``β`` to measured
``(n, p, t)`` triples by least squares. The model is linear in ``(α, β)`` with features
``x_α = 2(p-1)`` and ``x_β = 2(p-1)/p · n``; by default every row is divided by its measured
``t``, so the fit minimises *relative* errors — timings that span four orders of magnitude would
otherwise be fitted to the largest message only. Both coefficients are constrained to be
``≥ 0`` (a negative latency has no meaning): when the unconstrained solution has a negative
one, the better of the two one-coefficient fits is taken.

Differences from the MPICH analysis: no ``γ`` term (seconds per byte *reduced*): on CPU
processes the additions are part of what ``β`` measures, so the fitted ``1/β`` is an
"effective bandwidth", not the loopback link's; Python's per-step overhead is part of ``α``.

Notebook: ``04_ddp`` ("An α-β model fitted to our timings"). Tests:
``tests/test_distributed_cost_model.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from course_lib import _checks
from course_lib._export import export


@export("distributed.ring_time")
def ring_time(nbytes: float, world_size: int, alpha: float, beta: float) -> float:
    """Seconds the α-β model predicts for a ring all-reduce: ``2(p-1) α + 2(p-1)/p · n β``.

    Args:
        nbytes: message size ``n`` in bytes (``≥ 0``).
        world_size: ranks ``p`` (``≥ 1``; one rank costs nothing).
        alpha: latency per step, seconds (``≥ 0``).
        beta: seconds per byte (``≥ 0``; ``1/β`` is the bandwidth in bytes per second).

    Returns:
        The predicted time in seconds.

    Raises:
        TypeError, ValueError: an argument of the wrong type or out of range.
    """
    n = _checks.real("nbytes", nbytes, minimum=0.0)
    p = _checks.integer("world_size", world_size, minimum=1)
    a = _checks.real("alpha", alpha, minimum=0.0)
    b = _checks.real("beta", beta, minimum=0.0)
    return 2 * (p - 1) * a + 2 * (p - 1) / p * n * b


@export("distributed.AlphaBetaFit")
@dataclass(frozen=True)
class AlphaBetaFit:
    """The fitted ``α`` and ``β`` and how well they explain the timings they came from."""

    alpha: float  # latency per ring step, seconds
    beta: float  # seconds per byte
    relative_errors: tuple[float, ...]  # (model - measured) / measured, one per timing, input order

    @property
    def alpha_us(self) -> float:
        """``α`` in microseconds."""
        return 1e6 * self.alpha

    @property
    def bandwidth_gb_s(self) -> float:
        """``1/β`` in GB/s (10⁹ bytes per second); ``inf`` when ``β = 0``."""
        return float("inf") if self.beta == 0 else 1e-9 / self.beta

    def predict(self, nbytes: float, world_size: int) -> float:
        """The fitted model's time in seconds (:func:`ring_time` with this ``α``, ``β``)."""
        return ring_time(nbytes, world_size, self.alpha, self.beta)


def _least_squares(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Non-negative least squares for 2 unknowns: the unconstrained solution, or the best on a face."""
    # features (M, 2), target (M,), float64
    solution = torch.linalg.lstsq(features, target.unsqueeze(1)).solution.squeeze(1)  # (2,)
    if bool((solution >= 0).all()):
        return solution
    best, best_residual = torch.zeros(2, dtype=features.dtype), float(target.square().sum())
    for j in range(2):  # the optimum lies on a face: one coefficient 0, the other ≥ 0
        column = features[:, j]
        denominator = float(column.square().sum())
        value = max(0.0, float(column @ target) / denominator) if denominator > 0 else 0.0
        residual = float((target - value * column).square().sum())
        if residual < best_residual:
            best, best_residual = torch.zeros(2, dtype=features.dtype), residual
            best[j] = value
    return best


@export("distributed.fit_alpha_beta")
def fit_alpha_beta(nbytes: Sequence[float], world_sizes: Sequence[int], seconds: Sequence[float],
                   relative: bool = True) -> AlphaBetaFit:
    """Fit ``t(n, p) = 2(p-1) α + 2(p-1)/p · n β`` to measured ring all-reduce timings.

    Args:
        nbytes: message size of each timing, bytes.
        world_sizes: ranks ``p ≥ 2`` of each timing (one rank sends nothing: no information).
        seconds: the measured times (``> 0``), e.g. medians from :func:`course_lib.timing.compare`.
        relative: minimise relative errors (each row divided by its time; the default) instead
            of absolute ones.

    Returns:
        An :class:`AlphaBetaFit` with ``α ≥ 0``, ``β ≥ 0`` and the fit's relative error on each
        timing.

    Raises:
        ValueError: lengths differ, fewer than 2 timings, ``p < 2``, ``n < 0``, a time ``≤ 0``,
            or only one distinct ``2(p-1)/p · n`` — α and β could not be told apart.
        TypeError: a value is not a number.

    Example:
        >>> fit = fit_alpha_beta([1e3, 1e6, 1e3, 1e6], [2, 2, 4, 4], [2.1e-5, 1.02e-3, 6.15e-5, 1.56e-3])
        >>> round(fit.alpha_us, 3), round(fit.bandwidth_gb_s, 3)
        (10.0, 1.0)
    """
    _checks.instance("relative", relative, bool)
    lengths = {"nbytes": len(nbytes), "world_sizes": len(world_sizes), "seconds": len(seconds)}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"nbytes, world_sizes and seconds must have the same length; got {lengths}")
    if lengths["seconds"] < 2:
        raise ValueError(f"fit_alpha_beta needs at least 2 timings to fit 2 unknowns; got {lengths['seconds']}")
    n = [_checks.real(f"nbytes[{i}]", v, minimum=0.0) for i, v in enumerate(nbytes)]
    p = [_checks.integer(f"world_sizes[{i}]", v, minimum=2) for i, v in enumerate(world_sizes)]
    t = torch.tensor([_checks.real(f"seconds[{i}]", v, minimum=0.0, open_min=True)
                      for i, v in enumerate(seconds)], dtype=torch.float64)  # (M,)
    features = torch.tensor([[2.0 * (pi - 1), 2.0 * (pi - 1) / pi * ni] for ni, pi in zip(n, p)],
                            dtype=torch.float64)  # (M, 2): x_alpha, x_beta
    if len({round(float(x), 12) for x in features[:, 1] / features[:, 0]}) < 2:
        raise ValueError("fit_alpha_beta needs timings of at least 2 different message sizes n/p "
                         f"to separate α from β; got nbytes={sorted(set(n))}, world_sizes={sorted(set(p))}")
    weight = 1.0 / t if relative else torch.ones_like(t)  # (M,)
    alpha, beta = (float(v) for v in _least_squares(features * weight.unsqueeze(1), t * weight))
    model = features @ torch.tensor([alpha, beta], dtype=torch.float64)  # (M,)
    return AlphaBetaFit(alpha, beta, tuple(float(e) for e in (model - t) / t))
