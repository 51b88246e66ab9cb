"""InfoNCE and NT-Xent: contrastive losses with in-batch negatives, from ``logsumexp`` up.

Paper: van den Oord, Li & Vinyals, *Representation Learning with Contrastive Predictive Coding*
(2018) for InfoNCE; Chen et al., *A Simple Framework for Contrastive Learning of Visual
Representations* (SimCLR, ICML 2020) for NT-Xent; Radford et al. (CLIP, 2021) for the
symmetric form.

The math. Queries ``q_i`` and keys ``k_i`` (``i = 1..N``) come in positive pairs; every other
key in the batch is a negative for ``q_i``. With similarities ``s_ij = q_i·k_j / τ``
(cosine when ``normalize=True``), the loss of row ``i`` is a cross-entropy whose target is the
diagonal::

    ℓ_i = -log( exp(s_ii) / Σ_j exp(s_ij) ) = logsumexp_j(s_ij) - s_ii

``symmetric=True`` averages this with the same loss over columns (keys choosing among queries),
as CLIP does. NT-Xent (SimCLR) puts both views of N examples into one batch of ``2N`` vectors
``z``; the positive of ``z_i`` is its other view ``z_{(i+N) mod 2N}``, and ``z_i`` itself is
removed from the denominator (its self-similarity would otherwise be the largest logit)::

    ℓ_i = logsumexp_{j ≠ i}(s_ij) - s_{i,(i+N) mod 2N}

Differences from the references: written as ``-log_softmax`` at the positive (the formula
above, ``logsumexp - s_ii``, rearranged) rather than by calling ``F.cross_entropy``; the tests
check both agree, forward and backward, also on an empty batch — ``nan``, the mean of nothing —
and on ±inf/NaN/huge inputs and extreme temperatures (``tests/test_contrastive_edges.py``).
``torch.logsumexp(s) - s_ii`` would give the same values but a wrong backward next to huge
logits (a row ``(0, 3e38, 3e38)``: weights ``exp(s - lse)`` summing to 2, not 1); the temperature
is a fixed number (CLIP learns ``log 1/τ``; pass a tensor-valued logit scale yourself if you
need that). Limitations: one device; negatives are the batch only (no memory bank or queue as
in MoCo).

Losses without negatives, for comparison (§7 of the notebook): :func:`negative_cosine` (SimSiam,
Chen & He 2021; BYOL, Grill et al. 2020, up to an affine map) and :func:`barlow_twins`
(Zbontar et al. 2021), each checked against its paper's pseudo-code in
``tests/test_contrastive_simclr.py``.

Notebook: ``06_self_supervised`` §2 (InfoNCE), §3 (NT-Xent), §7 (losses without negatives).
Tests: ``tests/test_contrastive.py``, ``tests/test_contrastive_simclr.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib import _checks
from course_lib._export import export

REDUCTIONS = ("mean", "sum", "none")


def _reduce(losses: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    return losses


@export("contrastive.info_nce_from_logits")
def info_nce_from_logits(logits: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """InfoNCE of a square score matrix whose positives are on the diagonal.

    Args:
        logits (Tensor[N, N]): ``logits[i, j]`` scores query ``i`` against key ``j``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per-row losses, ``Tensor[N]``).

    Returns:
        The loss: a scalar, or ``Tensor[N]`` for ``reduction="none"``.

    Raises:
        TypeError: ``logits`` is not a floating-point tensor.
        ValueError: ``logits`` is not square, or an unknown ``reduction``.

    Example:
        >>> info_nce_from_logits(torch.zeros(4, 4))  # uniform scores: log 4
        tensor(1.3863)
    """
    _checks.tensor("logits", logits, ndim=2, floating=True)
    _checks.shape("logits", logits, "N N")
    _checks.one_of("reduction", reduction, REDUCTIONS)
    # ℓ_i = logsumexp_j s_ij - s_ii = -log_softmax(s)_ii. log_softmax subtracts the row max before
    # exponentiating, and its backward renormalises: softmax(s) - onehot even when the log of the
    # row sum is lost to rounding next to huge logits (torch.logsumexp's backward, exp(s - lse), then
    # sums to 2 for a row (0, 3e38, 3e38)).
    losses = -torch.log_softmax(logits, dim=1).diagonal()  # (N,)
    return _reduce(losses, reduction)


def _check_pair(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor, temperature: float,
                reduction: str) -> float:
    """Check two Tensor[N, D] embeddings of one batch, a temperature and a reduction; return τ."""
    _checks.tensor(name_a, a, ndim=2, floating=True)
    _checks.tensor(name_b, b, ndim=2, floating=True)
    dims = _checks.shape(name_a, a, "N D")
    _checks.shape(name_b, b, "N D", dims)
    _checks.same_device(**{name_a: a, name_b: b})
    _checks.same_dtype(**{name_a: a, name_b: b})
    tau = _checks.real("temperature", temperature, minimum=0.0, open_min=True)
    _checks.one_of("reduction", reduction, REDUCTIONS)
    return tau


@export("contrastive.info_nce")
def info_nce(
    queries: torch.Tensor,
    keys: torch.Tensor,
    temperature: float = 0.1,
    *,
    symmetric: bool = False,
    normalize: bool = True,
    reduction: str = "mean",
) -> torch.Tensor:
    """InfoNCE with in-batch negatives: query ``i`` must pick key ``i`` among all ``N`` keys.

    Args:
        queries (Tensor[N, D]): one embedding per example (e.g. the first view, or the image).
        keys (Tensor[N, D]): its positive partner in the same row (the second view, or the text).
        temperature: ``τ > 0``; the logits are ``similarity / τ``.
        symmetric: also score keys against queries and average the two losses (CLIP, SimCLR).
        normalize: L2-normalise both sides first, so the similarity is the cosine.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per-example losses, ``Tensor[N]``).

    Returns:
        The loss: a scalar, or ``Tensor[N]`` for ``reduction="none"``.

    Raises:
        TypeError: a non-tensor or non-float input, a non-number temperature, mismatched dtypes.
        ValueError: wrong dims, mismatched shapes, devices, ``temperature <= 0``, unknown reduction.

    Example:
        >>> q = torch.randn(8, 16); info_nce(q, q + 0.1 * torch.randn(8, 16), 0.1)  # doctest: +SKIP
    """
    tau = _check_pair("queries", queries, "keys", keys, temperature, reduction)
    if normalize:
        queries, keys = F.normalize(queries, dim=1), F.normalize(keys, dim=1)
    logits = queries @ keys.T / tau  # (N, N): row i is query i against every key
    losses = info_nce_from_logits(logits, reduction="none")  # (N,)
    if symmetric:
        losses = 0.5 * (losses + info_nce_from_logits(logits.T, reduction="none"))
    return _reduce(losses, reduction)


@export("contrastive.nt_xent_targets")
def nt_xent_targets(n: int, device: torch.device | str | None = None) -> torch.Tensor:
    """The index of each view's positive in a NT-Xent batch of ``2n``: ``(i + n) mod 2n``.

    Returns:
        Tensor[2n] of int64: ``[n, n+1, …, 2n-1, 0, 1, …, n-1]`` (empty for ``n = 0``).
    """
    n = _checks.integer("n", n, minimum=0)
    return (torch.arange(2 * n, device=device) + n) % (2 * n)


@export("contrastive.nt_xent")
def nt_xent(
    z1: torch.Tensor,
    z2: torch.Tensor,
    temperature: float = 0.5,
    *,
    normalize: bool = True,
    reduction: str = "mean",
) -> torch.Tensor:
    """NT-Xent (SimCLR): 2N views, each must find its partner among the other 2N - 1.

    Args:
        z1 (Tensor[N, D]): projections of the first augmented view of each example.
        z2 (Tensor[N, D]): projections of the second view, row for row.
        temperature: ``τ > 0``. 0.5 here, the setting of the official SimCLR README for CIFAR-10;
            the paper's ImageNet study (Table 5) found 0.1 best, and the official ``run.py``
            defaults to 0.1.
        normalize: L2-normalise first (SimCLR's cosine similarity).
        reduction: ``"mean"`` (over all 2N views, as in SimCLR), ``"sum"`` or ``"none"``
            (``Tensor[2N]``, the rows of ``z1`` then those of ``z2``).

    Returns:
        The loss: a scalar, or ``Tensor[2N]`` for ``reduction="none"``.

    Raises:
        TypeError / ValueError: as :func:`info_nce`.
    """
    tau = _check_pair("z1", z1, "z2", z2, temperature, reduction)
    z = torch.cat([z1, z2], dim=0)  # (2N, D)
    if normalize:
        z = F.normalize(z, dim=1)
    logits = z @ z.T / tau  # (2N, 2N)
    self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
    # -inf, not a large negative number: exp(-inf) is exactly 0, and logsumexp handles it.
    logits = logits.masked_fill(self_mask, float("-inf"))
    targets = nt_xent_targets(z1.shape[0], device=z.device)  # (2N,)
    # -log_softmax at the positive = logsumexp_{j≠i} s_ij - s_i,pos (see info_nce_from_logits for why).
    losses = -torch.log_softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)  # (2N,)
    return _reduce(losses, reduction)


@export("contrastive.negative_cosine")
def negative_cosine(p: torch.Tensor, z: torch.Tensor, *, stop_gradient: bool = True) -> torch.Tensor:
    """SimSiam's ``D(p, z) = -mean_i cos(p_i, stopgrad(z_i))``: no negatives at all.

    Chen & He, *Exploring Simple Siamese Representation Learning* (CVPR 2021), Algorithm 1:
    ``D(p, z) = -(normalize(p) * normalize(z.detach())).sum(dim=1).mean()``; the symmetric loss is
    ``D(p1, z2)/2 + D(p2, z1)/2`` with ``p = h(z)`` a predictor MLP. BYOL's loss (Grill et al. 2020,
    eq. 2) is the same up to an affine map: ``‖p̄ - z̄‖² = 2 - 2 cos(p, z)``, with ``z`` from a
    momentum (target) encoder instead of the same one.

    The loss alone does not prevent collapse: a constant output gives ``cos = 1`` for every pair,
    the global minimum ``-1``. SimSiam's finding is that ``stop_gradient`` plus the predictor keep
    training away from it; with ``stop_gradient=False`` the gradient flows through both branches.

    Args:
        p (Tensor[N, D]): predictions (the predictor's output on one view).
        z (Tensor[N, D]): targets (the projection of the other view).
        stop_gradient: detach ``z`` (SimSiam, BYOL); ``False`` lets gradients flow into it.

    Returns:
        A scalar in ``[-1, 1]`` (``nan`` for ``N = 0``, the mean of nothing).

    Raises:
        TypeError / ValueError: non-float tensors, not 2-D, mismatched shapes, devices or dtypes.
    """
    _check_pair("p", p, "z", z, 1.0, "mean")
    if stop_gradient:
        z = z.detach()
    return -(F.normalize(p, dim=1) * F.normalize(z, dim=1)).sum(dim=1).mean()


@export("contrastive.barlow_twins")
def barlow_twins(z1: torch.Tensor, z2: torch.Tensor, lambd: float = 5e-3, eps: float = 1e-5) -> torch.Tensor:
    """Barlow Twins: push the cross-correlation of the two views' embeddings to the identity.

    Zbontar, Jing, Misra, LeCun & Deny, *Barlow Twins: Self-Supervised Learning via Redundancy
    Reduction* (ICML 2021), eq. 1 and Algorithm 1. Each view's embeddings are standardised over
    the batch, ``ẑ = (z - mean_N z) / sqrt(var_N z + eps)``, and with ``C = ẑ1ᵀ ẑ2 / N``
    (``Tensor[D, D]``)::

        L = Σ_i (1 - C_ii)²  +  λ Σ_i Σ_{j≠i} C_ij²
            invariance           redundancy reduction

    Standardisation as in the official code (``nn.BatchNorm1d(affine=False)``: biased variance,
    ``eps = 1e-5``); Algorithm 1's pseudo-code divides by ``z.std(0)`` (unbiased, no ``eps``), which
    is ``nan`` for a constant column. With ``eps``, a collapsed (constant) encoder has ``C = 0`` and
    pays the full invariance term, ``L = D``. λ = 5e-3 is the paper's (its code: 0.0051).

    Args:
        z1 (Tensor[N, D]), z2 (Tensor[N, D]): embeddings of the two views, row for row.
        lambd: λ ≥ 0, the weight of the off-diagonal terms.
        eps: ε > 0 added to the variance.

    Returns:
        A scalar ≥ 0.

    Raises:
        TypeError / ValueError: as :func:`info_nce`; ``N < 2`` (a variance needs two rows),
        ``D < 1``, ``lambd < 0``, ``eps <= 0``.
    """
    _check_pair("z1", z1, "z2", z2, 1.0, "mean")
    if z1.shape[0] < 2:
        raise ValueError(f"z1 and z2 need at least 2 rows to standardise over the batch; got {tuple(z1.shape)}")
    if z1.shape[1] < 1:
        raise ValueError(f"z1 and z2 need at least 1 embedding dimension (D >= 1); got {tuple(z1.shape)}")
    lambd = _checks.real("lambd", lambd, minimum=0.0)
    eps = _checks.real("eps", eps, minimum=0.0, open_min=True)

    def standardise(z: torch.Tensor) -> torch.Tensor:
        return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + eps)  # (N, D)

    c = standardise(z1).T @ standardise(z2) / z1.shape[0]  # (D, D)
    on_diag = (torch.diagonal(c) - 1).pow(2).sum()
    off_diag = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    return on_diag + lambd * off_diag
