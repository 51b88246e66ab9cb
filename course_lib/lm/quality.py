"""How good is a continuation? Its likelihood under the base model and how much it repeats itself.

A faster decoder that writes different text than the base model would has to be judged on what
it writes, not only on speed. Two measures, used by chapter 10 to put typical acceptance's
speed next to its quality:

* :func:`continuation_nll` — the base model's mean negative log-likelihood of the generated
  tokens given everything before them, in nats per byte:

      NLL = −(1/n) Σ_{t=T}^{T+n−1} log p(x_t | x_{<t})

  Greedy decoding writes each token at the model's own mode, so its NLL is low; sampling at
  temperature 1 has, on average, the model's entropy; a rule that accepts less likely drafts
  sits in between or above.
* :func:`repetition_rate` — the fraction of the continuation's n-grams (n bytes) that already
  occurred earlier in the continuation: a greedy loop (``self.self.self.``) scores near 1.

Both are the standard automatic proxies (Holtzman et al., "The Curious Case of Neural Text
Degeneration", ICLR 2020, use likelihood and repetition the same way). Edges: an empty
continuation (or one shorter than n for the repetition rate) has no tokens to average over:
the result is NaN (0/0), not 0.

Notebook: ``10_medusa`` ("Experiment"). Tests: ``tests/test_lm.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib import _checks
from course_lib._export import export
from course_lib.lm.model import GPT


@export("lm.continuation_nll")
@torch.no_grad()
def continuation_nll(model: GPT, tokens: torch.Tensor, prompt_length: int) -> float:
    """Mean NLL (nats per byte) of ``tokens[prompt_length:]`` given the tokens before each.

    Args:
        model: the base model that judges.
        tokens: Tensor[T + n] long, the prompt followed by the continuation (T + n <= block_size).
        prompt_length: T >= 1 (the first token has no context to be predicted from).

    Returns:
        The mean over the n continuation tokens; NaN when n = 0.

    Raises:
        TypeError: ``tokens`` is not an integer tensor.
        ValueError: ``tokens`` not 1-D, ``prompt_length`` outside [1, len(tokens)], or longer
            than the model's context.
    """
    _checks.instance("model", model, GPT)
    _checks.tensor("tokens", tokens, ndim=1, dtypes=(torch.long, torch.int))
    _checks.integer("prompt_length", prompt_length, minimum=1, maximum=tokens.numel())
    if tokens.numel() > model.config.block_size:
        raise ValueError(f"tokens must fit the context (block_size={model.config.block_size}); "
                         f"got {tokens.numel()} tokens")
    n = tokens.numel() - prompt_length
    if n == 0:
        return float("nan")
    logits, _ = model(tokens.long()[None, :-1])  # (1, T + n - 1, V): position t predicts t + 1
    nll = F.cross_entropy(logits[0, prompt_length - 1 :].double(), tokens[prompt_length:].long(),
                          reduction="sum")
    return float(nll) / n


@export("lm.repetition_rate")
def repetition_rate(tokens: torch.Tensor | list[int], n: int = 8) -> float:
    """Fraction of the n-grams of ``tokens`` that already occurred earlier in ``tokens``.

    Args:
        tokens: Tensor[L] or a list of token ids (pass the continuation only).
        n: the n-gram length in tokens (bytes here), >= 1.

    Returns:
        In [0, 1]; NaN when ``tokens`` has fewer than n tokens (no n-gram to count).

    Example:
        >>> repetition_rate([1, 2, 1, 2, 1, 2], n=2)  # (1,2) (2,1) new; then 3 of 5 seen before
        0.6
    """
    if isinstance(tokens, torch.Tensor):
        _checks.tensor("tokens", tokens, ndim=1)
        values = tokens.tolist()
    else:
        values = list(_checks.instance("tokens", tokens, (list, tuple)))
    n = _checks.integer("n", n, minimum=1)
    grams = [tuple(values[i : i + n]) for i in range(len(values) - n + 1)]
    if not grams:
        return float("nan")
    seen: set[tuple[int, ...]] = set()
    repeats = 0
    for g in grams:
        repeats += g in seen
        seen.add(g)
    return repeats / len(grams)
