"""Lossless speculative *sampling*: draft from q, accept with probability min(1, p/q), else resample.

Papers: Leviathan, Kalman, Matias, "Fast Inference from Transformers via Speculative Decoding"
(ICML 2023), §2.3; Chen et al., "Accelerating Large Language Model Decoding with Speculative
Sampling" (2023), Algorithm 2.

Greedy acceptance (:mod:`.medusa_acceptance`) is lossless for greedy decoding only. To sample
at temperature τ and still get *exactly* the model's distribution, draw the draft token
x ~ q (the drafter's distribution) and, with p the target model's distribution at that
position (both at temperature τ),

    accept x with probability min(1, p(x) / q(x));
    otherwise sample from the residual  r = norm(max(0, p − q)).

Why it is exact: P(x is output) = q(x)·min(1, p(x)/q(x)) + P(reject)·r(x)
= min(q(x), p(x)) + (Σ_y max(0, p(y) − q(y)))·r(x) = min(q, p)(x) + max(0, p − q)(x) = p(x).
The better q matches p, the more drafts are accepted; the output distribution never depends
on q. (``tests/test_speculative.py`` checks it with a chi-square test over many samples.)

One step of :func:`speculative_sample` (one draft token, as ``course_lib.mtp.mtp_generate``):
the pending token t (sampled, not yet fed) and a draft d ~ q go through one forward pass; the
logits at t give p for d's position; on acceptance the logits at d give a *bonus* token sampled
from p — two tokens for one pass — and on rejection d's cache entry is dropped. The drafters:
:class:`MedusaDrafter` (Medusa's first head, from h at the token before t) and
``course_lib.mtp.MTPDrafter`` (the depth-1 MTP module, which is also told t).

Limitations: one draft token per step (no tree: a tree needs the multi-draft generalisation,
SpecInfer/Medusa's "typical" work-around), batch size 1, no top-k/top-p truncation.

Notebook: ``10_medusa`` ("Lossless sampling"). Tests: ``tests/test_speculative.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from course_lib import _checks
from course_lib._export import export
from course_lib.lm.generate import check_prompt
from course_lib.lm.model import GPT, KVCache
from course_lib.speculative.medusa_heads import MedusaHeads

# A drafter maps (hidden states of the newly fed positions, Tensor[n, C]; the token that follows
# each of them, Tensor[n]; a per-generation state dict) to the draft logits (Tensor[V]) for the
# token after the last of them. The state dict belongs to one generation, not to the drafter,
# so one drafter serves any number of generations.
Drafter = Callable[[torch.Tensor, torch.Tensor, dict[str, Any]], torch.Tensor]


@export("speculative.speculative_accept")
def speculative_accept(p: torch.Tensor, q: torch.Tensor, draft: int,
                       generator: torch.Generator | None = None) -> tuple[bool, int]:
    """Accept ``draft`` (drawn from ``q``) with probability min(1, p/q), else resample from max(0, p − q).

    Args:
        p: Tensor[V], the target model's probabilities at the draft's position.
        q: Tensor[V], the drafter's probabilities the draft was sampled from (q[draft] > 0).
        draft: the drafted token.
        generator: the random source (reproducible runs).

    Returns:
        ``(accepted, token)``: ``token`` is ``draft`` when accepted, else the resampled token.

    Raises:
        TypeError: non-float ``p``/``q`` or a non-int ``draft``.
        ValueError: shapes that differ or are not 1-D, ``draft`` outside [0, V), ``q[draft] == 0``.

    Example:
        >>> p, q = torch.tensor([0.5, 0.5]), torch.tensor([0.5, 0.5])
        >>> speculative_accept(p, q, 1)  # p == q: always accepted
        (True, 1)
    """
    _checks.tensor("p", p, ndim=1, floating=True)
    dims = _checks.shape("p", p, "V")
    _checks.tensor("q", q, ndim=1, floating=True)
    _checks.shape("q", q, "V", dims)
    draft = _checks.integer("draft", draft, minimum=0, maximum=p.numel() - 1)
    if not float(q[draft]) > 0:
        raise ValueError(f"q[draft] must be > 0 (the draft was sampled from q); got q[{draft}] = {float(q[draft])}")
    u = torch.rand((), generator=generator, dtype=torch.float64)
    # u < p/q written without the division; p >= q accepts always since u < 1
    if float(u) * float(q[draft]) < float(p[draft]):
        return True, draft
    residual = (p.double() - q.double()).clamp_min(0.0)  # (V,); > 0 somewhere whenever rejection can happen
    return False, int(torch.multinomial(residual / residual.sum(), 1, generator=generator))


@export("speculative.MedusaDrafter")
class MedusaDrafter:
    """Medusa's first head as a drafter: h at the token before the pending one → the token after it."""

    def __init__(self, heads: MedusaHeads) -> None:
        self.heads = _checks.instance("heads", heads, MedusaHeads)

    def __call__(self, hidden: torch.Tensor, following: torch.Tensor, state: dict[str, Any]) -> torch.Tensor:
        # head 0 at position t predicts t + 2: the pending token is t + 1, the draft t + 2
        return self.heads(hidden[-1])[0]  # (V,)


@export("speculative.SpeculativeResult")
@dataclass
class SpeculativeResult:
    """The output of :func:`speculative_sample`."""

    tokens: torch.Tensor  # Tensor[T + n]: the prompt and the sampled tokens
    prompt_length: int  # T
    accepted: list[bool] = field(default_factory=list)  # one per verification pass: was the draft kept?

    @property
    def acceptance_rate(self) -> float:
        """Fraction of drafts accepted (NaN when no pass ran: 0/0)."""
        return sum(self.accepted) / len(self.accepted) if self.accepted else float("nan")

    @property
    def tokens_per_pass(self) -> float:
        """Tokens committed per verification pass, 1 + acceptance rate (NaN when no pass ran)."""
        return 1.0 + self.acceptance_rate


def _sample(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> int:
    return int(torch.multinomial(torch.softmax(logits.double() / temperature, dim=-1), 1, generator=generator))


@export("speculative.speculative_sample")
@torch.no_grad()
def speculative_sample(model: GPT, drafter: Drafter, prompt: torch.Tensor, max_new_tokens: int,
                       temperature: float = 1.0, generator: torch.Generator | None = None) -> SpeculativeResult:
    """Sample ``max_new_tokens`` tokens from ``model`` at ``temperature``, one drafted token per pass.

    The output has exactly the distribution of ``course_lib.lm.generate(model, prompt, n,
    temperature=temperature)`` (see the module docstring); only the number of forward passes differs.

    Args:
        model: the target model, in eval mode.
        drafter: a :data:`Drafter` — :class:`MedusaDrafter` or ``course_lib.mtp.MTPDrafter``.
        prompt: Tensor[T] of token ids.
        max_new_tokens: n (T + n <= block_size).
        temperature: τ > 0 for both p and q.
        generator: the random source.

    Returns:
        A :class:`SpeculativeResult`.

    Raises:
        TypeError, ValueError: a bad prompt (see ``course_lib.lm.generate``), a batch of prompts,
            ``temperature <= 0``, a drafter that is not callable.
    """
    _checks.real("temperature", temperature, minimum=0.0, open_min=True)
    if not callable(drafter):
        raise TypeError(f"drafter must be callable (hidden, following, state) -> logits; got {type(drafter).__name__}")
    _checks.tensor("prompt", prompt, ndim=1, dtypes=(torch.long, torch.int))
    idx = check_prompt(model, prompt, max_new_tokens)  # (1, T)
    T, dev = idx.shape[1], idx.device
    if max_new_tokens == 0:
        return SpeculativeResult(idx[0], T)
    dtype = next(model.parameters()).dtype
    cache = KVCache(model.config, 1, device=dev, dtype=dtype)
    state: dict[str, Any] = {}
    logits, hidden = model(idx, cache)  # prefill: (1, T, V), (1, T, C)
    new = [_sample(logits[0, -1], temperature, generator)]
    q_logits = drafter(hidden[0], torch.cat([idx[0, 1:], torch.tensor(new, device=dev)]), state)  # (V,)
    accepted: list[bool] = []
    while len(new) < max_new_tokens:
        q = torch.softmax(q_logits.double() / temperature, dim=-1)  # (V,)
        draft = int(torch.multinomial(q, 1, generator=generator))
        logits, hidden = model(torch.tensor([[new[-1], draft]], device=dev), cache)  # (1, 2, V)
        p = torch.softmax(logits[0, 0].double() / temperature, dim=-1)  # the target at the draft's position
        ok, token = speculative_accept(p, q, draft, generator)
        if ok:
            committed = [draft, _sample(logits[0, 1], temperature, generator)]  # the bonus token, exact
        else:
            committed = [token]
            cache.length -= 1  # forget the rejected draft's keys and values
        accepted.append(ok)
        new += committed
        if len(new) < max_new_tokens:
            q_logits = drafter(hidden[0, : len(committed)], torch.tensor(committed, device=dev), state)
    tokens = torch.cat([idx[0], torch.tensor(new[:max_new_tokens], device=dev)])
    return SpeculativeResult(tokens, T, accepted)
