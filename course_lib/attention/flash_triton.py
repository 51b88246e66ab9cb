"""FlashAttention as Triton kernels: forward and backward, causal or not, any sequence length.

Each program instance owns one block of ``BLOCK_M`` query rows of one (batch, head) and streams
K/V blocks of ``BLOCK_N`` keys through on-chip memory (FlashAttention-2 order, Dao 2023,
https://arxiv.org/abs/2307.08691). HBM traffic: Q, K, V read, O and L written — S and P never
leave the chip. The backward pass recomputes P from the saved log-sum-exp L:

* ``_flash_attention_fwd_kernel``: ``O`` and ``L`` (grid: Q blocks × batch·heads);
* ``_flash_attention_bwd_dkdv_kernel``: ``dK, dV`` for one K/V block, looping over Q blocks;
* ``_flash_attention_bwd_dq_kernel``: ``dQ`` for one Q block, looping over K/V blocks.

Legend (paper symbols): ``m_i`` running row max, ``l_i`` running row sum, ``acc`` un-normalised
output, ``alpha`` = exp(m_old - m_new) the rescaling factor, ``lse`` = m + log l, ``delta`` =
rowsum(dO ∘ O). Scores are kept in base 2 (``exp(x) == exp2(x · LOG2_E)``), as exp2 is the
hardware instruction.

Differences from the production kernels (flash-attn, the Triton tutorial 06): no autotuning,
separate dK/dV and dQ kernels instead of atomics (deterministic, but dQ's loop recomputes P once
more), ``delta`` computed with torch, fp32 matmuls in IEEE precision (not TF32) so fp32 results
match the reference. Limitations: head dims 16..128 (padded to a power of two), q/k/v of the same
head dim, fp32/fp16 (+ bf16 on GPUs with compute capability >= 8.0); under ``TRITON_INTERPRET=1``
(no GPU) the same kernels run on CPU tensors, exactly but slowly, and bf16 is refused (the
interpreter gets it wrong). Causal masks are top-left aligned, as
``scaled_dot_product_attention(is_causal=True)``. Offsets are int32 (tensors under 2³¹ elements)
and batch·heads must stay under 65 536 (the grid's second axis; larger inputs are refused).
Tested in the interpreter against SDPA and compiled ahead of time for sm_75, sm_80 and sm_90 (no
GPU needed) so code that only the GPU compiler rejects is caught too.

The forward kernel takes the rescaling line as a ``tl.constexpr`` function ``RESCALE`` so that
an exercise can plug in a learner's version; :func:`rescale_accumulator` is the real one.

Notebook: ``09_flash_attention`` §3 (the Triton kernel). Tests: ``tests/test_attention_triton.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import triton
import triton.language as tl
from torch.autograd.function import once_differentiable

from course_lib import _checks
from course_lib._export import export
from course_lib.attention.reference import attention_lse_ref, check_qkv
from course_lib.runtime import bf16_supported, gpu_info, triton_device, triton_mode

# exp(x) == exp2(x * LOG2_E). A tl.constexpr so kernels may read it (a plain float global is
# refused when compiling for a GPU); Python code uses LOG2_E.value.
LOG2_E = tl.constexpr(1.4426950408889634)
MIN_HEAD_DIM, MAX_HEAD_DIM = 16, 128  # tl.dot needs >= 16; registers/shared memory bound the top
MAX_BATCH_HEADS = 65_535  # batch·heads index the grid's second axis, which CUDA caps at 2^16 - 1


@export("attention.flash_attention_ref")
def flash_attention_ref(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False, scale: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The spec of the forward kernel: ``O (Tensor[B, H, T, D])`` and ``L (Tensor[B, H, T])``, float32 L.

    Plain torch (:func:`course_lib.attention.reference.attention_lse_ref`), materialising S.
    """
    return attention_lse_ref(q, k, v, causal, scale)


@triton.jit
def rescale_accumulator(acc, l_i, alpha):
    """Bring the partial sums to the new running max: both are scaled by alpha = exp(m_old - m_new)."""
    return acc * alpha[:, None], l_i * alpha


@triton.jit
def _load_tile(base_ptr, rows, offs_d, stride_row, stride_d, n_rows, D):
    """Rows ``rows`` × features ``offs_d`` of one (batch, head) matrix; zeros past ``n_rows`` and ``D``."""
    mask = (rows[:, None] < n_rows) & (offs_d[None, :] < D)
    return tl.load(base_ptr + rows[:, None] * stride_row + offs_d[None, :] * stride_d, mask=mask, other=0.0)


@triton.jit
def _store_tile(base_ptr, tile, rows, offs_d, stride_row, stride_d, n_rows, D):
    """Write ``tile`` (cast to the pointer's dtype) where :func:`_load_tile` would read it."""
    mask = (rows[:, None] < n_rows) & (offs_d[None, :] < D)
    tl.store(base_ptr + rows[:, None] * stride_row + offs_d[None, :] * stride_d,
             tile.to(base_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _flash_attention_fwd_kernel(
    q_ptr, k_ptr, v_ptr, o_ptr, lse_ptr,
    stride_qb, stride_qh, stride_qt, stride_qd,
    stride_kb, stride_kh, stride_ks, stride_kd,
    stride_vb, stride_vh, stride_vs, stride_vd,
    stride_ob, stride_oh, stride_ot, stride_od,
    stride_lb, stride_lh, stride_lt,
    H, T, S, D, qk_scale,
    CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    PRECISION: tl.constexpr, RESCALE: tl.constexpr,
):
    pid_m = tl.program_id(0)  # which Q block
    pid_bh = tl.program_id(1)  # which (batch, head)
    b = pid_bh // H
    h = pid_bh % H
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    q = _load_tile(q_ptr + b * stride_qb + h * stride_qh, offs_m, offs_d, stride_qt, stride_qd, T, D)  # stays on chip
    k_base = k_ptr + b * stride_kb + h * stride_kh
    v_base = v_ptr + b * stride_vb + h * stride_vh

    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    hi = S
    if CAUSAL:
        hi = tl.minimum(S, (pid_m + 1) * BLOCK_M)  # K/V tiles past the diagonal are skipped
    for start_n in range(0, hi, BLOCK_N):
        cols = start_n + offs_n
        k = _load_tile(k_base, cols, offs_d, stride_ks, stride_kd, S, D)  # (BLOCK_N, BLOCK_D)
        qk = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale  # (BLOCK_M, BLOCK_N), base 2
        valid = cols[None, :] < S
        if CAUSAL:
            valid = valid & (cols[None, :] <= offs_m[:, None])
        qk = tl.where(valid, qk, float("-inf"))
        # Column 0 is in the first tile and visible to every row, so m_new is finite from here on.
        m_new = tl.maximum(m_i, tl.max(qk, 1))
        p = tl.exp2(qk - m_new[:, None])  # (BLOCK_M, BLOCK_N)
        alpha = tl.exp2(m_i - m_new)  # (BLOCK_M,): 0 on the first tile, <= 1 after
        acc, l_i = RESCALE(acc, l_i, alpha)
        l_i += tl.sum(p, 1)
        v = _load_tile(v_base, cols, offs_d, stride_vs, stride_vd, S, D)  # (BLOCK_N, BLOCK_D)
        acc += tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
        m_i = m_new
    acc = acc / l_i[:, None]
    lse = (m_i + tl.log2(l_i)) / LOG2_E  # natural-log L = m + log l, what backward needs
    _store_tile(o_ptr + b * stride_ob + h * stride_oh, acc, offs_m, offs_d, stride_ot, stride_od, T, D)
    tl.store(lse_ptr + b * stride_lb + h * stride_lh + offs_m * stride_lt, lse, mask=offs_m < T)


@triton.jit
def _recompute_p(q, k, lse, rows, cols, T, S, qk_scale, CAUSAL: tl.constexpr, PRECISION: tl.constexpr):
    """P = exp(S - L) for one tile, from the saved log-sum-exp; 0 where masked or out of range."""
    qk = tl.dot(q, tl.trans(k), input_precision=PRECISION)  # (BLOCK_M, BLOCK_N)
    p = tl.exp2(qk * qk_scale - lse[:, None] * LOG2_E)
    valid = (rows[:, None] < T) & (cols[None, :] < S)
    if CAUSAL:
        valid = valid & (cols[None, :] <= rows[:, None])
    return tl.where(valid, p, 0.0)


@triton.jit
def _flash_attention_bwd_dkdv_kernel(
    q_ptr, k_ptr, v_ptr, do_ptr, lse_ptr, delta_ptr, dk_ptr, dv_ptr,
    stride_qb, stride_qh, stride_qt, stride_qd,
    stride_kb, stride_kh, stride_ks, stride_kd,
    stride_vb, stride_vh, stride_vs, stride_vd,
    stride_dob, stride_doh, stride_dot, stride_dod,
    stride_lb, stride_lh, stride_lt,
    stride_dkb, stride_dkh, stride_dks, stride_dkd,
    H, T, S, D, scale,
    CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    PRECISION: tl.constexpr,
):
    pid_n = tl.program_id(0)  # which K/V block
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    k = _load_tile(k_ptr + b * stride_kb + h * stride_kh, cols, offs_d, stride_ks, stride_kd, S, D)
    v = _load_tile(v_ptr + b * stride_vb + h * stride_vh, cols, offs_d, stride_vs, stride_vd, S, D)
    q_base = q_ptr + b * stride_qb + h * stride_qh
    do_base = do_ptr + b * stride_dob + h * stride_doh
    row_stats = b * stride_lb + h * stride_lh  # lse and delta share one layout
    dk = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    dv = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    lo = 0
    if CAUSAL:
        lo = (pid_n * BLOCK_N // BLOCK_M) * BLOCK_M  # Q blocks wholly before this K/V block see none of it
    for start_m in range(lo, T, BLOCK_M):
        rows = start_m + offs_m
        q = _load_tile(q_base, rows, offs_d, stride_qt, stride_qd, T, D)  # (BLOCK_M, BLOCK_D)
        do = _load_tile(do_base, rows, offs_d, stride_dot, stride_dod, T, D)  # (BLOCK_M, BLOCK_D)
        lse = tl.load(lse_ptr + row_stats + rows * stride_lt, mask=rows < T, other=0.0)
        delta = tl.load(delta_ptr + row_stats + rows * stride_lt, mask=rows < T, other=0.0)
        p = _recompute_p(q, k, lse, rows, cols, T, S, scale * LOG2_E, CAUSAL, PRECISION)  # (BLOCK_M, BLOCK_N)
        dv += tl.dot(tl.trans(p.to(do.dtype)), do, input_precision=PRECISION)
        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)  # (BLOCK_M, BLOCK_N)
        ds = p * (dp - delta[:, None])
        dk += tl.dot(tl.trans(ds.to(q.dtype)), q, input_precision=PRECISION)
    out = dk_ptr + b * stride_dkb + h * stride_dkh
    _store_tile(out, dk * scale, cols, offs_d, stride_dks, stride_dkd, S, D)
    out = dv_ptr + b * stride_dkb + h * stride_dkh  # dv is allocated with dk's layout
    _store_tile(out, dv, cols, offs_d, stride_dks, stride_dkd, S, D)


@triton.jit
def _flash_attention_bwd_dq_kernel(
    q_ptr, k_ptr, v_ptr, do_ptr, lse_ptr, delta_ptr, dq_ptr,
    stride_qb, stride_qh, stride_qt, stride_qd,
    stride_kb, stride_kh, stride_ks, stride_kd,
    stride_vb, stride_vh, stride_vs, stride_vd,
    stride_dob, stride_doh, stride_dot, stride_dod,
    stride_lb, stride_lh, stride_lt,
    stride_dqb, stride_dqh, stride_dqt, stride_dqd,
    H, T, S, D, scale,
    CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    PRECISION: tl.constexpr,
):
    pid_m = tl.program_id(0)  # which Q block
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    q = _load_tile(q_ptr + b * stride_qb + h * stride_qh, rows, offs_d, stride_qt, stride_qd, T, D)
    do = _load_tile(do_ptr + b * stride_dob + h * stride_doh, rows, offs_d, stride_dot, stride_dod, T, D)
    row_stats = b * stride_lb + h * stride_lh
    lse = tl.load(lse_ptr + row_stats + rows * stride_lt, mask=rows < T, other=0.0)
    delta = tl.load(delta_ptr + row_stats + rows * stride_lt, mask=rows < T, other=0.0)
    k_base = k_ptr + b * stride_kb + h * stride_kh
    v_base = v_ptr + b * stride_vb + h * stride_vh
    dq = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    hi = S
    if CAUSAL:
        hi = tl.minimum(S, (pid_m + 1) * BLOCK_M)
    for start_n in range(0, hi, BLOCK_N):
        cols = start_n + offs_n
        k = _load_tile(k_base, cols, offs_d, stride_ks, stride_kd, S, D)  # (BLOCK_N, BLOCK_D)
        v = _load_tile(v_base, cols, offs_d, stride_vs, stride_vd, S, D)  # (BLOCK_N, BLOCK_D)
        p = _recompute_p(q, k, lse, rows, cols, T, S, scale * LOG2_E, CAUSAL, PRECISION)  # (BLOCK_M, BLOCK_N)
        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)  # (BLOCK_M, BLOCK_N)
        ds = p * (dp - delta[:, None])
        dq += tl.dot(ds.to(k.dtype), k, input_precision=PRECISION)
    _store_tile(dq_ptr + b * stride_dqb + h * stride_dqh, dq * scale, rows, offs_d, stride_dqt, stride_dqd, T, D)


@export("attention.KernelConfig")
@dataclass(frozen=True)
class KernelConfig:
    """Tile sizes and launch settings of one kernel launch."""

    block_m: int  # query rows per tile (a power of two >= 16)
    block_n: int  # key/value rows per tile (a power of two >= 16)
    num_warps: int = 4  # GPU only: 32-thread warps per program
    num_stages: int = 2  # GPU only: software-pipelining depth of the K/V loads


@export("attention.supported_dtypes")
def supported_dtypes() -> tuple[torch.dtype, ...]:
    """The dtypes the Triton path takes here: bf16 only natively on a GPU that supports it.

    That is compute capability >= 8.0: ``torch.cuda.is_bf16_supported()`` also says yes on
    older GPUs (e.g. a T4) that only emulate bf16, for which the kernels are not tested.
    """
    info = gpu_info()
    if triton_mode() == "native" and bf16_supported() and info is not None and info.capability >= (8, 0):
        return (torch.float32, torch.float16, torch.bfloat16)
    return (torch.float32, torch.float16)


def default_config(dtype: torch.dtype, head_dim: int, backward: bool = False,
                   capability: tuple[int, int] | None = None) -> KernelConfig:
    """Tile sizes for a launch (untuned). In the interpreter: large tiles, fewer Python-level steps.
    On a GPU: tiles whose K/V buffers fit shared memory and whose fp32 accumulators fit registers;
    ``capability`` (default: this GPU's) below 8.0 (e.g. a T4) gets no software pipelining — those
    GPUs lack asynchronous copies and have 64 KiB of shared memory per block."""
    if triton_mode() == "interpreter":
        return KernelConfig(64, 64)
    if backward:  # dK and dV accumulators (block_n × d fp32 each) live in registers
        config = KernelConfig(64, 64) if head_dim <= 64 and dtype != torch.float32 else KernelConfig(32, 32)
    elif dtype == torch.float32:
        config = KernelConfig(64, 32, num_stages=1)
    else:
        config = KernelConfig(128, 64, num_stages=3) if head_dim <= 64 else KernelConfig(64, 64, num_warps=8)
    if capability is None:
        info = gpu_info()
        capability = info.capability if info is not None else (9, 0)
    if capability < (8, 0):
        config = replace(config, num_stages=1)
        if backward and dtype == torch.float32 and head_dim > 64:
            config = KernelConfig(16, 32, num_stages=1)  # 32x32 needs 68 KiB of shared memory on sm_75
    return config


def _check_triton_inputs(q: torch.Tensor, d: int) -> None:
    """Refuse what the kernels do not cover, naming the supported set and ``impl="torch"``."""
    mode = triton_mode()
    if mode == "unavailable":
        raise RuntimeError('impl="triton" needs the triton package, which is not installed; use impl="torch"')
    where = triton_device()
    if q.device.type != where.type:
        raise ValueError(f"q, k, v must be on {where.type} for the Triton path here (triton mode: {mode}); "
                         f'got {q.device}. Move them with .to("{where.type}") or use impl="torch"')
    allowed = supported_dtypes()
    if q.dtype not in allowed:
        why = (" (bfloat16 needs a GPU of compute capability >= 8.0; Triton's interpreter computes it wrongly)"
               if q.dtype == torch.bfloat16 else "")
        raise TypeError(f"the Triton path supports dtypes {', '.join(map(str, allowed))} here{why}; "
                        f'got {q.dtype}. Use impl="torch" for other dtypes')
    if not MIN_HEAD_DIM <= d <= MAX_HEAD_DIM:
        raise ValueError(f"the Triton path supports head dims D in [{MIN_HEAD_DIM}, {MAX_HEAD_DIM}]; got D={d}. "
                         'Use impl="torch" for other head dims')
    batch_heads = q.shape[0] * q.shape[1]
    if batch_heads > MAX_BATCH_HEADS:
        raise ValueError(f"the Triton path supports B·H <= {MAX_BATCH_HEADS} (one grid axis); got B={q.shape[0]}, "
                         f'H={q.shape[1]} (B·H={batch_heads}). Split the batch or use impl="torch"')


def _check_config(config: KernelConfig) -> None:
    for name in ("block_m", "block_n"):
        value = getattr(config, name)
        if value < 16 or value > 256 or value & (value - 1):
            raise ValueError(f"config.{name} must be a power of two in [16, 256]; got {value}")


def _precision(dtype: torch.dtype) -> str:
    # fp32 inputs: exact IEEE products (the GPU default, TF32, keeps 10 mantissa bits and would
    # miss the fp32 tolerances); half types are unaffected by this setting.
    return "ieee" if dtype == torch.float32 else "tf32"


def _launch_flash_attention_fwd(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, scale: float, config: KernelConfig,
    rescale=rescale_accumulator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check, allocate ``O`` and ``L``, compute the grid, launch the forward kernel."""
    B, H, T, D = q.shape
    S = k.shape[2]
    _check_triton_inputs(q, D)
    _check_config(config)
    o = torch.empty(B, H, T, D, dtype=q.dtype, device=q.device)
    lse = torch.empty(B, H, T, dtype=torch.float32, device=q.device)
    grid = (triton.cdiv(T, config.block_m), B * H)  # one program per (Q block, batch·head)
    _flash_attention_fwd_kernel[grid](
        q, k, v, o, lse, *q.stride(), *k.stride(), *v.stride(), *o.stride(), *lse.stride(),
        H, T, S, D, scale * LOG2_E.value,
        CAUSAL=causal, BLOCK_M=config.block_m, BLOCK_N=config.block_n,
        BLOCK_D=max(MIN_HEAD_DIM, triton.next_power_of_2(D)), PRECISION=_precision(q.dtype), RESCALE=rescale,
        num_warps=config.num_warps, num_stages=config.num_stages,
    )
    return o, lse


def _launch_flash_attention_bwd(
    do: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, o: torch.Tensor, lse: torch.Tensor,
    causal: bool, scale: float, config: KernelConfig,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Allocate the gradients, compute the grids, launch the dK/dV and dQ kernels.

    No checks: the forward launch checked these tensors, :func:`flash_attention_triton` the config.
    """
    B, H, T, D = q.shape
    S = k.shape[2]
    delta = (do.float() * o.float()).sum(dim=-1)  # (B, H, T): rowsum(dO ∘ O), contiguous like lse
    dq = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    dk = torch.empty(k.shape, dtype=k.dtype, device=k.device)
    dv = torch.empty(k.shape, dtype=v.dtype, device=v.device)  # same layout as dk: the kernel shares strides
    common = dict(CAUSAL=causal, BLOCK_M=config.block_m, BLOCK_N=config.block_n,
                  BLOCK_D=max(MIN_HEAD_DIM, triton.next_power_of_2(D)), PRECISION=_precision(q.dtype),
                  num_warps=config.num_warps, num_stages=config.num_stages)
    strides = (*q.stride(), *k.stride(), *v.stride(), *do.stride(), *lse.stride())
    _flash_attention_bwd_dkdv_kernel[(triton.cdiv(S, config.block_n), B * H)](
        q, k, v, do, lse, delta, dk, dv, *strides, *dk.stride(), H, T, S, D, scale, **common)
    _flash_attention_bwd_dq_kernel[(triton.cdiv(T, config.block_m), B * H)](
        q, k, v, do, lse, delta, dq, *strides, *dq.stride(), H, T, S, D, scale, **common)
    return dq, dk, dv


@export("attention.FlashAttentionTriton")
class FlashAttentionTriton(torch.autograd.Function):
    """Autograd wrapper of the kernels: saves ``q, k, v, O, L`` and recomputes ``P`` in backward."""

    @staticmethod
    def forward(ctx, q, k, v, causal, scale, fwd_config, bwd_config):  # noqa: D102
        o, lse = _launch_flash_attention_fwd(q, k, v, causal, scale, fwd_config)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.config = (causal, scale, bwd_config)
        return o

    @staticmethod
    @once_differentiable
    def backward(ctx, do):  # noqa: D102
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = _launch_flash_attention_bwd(do, q, k, v, o, lse, *ctx.config)
        return dq, dk, dv, None, None, None, None


@export("attention.flash_attention_triton")
def flash_attention_triton(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False, scale: float | None = None,
    fwd_config: KernelConfig | None = None, bwd_config: KernelConfig | None = None,
) -> torch.Tensor:
    """The Triton kernels with explicit tile sizes (``None``: :func:`default_config`); differentiable.

    Args:
        q (Tensor[B, H, T, D]), k (Tensor[B, H, S, D]), v (Tensor[B, H, S, D]): as :func:`flash_attention`.
        causal, scale: as :func:`flash_attention`.
        fwd_config: tiles of the forward kernel.
        bwd_config: tiles of the backward kernels.

    Returns:
        Tensor[B, H, T, D].

    Raises:
        TypeError, ValueError, RuntimeError: as :func:`flash_attention`; a block size that is not
            a power of two in [16, 256].
    """
    dims, scale = check_qkv(q, k, v, scale)
    if 0 in (dims["B"], dims["H"], dims["T"], dims["S"]):  # no program to launch: the plain path's empty result
        from course_lib.attention.flash_torch import flash_attention_torch

        return flash_attention_torch(q, k, v, causal, scale)
    fwd_config = fwd_config or default_config(q.dtype, q.shape[-1])
    bwd_config = bwd_config or default_config(q.dtype, q.shape[-1], backward=True)
    _checks.instance("fwd_config", fwd_config, KernelConfig)
    _checks.instance("bwd_config", bwd_config, KernelConfig)
    _check_config(bwd_config)  # now, not when backward runs; the forward launcher checks the rest once
    return FlashAttentionTriton.apply(q, k, v, bool(causal), scale, fwd_config, bwd_config)
