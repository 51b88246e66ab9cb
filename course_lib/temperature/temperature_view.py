"""The chapter-0 widget: one slider over the temperature, the distribution it gives.

The pattern every widget of the course follows (:mod:`course_lib.widgets`):
:func:`temperature_state` computes what is shown (pure, tested without matplotlib),
:func:`temperature_view` draws it, :func:`temperature_widget` wires a slider to the view.

Notebook: ``00_start_here``. Tests: ``tests/test_temperature.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from course_lib._export import export
from course_lib.temperature.softmax import EXAMPLE_LOGITS, EXAMPLE_TOKENS, entropy, softmax
from course_lib.widgets import View

if TYPE_CHECKING:
    from course_lib._view_widget import ViewWidget


@export("temperature.TemperatureState")
@dataclass(frozen=True)
class TemperatureState:
    """What the widget shows at one temperature."""

    temperature: float  # T > 0
    tokens: tuple[str, ...]  # the candidate next tokens, as text
    probs: tuple[float, ...]  # softmax(logits / T), one per token
    entropy: float  # of probs, in nats
    max_entropy: float  # log(number of tokens): the entropy of the uniform distribution


@export("temperature.temperature_state")
def temperature_state(temperature: float) -> TemperatureState:
    """The example next-token distribution at ``temperature``.

    Raises:
        ValueError: ``temperature`` is not a positive number.
    """
    logits = torch.tensor(EXAMPLE_LOGITS, dtype=torch.float64)
    probs = softmax(logits, temperature)
    return TemperatureState(float(temperature), EXAMPLE_TOKENS, tuple(probs.tolist()),
                            entropy(probs).item(), float(torch.log(torch.tensor(len(probs), dtype=torch.float64))))


@export("temperature.temperature_view")
def temperature_view(temperature: float) -> View:
    """The example next-token distribution at ``temperature``, as a bar chart and in numbers."""
    import matplotlib.pyplot as plt

    s = temperature_state(temperature)
    fig, ax = plt.subplots(figsize=(7, 2.8))
    ax.bar(range(len(s.probs)), s.probs, color="tab:blue")
    ax.set_xticks(range(len(s.probs)), [repr(t) for t in s.tokens], rotation=30)
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability")
    ax.set_title(f'next token after "for i in" at T = {s.temperature:.2f}')
    top = ", ".join(f"{tok!r}: {p:.3f}" for tok, p in zip(s.tokens[:3], s.probs))
    caption = (f"T = {s.temperature:.2f}   entropy = {s.entropy:.3f} nats "
               f"(uniform: {s.max_entropy:.3f})\ntop 3: {top}")
    return View(fig, caption)


@export("temperature.temperature_widget")
def temperature_widget(temperature: float = 1.0) -> ViewWidget:
    """A slider over the temperature, wired to :func:`temperature_view`."""
    import ipywidgets as widgets

    from course_lib.widgets import ViewWidget

    slider = widgets.FloatLogSlider(value=temperature, base=10, min=-1, max=1, step=0.05,
                                    description="temperature", continuous_update=False,
                                    style={"description_width": "initial"})
    return ViewWidget(temperature_view, temperature=slider)
