"""Benchmark: course_lib.deform.deform_conv2d against torchvision.ops.deform_conv2d, same run.

Work per call (forward): sampling reads 4 corners × B·C_in·K·L values (L = H_out·W_out) and the
matmul does 2·B·C_out·(C_in/groups)·K·L FLOPs. Ours materialises the sampled columns
(B·C_in·K·L values, plus four index/weight tensors of B·G·K·L·4 for backward); torchvision's
kernels also build columns, in chunks of ``n_parallel_imgs`` images, with a hand-written backward.
Reported: median time per forward+backward (``course_lib.timing.compare``: warm-up, interleaved,
repeats, median and IQR) and the ratio of the medians ours / torchvision (> 1: ours is slower).

Usage: ``python benchmarks/bench_deform.py`` (CUDA when present, else CPU; one thread on CPU).
"""

from __future__ import annotations

from functools import partial

import torch
import torchvision.ops as tvo

from course_lib.deform import deform_conv2d, output_size
from course_lib.runtime import device
from course_lib.timing import compare, ratio


def _step(fn, x, off, wt, k, mask) -> None:
    fn(x, off, wt, None, 1, k // 2, 1, mask).sum().backward()

SHAPES = [  # (B, C_in, H, W, C_out, k)
    (2, 16, 32, 32, 16, 3),
    (8, 32, 28, 28, 32, 3),
    (4, 64, 14, 14, 64, 3),
]


def main(repeats: int = 7) -> None:
    dev = device()
    if dev.type == "cpu":
        torch.set_num_threads(1)
    print(f"device: {dev}; forward + backward, float32")
    print(f"{'shape (B, C_in, H, W, C_out, k)':<34} {'GFLOP':>7} {'ours ms':>9} {'tv ms':>9} {'ours/tv':>8}")
    for b, c, h, w, co, k in SHAPES:
        h_out, w_out = output_size(h, k, 1, k // 2), output_size(w, k, 1, k // 2)
        x = torch.randn(b, c, h, w, device=dev, requires_grad=True)
        off = torch.randn(b, 2 * k * k, h_out, w_out, device=dev, requires_grad=True)
        wt = torch.randn(co, c, k, k, device=dev, requires_grad=True)
        mask = torch.rand(b, k * k, h_out, w_out, device=dev, requires_grad=True)
        flops = 2 * b * co * c * k * k * h_out * w_out * 3  # forward matmul + two in backward

        t = compare({"ours": partial(_step, deform_conv2d, x, off, wt, k, mask),
                     "torchvision": partial(_step, tvo.deform_conv2d, x, off, wt, k, mask)}, repeats=repeats)
        print(f"{str((b, c, h, w, co, k)):<34} {flops / 1e9:>7.2f} {t['ours'].median * 1e3:>9.1f} "
              f"{t['torchvision'].median * 1e3:>9.1f} {ratio(t['ours'], t['torchvision']):>8.2f}")


if __name__ == "__main__":
    main()
