"""Mutual information: the Gaussian ground truth and lower bounds estimated from critic scores.

Paper: Poole, Ozair, van den Oord, Alemi & Tucker, *On Variational Bounds of Mutual
Information* (ICML 2019); Belghazi et al., *MINE* (ICML 2018); Nguyen, Wainwright & Jordan
(NWJ, 2010); van den Oord et al. (CPC, 2018).

The ground truth. ``X, Y ∈ R^d`` standard normal with ``corr(X_m, Y_m) = ρ`` per coordinate
(independent coordinates)::

    I(X; Y) = -d/2 · log(1 - ρ²)

The bounds. A *critic* ``f(x, y)`` scores pairs; ``scores[i, j] = f(x_i, y_j)`` on a batch of
``N`` samples from the joint, so the diagonal holds joint pairs and the off-diagonal pairs are
(nearly) samples of ``p(x)p(y)``::

    InfoNCE  I ≥ log N - (1/N) Σ_i [logsumexp_j f(x_i, y_j) - f(x_i, y_i)]        (≤ log N always)
    NWJ      I ≥ E_p[f] - e^{-1} E_{p(x)p(y)}[e^f]
    DV/MINE  I ≥ E_p[f] - log E_{p(x)p(y)}[e^f]         (a biased estimate in a mini-batch)

InfoNCE's loss is non-negative, so its bound can never exceed ``log N``: a batch of 64 cannot
certify more than 4.16 nats, however much information there is. NWJ has no such ceiling but its
variance grows like ``e^I``. The optimal critic for NWJ is ``1 + log p(y|x)/p(y)``;
:func:`gaussian_log_density_ratio` gives ``log p(y|x)/p(y)`` in closed form, which is optimal
for InfoNCE as well (any function of ``x`` alone may be added).

Differences from Poole et al.: NWJ and DV use every off-diagonal pair of the batch as a
marginal sample (as their code does); the diagonal is excluded. Limitations: estimators only, no
bias correction (MINE's moving average); the critic for the notebook's experiment is a small
separable MLP (:class:`SeparableCritic`).

Notebook: ``06_self_supervised`` §4 (MI). Tests: ``tests/test_contrastive.py``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from course_lib import _checks, runtime
from course_lib._export import export
from course_lib.contrastive.losses import info_nce_from_logits
from course_lib.runtime import one_thread


@export("contrastive.gaussian_mi")
def gaussian_mi(rho: float, dim: int = 1) -> float:
    """``I(X; Y) = -dim/2 · log(1 - ρ²)`` nats, for ``dim`` independent pairs with correlation ``ρ``.

    Raises:
        TypeError / ValueError: ``rho`` not a number in (-1, 1); ``dim`` not a positive int.
    """
    rho = _checks.real("rho", rho)
    if not -1.0 < rho < 1.0:
        raise ValueError(f"rho must be a number in (-1, 1) (the MI is infinite at ±1); got {rho}")
    dim = _checks.integer("dim", dim, minimum=1)
    return -0.5 * dim * math.log1p(-rho * rho)


@export("contrastive.sample_correlated_gaussians")
def sample_correlated_gaussians(
    n: int, dim: int, rho: float, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` joint samples: ``x ~ N(0, I)``, ``y = ρ x + √(1 - ρ²) ε``; two ``Tensor[n, dim]``."""
    n = _checks.integer("n", n, minimum=1)
    dim = _checks.integer("dim", dim, minimum=1)
    gaussian_mi(rho, dim)  # validates rho
    x = torch.randn(n, dim, generator=generator, dtype=dtype)
    eps = torch.randn(n, dim, generator=generator, dtype=dtype)
    return x, rho * x + math.sqrt(1.0 - rho * rho) * eps


@export("contrastive.gaussian_log_density_ratio")
def gaussian_log_density_ratio(x: torch.Tensor, y: torch.Tensor, rho: float) -> torch.Tensor:
    """The optimal critic's scores ``log p(y_j | x_i) / p(y_j)`` for every pair.

    Args:
        x (Tensor[N, D]), y (Tensor[M, D]): samples of :func:`sample_correlated_gaussians`.
        rho: their correlation.

    Returns:
        Tensor[N, M] of scores; its mean over a joint sample's diagonal is ``I(X; Y)``.
    """
    _checks.tensor("x", x, ndim=2, floating=True)
    _checks.tensor("y", y, ndim=2, floating=True)
    dims = _checks.shape("x", x, "N D")
    _checks.shape("y", y, "M D", dims)
    mi = gaussian_mi(rho, dims["D"])
    var = 1.0 - rho * rho  # the conditional variance of y given x
    sq = torch.cdist(rho * x, y) ** 2  # (N, M): |y_j - ρ x_i|²
    return mi - sq / (2 * var) + (y * y).sum(1)[None, :] / 2  # (N, M)


def _check_scores(scores: torch.Tensor) -> int:
    _checks.tensor("scores", scores, ndim=2, floating=True)
    n = _checks.shape("scores", scores, "N N")["N"]
    if n < 2:
        raise ValueError(f"scores must be at least 2×2 (the off-diagonal pairs are the negatives); got {n}×{n}")
    return n


def _off_diagonal(scores: torch.Tensor) -> torch.Tensor:
    n = len(scores)
    return scores.masked_select(~torch.eye(n, dtype=torch.bool, device=scores.device))  # (N(N-1),)


@export("contrastive.infonce_bound")
def infonce_bound(scores: torch.Tensor) -> torch.Tensor:
    """InfoNCE's lower bound ``log N - InfoNCE loss`` from ``scores (Tensor[N, N])``; never above ``log N``."""
    n = _check_scores(scores)
    return math.log(n) - info_nce_from_logits(scores)


@export("contrastive.nwj_bound")
def nwj_bound(scores: torch.Tensor) -> torch.Tensor:
    """NWJ's bound ``E_p[f] - e^{-1} E_{p(x)p(y)}[e^f]`` from ``scores (Tensor[N, N])``."""
    _check_scores(scores)
    # e^{f - 1} rather than e^{-1}·e^f: the same number, one exp of a smaller argument.
    return scores.diagonal().mean() - torch.exp(_off_diagonal(scores) - 1.0).mean()


@export("contrastive.dv_bound")
def dv_bound(scores: torch.Tensor) -> torch.Tensor:
    """Donsker–Varadhan (MINE) ``E_p[f] - log E_{p(x)p(y)}[e^f]`` from ``scores (Tensor[N, N])``."""
    _check_scores(scores)
    off = _off_diagonal(scores)
    return scores.diagonal().mean() - (torch.logsumexp(off, dim=0) - math.log(off.numel()))


@export("contrastive.SeparableCritic")
class SeparableCritic(nn.Module):
    """``f(x, y) = g(x)·h(y)``: two small MLPs, all ``N²`` scores in one matrix product."""

    def __init__(self, dim: int, hidden: int = 64, embed: int = 16) -> None:
        super().__init__()

        def mlp() -> nn.Sequential:
            return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, embed))

        self.g, self.h = mlp(), mlp()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.g(x) @ self.h(y).T  # (N, M)


@export("contrastive.train_critic")
def train_critic(
    rho: float, dim: int, batch: int = 64, steps: int = 300, lr: float = 3e-3, seed: int = 0,
    device: torch.device | None = None,
) -> tuple[SeparableCritic, list[float]]:
    """Train a :class:`SeparableCritic` by maximising the InfoNCE bound on correlated Gaussians.

    The samples are drawn on the CPU (reproducible everywhere) and moved to ``device``
    (default :func:`course_lib.runtime.device`: CUDA when present).

    Returns:
        The critic and the bound after each step (a fresh batch every step).
    """
    steps = _checks.integer("steps", steps, minimum=1)
    batch = _checks.integer("batch", batch, minimum=2)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    dev = runtime.device() if device is None else torch.device(device)
    critic = SeparableCritic(dim).double().to(dev)
    opt = torch.optim.Adam(critic.parameters(), lr=lr)
    history = []
    with one_thread():
        for _ in range(steps):
            x, y = sample_correlated_gaussians(batch, dim, rho, gen)
            bound = infonce_bound(critic(x.to(dev), y.to(dev)))
            opt.zero_grad()
            (-bound).backward()
            opt.step()
            history.append(bound.item())
    return critic, history
