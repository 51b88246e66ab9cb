"""Benchmark: FlashAttention (course_lib.attention) against the reference, measured in the same run.

Run: ``python benchmarks/bench_attention.py [--quick]``

* On a CUDA GPU: TFLOP/s of ``flash_attention(impl="triton")`` and of PyTorch's
  ``scaled_dot_product_attention`` for N = 1k..16k, d = 64 and 128, fp16 and bf16, forward and
  forward + backward (``course_lib.attention.benchmark.compare_with_sdpa``). FLOPs per head: forward
  ``4·N²·d`` (QKᵀ and PV), backward 2.5× forward; batch·N = 16k tokens, heads = 2048/d.
  ratio = triton TFLOP/s / SDPA TFLOP/s (> 1: the course kernel is faster).
* On a CPU (speed is not the point there): peak memory of one forward + backward pass of the
  tiled ``flash_attention_torch`` against ``attention_ref``, each in a fresh process (peak RSS
  minus the RSS before the call). attention_ref's floor is its N×N matrices: ``B·H·N²·4`` bytes
  each for S and P in fp32; the tiled path keeps ``O(B·H·N·d)``.
  ratio = attention_ref peak / flash_attention_torch peak.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource

import torch

HEADS, D = 4, 64


def _peak_child(impl: str, n: int, queue) -> None:
    import course_lib  # noqa: F401 — sets up the runtime as a user's process would
    from course_lib.attention import attention_ref, flash_attention_torch

    fn = attention_ref if impl == "attention_ref" else flash_attention_torch
    q, k, v = (torch.randn(1, HEADS, n, D, requires_grad=True) for _ in range(3))
    grad = torch.randn(1, HEADS, n, D)
    fn(q[:, :, :8], k[:, :, :8], v[:, :, :8], True).backward(grad[:, :, :8])  # warm up allocators and kernels
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn(q, k, v, True).backward(grad)
    queue.put((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)  # KiB -> bytes (Linux)


def peak_bytes(impl: str, n: int) -> int:
    """Extra peak resident memory of one forward + backward of ``impl`` at length ``n``, in a fresh process."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_peak_child, args=(impl, n, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def cpu_memory(quick: bool) -> None:
    print(f"CPU: peak memory of forward + backward, causal, B = 1, H = {HEADS}, d = {D}, fp32")
    print(f"{'N':>6} {'N² floor MiB':>13} {'attention_ref MiB':>18} {'flash_torch MiB':>16} {'ratio':>7}")
    for n in (512, 1024, 2048) if quick else (512, 1024, 2048, 4096):
        floor = 2 * HEADS * n * n * 4  # S and P in fp32
        ref, flash = peak_bytes("attention_ref", n), peak_bytes("flash_attention_torch", n)
        times_less = ref / flash if flash else float("inf")  # flash's peak may not rise above the warm-up's
        print(f"{n:>6} {floor / 2**20:>13.1f} {ref / 2**20:>18.1f} {flash / 2**20:>16.1f} {times_less:>7.1f}")


def gpu_throughput(quick: bool) -> None:
    from course_lib.attention.benchmark import compare_with_sdpa

    print(f"GPU: {torch.cuda.get_device_name()}; batch·N = 16k tokens, heads = 2048/d, non-causal")
    print(f"{'dtype':<9} {'d':>4} {'N':>6} {'pass':<8} {'triton TFLOP/s':>15} {'SDPA TFLOP/s':>13} {'ratio':>6}")
    ns = (1024, 4096) if quick else (1024, 2048, 4096, 8192, 16384)
    for r in compare_with_sdpa(ns=ns, ds=(64, 128)):
        print(f"{r.dtype:<9} {r.d:>4} {r.n:>6} {'fwd+bwd' if r.backward else 'fwd':<8} {r.triton_tflops:>15.1f} "
              f"{r.sdpa_tflops:>13.1f} {r.ratio:>6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes")
    args = parser.parse_args()
    torch.manual_seed(0)
    if torch.cuda.is_available():
        gpu_throughput(args.quick)
    else:
        cpu_memory(args.quick)


if __name__ == "__main__":
    main()
