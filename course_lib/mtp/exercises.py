"""Exercises for chapter 11: the index bookkeeping of MTP, its verification rule, its payoff.

* :data:`depth_targets` — which tokens depth k is fed and which it must predict, in a window.
* :data:`verify_draft` — greedy verification of one drafted token: what gets committed.
* :data:`tokens_per_pass` — the expected tokens per main-model pass for a chain of D drafts.

References are direct transcriptions of the definitions (the library's
:func:`~course_lib.mtp.mtp_loss` and :func:`~course_lib.mtp.mtp_generate` compute the same).
Notebook: ``11_multi_token_prediction`` ("Exercises"). Tests: ``tests/test_mtp.py``.
"""

from __future__ import annotations

import random

import torch

from course_lib.exercises import Exercise


def _random_window_case(rng: random.Random) -> dict:
    T = rng.randint(2, 12)
    return {"window": torch.tensor([rng.randint(0, 255) for _ in range(T + 1)]), "k": rng.randint(1, T - 1)}


def _random_verify_case(rng: random.Random) -> dict:
    draft = rng.randint(0, 255)
    return {"draft": draft, "main_at_fed": rng.choice([draft, rng.randint(0, 255)]),
            "main_at_draft": rng.randint(0, 255)}


def _depth_targets_solution(window: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    T = window.numel() - 1  # the main model sees window[:T]
    return window[k:T], window[k + 1 :]


depth_targets = Exercise(
    title="what depth k sees and predicts",
    task="""
        A training window holds tokens t_0 ... t_T (a 1-D long tensor of T + 1 tokens); the main
        model runs on t_0 ... t_{T-1}. At depth k (k >= 1), position i combines h^{k-1}_i with the
        embedding of t_{i+k} and predicts t_{i+k+1}, for every i whose target is in the window.
        Write `depth_targets(window, k)` returning `(fed, target)`: the tokens embedded at
        depth k and the tokens it predicts, both 1-D, position by position.
            depth_targets(torch.tensor([10, 11, 12, 13, 14]), 1)
            -> (tensor([11, 12, 13]), tensor([12, 13, 14]))
    """,
    reference=_depth_targets_solution,
    edge_cases=[{"window": torch.arange(5), "k": 1}, {"window": torch.arange(5), "k": 3},
                {"window": torch.arange(3), "k": 1}, {"window": torch.arange(100, 110), "k": 2}],
    random_case=lambda rng: _random_window_case(rng),
    hints=["Depth 1 is told the very next token t_{i+1} and predicts t_{i+2}: both shift by k.",
           "Position i runs from 0 while i + k + 1 <= T: that is T - k positions."],
)


def _verify_solution(draft: int, main_at_fed: int, main_at_draft: int) -> list[int]:
    return [draft, main_at_draft] if draft == main_at_fed else [main_at_fed]


verify_draft = Exercise(
    title="greedy verification of a draft",
    task="""
        One verification pass feeds the main model [t_{n+1}, d], where d is the MTP module's draft
        of t_{n+2}. Its greedy choices are `main_at_fed` (its t_{n+2}) and `main_at_draft` (what
        would follow d). Write `verify_draft(draft, main_at_fed, main_at_draft)` returning the
        list of tokens this pass commits, so that the output equals plain greedy decoding.
            verify_draft(7, 7, 3) -> [7, 3]      verify_draft(7, 5, 3) -> [5]
    """,
    reference=_verify_solution,
    edge_cases=[{"draft": 7, "main_at_fed": 7, "main_at_draft": 3}, {"draft": 7, "main_at_fed": 5, "main_at_draft": 3},
                {"draft": 0, "main_at_fed": 0, "main_at_draft": 0},
                {"draft": 255, "main_at_fed": 254, "main_at_draft": 255}],
    random_case=lambda rng: _random_verify_case(rng),
    hints=["If the main model agrees with d, d is right — and the logits at d were computed for free.",
           "If not, the logits at d were computed from a wrong token: only the main model's own t_{n+2} counts."],
)


def _tokens_per_pass_solution(p: float, depth: int) -> float:
    return sum(p**j for j in range(depth + 1))


tokens_per_pass = Exercise(
    title="expected tokens per pass",
    task="""
        Chain D draft tokens (depth 1 drafts t_{n+2}, depth 2 drafts t_{n+3}, ...) and verify
        them all in one pass; a draft is kept only if every earlier one was, and each is right
        with probability p given the earlier ones were. The pass always yields the main model's
        own token after the last kept draft. Write `tokens_per_pass(p, depth)`: the expected
        number of tokens one pass commits.
            tokens_per_pass(0.0, 3) -> 1.0     tokens_per_pass(0.5, 1) -> 1.5
    """,
    reference=_tokens_per_pass_solution,
    edge_cases=[{"p": 0.0, "depth": 3}, {"p": 1.0, "depth": 4}, {"p": 0.5, "depth": 1}, {"p": 0.875, "depth": 1},
                {"p": 0.6, "depth": 5}],
    random_case=lambda rng: {"p": rng.random(), "depth": rng.randint(1, 6)},
    hints=["The j-th draft is committed with probability p ** j.",
           "Add the one token every pass commits: 1 + p + p^2 + ... + p^D."],
)

