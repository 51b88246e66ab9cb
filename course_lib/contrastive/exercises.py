"""Exercises for chapter 6: InfoNCE from a similarity matrix, the NT-Xent positives, the
Gaussian MI formula, and the InfoNCE bound.

Each is a :class:`course_lib.exercises.Exercise`; ``tests/test_contrastive.py`` checks them with
correct alternative solutions and with wrong ones. Notebook: ``06_self_supervised`` (section
"Exercises").
"""

from __future__ import annotations

import math
import random
from typing import Any

import torch

from course_lib.exercises import Exercise, randn


def _info_nce_from_similarity(similarity: torch.Tensor, temperature: float) -> torch.Tensor:
    logits = similarity / temperature
    return (torch.logsumexp(logits, dim=1) - logits.diagonal()).mean()


def _random_similarity(rng: random.Random) -> dict[str, Any]:
    n = rng.randint(1, 12)
    return {"similarity": randn(rng, n, n) * rng.choice([0.5, 3.0, 30.0]),
            "temperature": rng.choice([0.05, 0.1, 0.5, 1.0, 2.0])}


info_nce_from_similarity = Exercise(
    title="InfoNCE from a similarity matrix",
    task="""
        Write `info_nce_from_similarity(similarity, temperature)`: `similarity` is a square
        float64 tensor (N, N) whose entry [i, j] scores query i against key j; the positive of
        row i is column i. Return the mean over rows of the cross-entropy of softmax(row / τ)
        with target i, as a 0-dim tensor. It must not overflow for similarities in the
        thousands divided by a small τ.
    """,
    reference=_info_nce_from_similarity,
    edge_cases=[
        {"similarity": torch.zeros(4, 4, dtype=torch.float64), "temperature": 1.0},  # log 4
        {"similarity": torch.eye(3, dtype=torch.float64), "temperature": 0.1},
        {"similarity": torch.ones(1, 1, dtype=torch.float64), "temperature": 0.5},  # one pair: 0
        {"similarity": torch.tensor([[1000.0, 0.0], [0.0, 1000.0]], dtype=torch.float64).flip(1),
         "temperature": 0.01},  # huge logits, positive is the worse one
        {"similarity": torch.arange(9.0, dtype=torch.float64).view(3, 3), "temperature": 1.0},  # not symmetric
    ],
    random_case=_random_similarity,
    hints=[
        "Divide by τ first: the logits are similarity / τ. Row i's loss is -log softmax(logits[i])[i].",
        "-log softmax(l)[i] = logsumexp(l) - l[i]. torch.logsumexp subtracts the max for you.",
        "The positives are logits.diagonal(); average the N row losses.",
    ],
)


def _nt_xent_positives(n: int) -> torch.Tensor:
    return (torch.arange(2 * n) + n) % (2 * n)


nt_xent_positives = Exercise(
    title="the NT-Xent positives",
    task="""
        SimCLR stacks the two views of N examples into one batch z = cat([z1, z2]) of 2N rows:
        row i < N is view 1 of example i, row N + i is view 2 of example i. Write
        `nt_xent_positives(n)`: a torch.int64 tensor of length 2n whose entry i is the row index
        of i's positive (the other view of the same example). The self-similarity (the diagonal)
        is masked out separately, so entry i must never be i.
    """,
    reference=_nt_xent_positives,
    edge_cases=[{"n": n} for n in (1, 2, 3, 8)],
    random_case=lambda rng: {"n": rng.randint(1, 300)},
    hints=[
        "For i < n the partner is i + n; for i >= n it is i - n.",
        "Both cases at once: (i + n) mod 2n, on torch.arange(2 * n).",
    ],
)


def _gaussian_mi(rho: float, dim: int) -> float:
    return -0.5 * dim * math.log(1.0 - rho * rho)


gaussian_mi_formula = Exercise(
    title="the mutual information of correlated Gaussians",
    task="""
        X and Y are `dim`-dimensional standard normals; coordinate m of Y has correlation `rho`
        with coordinate m of X and is independent of every other coordinate. Write
        `gaussian_mi(rho, dim)`: I(X; Y) in nats, as a Python float.
    """,
    reference=_gaussian_mi,
    edge_cases=[{"rho": 0.0, "dim": 1}, {"rho": 0.5, "dim": 1}, {"rho": -0.5, "dim": 3},
                {"rho": 0.99, "dim": 20}, {"rho": 1e-4, "dim": 2}],
    random_case=lambda rng: {"rho": rng.uniform(-0.999, 0.999), "dim": rng.randint(1, 64)},
    hints=[
        "Coordinates are independent pairs, so the MI adds up: dim × the MI of one pair.",
        "For one pair, I = h(Y) - h(Y | X) with Gaussian entropies ½ log(2πe σ²); Var(Y | X) = 1 - ρ².",
    ],
)


def _infonce_bound(scores: torch.Tensor) -> torch.Tensor:
    n = scores.shape[0]
    return math.log(n) - (torch.logsumexp(scores, dim=1) - scores.diagonal()).mean()


def _random_scores(rng: random.Random) -> dict[str, Any]:
    n = rng.randint(2, 20)
    scores = randn(rng, n, n) * rng.choice([1.0, 5.0])
    if rng.random() < 0.5:
        scores = scores + rng.choice([3.0, 20.0]) * torch.eye(n, dtype=torch.float64)  # a good critic
    return {"scores": scores}


infonce_bound = Exercise(
    title="the InfoNCE lower bound on mutual information",
    task="""
        `scores` is an (N, N) float64 tensor of critic values f(x_i, y_j) on a batch of N joint
        samples: the diagonal holds the joint pairs. Write `infonce_bound(scores)`: the InfoNCE
        estimate of I(X; Y) in nats, log N minus the InfoNCE loss, as a 0-dim tensor. (Check for
        yourself: however large the diagonal, the value never exceeds log N.)
    """,
    reference=_infonce_bound,
    edge_cases=[
        {"scores": torch.zeros(5, 5, dtype=torch.float64)},  # an uninformative critic: 0
        {"scores": 100.0 * torch.eye(4, dtype=torch.float64)},  # a perfect one: log 4
        {"scores": torch.full((3, 3), 7.0, dtype=torch.float64)},  # shifted constant: still 0
        {"scores": -50.0 * torch.eye(2, dtype=torch.float64)},  # a wrong critic: negative
    ],
    random_case=_random_scores,
    hints=[
        "The InfoNCE loss is the mean over rows of logsumexp(scores[i]) - scores[i, i].",
        "The bound is math.log(N) minus that loss; N is the batch size, scores.shape[0].",
    ],
)

ALL = (info_nce_from_similarity, nt_xent_positives, gaussian_mi_formula, infonce_bound)
