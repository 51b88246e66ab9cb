"""Self-speculative decoding with the depth-1 MTP module as the draft model.

DeepSeek-V3 (§5.4.3) keeps its one MTP module at inference to draft the token after next; the
second token is accepted 85–90 % of the time, for about 1.8× the tokens per second. With the
main model frozen and a one-block drafter fed the main model's features and the next token's
embedding, this is also the design of EAGLE (Li, Wei, Zhang, Zhang, "EAGLE: Speculative Sampling
Requires Rethinking Feature Uncertainty", ICML 2024). One step:

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

Sampling: :class:`MTPDrafter` makes module 1 a drafter for lossless speculative *sampling*
(``course_lib.speculative.speculative_sample``). Limitation: one draft token per step, batch size 1, and
``prompt length + max_new_tokens <= block_size``.

Notebook: ``11_multi_token_prediction`` ("Decoding with the MTP module"). Tests:
``tests/test_mtp.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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

    @property
    def main(self) -> int:
        """The main model's own t_{n+2}: equal to the draft when accepted."""
        return self.committed[0]


@export("mtp.MTPResult")
@dataclass
class MTPResult:
    """The tokens (prompt + new) and the record of every step."""

    tokens: torch.Tensor  # Tensor[T + max_new_tokens]
    steps: list[MTPStep]
    prompt_length: int

    @property
    def tokens_per_pass(self) -> float:
        """Tokens committed per verification pass of the main model (NaN with no pass: 0/0)."""
        return sum(len(s.committed) for s in self.steps) / len(self.steps) if self.steps else float("nan")

    @property
    def acceptance_rate(self) -> float:
        """The fraction of drafts the main model accepted (NaN with no pass: 0/0)."""
        return sum(s.accepted for s in self.steps) / len(self.steps) if self.steps else float("nan")


@export("mtp.MTPDrafter")
class MTPDrafter:
    """The depth-1 MTP module as a drafter for :func:`course_lib.speculative.speculative_sample`.

    Fed the main model's hidden states h⁰ of newly committed positions and the token after each,
    it runs module 1 with its own one-layer KV cache (kept in the per-generation ``state``) and
    returns the draft logits for the token after the last of them.
    """

    def __init__(self, model: GPT, mtp: MultiTokenPredictor) -> None:
        self.model = mtp.check_model(model)
        self.mtp = mtp

    def __call__(self, hidden: torch.Tensor, following: torch.Tensor, state: dict[str, Any]) -> torch.Tensor:
        if "cache" not in state:  # one cache per generation, in the generation's state
            state["cache"] = KVCache(self.mtp.config, 1, device=hidden.device, dtype=hidden.dtype)
        h1 = self.mtp.layers[0](hidden[None], self.model.wte(following[None]), state["cache"])  # (1, n, C)
        return self.mtp.logits(self.model, 1, h1[0, -1])  # (V,)


@export("mtp.draft_next")
def draft_next(model: GPT, mtp: MultiTokenPredictor, draft_cache: KVCache, hidden: torch.Tensor,
               following: torch.Tensor) -> int:
    """Feed module 1 positions whose next tokens are now known (h⁰: Tensor[1, n, C], Tensor[n]);
    return its greedy guess for the token after the last of them."""
    h1 = mtp.layers[0](hidden, model.wte(following[None]), draft_cache)  # (1, n, C)
    return int(mtp.logits(model, 1, h1[0, -1]).argmax())


@export("mtp.verify_pass")
def verify_pass(model: GPT, cache: KVCache, fed: int, draft: int) -> tuple[MTPStep, torch.Tensor]:
    """One main-model pass over [fed, draft]; keep the draft iff it is the main model's argmax.

    Returns:
        ``(step, hidden)``: the record and h⁰ at the committed positions (Tensor[1, n, C]).
    """
    dev = cache.k.device
    logits, hidden = model(torch.tensor([[fed, draft]], device=dev), cache)  # (1, 2, V), (1, 2, C)
    top = logits[0].argmax(-1).tolist()  # the main model's choice after fed and after the draft
    if top[0] == draft:
        committed = [draft, top[1]]
    else:
        committed = [top[0]]
        cache.length -= 1  # d was wrong: forget its keys and values
    return MTPStep(fed, draft, top[0] == draft, committed), hidden[:, : len(committed)]


@export("mtp.mtp_generate")
@torch.no_grad()
def mtp_generate(model: GPT, mtp: MultiTokenPredictor, prompt: torch.Tensor, max_new_tokens: int) -> MTPResult:
    """Continue ``prompt`` (Tensor[T]) greedily by ``max_new_tokens`` tokens, drafting with depth 1.

    The tokens equal ``course_lib.lm.generate(model, prompt, max_new_tokens)`` (in exact
    arithmetic: a two-token pass adds up the same terms as two one-token passes in another
    order, so an argmax between logits closer than the rounding error could flip; the tests
    check it in float64). One step is :func:`verify_pass` then :func:`draft_next`.

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
    logits, hidden = model(idx, cache)  # prefill: (1, P, V), (1, P, C)
    new = [int(logits[0, -1].argmax())]
    draft = draft_next(model, mtp, draft_cache, hidden, torch.cat([idx[0, 1:], torch.tensor(new, device=dev)]))
    steps: list[MTPStep] = []
    while len(new) < max_new_tokens:
        step, hidden = verify_pass(model, cache, new[-1], draft)
        steps.append(step)
        new += step.committed
        if len(new) < max_new_tokens:
            draft = draft_next(model, mtp, draft_cache, hidden, torch.tensor(step.committed, device=dev))
    tokens = torch.cat([idx[0], torch.tensor(new[:max_new_tokens], device=dev)])
    return MTPResult(tokens, steps, P)
