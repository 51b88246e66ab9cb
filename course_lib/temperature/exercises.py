"""Chapter 0's exercise: a softmax that does not overflow.

Notebook: ``00_start_here`` (section "Exercises"). Tests: ``tests/test_exercises.py``.
"""

from __future__ import annotations

import torch

from course_lib.exercises import Exercise, randn


def _stable_softmax_solution(logits: torch.Tensor) -> torch.Tensor:
    shifted = logits - logits.amax(dim=-1, keepdim=True)
    return shifted.exp() / shifted.exp().sum(dim=-1, keepdim=True)


stable_softmax = Exercise(
    title="a softmax that does not overflow",
    task="""
        Write `my_softmax(logits)`: the softmax over the last dim of a float tensor of any shape,
        equal to `torch.softmax(logits, dim=-1)` — also for logits like 1000.0, where exp()
        overflows to inf, and for rows containing -inf (an impossible token gets probability 0).
    """,
    reference=_stable_softmax_solution,
    edge_cases=[
        {"logits": torch.tensor([0.0])},
        {"logits": torch.tensor([1000.0, 1001.0, 1002.0], dtype=torch.float64)},
        {"logits": torch.tensor([[-1000.0, -1000.0], [3.0, float("-inf")]])},
        {"logits": torch.full((2, 3), 88.0, dtype=torch.float32) + torch.arange(3.0)},
    ],
    random_case=lambda rng: {"logits": 50 * randn(rng, rng.randint(1, 3), rng.randint(1, 9))},
    hints=[
        "softmax(z) == softmax(z - c) for any constant c: the exp(-c) factor cancels.",
        "Choose c = the maximum of each row (`amax(dim=-1, keepdim=True)`), so every exponent is <= 0.",
    ],
)
