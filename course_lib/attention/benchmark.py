"""Throughput of the Triton kernels against PyTorch's SDPA, on a GPU, as a ratio from the same run.

FLOPs counted as in the FlashAttention-2 paper (Dao 2023, §4.1): the forward pass does two
matmuls, ``Q Kᵀ`` and ``P V``, each ``2·N²·d`` FLOPs per head, so ``4·B·H·N²·d`` (halved when
causal, as half the tiles are skipped); the backward pass does five (``Q Kᵀ`` recomputed, ``dV``,
``dP``, ``dQ``, ``dK``): 2.5× the forward. TFLOP/s = FLOPs / time; the ratio
``triton / sdpa`` > 1 means the course's kernel is faster. Shapes follow the paper: batch × N =
16k tokens, hidden size 2048 (heads = 2048 / d).

GPU only: timing the interpreter would measure Python, not the algorithm. Used by the notebook's
GPU section and by ``benchmarks/bench_attention.py``. Not unit-tested beyond the FLOP formula
(``tests/test_attention_io.py``), since the test machine has no GPU.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from course_lib import _checks
from course_lib._export import export
from course_lib.attention.flash import _triton_kernels, flash_attention

TOKENS_PER_BATCH = 16 * 1024  # batch · N, as in the FlashAttention-2 benchmarks
HIDDEN = 2048  # heads · d



def _supported_dtypes() -> tuple[torch.dtype, ...]:
    return _triton_kernels().supported_dtypes()


@export("attention.benchmark.attention_flops")
def attention_flops(batch: int, heads: int, n: int, d: int, causal: bool = False, backward: bool = False) -> float:
    """Matmul FLOPs of attention: ``4·B·H·N²·d`` forward (/2 causal); ×3.5 with the backward pass."""
    for name, value in (("batch", batch), ("heads", heads), ("n", n), ("d", d)):
        _checks.integer(name, value, minimum=1)
    forward = 4.0 * batch * heads * n * n * d / (2 if causal else 1)
    return forward * (3.5 if backward else 1.0)


def cuda_time_ms(fn: Callable[[], object], warmup: int = 3, reps: int = 10) -> float:
    """Median milliseconds of ``fn()`` on the current CUDA stream, timed with CUDA events."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


@export("attention.benchmark.BenchRow")
@dataclass(frozen=True)
class BenchRow:
    """One measured configuration."""

    n: int  # sequence length
    d: int  # head dim
    dtype: str  # "float16" or "bfloat16"
    causal: bool  # causal mask
    backward: bool  # False: forward only; True: forward + backward
    triton_ms: float  # median time of flash_attention(impl="triton")
    sdpa_ms: float  # median time of F.scaled_dot_product_attention
    triton_tflops: float  # FLOPs / triton time
    sdpa_tflops: float  # FLOPs / sdpa time

    @property
    def ratio(self) -> float:
        """Triton throughput / SDPA throughput (> 1: the course kernel is faster)."""
        return self.sdpa_ms / self.triton_ms


def _step(attn: Callable, q, k, v, causal: bool, grad: torch.Tensor | None) -> Callable[[], object]:
    if grad is None:
        return lambda: attn(q, k, v, causal)

    def fwd_bwd():
        q.grad = k.grad = v.grad = None
        attn(q, k, v, causal).backward(grad)
    return fwd_bwd


@export("attention.benchmark.compare_with_sdpa")
def compare_with_sdpa(ns: Iterable[int] = (1024, 2048, 4096, 8192, 16384), ds: Iterable[int] = (64, 128),
                      dtypes: Iterable[torch.dtype] = (torch.float16, torch.bfloat16), causal: bool = False,
                      reps: int = 10) -> list[BenchRow]:
    """Time the Triton kernels and SDPA on the GPU, forward and forward+backward, for every config.

    Raises:
        RuntimeError: no CUDA GPU.
    """
    if not torch.cuda.is_available():
        raise RuntimeError("compare_with_sdpa needs a CUDA GPU; on a CPU the interpreter's time is meaningless")

    def sdpa(q, k, v, c):
        return F.scaled_dot_product_attention(q, k, v, is_causal=c)

    def triton_attn(q, k, v, c):
        return flash_attention(q, k, v, causal=c, impl="triton")

    rows = []
    for dtype in dtypes:
        if dtype not in _supported_dtypes():  # bf16 before compute capability 8.0: not covered
            continue
        for d in ds:
            for n in ns:
                batch, heads = max(1, TOKENS_PER_BATCH // n), HIDDEN // d
                gen = torch.Generator(device="cuda").manual_seed(0)
                q, k, v = (torch.randn(batch, heads, n, d, device="cuda", dtype=dtype, generator=gen).requires_grad_()
                           for _ in range(3))
                grad = torch.randn_like(q)
                for backward in (False, True):
                    g = grad if backward else None
                    t_ms = cuda_time_ms(_step(triton_attn, q, k, v, causal, g), reps=reps)
                    s_ms = cuda_time_ms(_step(sdpa, q, k, v, causal, g), reps=reps)
                    flops = attention_flops(batch, heads, n, d, causal, backward)
                    rows.append(BenchRow(n, d, str(dtype).removeprefix("torch."), causal, backward, t_ms, s_ms,
                                         flops / t_ms / 1e9, flops / s_ms / 1e9))
                del q, k, v, grad
                torch.cuda.empty_cache()
    return rows
