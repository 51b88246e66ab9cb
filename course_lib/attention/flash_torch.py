"""FlashAttention in plain PyTorch: the tiled algorithm, forward and backward, block sizes as arguments.

The forward pass visits the score matrix one ``block_m × block_n`` tile at a time (outer loop
over Q blocks, inner over K/V blocks — FlashAttention-2's order, Dao 2023,
https://arxiv.org/abs/2307.08691) and folds each tile into a running :class:`SoftmaxState` with
:func:`merge_states`. Only ``O`` and the row log-sum-exp ``L = m + log l`` are written:

    forward:   for each Q block i:  state = empty
                   for each K/V block j (skipping causal tiles above the diagonal):
                       S_ij = scale · Q_i K_jᵀ                       (block_m, block_n)
                       state = merge(state, block_state(S_ij, V_j))
                   O_i = acc / l ;  L_i = m + log l

    backward:  D = rowsum(dO ∘ O)
               for each K/V block j:  for each Q block i (not skipped):
                       P_ij  = exp(scale · Q_i K_jᵀ - L_i)             recomputed, never stored
                       dV_j += P_ijᵀ dO_i
                       dP_ij = dO_i V_jᵀ
                       dS_ij = P_ij ∘ (dP_ij - D_i)
                       dQ_i += scale · dS_ij K_j ;  dK_j += scale · dS_ijᵀ Q_i

Saved for backward: ``q, k, v, O, L`` — O(N·d) memory instead of the O(N²) attention matrix.
Differences from the paper: Python loops over tiles (vectorised over batch and heads), and math in
float32 (float64 for float64 inputs) rather than on-chip SRAM — this is the algorithm made
readable, not fast; :mod:`course_lib.attention.flash_triton` is the kernel.

Notebook: ``09_flash_attention`` §3 (the PyTorch version). Tests: ``tests/test_attention.py``.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from course_lib import _checks
from course_lib._export import export
from course_lib.attention.online_softmax import SoftmaxState, block_state, merge_states
from course_lib.attention.reference import causal_mask, check_qkv
from course_lib.attention.tiling import causal_tile_skipped


def _math_dtype(dtype: torch.dtype) -> torch.dtype:
    # Low-precision inputs are accumulated in float32, as the GPU kernel does in registers.
    return torch.float64 if dtype == torch.float64 else torch.float32


def _tile_mask(rows: range, cols: range, device: torch.device) -> torch.Tensor:
    """Causal mask of one tile, ``Tensor[len(rows), len(cols)]``: key col <= query row."""
    full = causal_mask(rows.stop, cols.stop, device)  # (rows.stop, cols.stop)
    return full[rows.start:, cols.start:]  # (len(rows), len(cols))


def flash_forward_torch(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, scale: float, block_m: int, block_n: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tiled forward pass; returns ``O (Tensor[B, H, T, D])`` and ``L (Tensor[B, H, T])``.

    Inputs are assumed checked (see :func:`flash_attention_torch`).
    """
    B, H, T, D = q.shape
    S = k.shape[2]
    dt = _math_dtype(q.dtype)
    o = torch.empty(B, H, T, D, dtype=q.dtype, device=q.device)
    lse = torch.empty(B, H, T, dtype=dt, device=q.device)
    if S == 0:  # no key: the empty sum of values, as SDPA; L = log(empty sum) = -inf
        return o.zero_(), lse.fill_(float("-inf"))
    for i, r0 in enumerate(range(0, T, block_m)):
        rows = range(r0, min(T, r0 + block_m))
        q_i = q[:, :, rows.start:rows.stop].to(dt)  # (B, H, bm, D)
        state = SoftmaxState(torch.full((B, H, len(rows)), float("-inf"), dtype=dt, device=q.device),
                             torch.zeros(B, H, len(rows), dtype=dt, device=q.device),
                             torch.zeros(B, H, len(rows), D, dtype=dt, device=q.device))
        for j, c0 in enumerate(range(0, S, block_n)):
            if causal and causal_tile_skipped(i, j, block_m, block_n):
                break  # this tile and all to its right lie above the diagonal
            cols = range(c0, min(S, c0 + block_n))
            k_j = k[:, :, cols.start:cols.stop].to(dt)  # (B, H, bn, D)
            v_j = v[:, :, cols.start:cols.stop].to(dt)  # (B, H, bn, D)
            s_ij = scale * q_i @ k_j.transpose(-2, -1)  # (B, H, bm, bn): lives only for this step
            if causal:
                s_ij = s_ij.masked_fill(~_tile_mask(rows, cols, q.device), float("-inf"))
            state = merge_states(state, block_state(s_ij, v_j[:, :, None]))  # V_j shared by the tile's rows
        o[:, :, rows.start:rows.stop] = state.output().to(q.dtype)  # acc / l: (B, H, bm, D)
        lse[:, :, rows.start:rows.stop] = state.m + torch.log(state.l)  # (B, H, bm)
    return o, lse


def flash_backward_torch(
    do: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, o: torch.Tensor, lse: torch.Tensor,
    causal: bool, scale: float, block_m: int, block_n: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tiled backward pass (FlashAttention-2, Algorithm 2): ``dq, dk, dv`` from the saved ``L``."""
    T, S = q.shape[2], k.shape[2]
    dt = lse.dtype
    delta = (do.to(dt) * o.to(dt)).sum(dim=-1)  # (B, H, T): D_i = rowsum(dO ∘ O) = Σ_j P_ij dP_ij
    dq = torch.zeros(q.shape, dtype=dt, device=q.device)
    dk = torch.zeros(k.shape, dtype=dt, device=q.device)
    dv = torch.zeros(v.shape, dtype=dt, device=q.device)
    for j, c0 in enumerate(range(0, S, block_n)):
        cols = range(c0, min(S, c0 + block_n))
        k_j = k[:, :, cols.start:cols.stop].to(dt)  # (B, H, bn, D)
        v_j = v[:, :, cols.start:cols.stop].to(dt)  # (B, H, bn, D)
        for i, r0 in enumerate(range(0, T, block_m)):
            if causal and causal_tile_skipped(i, j, block_m, block_n):
                continue
            rows = range(r0, min(T, r0 + block_m))
            q_i = q[:, :, rows.start:rows.stop].to(dt)  # (B, H, bm, D)
            do_i = do[:, :, rows.start:rows.stop].to(dt)  # (B, H, bm, D)
            s_ij = scale * q_i @ k_j.transpose(-2, -1)  # (B, H, bm, bn)
            p_ij = torch.exp(s_ij - lse[:, :, rows.start:rows.stop, None])  # (B, H, bm, bn): recomputed
            if causal:
                p_ij = p_ij.masked_fill(~_tile_mask(rows, cols, q.device), 0.0)
            dv[:, :, cols.start:cols.stop] += p_ij.transpose(-2, -1) @ do_i  # (B, H, bn, D)
            dp_ij = do_i @ v_j.transpose(-2, -1)  # (B, H, bm, bn)
            ds_ij = p_ij * (dp_ij - delta[:, :, rows.start:rows.stop, None])  # (B, H, bm, bn)
            dq[:, :, rows.start:rows.stop] += scale * ds_ij @ k_j  # (B, H, bm, D)
            dk[:, :, cols.start:cols.stop] += scale * ds_ij.transpose(-2, -1) @ q_i  # (B, H, bn, D)
    return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype)


@export("attention.FlashAttentionTorch")
class FlashAttentionTorch(torch.autograd.Function):
    """Autograd wrapper: saves ``q, k, v, O, L`` (O(N·d)), recomputes ``P`` tile by tile in backward."""

    @staticmethod
    def forward(ctx, q, k, v, causal, scale, block_m, block_n):  # noqa: D102
        o, lse = flash_forward_torch(q, k, v, causal, scale, block_m, block_n)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.config = (causal, scale, block_m, block_n)
        return o

    @staticmethod
    @once_differentiable
    def backward(ctx, do):  # noqa: D102
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = flash_backward_torch(do, q, k, v, o, lse, *ctx.config)
        return dq, dk, dv, None, None, None, None


@export("attention.flash_attention_torch")
def flash_attention_torch(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False, scale: float | None = None,
    block_m: int = 64, block_n: int = 64,
) -> torch.Tensor:
    """Tiled attention with an online softmax, in plain PyTorch; differentiable.

    Args:
        q (Tensor[B, H, T, D]): queries.
        k (Tensor[B, H, S, D]): keys.
        v (Tensor[B, H, S, D]): values.
        causal: query ``i`` sees keys ``j <= i`` (as SDPA's ``is_causal``).
        scale: score multiplier; default ``1 / sqrt(D)``.
        block_m: query rows per tile (>= 1).
        block_n: key columns per tile (>= 1).

    Returns:
        Tensor[B, H, T, D]: equal to :func:`attention_ref` up to rounding.

    Raises:
        TypeError, ValueError: bad tensors (see :func:`check_qkv`) or block sizes.

    Example:
        >>> from course_lib.attention import attention_ref
        >>> q, k, v = torch.randn(3, 1, 2, 10, 16).unbind(0)
        >>> torch.allclose(flash_attention_torch(q, k, v, block_m=4, block_n=3), attention_ref(q, k, v), atol=1e-6)
        True
    """
    _, scale = check_qkv(q, k, v, scale)
    block_m = _checks.integer("block_m", block_m, minimum=1)
    block_n = _checks.integer("block_n", block_n, minimum=1)
    return FlashAttentionTorch.apply(q, k, v, bool(causal), scale, block_m, block_n)
