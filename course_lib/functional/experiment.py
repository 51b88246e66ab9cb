"""Measurements: ``nn.Conv2d`` vs ``F.conv2d`` per-call overhead, and ``vmap`` vs a loop.

**Module overhead.** ``conv(x)`` goes through ``Module.__call__`` (hook checks, ``forward``
dispatch, ``self.padding`` look-ups) before reaching the same ``F.conv2d`` as the functional call.
That cost is fixed — a few microseconds of Python — while the convolution costs

    FLOPs = 2 · N · C_out · C_in · K² · H_out · W_out        (one multiply-add = 2 FLOPs)

so the ratio ``time(module) / time(functional)`` tends to 1 as the convolution grows, and is
largest for tiny layers. Both are timed in the same run, interleaved, best of ``repeat`` short runs, on one thread.

**Per-sample gradients.** :func:`time_per_sample` times :func:`per_sample_grads_loop` against
:func:`per_sample_grads_vmap` on :class:`~course_lib.functional.model.Net`.

Used by the notebook (small sizes) and by ``benchmarks/bench_functional.py`` (larger sizes).
Timings are noisy on a loaded machine; the tests check the plumbing, not the numbers.

Notebook: ``02_nn_vs_functional`` (sections "Is the module slower?", "Per-sample gradients").
Tests: ``tests/test_functional.py``.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from course_lib import _checks
from course_lib._export import export
from course_lib.functional.model import Net, NetConfig
from course_lib.functional.per_sample import per_sample_grads_loop, per_sample_grads_vmap
from course_lib.runtime import one_thread

KERNEL = 3  # K: the convolutions are 3x3, stride 1, padding 1 (H_out = H)


@export("functional.ConvOverhead")
@dataclass(frozen=True)
class ConvOverhead:
    """One size of the ``nn.Conv2d`` vs ``F.conv2d`` comparison."""

    batch: int  # N
    channels: int  # C_in = C_out
    size: int  # H = W
    module_us: float  # microseconds per nn.Conv2d call (best of the repeats)
    functional_us: float  # microseconds per F.conv2d call with the same weight and input

    @property
    def flops(self) -> int:
        """2 · N · C_out · C_in · K² · H · W."""
        return 2 * self.batch * self.channels**2 * KERNEL**2 * self.size**2

    @property
    def ratio(self) -> float:
        """time(module) / time(functional): 1.0 means no overhead."""
        return self.module_us / self.functional_us

    @property
    def overhead_us(self) -> float:
        """What the module adds per call, in microseconds."""
        return self.module_us - self.functional_us


def _best_us(fns: Sequence[Callable[[], object]], target_s: float, repeat: int) -> list[float]:
    """Microseconds per call of each fn: calibrated loop counts, interleaved repeats, min kept.

    Many short runs and the minimum: the least-disturbed run is the closest to the true cost.
    """
    with one_thread():
        return _best_us_now(fns, target_s, repeat)


def _best_us_now(fns: Sequence[Callable[[], object]], target_s: float, repeat: int) -> list[float]:
    numbers = []
    for fn in fns:
        fn()  # warm-up: first-call allocations are not per-call overhead
        once = timeit.timeit(fn, number=1)
        numbers.append(max(1, int(target_s / max(once, 1e-7))))
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):  # interleaved, so a burst of load hits both alike
            best[i] = min(best[i], timeit.timeit(fn, number=numbers[i]) / numbers[i])
    return [b * 1e6 for b in best]


@export("functional.time_conv_overhead")
def time_conv_overhead(sizes: Sequence[tuple[int, int, int]], target_s: float = 0.002,
                       repeat: int = 25) -> list[ConvOverhead]:
    """Time ``nn.Conv2d(x)`` against ``F.conv2d(x, w, b, padding=1)`` for each ``(N, C, H)``.

    Args:
        sizes: ``(batch, channels, height=width)`` triples.
        target_s: seconds each timing run should last (the loop count is calibrated to it).
        repeat: timing runs per spelling; the minimum is kept.

    Returns:
        One :class:`ConvOverhead` per size, in order.

    Raises:
        TypeError / ValueError: a size is not three positive ints, or bad ``target_s``/``repeat``.
    """
    _checks.real("target_s", target_s, minimum=0.0, open_min=True)
    _checks.integer("repeat", repeat, minimum=1)
    rows = []
    for n, c, h in (_check_size(s) for s in sizes):
        conv = nn.Conv2d(c, c, KERNEL, padding=KERNEL // 2)
        x = torch.randn(n, c, h, h)  # (N, C, H, W)
        weight, bias = conv.weight, conv.bias
        with torch.no_grad():
            module_us, functional_us = _best_us(
                [lambda: conv(x), lambda: F.conv2d(x, weight, bias, padding=KERNEL // 2)], target_s, repeat)
        rows.append(ConvOverhead(n, c, h, module_us, functional_us))
    return rows


def _check_size(size: tuple[int, int, int]) -> tuple[int, int, int]:
    if not isinstance(size, tuple | list) or len(size) != 3:
        raise ValueError(f"each size must be a (batch, channels, height) triple; got {size!r}")
    return tuple(_checks.integer(n, v, minimum=1) for n, v in zip(("batch", "channels", "height"), size))


@export("functional.plot_conv_overhead")
def plot_conv_overhead(rows: Sequence[ConvOverhead]) -> Figure:
    """The ratio module/functional (left) and the absolute overhead (right) against FLOPs per call."""
    if not rows:
        raise ValueError("rows must hold at least one ConvOverhead; got none")
    flops = [r.flops for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
    left.plot(flops, [r.ratio for r in rows], "o-")
    left.axhline(1.0, color="gray", ls="--", lw=1)
    left.set(xscale="log", xlabel="FLOPs per call", ylabel="time(nn.Conv2d) / time(F.conv2d)",
             title="module overhead as a ratio")
    right.plot(flops, [r.overhead_us for r in rows], "o-", color="tab:orange")
    right.axhline(0.0, color="gray", ls="--", lw=1)
    right.set(xscale="log", xlabel="FLOPs per call", ylabel="µs added per call", title="absolute overhead")
    for r in rows:
        left.annotate(f"{r.batch}×{r.channels}×{r.size}²", (r.flops, r.ratio), fontsize=7,
                      textcoords="offset points", xytext=(3, 4))
    fig.tight_layout()
    return fig


@export("functional.PerSampleTiming")
@dataclass(frozen=True)
class PerSampleTiming:
    """Per-sample gradients of a batch, looped vs vmapped."""

    batch: int  # N samples
    loop_ms: float  # milliseconds for per_sample_grads_loop (best of the repeats)
    vmap_ms: float  # milliseconds for per_sample_grads_vmap

    @property
    def speedup(self) -> float:
        """time(loop) / time(vmap): above 1 means vmap is faster."""
        return self.loop_ms / self.vmap_ms


@export("functional.time_per_sample")
def time_per_sample(batch: int = 64, cfg: NetConfig = NetConfig(), repeat: int = 10,
                    seed: int = 0) -> PerSampleTiming:
    """Time the loop and the vmap versions of per-sample gradients on one random batch.

    Raises:
        TypeError / ValueError: ``batch`` or ``repeat`` is not a positive int.
    """
    _checks.integer("batch", batch, minimum=1)
    _checks.integer("repeat", repeat, minimum=1)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Net(cfg).eval()
    x = torch.randn(batch, cfg.in_features, generator=gen)  # (N, D_in)
    y = torch.randint(0, cfg.classes, (batch,), generator=gen)  # (N,)
    loop_us, vmap_us = _best_us([lambda: per_sample_grads_loop(model, x, y),
                                 lambda: per_sample_grads_vmap(model, x, y)], target_s=0.0, repeat=repeat)
    return PerSampleTiming(batch, loop_us / 1e3, vmap_us / 1e3)
