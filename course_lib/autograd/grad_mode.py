"""Grad mode: the switch that decides whether new ops record the graph.

Inside :func:`no_grad` every op still computes its value, but records no parents and no
vector-Jacobian product, so its result has ``requires_grad=False`` and nothing is kept alive for
a backward pass. Use it for evaluation and for optimiser updates, as with ``torch.no_grad()``
(torch keeps the same switch in ``torch/autograd/grad_mode.py``).

Difference from torch: the switch is process-wide, not per thread; there is no ``enable_grad``.

Notebook: ``01_autograd`` ("detach and no_grad"). Tests: ``tests/test_autograd.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from course_lib._export import export

_grad_enabled = True  # flipped by no_grad()


@export("autograd.is_grad_enabled")
def is_grad_enabled() -> bool:
    """Whether new ops record the graph (False inside :func:`no_grad`)."""
    return _grad_enabled


@export("autograd.no_grad")
@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Within this block ops record nothing: results have ``requires_grad=False``, no graph.

    Use it for evaluation and for optimiser updates (``p.data -= lr * p.grad.data``), as with
    ``torch.no_grad()``. Also works as a decorator.
    """
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous
