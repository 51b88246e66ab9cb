"""Standard attention, written the way the formula reads: the specification every fast path meets.

    S = scale · Q Kᵀ            (B, H, T, S)   the scores
    P = softmax(S) row-wise     (B, H, T, S)   the attention weights
    O = P V                     (B, H, T, D)   the output

Both N×N matrices ``S`` and ``P`` are *materialised*: written to main memory (HBM on a GPU) and
read back. That is what makes standard attention memory-bound and O(N²) in memory, and what
FlashAttention avoids (Dao et al., 2022, https://arxiv.org/abs/2205.14135, Algorithm 0).

Causal masking follows ``torch.nn.functional.scaled_dot_product_attention(is_causal=True)``:
query ``i`` sees keys ``j <= i`` (the mask is aligned to the top-left corner when T ≠ S, so every
row sees at least key 0 and no row is empty). FlashAttention ≥ 2.1 aligns it bottom-right
instead; the two agree when T == S.

Empty inputs follow SDPA: a batch or ``T`` of 0 gives an empty output; ``S = 0`` (no key at all)
gives zeros, the empty sum of values (a softmax over nothing is never normalised). Special
values: a masked score is *replaced* by ``-inf`` (``masked_fill``), so a nan or inf in a
key that a query cannot see never reaches that query — as in FlashAttention, which does not even
load such keys. SDPA's math backend adds a ``-inf`` bias instead, and ``nan + (-inf) = nan``
reaches every row (``tests/test_attention_edges.py`` pins the difference). Otherwise IEEE rules
as in ``torch.softmax``: a +inf or nan score makes its row nan.

Notebook: ``09_flash_attention`` §1 (why attention is memory-bound). Tests: ``tests/test_attention.py``.
"""

from __future__ import annotations

import math

import torch

from course_lib import _checks
from course_lib._export import export


def check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None) -> tuple[dict[str, int], float]:
    """Validate ``q (B, H, T, D)``, ``k``/``v (B, H, S, D)`` and ``scale``; return sizes and scale.

    Shared by every implementation's public function, so all of them refuse the same inputs
    with the same messages.

    Raises:
        TypeError: not tensors, not floating point, dtypes differ, or a non-real scale.
        ValueError: not 4-D, sizes that disagree, D = 0, devices differ, scale <= 0. Empty batches
            and sequences are fine: T = 0 gives an empty output and S = 0 (no key) an output of
            zeros, as SDPA.
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        _checks.tensor(name, t, floating=True)
    dims = _checks.shape("q", q, "B H T D")
    _checks.shape("k", k, "B H S D", dims)
    _checks.shape("v", v, "B H S D", dims)
    if dims["D"] == 0:  # the default scale 1/sqrt(D) would be inf
        raise ValueError(f"q, k and v need at least one feature (D >= 1); got q {tuple(q.shape)}, k {tuple(k.shape)}")
    _checks.same_device(q=q, k=k, v=v)
    _checks.same_dtype(q=q, k=k, v=v)
    if scale is None:
        scale = 1.0 / math.sqrt(dims["D"])
    scale = _checks.real("scale", scale, minimum=0.0, open_min=True)
    return dims, scale


def causal_mask(t: int, s: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``mask[i, j] = j <= i`` as a bool ``Tensor[t, s]``: which keys query ``i`` may see."""
    rows = torch.arange(t, device=device)[:, None]
    cols = torch.arange(s, device=device)[None, :]
    return cols <= rows  # (t, s)


@export("attention.attention_ref")
def attention_ref(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False, scale: float | None = None
) -> torch.Tensor:
    """softmax(scale · Q Kᵀ) V with the full score matrix in memory: the spec.

    Args:
        q (Tensor[B, H, T, D]): queries.
        k (Tensor[B, H, S, D]): keys.
        v (Tensor[B, H, S, D]): values.
        causal: mask out keys after the query (``j > i``), as SDPA's ``is_causal``.
        scale: multiplies the scores; default ``1 / sqrt(D)``.

    Returns:
        Tensor[B, H, T, D]: the attention output, in the inputs' dtype (computed in it too).

    Raises:
        TypeError, ValueError: see :func:`check_qkv`.

    Example:
        >>> q = k = v = torch.randn(1, 2, 5, 16)
        >>> attention_ref(q, k, v, causal=True).shape
        torch.Size([1, 2, 5, 16])
    """
    dims, scale = check_qkv(q, k, v, scale)
    s = scale * q @ k.transpose(-2, -1)  # (B, H, T, S): the N×N matrix FlashAttention never stores
    if causal:
        s = s.masked_fill(~causal_mask(dims["T"], dims["S"], q.device), float("-inf"))
    p = torch.softmax(s, dim=-1)  # (B, H, T, S)
    return p @ v  # (B, H, T, D)


def attention_lse_ref(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False, scale: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`attention_ref` in float32 plus each row's log-sum-exp ``L = log Σ_j exp(S_ij)``.

    The pair ``(O, L)`` is what a FlashAttention forward pass returns: ``L`` is all the backward
    pass needs to rebuild ``P = exp(S - L)`` tile by tile.

    Returns:
        (Tensor[B, H, T, D], Tensor[B, H, T]): the output (in ``q``'s dtype) and ``L`` (float32).
    """
    dims, scale = check_qkv(q, k, v, scale)
    s = scale * q.float() @ k.float().transpose(-2, -1)  # (B, H, T, S)
    if causal:
        s = s.masked_fill(~causal_mask(dims["T"], dims["S"], q.device), float("-inf"))
    lse = torch.logsumexp(s, dim=-1)  # (B, H, T)
    o = torch.exp(s - lse[..., None]) @ v.float()  # (B, H, T, D)
    return o.to(q.dtype), lse
