"""Decode and encode floating-point bit patterns by hand — integer arithmetic, no torch.

``decode(bits, fmt)`` splits a pattern into sign, exponent and mantissa and applies the format's
rules (:mod:`course_lib.numerics.formats`). ``encode(value, fmt)`` goes the other way with
**round to nearest, ties to even** (IEEE 754's default and what every torch cast does):

1. write ``|x| = M · 2^k`` exactly, with ``M`` a 53-bit integer (``math.frexp``);
2. pick the quantum ``q = 2^(E - mbits)`` where ``E = max(floor(log2|x|), 1 - bias)`` — the
   clamp makes subnormals share the smallest normal's quantum (gradual underflow);
3. ``n = round_half_even(|x| / q)`` with integer shifts: round up when the discarded bits exceed
   half a quantum, or equal it and ``n`` is odd;
4. ``n == 2^(mbits+1)`` means the rounding carried into the next binade; ``n < 2^mbits`` means a
   subnormal (exponent field 0); otherwise the exponent field is ``E + bias``;
5. a magnitude pattern above the largest finite one overflowed: ±inf for IEEE formats, ±max for
   ``float8_e4m3fn`` (the course's convention; torch ≤ 2.11 gives NaN there, torch 2.14
   saturates — ``overflow=`` picks either, see the formats module).

The input is a Python float, so ``encode`` rounds a float64 value once. Rounding a float32 tensor
in torch is also a single rounding, so the two agree bit for bit (tested on every edge case and
a large random sample). NaN payloads are not preserved: encode returns the format's quiet NaN.

Notebook: ``03_floating_point`` (sections "Decoding by hand" and "Rounding"). Tests:
``tests/test_numerics.py``.
"""

from __future__ import annotations

import math
import numbers
from typing import Literal

import torch

from course_lib import _checks
from course_lib._export import export
from course_lib.numerics.formats import FloatFormat, Overflow, _decode_fields, get_format

Kind = Literal["zero", "subnormal", "normal", "inf", "nan"]
FormatLike = str | torch.dtype | FloatFormat


def _bits(f: FloatFormat, bits: int) -> int:
    return _checks.integer("bits", bits, minimum=0, maximum=(1 << f.bits) - 1)


@export("numerics.fields")
def fields(bits: int, fmt: FormatLike) -> tuple[int, int, int]:
    """Split a bit pattern into its ``(sign, exponent, mantissa)`` fields, each an unsigned int.

    Raises:
        TypeError: ``bits`` is not an int (a float such as ``1.0`` is refused, not truncated).
        ValueError: ``bits`` is negative or wider than the format; an unknown format.
    """
    f = get_format(fmt)
    b = _bits(f, bits)
    return b >> (f.bits - 1), (b >> f.mantissa_bits) & f.exponent_all_ones, b & ((1 << f.mantissa_bits) - 1)


@export("numerics.decode")
def decode(bits: int, fmt: FormatLike) -> float:
    """The value of the bit pattern ``bits`` in format ``fmt``, as a Python float (exact).

    Args:
        bits: the pattern as an unsigned integer, e.g. ``0x3C00`` (1.0 in FP16).
        fmt: a format name (``"fp16"``, ``"bf16"``, ``"fp8_e4m3"`` …), a torch dtype or a FloatFormat.

    Returns:
        The value; ``-0.0`` for the negative zero, ``±inf`` and ``nan`` for the special patterns.

    Raises:
        TypeError: ``bits`` is not an int.
        ValueError: ``bits`` outside ``[0, 2**width - 1]``; an unknown format.

    Example:
        >>> decode(0x3C00, "fp16"), decode(0x0001, "fp16"), decode(0x7E, "fp8_e4m3")
        (1.0, 5.960464477539063e-08, 448.0)
    """
    f = get_format(fmt)
    return _decode_fields(f, *fields(bits, f))


@export("numerics.classify")
def classify(bits: int, fmt: FormatLike) -> Kind:
    """Which kind of value a pattern holds: ``zero``, ``subnormal``, ``normal``, ``inf`` or ``nan``."""
    f = get_format(fmt)
    value = decode(bits, f)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf"
    _, exponent, mantissa = fields(bits, f)
    if exponent == 0:
        return "subnormal" if mantissa else "zero"
    return "normal"


def _round_half_even(m: int, shift: int) -> int:
    """``round(m / 2**shift)`` with ties to even, in integers."""
    if shift <= 0:
        return m << -shift
    quotient, remainder = m >> shift, m & ((1 << shift) - 1)
    half = 1 << (shift - 1)
    if remainder > half or (remainder == half and quotient & 1):
        quotient += 1
    return quotient


def _policy(f: FloatFormat, overflow: Overflow | None) -> Overflow:
    if overflow is None:
        return f.overflow
    _checks.one_of("overflow", overflow, ("inf", "saturate", "nan"))
    if overflow == "inf" and not f.has_infinity:
        raise ValueError(f"overflow='inf' needs a format with infinities; {f.name} has none "
                         "(use 'saturate' or 'nan')")
    return overflow


@export("numerics.encode")
def encode(value: float, fmt: FormatLike, overflow: Overflow | None = None) -> int:
    """The bit pattern nearest to ``value`` in format ``fmt`` (round to nearest, ties to even).

    Args:
        value: a real number (converted to float64 first); inf and NaN are allowed.
        fmt: a format name, torch dtype or FloatFormat.
        overflow: what a value beyond the largest finite one (after rounding), or ±inf, becomes:
            ``"inf"`` ±inf, ``"saturate"`` ±max, ``"nan"`` NaN. Default: the format's convention
            (``fmt.overflow``): ±inf for IEEE formats, saturation for ``fp8_e4m3`` — torch 2.14's
            cast; pass ``"nan"`` for torch 2.11's (see :func:`torch_cast_overflow`).

    Returns:
        The pattern as an unsigned int. Values below half the smallest subnormal give a zero of
        the same sign.

    Raises:
        TypeError: ``value`` is not a real number.
        ValueError: an unknown format or overflow policy; ``overflow="inf"`` for a format without
            infinities.

    Example:
        >>> hex(encode(1.0, "fp16")), hex(encode(1e6, "fp16")), hex(encode(1e6, "fp8_e4m3"))
        ('0x3c00', '0x7c00', '0x7e')
        >>> hex(encode(1e6, "fp8_e4m3", overflow="nan")), hex(encode(464.0, "fp8_e4m3", overflow="nan"))
        ('0x7f', '0x7e')
    """
    f = get_format(fmt)
    policy = _policy(f, overflow)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"value must be a real number; got {type(value).__name__}: {value!r}")
    x = float(value)
    sign = f.sign_mask if math.copysign(1.0, x) < 0 else 0
    if math.isnan(x):
        return f.nan_bits(negative=bool(sign))
    magnitude_x = abs(x)
    if math.isinf(magnitude_x):
        return sign | _overflow(f, policy)
    if magnitude_x == 0.0:
        return sign
    frac, k = math.frexp(magnitude_x)  # |x| = frac · 2^k, 0.5 <= frac < 1
    m = int(math.ldexp(frac, 53))  # |x| = m · 2^(k - 53), m an integer (exact)
    e = max(k - 1, 1 - f.bias)  # the binade's exponent; subnormals use the smallest normal's
    n = _round_half_even(m, (e - f.mantissa_bits) - (k - 53))  # |x| / quantum, rounded
    if n == 1 << (f.mantissa_bits + 1):  # rounding carried into the next binade
        n, e = n >> 1, e + 1
    if n < 1 << f.mantissa_bits:  # subnormal (or zero): exponent field 0, no implicit 1
        magnitude = n
    else:
        magnitude = ((e + f.bias) << f.mantissa_bits) | (n - (1 << f.mantissa_bits))
    if magnitude > f.max_finite_magnitude:
        magnitude = _overflow(f, policy)
    return sign | magnitude


def _overflow(f: FloatFormat, policy: Overflow) -> int:
    """The magnitude pattern an overflowing value gets under ``policy``: inf, the max, or NaN."""
    if policy == "saturate":
        return f.max_finite_magnitude
    if policy == "nan":
        return f.nan_bits(negative=False) & (f.sign_mask - 1)
    return f.exponent_all_ones << f.mantissa_bits


@export("numerics.torch_cast_overflow")
def torch_cast_overflow(fmt: FormatLike) -> Overflow:
    """Which overflow convention the *installed* torch's float32 → ``fmt`` cast follows.

    Casts a finite value beyond the format's range (twice its max) and looks at the result:
    ``"inf"``, ``"saturate"`` or ``"nan"``. For ``fp8_e4m3`` torch 2.11 answers ``"nan"`` and
    torch 2.14 ``"saturate"``; IEEE formats answer ``"inf"``.

    Raises:
        ValueError: an unknown format (FP64 has no wider type to overflow from and is refused).
    """
    f = get_format(fmt)
    if f.bits >= 32:
        raise ValueError(f"fmt must be narrower than float32 to overflow a float32 cast; got {f.name}")
    big = float(torch.tensor(2.0 * decode(f.max_finite_magnitude, f), dtype=torch.float32))
    out = torch.tensor(big, dtype=torch.float32).to(f.dtype()).float().item()
    if math.isnan(out):
        return "nan"
    return "inf" if math.isinf(out) else "saturate"


@export("numerics.round_to")
def round_to(value: float, fmt: FormatLike, overflow: Overflow | None = None) -> float:
    """``value`` rounded to the nearest value of ``fmt`` (``decode(encode(value, fmt, overflow))``)."""
    f = get_format(fmt)
    return decode(encode(value, f, overflow), f)


def _ordinal(bits: int, f: FloatFormat) -> int:
    """Position on the number line: patterns ordered like their values (−0 and +0 both 0)."""
    magnitude = bits & (f.sign_mask - 1)
    return -magnitude if bits & f.sign_mask else magnitude


def _from_ordinal(ordinal: int, f: FloatFormat) -> int:
    return (f.sign_mask | -ordinal) if ordinal < 0 else ordinal


@export("numerics.neighbours")
def neighbours(value: float, fmt: FormatLike, count: int = 3) -> list[float]:
    """The representable finite values of ``fmt`` nearest ``value``: up to ``count`` each side of its rounding.

    Returns:
        A sorted list of at most ``2 * count + 1`` values, centred on ``round_to(value, fmt)``
        (the largest finite value when ``value`` overflows).

    Raises:
        TypeError: ``value`` is not a real number or ``count`` not an int.
        ValueError: ``value`` is NaN, ``count`` < 0, or an unknown format.
    """
    f = get_format(fmt)
    count = _checks.integer("count", count, minimum=0)
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isnan(value):
        raise ValueError("value must not be NaN: NaN has no place on the number line")
    centre = _ordinal(encode(value, f), f)
    top = f.max_finite_magnitude
    centre = max(-top, min(top, centre))  # ±inf → the largest finite value
    out = [decode(_from_ordinal(o, f), f) for o in range(max(-top, centre - count), min(top, centre + count) + 1)]
    return [0.0 if v == 0 else v for v in out]
