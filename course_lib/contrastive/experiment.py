"""The chapter's MI experiment: three lower bounds on correlated Gaussians, their means *and* spreads.

For pairs of ``d``-dimensional Gaussians with per-coordinate correlation ``ρ`` the mutual
information is known (:func:`~course_lib.contrastive.mi.gaussian_mi`) and so is the optimal
critic ``log p(y|x)/p(y)`` (:func:`~course_lib.contrastive.mi.gaussian_log_density_ratio`).
:func:`optimal_bounds` evaluates the InfoNCE, NWJ and DV bounds with that critic on ``batches``
independent batches of ``N`` pairs and keeps every batch's value, so the notebook can show the
spread (error bars), not only the mean: with no learning involved, any gap or noise is the
bound's own. NWJ's optimal critic is ``1 + log-ratio`` (Poole et al. 2019, §2.2); InfoNCE and
DV are invariant to that shift. :func:`trained_bound` does the same for a learnt separable
critic (:func:`~course_lib.contrastive.mi.train_critic`).

Measured (``06_self_supervised`` §4, d = 4, N = 64, 20 batches): InfoNCE's spread stays a few
hundredths of a nat at every ρ, while NWJ's and DV's grow with the MI (about ±1–2 nats at
ρ = 0.99), because both average ``e^f`` over the negatives — a quantity whose variance grows
like ``e^I`` (McAllester & Stratos 2020; Song & Ermon 2020).

Reached as ``course_lib.contrastive.experiment.<name>`` (not re-exported by the package).
Notebook: ``06_self_supervised`` §4. Tests: ``tests/test_contrastive.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from course_lib import _checks, runtime
from course_lib._export import export
from course_lib.contrastive.mi import (
    dv_bound,
    gaussian_log_density_ratio,
    gaussian_mi,
    infonce_bound,
    nwj_bound,
    sample_correlated_gaussians,
    train_critic,
)

BOUNDS = ("infonce", "nwj", "dv")


@export("contrastive.experiment.BoundSpread")
@dataclass(frozen=True)
class BoundSpread:
    """Every batch's value of the three bounds at one ``(ρ, N)``."""

    rho: float  # per-coordinate correlation
    n: int  # pairs per batch
    true_mi: float  # -d/2 log(1 - ρ²), nats
    infonce: torch.Tensor  # Tensor[batches]: log N - InfoNCE loss, per batch
    nwj: torch.Tensor  # Tensor[batches]: NWJ with critic 1 + log-ratio
    dv: torch.Tensor  # Tensor[batches]: Donsker–Varadhan

    def mean(self, bound: str) -> float:
        """The mean over batches of ``bound`` (one of ``BOUNDS``)."""
        return getattr(self, _checks.one_of("bound", bound, BOUNDS)).mean().item()

    def std(self, bound: str) -> float:
        """The standard deviation over batches (unbiased) of ``bound``."""
        return getattr(self, _checks.one_of("bound", bound, BOUNDS)).std().item()


@export("contrastive.experiment.optimal_bounds")
def optimal_bounds(rho: float, n: int, dim: int = 4, batches: int = 20, seed: int = 0) -> BoundSpread:
    """The three bounds with the optimal critic on ``batches`` fresh batches of ``n`` pairs.

    Raises:
        ValueError / TypeError: ``rho`` outside [0, 1), ``n < 2``, ``batches < 2`` (a spread needs two).
    """
    n = _checks.integer("n", n, minimum=2)
    batches = _checks.integer("batches", batches, minimum=2)
    gen = torch.Generator().manual_seed(seed)
    values: dict[str, list[float]] = {b: [] for b in BOUNDS}
    for _ in range(batches):
        x, y = sample_correlated_gaussians(n, dim, rho, gen)
        scores = gaussian_log_density_ratio(x, y, rho)  # (n, n)
        values["infonce"].append(infonce_bound(scores).item())
        values["nwj"].append(nwj_bound(scores + 1).item())  # NWJ's optimal critic is 1 + log-ratio
        values["dv"].append(dv_bound(scores).item())
    as_tensor = {b: torch.tensor(v, dtype=torch.float64) for b, v in values.items()}
    return BoundSpread(rho=rho, n=n, true_mi=gaussian_mi(rho, dim), **as_tensor)


@export("contrastive.experiment.trained_bound")
def trained_bound(rho: float, dim: int = 4, batch: int = 64, steps: int = 200, batches: int = 20,
                  seed: int = 123) -> torch.Tensor:
    """InfoNCE bound of a critic trained for ``steps`` Adam steps, on ``batches`` held-out batches.

    Returns:
        Tensor[batches]: the bound on each held-out batch (drawn with ``seed``, unseen in training).
    """
    critic, _ = train_critic(rho, dim, batch=batch, steps=steps)
    gen = torch.Generator().manual_seed(seed)
    dev = runtime.device()
    out = []
    with torch.no_grad():
        for _ in range(batches):
            x, y = sample_correlated_gaussians(batch, dim, rho, gen)
            out.append(infonce_bound(critic(x.to(dev), y.to(dev))).item())
    return torch.tensor(out, dtype=torch.float64)
