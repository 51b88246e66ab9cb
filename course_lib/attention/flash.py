"""The chapter's entry point: ``flash_attention(..., impl="triton" | "torch")`` and its module.

The dispatcher sits above both implementations, so the plain-torch path needs no Triton: the
kernels of :mod:`~course_lib.attention.flash_triton` are imported only when ``impl="triton"`` runs
(nanoGPT's ``self.flash`` switch; torchvision falls back the same way when its compiled ops are
missing). Where Triton cannot be imported (macOS, Linux on ARM), ``impl="triton"`` raises a
``RuntimeError`` that names ``impl="torch"``.

Notebook: ``09_flash_attention``. Tests: ``tests/test_attention.py``.
"""

from __future__ import annotations

import torch

from course_lib import _checks
from course_lib._export import export
from course_lib.attention.flash_torch import flash_attention_torch
from course_lib.runtime import triton_available, triton_problem

IMPLS = ("triton", "torch")


def _triton_kernels():
    """The Triton implementation, imported on first use (it needs the ``triton`` package)."""
    if not triton_available():
        raise RuntimeError(
            'impl="triton" needs the triton package, which is not installed here (Triton ships '
            'with torch on Linux x86-64 only); use impl="torch", the same algorithm in PyTorch')
    problem = triton_problem()
    if problem is not None:
        raise RuntimeError(problem)
    from course_lib.attention import flash_triton

    return flash_triton


@export("attention.flash_attention")
def flash_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False, scale: float | None = None,
    impl: str = "triton",
) -> torch.Tensor:
    """softmax(scale · Q Kᵀ) V without materialising the N×N matrix; forward and backward.

    Args:
        q (Tensor[B, H, T, D]): queries.
        k (Tensor[B, H, S, D]): keys (same D as q).
        v (Tensor[B, H, S, D]): values (same D as q).
        causal: query ``i`` sees keys ``j <= i`` (top-left aligned, as SDPA's ``is_causal``).
        scale: score multiplier; default ``1 / sqrt(D)``.
        impl: ``"triton"`` — the kernels of :mod:`~course_lib.attention.flash_triton` (natively
            on a GPU, in Triton's interpreter on the CPU; fp32/fp16, bf16 on GPUs with bf16, D in
            [16, 128]) — or ``"torch"`` — :func:`flash_attention_torch`, any float dtype and head
            dim, any device.

    Returns:
        Tensor[B, H, T, D]: the attention output, in q's dtype.

    Raises:
        TypeError: non-tensors, non-float or mismatched dtypes, a dtype the Triton path lacks.
        ValueError: wrong rank, mismatched sizes or devices, an unknown ``impl``, a head dim or
            device the Triton path does not cover (the message names ``impl="torch"``).
        RuntimeError: ``impl="triton"`` where the triton package is not installed (the message
            names ``impl="torch"``).

    Example:
        >>> from course_lib.attention import attention_ref
        >>> q, k, v = torch.randn(3, 1, 2, 17, 16).unbind(0)
        >>> o = flash_attention(q, k, v, causal=True)   # Triton's interpreter on a CPU
        >>> torch.allclose(o, attention_ref(q, k, v, causal=True), atol=1e-5)
        True
    """
    _checks.one_of("impl", impl, IMPLS)
    if impl == "torch":
        return flash_attention_torch(q, k, v, causal, scale)
    return _triton_kernels().flash_attention_triton(q, k, v, causal, scale)


@export("attention.FlashAttention")
class FlashAttention(torch.nn.Module):
    """:func:`flash_attention` as a module: ``FlashAttention(causal=True)(q, k, v)``."""

    def __init__(self, causal: bool = False, scale: float | None = None, impl: str = "triton") -> None:
        super().__init__()
        self.causal = causal  # mask keys after the query
        self.scale = scale  # None: 1 / sqrt(D)
        self.impl = _checks.one_of("impl", impl, IMPLS)  # which implementation runs

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return flash_attention(q, k, v, self.causal, self.scale, self.impl)

    def extra_repr(self) -> str:
        return f"causal={self.causal}, scale={self.scale}, impl={self.impl!r}"
