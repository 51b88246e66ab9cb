"""Exercises for chapter 11: the index bookkeeping of MTP, its verification rule, its payoff.

* :data:`depth_targets` — which tokens depth k is fed and which it must predict, in a window.
* :data:`verify_draft` — greedy verification of one drafted token: what gets committed.
* :data:`module_input` — the first half of ``MTPModule.forward``: two RMSNorms, a concatenation, M_k.

References are direct transcriptions of the definitions (the library's
:func:`~course_lib.mtp.mtp_loss` and :func:`~course_lib.mtp.mtp_generate` compute the same).
Notebook: ``11_multi_token_prediction`` ("Exercises"). Tests: ``tests/test_mtp.py``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from course_lib.exercises import Exercise, randn


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


def _module_input_solution(hidden: torch.Tensor, embedded: torch.Tensor, w_hidden: torch.Tensor,
                           w_embed: torch.Tensor, proj: torch.Tensor) -> torch.Tensor:
    def rms_norm(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        eps = torch.finfo(x.dtype).eps  # nn.RMSNorm's default
        return x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + eps) * w

    both = torch.cat([rms_norm(hidden, w_hidden), rms_norm(embedded, w_embed)], dim=-1)  # (..., 2C)
    return both @ proj.T  # (..., C)


def _module_input_oracle(case: Mapping[str, Any]) -> torch.Tensor:
    """torch's own RMSNorm and linear layer, as MTPModule uses them."""
    C = case["hidden"].shape[-1]
    norm_h, norm_e = torch.nn.RMSNorm(C).double(), torch.nn.RMSNorm(C).double()
    with torch.no_grad():
        norm_h.weight.copy_(case["w_hidden"])
        norm_e.weight.copy_(case["w_embed"])
        return F.linear(torch.cat([norm_h(case["hidden"]), norm_e(case["embedded"])], dim=-1), case["proj"])


def _random_module_case(rng: random.Random) -> dict:
    B, T, C = rng.randint(1, 3), rng.randint(1, 6), rng.randint(1, 8)
    return {"hidden": randn(rng, B, T, C) * rng.choice([0.01, 1.0, 30.0]), "embedded": randn(rng, B, T, C),
            "w_hidden": randn(rng, C), "w_embed": randn(rng, C), "proj": randn(rng, C, 2 * C)}


module_input = Exercise(
    title="the MTP module's input: h'_i = M [RMSNorm(h_i) ; RMSNorm(Emb(t_(i+k)))]",
    task="""
        MTPModule.forward first combines the previous depth's hidden state with the embedding of
        the token k places ahead (DeepSeek-V3, eq. 21), then runs one transformer block on it.
        Write the combination: `module_input(hidden, embedded, w_hidden, w_embed, proj)` with
        hidden, embedded of shape (B, T, C), RMSNorm weights w_hidden, w_embed of shape (C,) and
        the projection M of shape (C, 2C); return h' of shape (B, T, C):
            RMSNorm(x) = x / sqrt(mean(x**2 over C) + eps) * w,   eps = torch.finfo(x.dtype).eps
            h' = [RMSNorm(hidden) ; RMSNorm(embedded)] @ M.T      (concatenated along C)
        Checked against torch.nn.RMSNorm and F.linear, as the library's module uses them.
    """,
    reference=_module_input_solution,
    oracle=_module_input_oracle,
    edge_cases=[
        {"hidden": torch.zeros(1, 2, 4, dtype=torch.float64), "embedded": torch.ones(1, 2, 4, dtype=torch.float64),
         "w_hidden": torch.ones(4, dtype=torch.float64), "w_embed": torch.ones(4, dtype=torch.float64),
         "proj": torch.eye(4, 8, dtype=torch.float64)},
        {"hidden": torch.full((1, 1, 1), -3.0, dtype=torch.float64), "embedded": torch.full((1, 1, 1), 2.0,
                                                                                          dtype=torch.float64),
         "w_hidden": torch.tensor([2.0], dtype=torch.float64), "w_embed": torch.tensor([0.5], dtype=torch.float64),
         "proj": torch.tensor([[1.0, 1.0]], dtype=torch.float64)},
    ],
    random_case=_random_module_case,
    hints=["RMSNorm divides by the root mean square over the last dim only; unlike LayerNorm it does not "
           "subtract the mean.",
           "Concatenate the normalised hidden state first, the normalised embedding second; M maps 2C to C."],
)
