"""Noise-contrastive estimation: learn a density ratio by telling data from noise.

Paper: Gutmann & Hyvärinen, *Noise-contrastive estimation: A new estimation principle for
unnormalized statistical models* (AISTATS 2010).

The math. A model outputs an unnormalised log-density ratio ``r(u) ≈ log p_data(u) / p_noise(u)``.
For every data point ``x_i`` draw ``k`` noise points ``y_ij ~ p_noise``. A logistic classifier
with logit ``G(u) = r(u) - log k`` (the prior odds of data vs noise are ``1 : k``) is trained
to say "data" on ``x`` and "noise" on ``y``::

    J = (1/N) Σ_i [ softplus(-G(x_i)) + Σ_j softplus(G(y_ij)) ]

which is binary cross-entropy with ``N`` positives and ``N·k`` negatives, summed and divided by
``N``. Its minimiser, with enough data and a rich enough model, is the Bayes classifier,
``G* = log p_data - log(k · p_noise)``, i.e. ``r* = log p_data / p_noise`` exactly: the model
learns its own normalising constant. :func:`fit_log_ratio` shows it on a 1-D toy
(:class:`GaussianToy`) whose two densities are Gaussians, so the true log-ratio is a quadratic
and a quadratic model can match it.

Differences from the paper: the paper writes ``ν = k`` and uses ``log σ``; ``softplus(-z) =
-log σ(z)`` is the same thing, computed stably. Differences from torch's
``binary_cross_entropy_with_logits`` (equal on finite logits, forward and backward): at an
infinite logit BCE computes ``(1 - y)·x``, so a data point scored ``+inf`` gives ``0·inf = nan``;
``softplus`` gives the limit, 0 (pinned in ``tests/test_contrastive_edges.py``). ``k = 0`` noise
samples: ``log 0 = -inf``, every logit is ``+inf`` and the loss is 0. Limitations: one-dimensional toy only; the
noise distribution must be one you can sample from and whose log-density you know when you
want ``log p_data`` itself (``r + log p_noise``).

Notebook: ``06_self_supervised`` §1 (NCE). Tests: ``tests/test_contrastive.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import _checks
from course_lib._export import export
from course_lib.runtime import one_thread


@export("contrastive.nce_loss")
def nce_loss(data_log_ratio: torch.Tensor, noise_log_ratio: torch.Tensor) -> torch.Tensor:
    """Binary NCE loss with ``k`` noise samples per data sample.

    Args:
        data_log_ratio (Tensor[N]): the model's ``r(x_i) = log p_model/p_noise`` at the data.
        noise_log_ratio (Tensor[N, k]): ``r(y_ij)`` at the ``k`` noise samples of each data point.

    Returns:
        The scalar loss ``J`` of the module docstring (mean over data points).

    Raises:
        TypeError: non-tensors, non-float or mismatched dtypes.
        ValueError: wrong dims, mismatched ``N``, devices.
    """
    _checks.tensor("data_log_ratio", data_log_ratio, ndim=1, floating=True)
    _checks.tensor("noise_log_ratio", noise_log_ratio, ndim=2, floating=True)
    dims = _checks.shape("data_log_ratio", data_log_ratio, "N")
    _checks.shape("noise_log_ratio", noise_log_ratio, "N k", dims)
    _checks.same_device(data_log_ratio=data_log_ratio, noise_log_ratio=noise_log_ratio)
    _checks.same_dtype(data_log_ratio=data_log_ratio, noise_log_ratio=noise_log_ratio)
    # Prior odds 1 : k of a sample being data. k = 0 (no noise): log 0 = -inf as IEEE has it, so the
    # logit is +inf and the loss 0 — what the BCE formulation gives — not math.log's domain error.
    log_k = math.log(dims["k"]) if dims["k"] > 0 else -math.inf
    data_term = F.softplus(-(data_log_ratio - log_k))  # (N,)   -log σ(G(x))
    noise_term = F.softplus(noise_log_ratio - log_k).sum(dim=1)  # (N,)  -Σ_j log(1 - σ(G(y)))
    return (data_term + noise_term).mean()


@export("contrastive.GaussianToy")
@dataclass(frozen=True)
class GaussianToy:
    """Data ``N(data_mean, data_std²)`` against noise ``N(0, noise_std²)``, in 1-D."""

    data_mean: float = 1.0  # the data's centre
    data_std: float = 0.5  # narrower than the noise, so the noise covers the data
    noise_std: float = 2.0  # p_noise must be > 0 wherever p_data is

    def log_ratio(self, u: torch.Tensor) -> torch.Tensor:
        """The true ``log p_data(u) - log p_noise(u)``."""
        data = torch.distributions.Normal(self.data_mean, self.data_std)
        noise = torch.distributions.Normal(0.0, self.noise_std)
        return data.log_prob(u) - noise.log_prob(u)

    def sample(self, n: int, k: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` data points (Tensor[n]) and ``k`` noise points for each (Tensor[n, k])."""
        x = self.data_mean + self.data_std * torch.randn(n, generator=generator, dtype=torch.float64)
        y = self.noise_std * torch.randn(n, k, generator=generator, dtype=torch.float64)
        return x, y


@export("contrastive.QuadraticLogRatio")
class QuadraticLogRatio(nn.Module):
    """``r(u) = a u² + b u + c``: contains the log-ratio of any two 1-D Gaussians."""

    def __init__(self) -> None:
        super().__init__()
        self.coef = nn.Parameter(torch.zeros(3, dtype=torch.float64))  # (a, b, c); r = 0 at start

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.coef[0] * u**2 + self.coef[1] * u + self.coef[2]


@export("contrastive.fit_log_ratio")
def fit_log_ratio(
    toy: GaussianToy = GaussianToy(), n: int = 4000, k: int = 10, steps: int = 50, seed: int = 0
) -> QuadraticLogRatio:
    """Fit :class:`QuadraticLogRatio` by minimising :func:`nce_loss` on samples of ``toy``.

    L-BFGS on a fixed sample: the loss is convex in ``(a, b, c)`` (a logistic regression on the
    features ``u², u, 1``), so a few dozen steps reach the empirical optimum.

    Args:
        toy: the two densities.
        n: data points; ``k``: noise points per data point.
        steps: L-BFGS iterations. seed: the sample's seed.

    Returns:
        The fitted model; ``model(u)`` estimates ``toy.log_ratio(u)``.
    """
    n = _checks.integer("n", n, minimum=1)
    k = _checks.integer("k", k, minimum=1)
    steps = _checks.integer("steps", steps, minimum=1)
    x, y = toy.sample(n, k, torch.Generator().manual_seed(seed))
    model = QuadraticLogRatio()
    opt = torch.optim.LBFGS(model.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nce_loss(model(x), model(y))
        loss.backward()
        return loss

    with one_thread():
        opt.step(closure)
    return model
