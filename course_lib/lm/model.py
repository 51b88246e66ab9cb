"""A tiny GPT for code: nanoGPT's model plus a KV cache and an optional attention mask.

Paper: Radford et al., "Language Models are Unsupervised Multitask Learners" (GPT-2, 2019);
the code follows Karpathy's nanoGPT ``model.py`` (LayerNorm → CausalSelfAttention → MLP →
Block → GPT, pre-norm residual blocks, learned positions, tied input/output embeddings).

What each block computes, for x (Tensor[B, T, C]):

    x = x + Attn(LN(x)),   Attn = softmax(Q Kᵀ / √d_head + M) V  per head
    x = x + MLP(LN(x)),    MLP  = W₂ GELU(W₁ x)

with M = 0 where a query may see a key and −∞ elsewhere. Two additions over nanoGPT:

* **KV cache** (:class:`KVCache`): the keys and values of tokens already processed are kept,
  so decoding one more token costs one token's forward pass instead of the whole prefix. A
  forward call with a cache appends its T new tokens at positions ``cache.length …`` and
  attends to the whole cache.
* **attention mask** ``attn_mask`` (Tensor[T, T] bool, True = may attend) over the new tokens:
  the default is causal; Medusa passes a *tree* mask so that many candidate continuations are
  checked in one forward pass (:mod:`course_lib.speculative`). ``positions`` lets tree nodes at
  the same depth share a position. ``KVCache.compact`` then keeps only the accepted nodes.

Differences from nanoGPT: no dropout (the model underfits its corpus), no ``generate`` method
(see :mod:`course_lib.lm.generate`), the forward pass also returns the final hidden states
(Medusa's heads read them). Limitation: learned absolute positions, so the prompt plus the
generated tokens must fit in ``block_size``; no sliding window.

Notebook: ``10_medusa``. Tests: ``tests/test_lm.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import _checks
from course_lib._export import export


@export("lm.GPTConfig")
@dataclass
class GPTConfig:
    """The model's shape."""

    vocab_size: int = 256  # byte-level tokens
    block_size: int = 256  # longest sequence (prompt + generated) the model can see
    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # attention heads per block
    n_embd: int = 128  # model width C; each head has C / n_head dims

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            _checks.integer(name, getattr(self, name), minimum=1)
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd must be divisible by n_head; got n_embd={self.n_embd}, n_head={self.n_head}")


@export("lm.KVCache")
class KVCache:
    """Preallocated keys and values of every layer for the tokens processed so far.

    Attributes:
        k, v: Tensor[L, B, H, S, D] where S = ``max_len``; positions ``[0, length)`` are valid.
        length: how many positions are filled.
    """

    def __init__(self, config: GPTConfig, batch_size: int = 1, max_len: int | None = None,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> None:
        _checks.integer("batch_size", batch_size, minimum=1)
        max_len = config.block_size if max_len is None else _checks.integer("max_len", max_len, minimum=1)
        shape = (config.n_layer, batch_size, config.n_head, max_len, config.n_embd // config.n_head)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0

    @property
    def max_len(self) -> int:
        return self.k.shape[3]

    def compact(self, start: int, keep: torch.Tensor) -> None:
        """Keep only the positions ``start + keep`` of those after ``start``, moved to ``start …``.

        Used after tree verification: the tree's nodes were appended after ``start``; the
        accepted path (``keep``, Tensor[A] of node indices, ascending) becomes the new tail.

        Raises:
            ValueError: ``keep`` indexes beyond the filled length.
        """
        _checks.tensor("keep", keep, ndim=1, dtypes=(torch.long, torch.int))
        n = keep.numel()
        if n and (int(keep.min()) < 0 or start + int(keep.max()) >= self.length):
            raise ValueError(f"keep must index positions in [0, {self.length - start}); got {keep.tolist()}")
        src = start + keep.to(self.k.device)
        # index_select copies first, so overlapping source and destination ranges are safe.
        self.k[:, :, :, start : start + n] = self.k.index_select(3, src)
        self.v[:, :, :, start : start + n] = self.v.index_select(3, src)
        self.length = start + n


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, cache: KVCache | None, layer: int) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, H, T, D)
        if cache is not None:
            start = cache.length
            cache.k[layer, :, :, start : start + T] = k
            cache.v[layer, :, :, start : start + T] = v
            k = cache.k[layer, :, :, : start + T]  # (B, H, S, D), S = start + T
            v = cache.v[layer, :, :, : start + T]
        if mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, cache: KVCache | None, layer: int) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), mask, cache, layer)
        return x + self.mlp(self.ln_2(x))


@export("lm.GPT")
class GPT(nn.Module):
    """The language model: token ids in, next-token logits (and final hidden states) out.

    Example:
        >>> model = GPT(GPTConfig(n_layer=2, n_embd=64))
        >>> logits, hidden = model(torch.tensor([[100, 101, 102]]))
        >>> logits.shape, hidden.shape
        (torch.Size([1, 3, 256]), torch.Size([1, 3, 64]))
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = _checks.instance("config", config, GPTConfig)
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied embeddings (Press & Wolf, 2017)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):  # GPT-2: scale residual projections by 1/sqrt(2 L)
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        """Parameters, counting the tied embedding once and leaving out the position table."""
        return sum(p.numel() for p in self.parameters()) - self.wpe.weight.numel()

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None, attn_mask: torch.Tensor | None = None,
                positions: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the model on T new tokens, after the ``cache.length`` tokens already cached.

        Args:
            idx: Tensor[B, T] of token ids.
            cache: a :class:`KVCache` to read from and append to (its ``length`` grows by T).
            attn_mask: Tensor[T, T] bool, True where new token i may attend to new token j;
                default causal. Every new token always sees all cached tokens.
            positions: Tensor[T] of position ids; default ``cache.length + arange(T)``.

        Returns:
            ``(logits, hidden)``: Tensor[B, T, vocab_size] and the final (normalised) hidden
            states Tensor[B, T, C].

        Raises:
            ValueError: shapes that disagree, positions beyond ``block_size``, a full cache.
        """
        _checks.tensor("idx", idx, ndim=2, dtypes=(torch.long, torch.int))
        B, T = idx.shape
        start = 0 if cache is None else cache.length
        if cache is not None:
            if cache.k.shape[1] != B:
                raise ValueError(f"idx has batch size {B} but the cache was made for {cache.k.shape[1]}")
            if start + T > cache.max_len:
                raise ValueError(f"the cache holds {cache.max_len} positions; {start} are used and idx adds {T}")
        if positions is None:
            positions = torch.arange(start, start + T, device=idx.device)
        else:
            _checks.tensor("positions", positions, dtypes=(torch.long, torch.int))
            _checks.shape("positions", positions, "T", {"T": T})
        if T and (int(positions.min()) < 0 or int(positions.max()) >= self.config.block_size):
            raise ValueError(
                f"positions must lie in [0, block_size={self.config.block_size}); got T={T} new tokens "
                f"at positions {int(positions.min())}..{int(positions.max())} "
                "(prompt + generated tokens must fit)"
            )
        mask = None
        if attn_mask is not None or start > 0:
            if attn_mask is None:
                new = torch.ones(T, T, dtype=torch.bool, device=idx.device).tril()
            else:
                _checks.tensor("attn_mask", attn_mask, dtypes=(torch.bool,))
                _checks.shape("attn_mask", attn_mask, "T T", {"T": T})
                new = attn_mask
            mask = torch.cat([torch.ones(T, start, dtype=torch.bool, device=idx.device), new], dim=1)  # (T, S)
        x = self.wte(idx) + self.wpe(positions)  # (B, T, C)
        for layer, block in enumerate(self.blocks):
            x = block(x, mask, cache, layer)
        if cache is not None:
            cache.length = start + T
        hidden = self.ln_f(x)  # (B, T, C)
        return self.lm_head(hidden), hidden


@export("lm.lm_loss")
def lm_loss(model: GPT, batch: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy (nats per byte) of ``batch`` (Tensor[B, T + 1])."""
    _checks.tensor("batch", batch, ndim=2)
    logits, _ = model(batch[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1))
