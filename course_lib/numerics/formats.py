"""Binary floating-point formats as bit fields: FP64, FP32, FP16, BF16, FP8 E4M3 and FP8 E5M2.

A format with ``E`` exponent bits and ``M`` mantissa (fraction) bits stores ``1 + E + M`` bits
``s | e | m``. With the bias ``b = 2**(E-1) - 1`` a bit pattern means (IEEE 754):

    e == 0                 (subnormal)   (-1)^s · 2^(1-b) · m / 2^M         (m == 0: signed zero)
    0 < e < emax_field     (normal)      (-1)^s · 2^(e-b) · (1 + m / 2^M)
    e == all ones          (special)     ±inf if m == 0, else NaN

FP8 E4M3 as PyTorch implements it (``torch.float8_e4m3fn``, from the OCP FP8 spec / Micikevicius
et al., *FP8 Formats for Deep Learning*, 2022) breaks the last rule to gain range: it has **no
infinities**, the all-ones exponent holds ordinary normals, and only ``S.1111.111`` is NaN, so
its largest value is ``1.75 · 2^8 = 448`` (``S.1111.110``). E5M2 keeps IEEE's rules.

Everything a format *is* — its largest value, machine epsilon, smallest normal and subnormal —
follows from the bit fields: :func:`constants` derives them by decoding bit patterns, and
``tests/test_numerics.py`` checks them against ``torch.finfo``.

Overflow on encoding — what a value beyond the largest finite one becomes — is a *convention*,
and for ``float8_e4m3fn`` PyTorch changed it between versions:

* IEEE formats (FP16, BF16, FP32, E5M2) round to nearest even, so a value at or above
  ``max + ulp/2`` becomes ±inf (``overflow="inf"``) — the same in every torch version.
* ``float8_e4m3fn`` has no infinity. torch 2.11 (Colab's runtime in 2026) rounds to nearest even
  and lets an overflow land on the NaN pattern: values above ``464 = 448 + ulp/2``, and ±inf,
  become NaN (``overflow="nan"``, the OCP FP8 spec's non-saturating conversion). torch 2.14
  **saturates**: every finite value beyond 448, and ±inf, becomes ±448 (``overflow="saturate"``,
  like PTX's ``cvt.satfinite``). NaN stays NaN in both.

``course_lib``'s convention is the format's ``overflow`` field — **saturate** for E4M3, whatever
torch is installed (the library's results do not change with the torch version);
:func:`course_lib.numerics.encode` takes ``overflow=`` to apply the other one, and
:func:`course_lib.numerics.torch_cast_overflow` reports which one the installed torch uses.
``tests/test_numerics.py`` pins the convention and compares with the installed torch under the
convention torch reports, so the suite passes on both versions.

Notebook: ``03_floating_point`` (section "Bit layouts"). Tests: ``tests/test_numerics.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from course_lib._export import export

NanRule = Literal["ieee", "all_ones"]
Overflow = Literal["inf", "saturate", "nan"]  # beyond the max: ±inf, ±max, or NaN


@export("numerics.FloatFormat")
@dataclass(frozen=True)
class FloatFormat:
    """One binary floating-point format, described by its bit fields.

    Bits are numbered from the least significant (bit 0, the last mantissa bit) to the sign
    (bit ``bits - 1``), as in ``(bits >> i) & 1``.
    """

    name: str  # the course's name, e.g. "fp16"
    exponent_bits: int  # E: width of the exponent field
    mantissa_bits: int  # M: width of the fraction field (the leading 1 of normals is implicit)
    has_infinity: bool  # exponent all ones + mantissa 0 means ±inf (False for E4M3FN)
    nan_rule: NanRule  # "ieee": exponent all ones, mantissa != 0; "all_ones": only S.1111.111
    overflow: Overflow  # course_lib's convention beyond the largest finite value (encode's default)
    torch_dtype: str  # the name of the matching torch dtype, e.g. "float8_e4m3fn"
    description: str  # one line for tables

    @property
    def bits(self) -> int:
        """Total width: 1 sign bit + exponent + mantissa."""
        return 1 + self.exponent_bits + self.mantissa_bits

    @property
    def bias(self) -> int:
        """The exponent bias ``2**(E-1) - 1``: the stored exponent of 1.0."""
        return (1 << (self.exponent_bits - 1)) - 1

    @property
    def sign_mask(self) -> int:
        return 1 << (self.bits - 1)

    @property
    def exponent_all_ones(self) -> int:
        return (1 << self.exponent_bits) - 1

    @property
    def max_finite_magnitude(self) -> int:
        """The bit pattern (without sign) of the largest finite value.

        Positive bit patterns are ordered like the values they encode, so every magnitude pattern
        above this one is inf or NaN.
        """
        if self.nan_rule == "all_ones":  # E4M3FN: S.1111.111 is NaN, S.1111.110 the max
            return (1 << (self.bits - 1)) - 2
        return ((self.exponent_all_ones - 1) << self.mantissa_bits) | ((1 << self.mantissa_bits) - 1)

    def nan_bits(self, negative: bool = False) -> int:
        """The quiet NaN encode produces (torch's choice for float16 and both FP8 formats)."""
        if self.nan_rule == "all_ones":
            magnitude = (1 << (self.bits - 1)) - 1
        elif self.bits == 8:  # torch's E5M2 cast gives S.11111.11
            magnitude = (self.exponent_all_ones << self.mantissa_bits) | ((1 << self.mantissa_bits) - 1)
        else:  # the canonical quiet NaN: top mantissa bit set
            magnitude = (self.exponent_all_ones << self.mantissa_bits) | (1 << (self.mantissa_bits - 1))
        return magnitude | (self.sign_mask if negative else 0)

    def dtype(self) -> torch.dtype:
        """The torch dtype with these bits."""
        return getattr(torch, self.torch_dtype)


FORMATS: dict[str, FloatFormat] = {
    f.name: f
    for f in (
        FloatFormat("fp64", 11, 52, True, "ieee", "inf", "float64", "IEEE double precision"),
        FloatFormat("fp32", 8, 23, True, "ieee", "inf", "float32", "IEEE single precision"),
        FloatFormat("fp16", 5, 10, True, "ieee", "inf", "float16", "IEEE half precision"),
        FloatFormat("bf16", 8, 7, True, "ieee", "inf", "bfloat16", "bfloat16: FP32's range, 8 bits of precision"),
        FloatFormat("fp8_e4m3", 4, 3, False, "all_ones", "saturate", "float8_e4m3fn",
                    "FP8 E4M3FN: no inf, one NaN, max 448"),
        FloatFormat("fp8_e5m2", 5, 2, True, "ieee", "inf", "float8_e5m2", "FP8 E5M2: IEEE-style, FP16's range"),
    )
}

_ALIASES = {
    "float64": "fp64", "double": "fp64", "float32": "fp32", "float": "fp32", "float16": "fp16",
    "half": "fp16", "bfloat16": "bf16", "float8_e4m3fn": "fp8_e4m3", "e4m3": "fp8_e4m3",
    "float8_e5m2": "fp8_e5m2", "e5m2": "fp8_e5m2",
}


@export("numerics.get_format")
def get_format(fmt: str | torch.dtype | FloatFormat) -> FloatFormat:
    """Look a format up by the course's name (``"fp16"``), a torch name (``"float8_e4m3fn"``) or dtype.

    Raises:
        ValueError: an unknown name or an unsupported dtype (the message lists the known names).
        TypeError: ``fmt`` is none of str, torch.dtype, FloatFormat.
    """
    if isinstance(fmt, FloatFormat):
        return fmt
    if isinstance(fmt, torch.dtype):
        key = str(fmt).removeprefix("torch.")
    elif isinstance(fmt, str):
        key = fmt.lower()
    else:
        raise TypeError(f"fmt must be a format name like 'fp16', a torch.dtype or a FloatFormat; "
                        f"got {type(fmt).__name__}: {fmt!r}")
    key = _ALIASES.get(key, key)
    if key not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(map(repr, FORMATS))} (or a torch dtype "
                         f"with those bits); got {fmt!r}")
    return FORMATS[key]


def _decode_fields(f: FloatFormat, sign: int, exponent: int, mantissa: int) -> float:
    """The value of one bit pattern, in float64 (exact: every format here fits in float64)."""
    s = -1.0 if sign else 1.0
    if exponent == f.exponent_all_ones:
        if f.nan_rule == "all_ones":
            if mantissa == (1 << f.mantissa_bits) - 1:
                return math.copysign(math.nan, s)
        elif mantissa:
            return math.copysign(math.nan, s)
        else:
            return s * math.inf
    if exponent == 0:  # subnormal: no implicit 1, the exponent stays at the smallest normal's
        return s * math.ldexp(mantissa, 1 - f.bias - f.mantissa_bits)
    return s * math.ldexp((1 << f.mantissa_bits) | mantissa, exponent - f.bias - f.mantissa_bits)


@export("numerics.FormatConstants")
@dataclass(frozen=True)
class FormatConstants:
    """What a format can represent, derived from its bits (compare ``torch.finfo``)."""

    bits: int  # total width
    eps: float  # machine epsilon: the gap between 1.0 and the next larger value, 2**-M
    max: float  # the largest finite value
    smallest_normal: float  # 2**(1 - bias); torch.finfo calls it tiny / smallest_normal
    smallest_subnormal: float  # 2**(1 - bias - M): the bit pattern 0...01
    resolution: float  # 10**-floor(-log10(eps)): decimal digits of precision, as torch.finfo
    decimal_digits: float  # -log10(eps): how many significant decimal digits survive


@export("numerics.constants")
def constants(fmt: str | torch.dtype | FloatFormat) -> FormatConstants:
    """Derive a format's range and precision by decoding bit patterns.

    Example:
        >>> constants("fp16").max, constants("fp16").smallest_subnormal
        (65504.0, 5.960464477539063e-08)
    """
    f = get_format(fmt)
    assert _decode_fields(f, 0, f.bias, 0) == 1.0  # exponent field == bias, mantissa 0
    eps = _decode_fields(f, 0, f.bias, 1) - 1.0  # the next pattern after 1.0
    top = f.max_finite_magnitude
    largest = _decode_fields(f, 0, top >> f.mantissa_bits, top & ((1 << f.mantissa_bits) - 1))
    return FormatConstants(
        bits=f.bits,
        eps=eps,
        max=largest,
        smallest_normal=_decode_fields(f, 0, 1, 0),
        smallest_subnormal=_decode_fields(f, 0, 0, 1),
        resolution=10.0 ** -math.floor(-math.log10(eps)),
        decimal_digits=-math.log10(eps),
    )
