"""Floating-point formats and mixed-precision training (chapter 3).

A float is three bit fields — sign, exponent, mantissa — and everything about a format (its
range, its precision, its special values) follows from their widths. This package spells that
out and builds mixed-precision training on it:

* :mod:`~course_lib.numerics.formats` — FP64, FP32, FP16, BF16, FP8 E4M3 (``float8_e4m3fn``) and
  FP8 E5M2 as bit fields; :func:`constants` derives eps, max, smallest normal and subnormal.
* :mod:`~course_lib.numerics.codec` — :func:`decode` / :func:`encode` by integer arithmetic (no
  torch): subnormals, signed zero, inf, NaN, round to nearest even; overflow gives inf, and
  ``float8_e4m3fn`` saturates to ±448 (the course's convention; torch 2.11 gives NaN, 2.14
  saturates: :func:`torch_cast_overflow` says which the installed torch does).
* :mod:`~course_lib.numerics.fp8_scaling` — FP8 with per-tensor or block scales
  (:func:`fp8_quantize`, :func:`fp8_dequantize`), and Transformer Engine's delayed scaling from
  an amax history (:class:`DelayedScaling`, :class:`DelayedScaler`, :func:`delayed_scale_update`).
* :mod:`~course_lib.numerics.loss_scaling` — :class:`DynamicLossScaler`, GradScaler's rule.
* :mod:`~course_lib.numerics.mixed_precision` — FP32 :class:`MasterWeights` for an FP16 model;
  :func:`autocast` with bf16 on the CPU and fp16 on CUDA.
* :mod:`~course_lib.numerics.experiment` — one classifier trained in four precisions; gradient
  and activation-gradient underflow measured; delayed vs just-in-time FP8 scaling traced
  (reached as ``course_lib.numerics.experiment.<name>``, not re-exported).
* :mod:`~course_lib.numerics.formats_view` — pure states and views: the bit editor, a value in
  every format, the number line; :mod:`~course_lib.numerics.bit_editor` — the bit editor widget.
* :mod:`~course_lib.numerics.exercises` — four auto-checked exercises.

References: IEEE 754-2019; Micikevicius et al., *Mixed Precision Training* (ICLR 2018);
Micikevicius et al., *FP8 Formats for Deep Learning* (2022); Kalamkar et al., *A Study of
BFLOAT16 for Deep Learning Training* (2019); ``torch.amp.GradScaler``.

Limitations: scalar, pure-Python conversion (exact, ~2 µs per value — for teaching and testing,
not for tensors); one device for the scaler.

Notebook: ``03_floating_point``. Tests: ``tests/test_numerics.py`` (formats, codec),
``tests/test_numerics_training.py`` (scaler, mixed precision, experiment),
``tests/test_numerics_view.py`` (views, widgets, exercises), ``tests/test_numerics_underflow.py``
(activation gradients), ``tests/test_numerics_delayed.py`` (delayed FP8 scaling).
"""

from course_lib._lazy import lazy_exports
from course_lib.numerics.codec import (
    classify,
    decode,
    encode,
    fields,
    neighbours,
    round_to,
    torch_cast_overflow,
)
from course_lib.numerics.formats import FORMATS, FloatFormat, FormatConstants, constants, get_format
from course_lib.numerics.formats_view import (
    bit_editor_state,
    bit_editor_view,
    bit_editor_widget,
    bits_figure,
    number_line_state,
    number_line_view,
    number_line_widget,
    value_state,
    value_view,
    value_widget,
)
from course_lib.numerics.fp8_scaling import (
    DelayedScaler,
    DelayedScaling,
    delayed_scale_update,
    fp8_dequantize,
    fp8_quantize,
)
from course_lib.numerics.loss_scaling import DynamicLossScaler, update_scale
from course_lib.numerics.mixed_precision import MasterWeights, autocast, autocast_dtype

# The bit editor subclasses ViewWidget (ipywidgets): loaded on first use.
__getattr__, __dir__ = lazy_exports(__name__, {"bit_editor": ("BitEditorWidget",)})

__all__ = [
    "FORMATS",
    "BitEditorWidget",
    "DelayedScaler",
    "DelayedScaling",
    "DynamicLossScaler",
    "FloatFormat",
    "FormatConstants",
    "MasterWeights",
    "autocast",
    "autocast_dtype",
    "bit_editor_state",
    "bit_editor_view",
    "bit_editor_widget",
    "bits_figure",
    "classify",
    "constants",
    "decode",
    "delayed_scale_update",
    "encode",
    "fields",
    "fp8_dequantize",
    "fp8_quantize",
    "get_format",
    "neighbours",
    "number_line_state",
    "number_line_view",
    "number_line_widget",
    "round_to",
    "torch_cast_overflow",
    "update_scale",
    "value_state",
    "value_view",
    "value_widget",
]
