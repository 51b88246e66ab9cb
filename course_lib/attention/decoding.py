"""Decoding: a few new queries against a long KV cache, bottom-right causal, split over the keys.

When a language model generates, each step has ``T`` new queries (often 1) and a cache of ``S``
keys and values, ``T <= S``: the new queries are the *last* ``T`` positions. Query ``i`` sits at
absolute position ``S - T + i`` and sees keys ``j <= S - T + i`` — the causal mask aligned to the
**bottom-right** corner of the ``T × S`` score matrix, as FlashAttention ≥ 2.1 does. SDPA's
``is_causal`` aligns it top-left (query ``i`` sees ``j <= i``), which for ``T = 1`` would let the
new token see only the first key: for decoding, pass the bottom-right mask explicitly.

With ``T = 1`` there is one Q block per (batch, head): FlashAttention-2's grid (Q blocks × heads)
leaves most of a GPU idle. **Split-K** (flash-decoding, Dao et al. 2023,
https://crfm.stanford.edu/2023/10/12/flashdecoding.html) also splits the *keys* into chunks, computes
a partial :class:`~course_lib.attention.online_softmax.SoftmaxState` per chunk in parallel, and
merges them with the online-softmax rule (:func:`merge_states`) — exactly, in any order.

Convention: ``T <= S`` is required, so no query row is empty (with ``T > S`` the first rows would
see no key; SDPA returns 0 there, a softmax 0/0 = nan). A chunk that a row cannot see at all
gives the empty state ``m = -inf``, which merging ignores.

Notebook: ``09_flash_attention`` §6 (decoding). Tests: ``tests/test_attention_decoding.py``.
"""

from __future__ import annotations

import math

import torch

from course_lib import _checks
from course_lib._export import export
from course_lib.attention.online_softmax import SoftmaxState, block_state, merge_states
from course_lib.attention.reference import check_qkv


@export("attention.bottom_right_causal_mask")
def bottom_right_causal_mask(t: int, s: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``mask[i, j] = j <= i + (s - t)`` as a bool ``Tensor[t, s]``: the last ``t`` of ``s`` positions.

    Raises:
        ValueError: ``t`` or ``s`` not a positive int, or ``t > s``.
    """
    t = _checks.integer("t", t, minimum=1)
    s = _checks.integer("s", s, minimum=1)
    if t > s:
        raise ValueError(f"t (new queries) must be <= s (keys in the cache, the new ones included); got t={t}, s={s}")
    rows = torch.arange(t, device=device)[:, None] + (s - t)  # (t, 1): absolute positions of the queries
    return torch.arange(s, device=device)[None, :] <= rows  # (t, s)


@export("attention.split_kv_states")
def split_kv_states(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, n_splits: int,
                    scale: float | None = None, causal: bool = True) -> list[SoftmaxState]:
    """The partial states of :func:`decode_attention`, one per chunk of keys (what each GPU program keeps).

    Args:
        q (Tensor[B, H, T, D]): the new queries, the last ``T`` positions.
        k, v (Tensor[B, H, S, D]): the KV cache, ``S >= T``.
        n_splits: how many chunks the ``S`` keys are cut into (1..S; the last may be shorter).
        scale: score multiplier; default ``1 / sqrt(D)``.
        causal: bottom-right causal mask (:func:`bottom_right_causal_mask`); ``False`` = all keys.

    Returns:
        ``n_splits`` states with ``m``, ``l`` of shape ``(B, H, T)`` and ``acc`` ``(B, H, T, D)``, in float32
        (float64 for float64 inputs).
    """
    dims, scale = check_qkv(q, k, v, scale)
    t, s = dims["T"], dims["S"]
    n_splits = _checks.integer("n_splits", n_splits, minimum=1, maximum=s)
    mask = bottom_right_causal_mask(t, s, q.device) if causal else None  # raises for T > S
    dt = torch.float64 if q.dtype == torch.float64 else torch.float32
    chunk = math.ceil(s / n_splits)
    states = []
    for start in range(0, s, chunk):  # on a GPU: one program per (chunk, batch, head), in parallel
        cols = slice(start, min(s, start + chunk))
        scores = scale * q.to(dt) @ k[:, :, cols].to(dt).transpose(-2, -1)  # (B, H, T, chunk)
        if mask is not None:
            scores = scores.masked_fill(~mask[:, cols], float("-inf"))
        states.append(block_state(scores, v[:, :, None, cols].to(dt)))  # V chunk shared by the T rows
    return states


@export("attention.decode_attention")
def decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, n_splits: int = 1,
                     scale: float | None = None, causal: bool = True) -> torch.Tensor:
    """Attention of ``T`` new queries over a KV cache of ``S >= T`` keys, split-K (flash-decoding).

    Args:
        q, k, v, n_splits, scale, causal: as :func:`split_kv_states`.

    Returns:
        Tensor[B, H, T, D], in q's dtype: equal to SDPA with the bottom-right mask as ``attn_mask``.

    Raises:
        TypeError, ValueError: bad tensors (see :func:`~course_lib.attention.reference.check_qkv`),
            ``T > S`` with ``causal``, or ``n_splits`` outside ``1..S``.

    Example:
        >>> q, k, v = torch.randn(1, 2, 1, 16), torch.randn(1, 2, 100, 16), torch.randn(1, 2, 100, 16)
        >>> o = decode_attention(q, k, v, n_splits=8)
        >>> torch.allclose(o, torch.nn.functional.scaled_dot_product_attention(q, k, v), atol=1e-6)
        True
    """
    states = split_kv_states(q, k, v, n_splits, scale, causal)
    state = states[0]
    for other in states[1:]:  # on a GPU: a small reduction kernel after the split kernels
        state = merge_states(state, other)
    return state.output().to(q.dtype)  # acc / l: (B, H, T, D)
