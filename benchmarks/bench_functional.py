"""Benchmark: nn.Conv2d vs F.conv2d per-call overhead, and per-sample gradients vmap vs loop.

Run: ``python benchmarks/bench_functional.py [--quick]``

Both spellings are timed in the same run by ``course_lib.functional.experiment``, with
``course_lib.timing.compare`` (warm-up, interleaved repeats, medians and IQR); the script reports
ratios between medians of the same run and the absolute difference with its noise.

* Conv: 3x3, stride 1, padding 1, C_in = C_out = C. FLOPs per call = 2 · N · C² · 9 · H · W.
  ratio = time(nn.Conv2d(x)) / time(F.conv2d(x, w, b, padding=1)); 1.00 = no overhead.
* Per-sample gradients of Net (D_in=16, H=32, C=4), batch N: loop = N forward/backward passes of
  batch 1; vmap = one vectorised pass. FLOPs of one pass ≈ 2·N·(D_in·H + H·C) forward, ~2× that backward.
"""

from __future__ import annotations

import argparse

import torch

from course_lib.functional.experiment import time_conv_overhead, time_per_sample

SIZES = [(1, 4, 8), (1, 16, 16), (1, 32, 32), (4, 32, 32), (8, 64, 32), (16, 64, 56), (32, 128, 56)]
QUICK_SIZES = SIZES[:4]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only (a few seconds)")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, CPU, timed on 1 thread (course_lib.functional.experiment)")
    print(f"{'N×C×H²':>14} {'FLOPs':>10} {'nn.Conv2d µs':>13} {'F.conv2d µs':>12} {'ratio':>6} {'Δ µs':>7} "
          f"{'± IQR µs':>9}")
    for r in time_conv_overhead(QUICK_SIZES if args.quick else SIZES, repeats=15):
        print(f"{f'{r.batch}×{r.channels}×{r.size}²':>14} {r.flops:>10.2e} {r.module_us:>13.1f} "
              f"{r.functional_us:>12.1f} {r.ratio:>6.3f} {r.overhead_us:>7.2f} {r.noise_us:>9.2f}")
    print(f"\n{'batch':>6} {'loop ms':>9} {'vmap ms':>9} {'loop/vmap':>10}")
    for batch in (8, 64) if args.quick else (8, 64, 256):
        t = time_per_sample(batch=batch, repeats=5)
        print(f"{t.batch:>6} {t.loop_ms:>9.2f} {t.vmap_ms:>9.2f} {t.speedup:>10.2f}")


if __name__ == "__main__":
    main()
