"""Which drafted tokens to keep: greedy and typical acceptance over the candidate paths.

Paper: Cai et al., "Medusa" (2024), §2.1.2 and §2.3.1; reference code ``evaluate_posterior`` in
FasterDecoding/Medusa ``medusa/model/utils.py``.

Inputs, for P candidate paths of D + 1 tokens each (root first):

* ``candidates`` (Tensor[P, D + 1] long): the tokens on each path; −1 pads short paths;
* ``logits`` (Tensor[P, D + 1, V]): the base model's logits *at* each node, computed in the one
  verification pass — ``logits[p, i]`` predicts the token after ``candidates[p, i]``.

**Greedy**: drafted token i + 1 is accepted iff it equals ``argmax logits[p, i]`` and every
token before it was accepted; the path with the longest accepted prefix wins (first on ties).
The kept tokens are exactly those plain greedy decoding would have written — lossless.

**Typical** (Medusa §2.3.1): with p = softmax(logits / τ) and its entropy H, drafted token x
is accepted iff

    p(x) > min(ε, α · exp(−H))

a hard threshold ε for confident distributions, relaxed to α·exp(−H) when the model is unsure.
Among the paths with the longest accepted prefix, the most likely one (Σ log p) wins.

What it is, plainly: a **deterministic** rule. Nothing is sampled — the root is the base
model's argmax and the drafted tokens are the heads' top-k, kept or not by a threshold — so it
is another greedy-like decoder, not sampling at temperature τ (τ only shapes the threshold).
It keeps more tokens per step than greedy acceptance, and writes text the base model finds
less likely (``course_lib.speculative.experiment.compare_decoding`` reports the base model's
NLL of each continuation next to its speed). Lossless *sampling* is
:mod:`.speculative_sampling`. The parameters live in one :class:`TypicalConfig`.

Returns of both: ``(best, length)`` — the winning path and how many of its *drafted* tokens
(after the root) are accepted; the root itself is always kept.

Notebook: ``10_medusa`` ("Acceptance"). Tests: ``tests/test_speculative.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from course_lib import _checks
from course_lib._export import export


@export("speculative.TypicalConfig")
@dataclass(frozen=True)
class TypicalConfig:
    """Typical acceptance's parameters (Medusa §2.3.1; the reference's defaults)."""

    temperature: float = 0.7  # τ > 0: p = softmax(logits / τ) sets the thresholds (nothing is sampled)
    epsilon: float = 0.09  # ε in [0, 1]: the hard probability threshold (reference: posterior_threshold)
    alpha: float = 0.3  # α in [0, 1]: factor of the entropy-scaled threshold α·exp(−H) (posterior_alpha)

    def __post_init__(self) -> None:
        _checks.real("temperature", self.temperature, minimum=0.0, open_min=True)
        _checks.real("epsilon", self.epsilon, minimum=0.0, maximum=1.0)
        _checks.real("alpha", self.alpha, minimum=0.0, maximum=1.0)


def _check(candidates: torch.Tensor, logits: torch.Tensor) -> None:
    _checks.tensor("candidates", candidates, dtypes=(torch.long,))
    dims = _checks.shape("candidates", candidates, "P L")
    _checks.tensor("logits", logits, floating=True)
    _checks.shape("logits", logits, "P L V", dims)


@export("speculative.greedy_acceptance")
def greedy_acceptance(candidates: torch.Tensor, logits: torch.Tensor) -> tuple[int, int]:
    """Longest prefix of drafted tokens that greedy decoding agrees with.

    Args:
        candidates: Tensor[P, D + 1] long, each path's tokens (root first), −1 for padding.
        logits: Tensor[P, D + 1, V], the base model's logits at each node.

    Returns:
        ``(best, length)``: the winning path and its number of accepted drafted tokens.

    Example:
        >>> logits = torch.eye(4)[torch.tensor([[1, 2, 0], [1, 3, 3]])]  # argmax: [1, 2, 0], [1, 3, 3]
        >>> greedy_acceptance(torch.tensor([[0, 1, 2], [0, 1, 0]]), logits)
        (0, 2)
    """
    _check(candidates, logits)
    match = (candidates[:, 1:] == logits[:, :-1].argmax(dim=-1)).int()  # (P, D)
    lengths = match.cumprod(dim=1).sum(dim=1)  # (P,)
    best = int(lengths.argmax())
    return best, int(lengths[best])


@export("speculative.typical_acceptance")
def typical_acceptance(candidates: torch.Tensor, logits: torch.Tensor,
                       config: TypicalConfig | None = None) -> tuple[int, int]:
    r"""Typical acceptance: keep drafted tokens the model finds plausible enough (deterministic).

    Args:
        candidates: Tensor[P, D + 1] long, each path's tokens (root first), −1 for padding.
        logits: Tensor[P, D + 1, V], the base model's logits at each node.
        config: τ, ε, α (default :class:`TypicalConfig`\ ()).

    Returns:
        ``(best, length)``: the winning path and its number of accepted drafted tokens.

    Raises:
        TypeError: ``config`` is not a :class:`TypicalConfig`.
        ValueError: (from :class:`TypicalConfig`) ``temperature <= 0`` or ``epsilon``/``alpha``
            outside [0, 1].
    """
    _check(candidates, logits)
    config = TypicalConfig() if config is None else _checks.instance("config", config, TypicalConfig)
    temperature, epsilon, alpha = config.temperature, config.epsilon, config.alpha
    probs = torch.softmax(logits[:, :-1].double() / temperature, dim=-1)  # (P, D, V)
    drafted = candidates[:, 1:]  # (P, D)
    p_drafted = torch.where(drafted >= 0, probs.gather(-1, drafted.clamp(min=0)[..., None])[..., 0], 0.0)  # (P, D)
    entropy = -(probs * torch.log(probs.clamp_min(1e-30))).sum(dim=-1)  # (P, D)
    threshold = torch.minimum(torch.full_like(entropy, epsilon), alpha * torch.exp(-entropy))
    lengths = (p_drafted > threshold).int().cumprod(dim=1).sum(dim=1)  # (P,)
    longest = int(lengths.max())
    if longest == 0:
        return 0, 0
    log_p = torch.log(p_drafted[:, :longest].clamp_min(1e-30)).sum(dim=1)  # (P,)
    log_p = log_p.masked_fill(lengths != longest, float("-inf"))
    return int(log_p.argmax()), longest
