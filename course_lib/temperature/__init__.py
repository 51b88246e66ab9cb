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

The parts, bottom-up, in the shape every chapter has:

* :mod:`~course_lib.temperature.softmax` — :func:`softmax`, :func:`entropy`.
* :mod:`~course_lib.temperature.temperature_view` — :func:`temperature_state` (pure),
  :func:`temperature_view` (draws it), :func:`temperature_widget` (wires a slider).
* :mod:`~course_lib.temperature.exercises` — the chapter's exercise.

Notebook: ``00_start_here``. Tests: ``tests/test_temperature.py``.
"""

from course_lib.temperature.softmax import EXAMPLE_LOGITS, EXAMPLE_TOKENS, entropy, softmax
from course_lib.temperature.temperature_view import (
    TemperatureState,
    temperature_state,
    temperature_view,
    temperature_widget,
)

__all__ = [
    "EXAMPLE_LOGITS",
    "EXAMPLE_TOKENS",
    "TemperatureState",
    "entropy",
    "softmax",
    "temperature_state",
    "temperature_view",
    "temperature_widget",
]
