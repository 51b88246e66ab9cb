"""Autoregressive decoding: greedy and sampled, with a KV cache or by full recomputation.

Each step computes ``logits = model(tokens)[..., -1, :]`` and picks the next token:

* greedy — ``argmax(logits)``;
* sampled — from ``softmax(logits / temperature)``, optionally restricted to the ``top_k``
  most likely tokens (Fan et al., 2018).

With ``use_cache=True`` the prompt is run once (the *prefill*) and every later step feeds only
the newest token, reading the keys and values of earlier tokens from a
:class:`~course_lib.lm.model.KVCache`. Both paths give the same tokens (``tests/test_lm.py``
asserts it): the cache changes the cost, not the result. Each cached step reads every weight
of the model to produce one token — decoding is memory-bound, which is what speculative
decoding (:mod:`course_lib.speculative`) exploits.

Limitation: no sliding window — ``prompt length + max_new_tokens <= block_size``.
Notebook: ``10_medusa``. Tests: ``tests/test_lm.py``.
"""

from __future__ import annotations

import torch

from course_lib import _checks
from course_lib._export import export
from course_lib.lm.model import GPT, KVCache


def check_prompt(model: GPT, prompt: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
    """Validate a prompt (Tensor[T] or Tensor[B, T]) against the model; return it as [B, T]."""
    _checks.instance("model", model, GPT)
    _checks.tensor("prompt", prompt, ndim=(1, 2), dtypes=(torch.long, torch.int))
    _checks.integer("max_new_tokens", max_new_tokens, minimum=0)
    idx = prompt.long()[None] if prompt.dim() == 1 else prompt.long()
    T, block = idx.shape[1], model.config.block_size
    if T == 0:
        raise ValueError("prompt must hold at least one token; got an empty prompt")
    if T > block:
        raise ValueError(f"prompt is longer than the context: {T} tokens > block_size={block}")
    if T + max_new_tokens > block:
        raise ValueError(
            f"prompt length + max_new_tokens must be <= block_size={block} (no sliding window); "
            f"got {T} + {max_new_tokens}"
        )
    if int(idx.min()) < 0 or int(idx.max()) >= model.config.vocab_size:
        raise ValueError(f"prompt tokens must lie in [0, {model.config.vocab_size}); "
                         f"got values {int(idx.min())}..{int(idx.max())}")
    return idx


def next_token(logits: torch.Tensor, temperature: float = 0.0, top_k: int | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Pick one token per row of ``logits`` (Tensor[B, V]): greedy if ``temperature == 0``.

    Returns:
        Tensor[B] of token ids.
    """
    if temperature == 0.0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


@export("lm.generate")
@torch.no_grad()
def generate(model: GPT, prompt: torch.Tensor, max_new_tokens: int, temperature: float = 0.0,
             top_k: int | None = None, generator: torch.Generator | None = None,
             use_cache: bool = True) -> torch.Tensor:
    """Continue ``prompt`` by ``max_new_tokens`` tokens.

    Args:
        model: the language model (put in eval mode by the caller).
        prompt: Tensor[T] or Tensor[B, T] of token ids.
        max_new_tokens: how many tokens to add.
        temperature: 0 for greedy decoding, > 0 to sample.
        top_k: sample only among the ``top_k`` most likely tokens (ignored when greedy).
        generator: the random generator for sampling (reproducible runs).
        use_cache: decode with a KV cache (True) or recompute the whole prefix each step.

    Returns:
        The prompt followed by the new tokens, with the prompt's shape: Tensor[T + n] or
        Tensor[B, T + n].

    Raises:
        ValueError: an empty prompt, a prompt longer than the context, prompt plus new tokens
            beyond ``block_size``, a negative temperature, ``top_k`` outside [1, vocab_size].
        TypeError: a prompt that is not an integer tensor.

    Example:
        >>> from course_lib.lm import encode, decode, load_checkpoint  # doctest: +SKIP
        >>> model, _ = load_checkpoint()                                # doctest: +SKIP
        >>> decode(generate(model, encode("def __init__(self"), 40))   # doctest: +SKIP
    """
    idx = check_prompt(model, prompt, max_new_tokens)
    _checks.real("temperature", temperature, minimum=0.0)
    if top_k is not None:
        _checks.integer("top_k", top_k, minimum=1, maximum=model.config.vocab_size)
    dtype = next(model.parameters()).dtype
    cache = KVCache(model.config, idx.shape[0], device=idx.device, dtype=dtype) if use_cache else None
    out = idx
    step_input = idx
    for _ in range(max_new_tokens):
        logits, _ = model(step_input if use_cache else out, cache=cache)
        token = next_token(logits[:, -1], float(temperature), top_k, generator)  # (B,)
        out = torch.cat([out, token[:, None]], dim=1)  # (B, T + i + 1)
        step_input = token[:, None]
    return out[0] if prompt.dim() == 1 else out
