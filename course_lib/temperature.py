"""Softmax with a temperature: the first taste of the course (chapter 0).

A language model ends in *logits* ``z`` — one real number per token — and turns them into
probabilities with a softmax. Dividing the logits by a temperature ``T`` before the softmax
sharpens (``T < 1``) or flattens (``T > 1``) the distribution:

    p_i = exp(z_i / T) / Σ_j exp(z_j / T)

Computed as written, ``exp`` overflows for logits around 89 in float32 (710 in float64). The
stable form subtracts the maximum first — ``exp(z_i/T - max_j z_j/T)`` — which changes nothing
mathematically (the factor ``exp(-max)`` cancels) and keeps every exponent ≤ 0. The same trick,
kept *running* across blocks, is the heart of FlashAttention (chapter 9); temperature returns in
Medusa's typical acceptance (chapter 10).

Notebook: ``00_start_here``. Tests: ``tests/test_temperature.py``.
"""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from course_lib import _checks
from course_lib.api import export
from course_lib.exercises import Exercise, randn
from course_lib.widgets import View, ViewWidget

# A next-token distribution to play with: logits a tiny model might give after "for i in".
EXAMPLE_TOKENS = (" range", " enumerate", " zip", " sorted", " reversed", " items", " self", " x")
EXAMPLE_LOGITS = (6.0, 4.5, 3.0, 2.2, 1.5, 1.0, 0.2, -1.0)


@export("temperature.softmax")
def softmax(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Numerically stable softmax of ``logits / temperature`` over the last dim.

    Args:
        logits (Tensor[..., V]): floating-point scores; ``-inf`` marks an impossible token.
        temperature: > 0; below 1 sharpens, above 1 flattens the distribution.

    Returns:
        Tensor[..., V]: probabilities, each row summing to 1.

    Raises:
        TypeError: ``logits`` is not a floating-point tensor.
        ValueError: ``temperature`` is not a positive number, or ``logits`` has no dims.

    Example:
        >>> softmax(torch.tensor([1000.0, 1000.0]))
        tensor([0.5000, 0.5000])
    """
    _checks.tensor("logits", logits, ndim=range(1, 9), floating=True)
    t = _checks.real("temperature", temperature, minimum=0.0, open_min=True)
    scaled = logits / t
    shifted = scaled - scaled.amax(dim=-1, keepdim=True)  # every exponent <= 0: no overflow
    weights = shifted.exp()
    return weights / weights.sum(dim=-1, keepdim=True)


@export("temperature.entropy")
def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in nats over the last dim; ``0 · log 0`` counts as 0.

    Args:
        probs (Tensor[..., V]): probabilities.

    Returns:
        Tensor[...]: the entropy of each distribution.
    """
    _checks.tensor("probs", probs, floating=True)
    return -(probs * probs.clamp_min(torch.finfo(probs.dtype).tiny).log()).sum(dim=-1)


@export("temperature.temperature_view")
def temperature_view(temperature: float) -> View:
    """The example next-token distribution at ``temperature``, as a bar chart and in numbers."""
    logits = torch.tensor(EXAMPLE_LOGITS, dtype=torch.float64)
    probs = softmax(logits, temperature)
    fig, ax = plt.subplots(figsize=(7, 2.8))
    ax.bar(range(len(probs)), probs.tolist(), color="tab:blue")
    ax.set_xticks(range(len(probs)), [repr(t) for t in EXAMPLE_TOKENS], rotation=30)
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability")
    ax.set_title(f'next token after "for i in" at T = {temperature:.2f}')
    top = ", ".join(f"{tok!r}: {p:.3f}" for tok, p in zip(EXAMPLE_TOKENS[:3], probs.tolist()))
    caption = (f"T = {temperature:.2f}   entropy = {entropy(probs).item():.3f} nats "
               f"(uniform: {torch.log(torch.tensor(len(probs))).item():.3f})\ntop 3: {top}")
    return View(fig, caption)


@export("temperature.temperature_widget")
def temperature_widget(temperature: float = 1.0) -> ViewWidget:
    """A slider over the temperature, wired to :func:`temperature_view`."""
    slider = widgets.FloatLogSlider(value=temperature, base=10, min=-1, max=1, step=0.05,
                                    description="temperature", continuous_update=False,
                                    style={"description_width": "initial"})
    return ViewWidget(temperature_view, temperature=slider)


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
