"""Memory kept for backward: the bytes autograd saves between the forward and backward pass.

Standard attention saves the N×N attention matrix P (softmax's output, needed for its gradient
and for ``dV = Pᵀ dO``): O(N²) per head. FlashAttention saves Q, K, V, O and the log-sum-exp L:
O(N·d), and rebuilds P tile by tile in backward. :func:`saved_for_backward_bytes` measures it
with ``torch.autograd.graph.saved_tensors_hooks``, counting each storage once — on any device,
exactly, without a memory profiler.

Notebook: ``09_flash_attention`` §4 (memory kept for backward). Tests: ``tests/test_attention_io.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from course_lib import _checks
from course_lib._export import export


@export("attention.saved_for_backward_bytes")
def saved_for_backward_bytes(fn: Callable[..., torch.Tensor], *inputs: torch.Tensor, **kwargs) -> int:
    """Bytes of the distinct storages autograd keeps when ``fn(*inputs, **kwargs)`` runs.

    Args:
        fn: a differentiable function of the inputs.
        *inputs: tensors; those that do not require grad are copied with ``requires_grad=True``.
        **kwargs: passed to ``fn``.

    Returns:
        The total size of every storage saved for backward, each counted once (the inputs
        themselves included when saved).

    Raises:
        TypeError: ``fn`` not callable or an input not a floating tensor.
    """
    if not callable(fn):
        raise TypeError(f"fn must be a function; got {type(fn).__name__}")
    for i, t in enumerate(inputs):
        _checks.tensor(f"inputs[{i}]", t, floating=True)
    leaves = [t if t.requires_grad else t.detach().requires_grad_() for t in inputs]
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*leaves, **kwargs)
    return sum(storages.values())
