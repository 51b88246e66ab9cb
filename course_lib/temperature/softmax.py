"""Softmax with a temperature, computed stably, and the entropy of the result (chapter 0).

    p_i = exp(z_i / T) / Σ_j exp(z_j / T),   computed as exp(z_i/T - max_j z_j/T) / Σ ...

Subtracting the row maximum changes nothing mathematically and keeps every exponent ≤ 0, so
``exp`` cannot overflow. Same semantics as ``torch.softmax(logits / T, dim=-1)`` at the edges: a
row of all ``-inf`` gives NaN (there is no distribution), ``+inf`` gives NaN, an empty last
dimension gives an empty result. ``tests/test_temperature.py`` pins each.

Notebook: ``00_start_here``. Tests: ``tests/test_temperature.py``.
"""

from __future__ import annotations

import torch

from course_lib import _checks
from course_lib._export import export

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
    if logits.shape[-1] == 0:  # no tokens: an empty distribution (amax refuses an empty dim)
        return scaled
    shifted = scaled - scaled.amax(dim=-1, keepdim=True)  # every exponent <= 0: no overflow
    weights = shifted.exp()
    return weights / weights.sum(dim=-1, keepdim=True)


@export("temperature.entropy")
def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in nats over the last dim; ``0 · log 0`` counts as 0.

    Computed with ``torch.special.entr`` (``-p log p``, exactly 0 at ``p = 0``, exact for
    subnormal ``p``; a negative entry gives ``-inf``, a NaN gives NaN).

    Args:
        probs (Tensor[..., V]): probabilities.

    Returns:
        Tensor[...]: the entropy of each distribution.
    """
    _checks.tensor("probs", probs, floating=True)
    return torch.special.entr(probs).sum(dim=-1)
