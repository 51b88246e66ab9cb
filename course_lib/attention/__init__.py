"""FlashAttention, from online softmax to a Triton kernel (chapter 9).

Attention ``O = softmax(scale · Q Kᵀ) V`` written as the formula reads materialises two N×N
matrices in main memory; for long sequences moving them dominates the run time and storing P for
backward dominates memory. FlashAttention (Dao et al., 2022, https://arxiv.org/abs/2205.14135;
FlashAttention-2, Dao 2023, https://arxiv.org/abs/2307.08691) computes the same O exactly, one
tile of the score matrix at a time, with an *online softmax* that carries a running max ``m``,
running sum ``l`` and partial output ``acc`` from tile to tile; backward recomputes P from the
saved log-sum-exp instead of storing it.

Layers, bottom-up (each module's docstring is its concept card):

* :mod:`~course_lib.attention.reference` — :func:`attention_ref`, the spec.
* :mod:`~course_lib.attention.online_softmax` — :func:`online_softmax`, :func:`merge_states`.
* :mod:`~course_lib.attention.tiling` — the tile schedule and the causal skip condition.
* :mod:`~course_lib.attention.flash_torch` — :func:`flash_attention_torch`, the tiled algorithm in PyTorch.
* :mod:`~course_lib.attention.flash_triton` — the Triton kernels (loaded on first use: they need
  the ``triton`` package).
* :mod:`~course_lib.attention.flash` — :func:`flash_attention` (``impl="triton" | "torch"``), the
  dispatcher above both paths.
* :mod:`~course_lib.attention.decoding` — a few queries against a long KV cache: bottom-right
  causal alignment and split-K (flash-decoding) with the merge rule.
* :mod:`~course_lib.attention.io_model`, :mod:`~course_lib.attention.memory` — HBM traffic and
  memory kept for backward.
* :mod:`~course_lib.attention.benchmark` — TFLOP/s against SDPA on a GPU (a harness: reached as
  ``course_lib.attention.benchmark``, not re-exported here).
* :mod:`~course_lib.attention.tiling_view` — the widget; :mod:`~course_lib.attention.exercises`.

Notebook: ``notebooks/09_flash_attention``. Tests: ``tests/test_attention*.py``.
"""

from course_lib._lazy import lazy_exports
from course_lib.attention.decoding import bottom_right_causal_mask, decode_attention, split_kv_states
from course_lib.attention.flash import FlashAttention, flash_attention
from course_lib.attention.flash_torch import FlashAttentionTorch, flash_attention_torch
from course_lib.attention.io_model import (
    HbmTraffic,
    flash_attention_io,
    flash_block_sizes,
    standard_attention_io,
)
from course_lib.attention.memory import saved_for_backward_bytes
from course_lib.attention.online_softmax import SoftmaxState, block_state, merge_states, online_softmax
from course_lib.attention.reference import attention_ref
from course_lib.attention.tiling import TileStep, causal_tile_skipped, tile_schedule
from course_lib.attention.tiling_view import TilingState, tiling_state, tiling_view, tiling_widget

# Loaded on first use: the kernels need the triton package.
__getattr__, __dir__ = lazy_exports(__name__, {
    "flash_triton": ("FlashAttentionTriton", "KernelConfig", "flash_attention_ref", "flash_attention_triton",
                     "supported_dtypes"),
})

__all__ = [
    "FlashAttention",
    "FlashAttentionTorch",
    "FlashAttentionTriton",
    "HbmTraffic",
    "KernelConfig",
    "SoftmaxState",
    "TileStep",
    "TilingState",
    "attention_ref",
    "block_state",
    "bottom_right_causal_mask",
    "causal_tile_skipped",
    "decode_attention",
    "flash_attention",
    "flash_attention_io",
    "flash_attention_ref",
    "flash_attention_torch",
    "flash_attention_triton",
    "flash_block_sizes",
    "merge_states",
    "online_softmax",
    "saved_for_backward_bytes",
    "split_kv_states",
    "standard_attention_io",
    "supported_dtypes",
    "tile_schedule",
    "tiling_state",
    "tiling_view",
    "tiling_widget",
]
