"""Self-speculative decoding with the depth-1 MTP module as the draft model.

DeepSeek-V3 (§5.4.3) keeps its one MTP module at inference to draft the token after next; the
second token is accepted 85–90 % of the time, for about 1.8× the tokens per second. One step:

1. The main model has just produced t_{n+1} (not yet fed). The MTP module, from h⁰_n and
   Emb(t_{n+1}), drafts d ≈ t_{n+2}.
2. One forward pass of the main model over the two tokens [t_{n+1}, d] (with the KV cache).
   Its logits at t_{n+1} give the true t_{n+2}; greedy verification accepts d when they agree.
3. Accepted: t_{n+2} = d, and the logits at d give t_{n+3} for free — two tokens for one pass.
   Rejected: t_{n+2} is the main model's own token and d's cache entry is dropped — one token,
   as plain decoding would have given.

Either way the committed tokens are exactly those of plain greedy decoding (tested). The MTP
module keeps its own one-layer KV cache: its position i needs h⁰_i and t_{i+1}, so it is fed
only positions whose next token is committed, and never needs rolling back.

Limitation: greedy acceptance only, one draft token per step, batch size 1, and
``prompt length + max_new_tokens <= block_size``.

Notebook: ``11_multi_token_prediction`` ("Decoding with the MTP module"). Tests:
``tests/test_mtp.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from course_lib._export import export
from course_lib.lm.generate import check_prompt
from course_lib.lm.model import GPT, KVCache
from course_lib.mtp.mtp_module import MultiTokenPredictor


@export("mtp.MTPStep")
@dataclass
class MTPStep:
    """One verification pass."""

    fed: int  # t_{n+1}, the main model's last token, fed now
    draft: int  # d, the MTP module's guess for t_{n+2}
    accepted: bool  # did the main model agree with d?
    committed: list[int]  # the tokens this step added: [d, t_{n+3}] or [t_{n+2}]


@export("mtp.MTPResult")
@dataclass
class MTPResult:
    """The tokens (prompt + new) and the record of every step."""

    tokens: torch.Tensor  # Tensor[T + max_new_tokens]
    steps: list[MTPStep]
    prompt_length: int

    @property
    def tokens_per_pass(self) -> float:
        """Tokens committed per verification pass of the main model (plain decoding: 1)."""
        return sum(len(s.committed) for s in self.steps) / len(self.steps) if self.steps else 1.0

    @property
    def acceptance_rate(self) -> float:
        """The fraction of drafts the main model accepted."""
        return sum(s.accepted for s in self.steps) / len(self.steps) if self.steps else 0.0


@export("mtp.mtp_generate")
@torch.no_grad()
def mtp_generate(model: GPT, mtp: MultiTokenPredictor, prompt: torch.Tensor, max_new_tokens: int) -> MTPResult:
    """Continue ``prompt`` (Tensor[T]) greedily by ``max_new_tokens`` tokens, drafting with depth 1.

    The tokens equal ``course_lib.lm.generate(model, prompt, max_new_tokens)`` (in exact
    arithmetic: a two-token pass adds up the same terms as two one-token passes in another
    order, so an argmax between logits closer than the rounding error could flip; the tests
    check it in float64).

    Raises:
        TypeError, ValueError: a bad prompt (see :func:`course_lib.lm.generate`), a batch of
            prompts, or modules built for another model shape.
    """
    mtp.check_model(model)
    idx = check_prompt(model, prompt, max_new_tokens)
    if prompt.dim() != 1:
        raise ValueError(f"prompt must be one sequence, Tensor[T]; got shape {tuple(prompt.shape)}")
    P, dev = idx.shape[1], idx.device
    dtype = next(model.parameters()).dtype
    if max_new_tokens == 0:
        return MTPResult(idx[0], [], P)
    cache = KVCache(model.config, 1, device=dev, dtype=dtype)
    draft_cache = KVCache(mtp.config, 1, device=dev, dtype=dtype)
    module = mtp.layers[0]

    def draft_after(hidden: torch.Tensor, following: torch.Tensor) -> int:
        """Feed module 1 the positions whose next tokens are now known; its guess at the last one."""
        h1 = module(hidden, model.wte(following[None]), draft_cache)  # (1, n, C)
        return int(mtp.logits(model, 1, h1[0, -1]).argmax())

    logits, hidden = model(idx, cache)  # prefill: (1, P, V), (1, P, C)
    new = [int(logits[0, -1].argmax())]
    draft = draft_after(hidden, torch.cat([idx[0, 1:], torch.tensor(new, device=dev)]))
    steps: list[MTPStep] = []
    while len(new) < max_new_tokens:
        fed = new[-1]
        logits, hidden = model(torch.tensor([[fed, draft]], device=dev), cache)  # (1, 2, V)
        truth = int(logits[0, 0].argmax())
        if truth == draft:
            committed = [draft, int(logits[0, 1].argmax())]
        else:
            committed = [truth]
            cache.length -= 1  # d was wrong: forget its keys and values
        steps.append(MTPStep(fed, draft, truth == draft, committed))
        new += committed
        if len(new) < max_new_tokens:
            draft = draft_after(hidden[:, : len(committed)], torch.tensor(committed, device=dev))
    tokens = torch.cat([idx[0], torch.tensor(new[:max_new_tokens], device=dev)])
    return MTPResult(tokens, steps, P)
