"""Measurements: ``nn.Conv2d`` vs ``F.conv2d`` per-call overhead, and ``vmap`` vs a loop.

**Module overhead.** ``conv(x)`` goes through ``Module.__call__`` (hook checks, ``forward``
dispatch, ``self.padding`` look-ups) before reaching the same ``F.conv2d`` as the functional call,
while the convolution itself costs

    FLOPs = 2 · N · C_out · C_in · K² · H_out · W_out        (one multiply-add = 2 FLOPs)

What the module adds is a fixed amount of *work* — :func:`python_calls` counts the same extra
Python frames at every size — but its *time* is measured as a difference of two medians, whose
noise grows with the convolution's time (and with the load on the machine). So report both the
ratio and the absolute difference with the interquartile ranges of the timings, and count the
work separately.
Timed with :func:`course_lib.timing.compare` (warm-up, calibrated calls per sample, interleaved
repeats, median and IQR) on one thread, under ``torch.no_grad()``.

**Per-sample gradients.** :func:`time_per_sample` times :func:`per_sample_grads_loop` against
:func:`per_sample_grads_vmap` on :class:`~course_lib.functional.model.Net`.

Harnesses, not concepts: reached as ``course_lib.functional.experiment.<name>``, not re-exported by
the package. matplotlib is imported inside :func:`plot_conv_overhead` only. Used by the notebook
(small sizes) and by ``benchmarks/bench_functional.py`` (larger sizes). Timings are never
asserted in tests; the tests check the plumbing.

Notebook: ``02_nn_vs_functional`` (sections "Is the module slower?", "Per-sample gradients").
Tests: ``tests/test_functional.py``.
"""

from __future__ import annotations

import functools
import gc
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import _checks
from course_lib._export import export
from course_lib.functional.model import Net, NetConfig
from course_lib.functional.per_sample import per_sample_grads_loop, per_sample_grads_vmap
from course_lib.runtime import one_thread
from course_lib.timing import compare

if TYPE_CHECKING:
    from matplotlib.figure import Figure

KERNEL = 3  # K: the convolutions are 3x3, stride 1, padding 1 (H_out = H)


@export("functional.experiment.ConvOverhead")
@dataclass(frozen=True)
class ConvOverhead:
    """One size of the ``nn.Conv2d`` vs ``F.conv2d`` comparison (medians of the same run)."""

    batch: int  # N
    channels: int  # C_in = C_out
    size: int  # H = W
    module_us: float  # median microseconds per nn.Conv2d call
    functional_us: float  # median microseconds per F.conv2d call with the same weight and input
    module_iqr_us: tuple[float, float]  # first and third quartile of the module's samples
    functional_iqr_us: tuple[float, float]  # first and third quartile of the functional samples

    @property
    def flops(self) -> int:
        """2 · N · C_out · C_in · K² · H · W."""
        return 2 * self.batch * self.channels**2 * KERNEL**2 * self.size**2

    @property
    def ratio(self) -> float:
        """median time(module) / median time(functional): 1.0 means no overhead."""
        return self.module_us / self.functional_us

    @property
    def overhead_us(self) -> float:
        """What the module adds per call, in microseconds: the difference of the medians."""
        return self.module_us - self.functional_us

    @property
    def noise_us(self) -> float:
        """The larger of the two interquartile ranges: an overhead below it is not resolved."""
        return max(self.module_iqr_us[1] - self.module_iqr_us[0], self.functional_iqr_us[1] - self.functional_iqr_us[0])


@export("functional.experiment.time_conv_overhead")
def time_conv_overhead(sizes: Sequence[tuple[int, int, int]], repeats: int = 15,
                       min_sample_s: float = 0.005) -> list[ConvOverhead]:
    """Time ``nn.Conv2d(x)`` against ``F.conv2d(x, w, b, padding=1)`` for each ``(N, C, H)``.

    Args:
        sizes: ``(batch, channels, height=width)`` triples.
        repeats: samples per spelling (median and IQR over them), interleaved.
        min_sample_s: the shortest a sample may last (sets the calls per sample).

    Returns:
        One :class:`ConvOverhead` per size, in order.

    Raises:
        TypeError / ValueError: a size is not three positive ints, or bad ``repeats``/``min_sample_s``.
    """
    _checks.integer("repeats", repeats, minimum=1)
    _checks.real("min_sample_s", min_sample_s, minimum=0.0, open_min=True)
    rows = []
    for n, c, h in (_check_size(s) for s in sizes):
        conv = nn.Conv2d(c, c, KERNEL, padding=KERNEL // 2)
        x = torch.randn(n, c, h, h)  # (N, C, H, W)
        weight, bias = conv.weight, conv.bias
        with torch.no_grad(), one_thread():
            t = compare({"module": functools.partial(conv, x),
                         "functional": functools.partial(F.conv2d, x, weight, bias, padding=KERNEL // 2)},
                        repeats=repeats, min_sample_s=min_sample_s)
        us = {k: (v.median * 1e6, (v.q1 * 1e6, v.q3 * 1e6)) for k, v in t.items()}
        rows.append(ConvOverhead(n, c, h, us["module"][0], us["functional"][0], us["module"][1], us["functional"][1]))
    return rows


def _check_size(size: tuple[int, int, int]) -> tuple[int, int, int]:
    if not isinstance(size, tuple | list) or len(size) != 3:
        raise ValueError(f"each size must be a (batch, channels, height) triple; got {size!r}")
    n, c, h = (_checks.integer(name, v, minimum=1) for name, v in zip(("batch", "channels", "height"), size))
    return n, c, h


@export("functional.experiment.python_calls")
def python_calls(fn: Callable[[], object]) -> int:
    """How many Python function calls ``fn()`` makes (``sys.setprofile`` "call" events, ``fn`` included).

    A count, not a time: it does not vary with the machine's load. ``Module.__call__`` adds the
    same Python frames to every call of ``conv(x)``, whatever the size of ``x``; what grows with
    the size is the convolution, which runs in C++ and makes no Python calls.

    Raises:
        TypeError: ``fn`` is not callable.
    """
    if not callable(fn):
        raise TypeError(f"fn must be a function of no arguments; got {type(fn).__name__}")
    count = 0

    def profile(_frame: object, event: str, _arg: object) -> None:
        nonlocal count
        count += event == "call"

    previous, collecting = sys.getprofile(), gc.isenabled()
    gc.disable()  # a collection could run finalizers (Python calls) that are not fn's own
    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(previous)
        if collecting:
            gc.enable()
    return count


@export("functional.experiment.plot_conv_overhead")
def plot_conv_overhead(rows: Sequence[ConvOverhead]) -> Figure:
    """The ratio module/functional (left) and the absolute overhead with its noise (right) against FLOPs."""
    import matplotlib.pyplot as plt

    if not rows:
        raise ValueError("rows must hold at least one ConvOverhead; got none")
    flops = [r.flops for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.4, 3.2))
    left.plot(flops, [r.ratio for r in rows], "o-")
    left.axhline(1.0, color="gray", ls="--", lw=1)
    left.set(xscale="log", xlabel="FLOPs per call", ylabel="median time ratio module / F")
    left.set_title("module overhead as a ratio", fontsize=10)
    right.errorbar(flops, [r.overhead_us for r in rows], yerr=[r.noise_us for r in rows], fmt="o-",
                   color="tab:orange", capsize=3, label="median difference ± larger IQR")
    right.axhline(0.0, color="gray", ls="--", lw=1)
    right.set(xscale="log", xlabel="FLOPs per call", ylabel="µs added per call")
    right.set_title("absolute overhead", fontsize=10)
    right.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


@export("functional.experiment.PerSampleTiming")
@dataclass(frozen=True)
class PerSampleTiming:
    """Per-sample gradients of a batch, looped vs vmapped."""

    batch: int  # N samples
    loop_ms: float  # median milliseconds for per_sample_grads_loop
    vmap_ms: float  # median milliseconds for per_sample_grads_vmap

    @property
    def speedup(self) -> float:
        """time(loop) / time(vmap): above 1 means vmap is faster."""
        return self.loop_ms / self.vmap_ms


@export("functional.experiment.time_per_sample")
def time_per_sample(batch: int = 64, cfg: NetConfig | None = None, repeats: int = 7,
                    seed: int = 0) -> PerSampleTiming:
    """Time the loop and the vmap versions of per-sample gradients on one random batch (medians).

    Raises:
        TypeError / ValueError: ``batch`` or ``repeats`` is not a positive int.
    """
    _checks.integer("batch", batch, minimum=1)
    _checks.integer("repeats", repeats, minimum=1)
    cfg = NetConfig() if cfg is None else _checks.instance("cfg", cfg, NetConfig)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Net(cfg).eval()
    x = torch.randn(batch, cfg.in_features, generator=gen)  # (N, D_in)
    y = torch.randint(0, cfg.classes, (batch,), generator=gen)  # (N,)
    with one_thread():
        t = compare({"loop": lambda: per_sample_grads_loop(model, x, y),
                     "vmap": lambda: per_sample_grads_vmap(model, x, y)}, repeats=repeats, min_sample_s=0.0)
    return PerSampleTiming(batch, t["loop"].median * 1e3, t["vmap"].median * 1e3)
