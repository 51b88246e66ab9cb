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

**Typical** (for sampling at temperature τ): with p = softmax(logits / τ) and its entropy H,
drafted token x is accepted iff

    p(x) > min(ε, α · exp(−H))

a hard threshold ε for confident distributions, relaxed to α·exp(−H) when the model is unsure.
Among the paths with the longest accepted prefix, the most likely one (Σ log p) wins. Not
lossless: it trades exactness of the sampling distribution for longer accepted runs.

Returns of both: ``(best, length)`` — the winning path and how many of its *drafted* tokens
(after the root) are accepted; the root itself is always kept.

Notebook: ``10_medusa`` ("Acceptance"). Tests: ``tests/test_speculative.py``.
"""

from __future__ import annotations

import torch

from course_lib import _checks
from course_lib._export import export


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
def typical_acceptance(candidates: torch.Tensor, logits: torch.Tensor, temperature: float = 0.7,
                       epsilon: float = 0.09, alpha: float = 0.3) -> tuple[int, int]:
    """Typical acceptance: keep drafted tokens the model finds plausible enough.

    Args:
        candidates: Tensor[P, D + 1] long, each path's tokens (root first), −1 for padding.
        logits: Tensor[P, D + 1, V], the base model's logits at each node.
        temperature: τ > 0, the sampling temperature.
        epsilon: ε, the hard probability threshold (the reference's ``posterior_threshold``).
        alpha: α, the entropy-scaled threshold's factor (``posterior_alpha``).

    Returns:
        ``(best, length)``: the winning path and its number of accepted drafted tokens.

    Raises:
        ValueError: ``temperature <= 0`` or ``epsilon``/``alpha`` outside [0, 1].
    """
    _check(candidates, logits)
    _checks.real("temperature", temperature, minimum=0.0, open_min=True)
    _checks.real("epsilon", epsilon, minimum=0.0, maximum=1.0)
    _checks.real("alpha", alpha, minimum=0.0, maximum=1.0)
    probs = torch.softmax(logits[:, :-1].double() / temperature, dim=-1)  # (P, D, V)
    drafted = candidates[:, 1:]  # (P, D)
    p_drafted = probs.gather(-1, drafted.clamp(min=0)[..., None])[..., 0] * (drafted >= 0)  # (P, D)
    entropy = -(probs * torch.log(probs.clamp_min(1e-30))).sum(dim=-1)  # (P, D)
    threshold = torch.minimum(torch.full_like(entropy, epsilon), alpha * torch.exp(-entropy))
    lengths = (p_drafted > threshold).int().cumprod(dim=1).sum(dim=1)  # (P,)
    longest = int(lengths.max())
    if longest == 0:
        return 0, 0
    log_p = torch.log(p_drafted[:, :longest].clamp_min(1e-30)).sum(dim=1)  # (P,)
    log_p = log_p.masked_fill(lengths != longest, float("-inf"))
    return int(log_p.argmax()), longest
