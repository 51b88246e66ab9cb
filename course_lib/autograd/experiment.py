"""Measurements for chapter 1: the cheap-gradient principle, forward+backward time over forward time.

Reverse mode computes the gradient of a scalar loss with respect to *all* parameters for a
small constant multiple of the forward cost, however many parameters there are (Griewank &
Walther, *Evaluating Derivatives*, 2008, §4.6: the bound is ≤ 4 for the operations counted
there; compare forward mode or finite differences, which cost one pass *per parameter*).

For an MLP the bulk is matmuls. A layer ``Y = X W`` (``X: B×n``, ``W: n×m``) costs ``2Bnm``
FLOPs forward; backward needs ``∂W = Xᵀ G`` and ``∂X = G Wᵀ``, another ``4Bnm``. So

    (forward + backward) / forward  →  (2 + 4) / 2 = 3     as the matmuls dominate,

a bit less because the first layer needs no ``∂X``. At small widths Python and per-op overhead
dominate instead, and the ratio reflects how heavy each engine's per-node bookkeeping is.

:func:`gradient_cost` times one engine at one width with :func:`course_lib.timing.compare`
(warm-up, interleaved repeats, medians). A harness, not a concept: reached as
``course_lib.autograd.experiment.<name>``, not re-exported by the package. Timings are not
tests; the notebook plots them and asserts only a loose bound.

Notebook: ``01_autograd`` ("Experiment: how cheap is the gradient?"). Tests: ``tests/test_autograd_mlp.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from course_lib import _checks
from course_lib._export import export
from course_lib.autograd.mlp import Engine, _to_engine, cross_entropy, init_params, mlp_forward
from course_lib.runtime import one_thread
from course_lib.timing import compare


@export("autograd.experiment.GradientCost")
@dataclass(frozen=True)
class GradientCost:
    """Timings of one MLP at one width."""

    width: int  # hidden width of the two hidden layers
    forward_s: float  # median forward time, seconds
    forward_backward_s: float  # median forward + backward time, seconds
    flop_ratio: float  # (forward + backward FLOPs) / forward FLOPs of the matmuls

    @property
    def ratio(self) -> float:
        """(forward + backward) / forward: a ratio of medians of the same run."""
        return self.forward_backward_s / self.forward_s


@export("autograd.experiment.matmul_flop_ratio")
def matmul_flop_ratio(sizes: tuple[int, ...], batch: int) -> float:
    """(forward + backward) / forward matmul FLOPs of an MLP with layer ``sizes``; tends to 3."""
    forward = sum(2 * batch * n * m for n, m in zip(sizes[:-1], sizes[1:]))
    # backward: ∂W for every layer, ∂X for all but the first (the input needs no gradient)
    backward = sum(2 * batch * n * m * (1 if i == 0 else 2) for i, (n, m) in enumerate(zip(sizes[:-1], sizes[1:])))
    return (forward + backward) / forward


@export("autograd.experiment.gradient_cost")
def gradient_cost(width: int, engine: Engine = "ours", batch: int = 64, repeats: int = 5,
                  seed: int = 0) -> GradientCost:
    """Time forward and forward+backward of a 64 → width → width → 10 MLP with cross-entropy.

    Args:
        width: the hidden width.
        engine: "ours" or "torch" (float64, CPU; timed on one thread).
        batch: examples per pass.
        repeats: samples per alternative, interleaved; the median is kept.
        seed: seeds the parameters and the data.

    Returns:
        A :class:`GradientCost`.

    Raises:
        TypeError / ValueError: a non-integer or non-positive size, or an unknown engine.
    """
    _checks.integer("width", width, minimum=1)
    _checks.integer("batch", batch, minimum=1)
    _checks.integer("repeats", repeats, minimum=1)
    _checks.one_of("engine", engine, ("ours", "torch"))
    sizes = (64, width, width, 10)
    rng = np.random.default_rng(seed)
    x = _to_engine(rng.random((batch, sizes[0])), engine)  # (B, 64)
    y = rng.integers(0, sizes[-1], batch)
    params = {k: _to_engine(v, engine, requires_grad=True) for k, v in init_params(sizes, seed).items()}

    def forward() -> Any:
        return cross_entropy(mlp_forward(params, x), y)

    def forward_backward() -> None:
        forward().backward()
        for p in params.values():
            p.grad = None

    with one_thread():
        t = compare({"forward": forward, "forward_backward": forward_backward}, repeats=repeats, min_sample_s=0.01)
    return GradientCost(width, t["forward"].median, t["forward_backward"].median, matmul_flop_ratio(sizes, batch))
