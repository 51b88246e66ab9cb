"""Exercises for chapter 3: decode FP8 by hand, encode any IEEE format from its bits, FP16 spacing,
BF16 rounding, the loss-scale rule.

Each is a :class:`course_lib.exercises.Exercise`; ``tests/test_numerics_view.py`` checks them with
correct alternative solutions and with wrong ones. Notebook: ``03_floating_point`` (section
"Exercises").
"""

from __future__ import annotations

import math
import random
from typing import Any

from course_lib.exercises import Exercise
from course_lib.numerics.codec import decode, encode
from course_lib.numerics.formats import FORMATS, FloatFormat
from course_lib.numerics.loss_scaling import update_scale


def same_float(got: Any, expected: float) -> bool:
    """Exact equality that tells ``-0.0`` from ``0.0`` and accepts NaN for NaN."""
    if isinstance(got, bool) or not isinstance(got, int | float):
        return False
    if math.isnan(expected):
        return math.isnan(got)
    return got == expected and math.copysign(1.0, got) == math.copysign(1.0, expected)


def _decode_e5m2(bits: int) -> float:
    sign = -1.0 if bits & 0x80 else 1.0
    exponent, mantissa = (bits >> 2) & 0b11111, bits & 0b11
    if exponent == 0b11111:  # IEEE rules: all-ones exponent is inf or NaN
        return sign * math.inf if mantissa == 0 else math.nan
    if exponent == 0:  # subnormal: 2^(1 - bias) · m / 4, bias = 15
        return sign * mantissa / 4 * 2.0**-14
    return sign * (1 + mantissa / 4) * 2.0 ** (exponent - 15)


decode_e5m2 = Exercise(
    title="decode FP8 E5M2 by hand",
    task="""
        Write `decode_e5m2(bits)`: the value of an FP8 E5M2 bit pattern (an int in 0..255) as a
        Python float. Layout: 1 sign bit | 5 exponent bits (bias 15) | 2 mantissa bits, with
        IEEE's rules: exponent 0 is subnormal (no implicit 1) or ±0, exponent 31 is ±inf
        (mantissa 0) or NaN. Return -0.0 for the negative zero. No torch.
    """,
    reference=_decode_e5m2,
    edge_cases=[{"bits": b} for b in (0x00, 0x80, 0x01, 0x03, 0x04, 0x3C, 0x3D, 0x7B, 0x7C, 0xFC, 0x7D, 0xFF)],
    random_case=lambda rng: {"bits": rng.randrange(256)},
    hints=[
        "Split the fields with shifts and masks: sign = bits >> 7, exponent = (bits >> 2) & 31, mantissa = bits & 3.",
        "Normal: (1 + m/4) · 2^(e - 15). Subnormal (e == 0): (m/4) · 2^(1 - 15) — the exponent stays at -14.",
        "math.copysign(0.0, -1) is -0.0; multiplying the sign (-1.0) by 0.0 also gives -0.0.",
    ],
    equal=same_float,
)


def _fp16_spacing(x: float) -> float:
    _, k = math.frexp(x)  # x = f · 2^k with 0.5 <= f < 1, so the binade is 2^(k-1)
    return 2.0 ** (max(k - 1, -14) - 10)


fp16_spacing = Exercise(
    title="the spacing of FP16 values",
    task="""
        Write `fp16_spacing(x)`: for a positive float16 value x (a Python float, at most 32768),
        the gap between x and the next larger float16 value. For example the values near 1000
        are 0.5 apart: fp16_spacing(1000.0) == 0.5. Mind the subnormals: below 2^-14 the gap
        stops shrinking.
    """,
    reference=_fp16_spacing,
    edge_cases=[{"x": v} for v in (1000.0, 1.0, 1024.0, 1023.5, 32768.0, 2.0**-14, 2.0**-24, 3 * 2.0**-20,
                                    decode(encode(0.1, "fp16"), "fp16"))],
    random_case=lambda rng: {"x": decode(rng.randrange(1, 0x7800), "fp16")},
    hints=[
        "In the binade [2^e, 2^(e+1)) FP16 has 2^10 evenly spaced values, so the gap is 2^(e - 10).",
        "math.frexp(x) returns (f, k) with x = f · 2^k and 0.5 <= f < 1: the binade's exponent is e = k - 1.",
        "Subnormals all share the smallest normal's exponent: use e = max(e, -14).",
    ],
    equal=same_float,
)


def _bf16_from_fp32_bits(bits: int) -> int:
    # Add just under half of the dropped 16 bits, plus 1 when the kept part is odd: a carry out
    # of the low half then happens exactly when round-to-nearest-even rounds up.
    return (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16


def _random_fp32_bits(rng: random.Random) -> dict[str, int]:
    bits = rng.randrange(1 << 32)
    if (bits >> 23) & 0xFF == 0xFF:  # no NaN (inf excluded too, for simplicity)
        bits &= ~(1 << 30)
    if rng.random() < 0.3:  # make ties common: the dropped half is exactly 0x8000
        bits = (bits & 0xFFFF0000) | 0x8000
    return {"bits": bits}


bf16_rounding = Exercise(
    title="round FP32 to BF16 with integer arithmetic",
    task="""
        BF16 is the top 16 bits of FP32. Write `to_bf16(bits)`: given the bit pattern of a float32
        (an int in 0..2^32-1, never a NaN), return the bfloat16 pattern (an int in 0..65535) of
        the nearest bfloat16 value, ties to even — what `torch.tensor(x).bfloat16()` does.
        Overflow rounds to inf. Integer operations only.
    """,
    reference=_bf16_from_fp32_bits,
    edge_cases=[{"bits": b} for b in (0x3F800000, 0x3F808000, 0x3F818000, 0x3F808001, 0x3F807FFF,
                                      0x7F7FFFFF, 0x7F800000, 0xFF800000, 0x80000000, 0x00000001)],
    random_case=_random_fp32_bits,
    hints=[
        "Truncating (bits >> 16) rounds toward zero; you need to round to nearest.",
        "Look at the low 16 bits: above 0x8000 round up, below round down, exactly 0x8000 round to the even one.",
        "Adding 0x7FFF before the shift rounds every tie down; add one more exactly when bit 16 "
        "(the last kept bit) is 1.",
    ],
)


def _scaler_state(scale: float, growth_tracker: int, found_inf: bool, growth_factor: float,
                  backoff_factor: float, growth_interval: int) -> dict[str, Any]:
    return {"scale": scale, "growth_tracker": growth_tracker, "found_inf": found_inf,
            "growth_factor": growth_factor, "backoff_factor": backoff_factor, "growth_interval": growth_interval}


def _random_scaler_state(rng: random.Random) -> dict[str, Any]:
    interval = rng.randint(1, 5)
    return {"scale": 2.0 ** rng.randint(-10, 30), "growth_tracker": rng.randrange(interval),
            "found_inf": rng.random() < 0.3, "growth_factor": rng.choice([2.0, 4.0]),
            "backoff_factor": rng.choice([0.5, 0.25]), "growth_interval": interval}


loss_scale_rule = Exercise(
    title="the dynamic loss-scale rule",
    task="""
        Write `next_scale(scale, growth_tracker, found_inf, growth_factor, backoff_factor,
        growth_interval)` returning `(new_scale, new_growth_tracker)`, as torch.amp.GradScaler
        updates its scale after each step:
        * inf/NaN found: multiply the scale by backoff_factor and reset the tracker to 0;
        * otherwise count one more good step; after growth_interval good steps in a row multiply
          the scale by growth_factor and reset the tracker to 0.
        The scale is a float32: if growing it would overflow float32 (max about 3.4e38), keep it.
    """,
    reference=update_scale,
    edge_cases=[
        _scaler_state(65536.0, 0, True, 2.0, 0.5, 3),
        _scaler_state(65536.0, 5, True, 2.0, 0.5, 10),
        _scaler_state(1024.0, 0, False, 2.0, 0.5, 3),
        _scaler_state(1024.0, 2, False, 2.0, 0.5, 3),
        _scaler_state(1.0, 0, False, 4.0, 0.25, 1),
        _scaler_state(2.0**127, 0, False, 2.0, 0.5, 1),  # growing would overflow float32: keep the scale
        _scaler_state(0.0, 0, True, 2.0, 0.5, 1),  # a scale backed off to 0 stays 0, no exception
    ],
    random_case=lambda rng: _random_scaler_state(rng),
    hints=[
        "Two branches on found_inf; only the good-step branch touches growth_interval.",
        "Compare growth_tracker + 1 with growth_interval; reset to 0 whenever the scale changes.",
        "float32's max is torch.finfo(torch.float32).max; a grown scale above it would be inf.",
    ],
)


def _encode_ieee(value: float, fmt: FloatFormat) -> int:
    E, M, bias = fmt.exponent_bits, fmt.mantissa_bits, fmt.bias
    sign = 1 if math.copysign(1.0, value) < 0 else 0
    all_ones = (1 << E) - 1  # the exponent field of inf and NaN
    if math.isnan(value):
        return fmt.nan_bits(negative=bool(sign))
    x = abs(value)
    if x == math.inf:
        return (sign << (E + M)) | (all_ones << M)
    if x == 0.0:
        return sign << (E + M)  # a zero keeps its sign
    _, k = math.frexp(x)  # x = f · 2^k with 0.5 <= f < 1, so floor(log2 x) = k - 1
    e = max(k - 1, 1 - bias)  # the binade; subnormals share the smallest normal's
    n = round(x / 2.0 ** (e - M))  # how many quanta of 2^(e-M); Python's round() ties to even
    if n == 1 << (M + 1):  # rounded up into the next binade
        n, e = n >> 1, e + 1
    if n < 1 << M:  # no implicit 1: a subnormal (exponent field 0)
        exponent_field, mantissa = 0, n
    else:
        exponent_field, mantissa = e + bias, n - (1 << M)
    if exponent_field >= all_ones:  # beyond the largest finite value: overflow to inf
        exponent_field, mantissa = all_ones, 0
    return (sign << (E + M)) | (exponent_field << M) | mantissa


_IEEE = ("fp16", "bf16", "fp8_e5m2", "fp32")


def _random_encode_case(rng: random.Random) -> dict[str, Any]:
    fmt = FORMATS[rng.choice(_IEEE)]
    lo, hi = 1 - fmt.bias - fmt.mantissa_bits - 2, fmt.bias + 2  # from below the subnormals to past the max
    value = rng.choice([-1.0, 1.0]) * rng.uniform(1.0, 2.0) * 2.0 ** rng.randint(lo, hi)
    return {"value": value, "fmt": fmt}


encode_format = Exercise(
    title="encode a value into an IEEE format, from the bits",
    task="""
        Write `encode(value: float, fmt) -> int`: the bit pattern of `value` rounded to the
        nearest value of the IEEE-style format `fmt` (FP16, BF16, FP8 E5M2 or FP32), ties to
        even. `fmt.exponent_bits` (E), `fmt.mantissa_bits` (M) and `fmt.bias` describe it; the
        pattern is sign | exponent | mantissa. Handle signed zeros, subnormals (exponent field 0,
        no implicit 1), rounding that carries into the next power of two, overflow to ±inf
        (all-ones exponent, mantissa 0) and NaN (return `fmt.nan_bits(negative=...)`).
    """,
    reference=_encode_ieee,
    edge_cases=[{"value": v, "fmt": FORMATS[name]} for name, v in [
        ("fp16", 1.0), ("fp16", -2.0), ("fp16", 0.1), ("fp16", -0.0), ("fp16", 2049.0), ("fp16", 2051.0),
        ("fp16", 65519.0), ("fp16", 65520.0), ("fp16", 1e-7), ("fp16", 2.0**-25), ("fp16", 3 * 2.0**-26),
        ("fp16", 2.0**-14 - 2.0**-25), ("fp16", math.inf), ("fp16", -math.nan), ("bf16", 0.1),
        ("bf16", 1.0 + 2.0**-8), ("fp8_e5m2", 1000.0), ("fp8_e5m2", 61440.0), ("fp8_e5m2", 2.0**-17),
        ("fp32", 0.1), ("fp32", 1e-45)]],
    random_case=_random_encode_case,
    hints=[
        "Find the binade first: math.frexp(x) gives x = f · 2^k, so the exponent is e = k - 1 — but never "
        "below the smallest normal's, 1 - bias (that clamp makes subnormals).",
        "Count quanta: n = round(x / 2^(e - M)). Python's round() on a float rounds ties to even, and the "
        "division by a power of two is exact.",
        "n == 2^(M+1) means rounding carried into the next binade; n < 2^M means a subnormal; otherwise "
        "the exponent field is e + bias and the mantissa n - 2^M. An exponent field of all ones is overflow.",
    ],
)
