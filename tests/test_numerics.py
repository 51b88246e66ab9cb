"""course_lib.numerics formats and codec against torch: every 16-bit and 8-bit pattern, casts, finfo.

The oracle is torch itself: a bit pattern viewed as the dtype (``tensor.view(dtype)``) for
decode, and torch's float32 → dtype cast for encode.
"""

import math
import struct

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.numerics import (
    FORMATS,
    classify,
    constants,
    decode,
    encode,
    fields,
    get_format,
    neighbours,
    round_to,
    torch_cast_overflow,
)

SMALL = ("fp16", "bf16", "fp8_e4m3", "fp8_e5m2")


def torch_values(name: str, patterns: torch.Tensor) -> torch.Tensor:
    """The values torch gives the unsigned ``patterns`` (Tensor[N] int64) of format ``name``, as float64."""
    f = FORMATS[name]
    if f.bits == 8:
        raw = patterns.to(torch.uint8)
    else:  # int16 holds the pattern's two's-complement reading; the bits are the same
        raw = torch.where(patterns >= 1 << 15, patterns - (1 << 16), patterns).to(torch.int16)
    return raw.view(f.dtype()).double()


def torch_bits(name: str, x: torch.Tensor) -> list[int]:
    """torch's cast of the float32 tensor ``x`` to format ``name``, as unsigned bit patterns."""
    f = FORMATS[name]
    as_int = x.to(f.dtype()).view(torch.uint8 if f.bits == 8 else torch.int16).to(torch.int64)
    return (as_int & ((1 << f.bits) - 1)).tolist()


def same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1, a) == math.copysign(1, b)


@pytest.mark.parametrize("name", SMALL)
def test_decode_every_pattern_matches_torch(name):
    n = 1 << FORMATS[name].bits  # 65,536 for FP16/BF16, 256 for FP8
    ours = torch.tensor([decode(b, name) for b in range(n)], dtype=torch.float64)
    ref = torch_values(name, torch.arange(n))
    equal = (ours == ref) | (ours.isnan() & ref.isnan())
    assert equal.all(), f"first mismatch at 0x{int((~equal).nonzero()[0]):x}"
    signs_agree = (torch.signbit(ours) == torch.signbit(ref)) | ours.isnan()  # -0.0 vs 0.0 too
    assert signs_agree.all()


def test_decode_fp32_and_fp64_against_struct():
    for value in (1.0, -2.5, 0.1, 1e-45, -1e-310, 5e-324, 3.4028234663852886e38, 1.7976931348623157e308):
        b64 = struct.unpack("<Q", struct.pack("<d", value))[0]
        assert decode(b64, "fp64") == value and encode(value, "fp64") == b64
        b32 = struct.unpack("<I", struct.pack("<f", value))[0] if abs(value) < 3.5e38 else None
        if b32 is not None:
            assert decode(b32, "fp32") == struct.unpack("<f", struct.pack("<I", b32))[0]


def test_special_patterns():
    assert same(decode(0x8000, "fp16"), -0.0) and decode(0x7C00, "fp16") == math.inf
    assert math.isnan(decode(0x7C01, "fp16")) and decode(0xFC00, "fp16") == -math.inf
    assert decode(0x7E, "fp8_e4m3") == 448 and math.isnan(decode(0x7F, "fp8_e4m3"))
    assert decode(0x78, "fp8_e4m3") == 256  # all-ones exponent is a normal in E4M3FN
    assert decode(0x7C, "fp8_e5m2") == math.inf and decode(0x7B, "fp8_e5m2") == 57344
    assert [classify(b, "fp16") for b in (0, 1, 0x3C00, 0x7C00, 0x7E00)] == ["zero", "subnormal", "normal", "inf", "nan"]
    assert classify(0x78, "fp8_e4m3") == "normal" and classify(0xFF, "fp8_e4m3") == "nan"
    assert fields(0xBC00, "fp16") == (1, 15, 0)


def random_float32(n: int, seed: int) -> torch.Tensor:
    """Tensor[n] float32 spread over every exponent (all finite bit patterns equally likely)."""
    gen = torch.Generator().manual_seed(seed)
    bits = torch.randint(0, 1 << 32, (n,), generator=gen, dtype=torch.int64)
    x = torch.where(bits >= 1 << 31, bits - (1 << 32), bits).to(torch.int32).view(torch.float32)
    return x[torch.isfinite(x)]


def in_range_float32(name: str, n: int, seed: int) -> torch.Tensor:
    """Tensor[n] float32 concentrated on the exponents of format ``name`` (subnormals to overflow)."""
    f = FORMATS[name]
    gen = torch.Generator().manual_seed(seed)
    low, high = max(-f.bias - f.mantissa_bits - 2, -149), min(f.bias + 2, 127)
    exponents = torch.randint(low, high, (n,), generator=gen).float()
    return (torch.randn(n, generator=gen) * torch.exp2(exponents)).float()


def edge_values(name: str) -> list[float]:
    """Ties, near-max, near-min-subnormal and specials for format ``name``, all exact in float32."""
    f, c = FORMATS[name], constants(name)
    ulp_max = c.max - neighbours(c.max, name, 1)[0]  # the gap below max
    sub = c.smallest_subnormal
    values = [0.0, -0.0, math.inf, -math.inf, c.max, -c.max, c.max + ulp_max / 4, c.max + ulp_max / 2,
              c.max + ulp_max, 2 * c.max, sub, sub / 2, sub / 2 * (1 + 2.0**-10), sub / 4, sub * 1.5, sub * 2.5,
              c.smallest_normal, c.smallest_normal * (1 - 2.0 ** -f.mantissa_bits / 2)]
    for k in range(-3, 4):  # halfway between neighbours around 1 and 2^k: ties go to even
        base = 2.0**k
        values += [base * (1 + (j + 0.5) * c.eps) for j in range(4)]
    values = [v for v in values if abs(v) < 3.4e38 or math.isinf(v)]
    assert all(torch.tensor(v, dtype=torch.float32).item() == v for v in values if math.isfinite(v))
    return values + [-v for v in values]


@pytest.mark.parametrize("name", SMALL)
def test_encode_matches_torch_cast(name):
    x = torch.cat([random_float32(20_000, seed=1), in_range_float32(name, 20_000, seed=2),
                   torch.tensor(edge_values(name), dtype=torch.float32)])
    policy = torch_cast_overflow(name)  # E4M3: "nan" in torch 2.11, "saturate" in 2.14 — either is checked
    ours = [encode(v, name, overflow=policy) for v in x.tolist()]
    ref = torch_bits(name, x)
    bad = [(v, hex(a), hex(b)) for v, a, b in zip(x.tolist(), ours, ref) if a != b]
    assert not bad, f"{len(bad)} mismatches, e.g. {bad[:3]}"


def test_encode_fp32_matches_torch_double_to_float_cast():
    # encode rounds a float64 once; so does torch's float64 → float32 cast, subnormals and overflow included.
    gen = torch.Generator().manual_seed(3)
    exponents = torch.randint(-155, 130, (20_000,), generator=gen).double()
    x = torch.randn(20_000, generator=gen, dtype=torch.float64) * torch.exp2(exponents)  # (20000,)
    f32 = constants("fp32")
    ties = [f32.max + (f32.max - neighbours(f32.max, "fp32", 1)[0]) / 2, f32.smallest_subnormal / 2,
            f32.smallest_subnormal * 1.5, 1 + f32.eps / 2, 1 + 1.5 * f32.eps]
    x = torch.cat([x, torch.tensor(ties + [-t for t in ties], dtype=torch.float64)])
    ref = x.float().view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    ours = torch.tensor([encode(v, "fp32") for v in x.tolist()])
    assert torch.equal(ours, ref), f"{int((ours != ref).sum())} mismatches"


@pytest.mark.parametrize("name", SMALL)
def test_encode_nan(name):
    # NaN payloads differ (torch's bf16 cast gives 0xFFFF); what must hold is that NaN stays NaN.
    for nan in (math.nan, -math.nan):
        assert math.isnan(decode(encode(nan, name), name))
        assert math.isnan(torch.tensor(nan).to(FORMATS[name].dtype()).float().item())


def test_overflow_policies_as_torch():
    # IEEE formats: round to nearest even, so max + ulp/2 is a tie that goes to "2^(emax+1)" = inf.
    assert encode(65519.99, "fp16") == 0x7BFF and encode(65520.0, "fp16") == 0x7C00
    assert encode(61440.0, "fp8_e5m2") == 0x7C and encode(61439.0, "fp8_e5m2") == 0x7B


def test_e4m3_convention_is_saturation_whatever_torch_is_installed():
    """course_lib's stated convention (formats module): beyond 448, and ±inf, become ±448."""
    for v in (449.0, 464.0, 465.0, 480.0, 1e30, math.inf):
        assert encode(v, "fp8_e4m3") == 0x7E and encode(-v, "fp8_e4m3") == 0xFE
        assert encode(v, "fp8_e4m3", overflow="saturate") == 0x7E
    assert round_to(500.0, "fp8_e4m3") == 448.0


def test_e4m3_nan_convention_of_older_torch():
    """torch <= 2.11: round to nearest even, and an overflow lands on the NaN pattern S.1111.111."""
    assert encode(464.0, "fp8_e4m3", overflow="nan") == 0x7E  # the tie between 448 and "480" goes to even
    for v in (464.5, 480.0, 500.0, 1e30, math.inf):
        assert encode(v, "fp8_e4m3", overflow="nan") == 0x7F and encode(-v, "fp8_e4m3", overflow="nan") == 0xFF
    assert math.isnan(round_to(500.0, "fp8_e4m3", overflow="nan"))
    assert encode(1e6, "fp16", overflow="saturate") == 0x7BFF and math.isnan(round_to(1e6, "fp16", overflow="nan"))


@pytest.mark.parametrize("name", SMALL)
def test_encode_matches_the_installed_torch_under_its_own_convention(name):
    """No assert depends on the torch version: ask torch which convention it uses, then compare."""
    policy = torch_cast_overflow(name)
    assert policy == ("inf" if FORMATS[name].has_infinity else policy)
    assert policy in ("saturate", "nan") or FORMATS[name].has_infinity
    top = constants(name).max
    values = [top * k for k in (0.99, 1.0, 1.03, 1.0625, 1.07, 1.2, 2.0, 1e6)] + [math.inf]
    values += [-v for v in values]
    ref = torch.tensor(values, dtype=torch.float32).to(FORMATS[name].dtype())
    for v, r in zip(values, ref.float().tolist()):
        ours = round_to(float(torch.tensor(v, dtype=torch.float32)), name, overflow=policy)
        assert ours == r or (math.isnan(ours) and math.isnan(r)), (v, ours, r)


def test_overflow_argument_is_checked():
    with pytest.raises(ValueError, match="overflow must be one of 'inf', 'saturate', 'nan'; got 'wrap'"):
        encode(1.0, "fp16", overflow="wrap")
    with pytest.raises(ValueError, match="overflow='inf' needs a format with infinities; fp8_e4m3 has none"):
        encode(1.0, "fp8_e4m3", overflow="inf")
    with pytest.raises(ValueError, match="fmt must be narrower than float32"):
        torch_cast_overflow("fp32")


@pytest.mark.parametrize("name", list(FORMATS))
def test_constants_equal_finfo(name):
    c, fi = constants(name), torch.finfo(FORMATS[name].dtype())
    assert (c.eps, c.max, c.smallest_normal, c.resolution, c.bits) == (fi.eps, fi.max, fi.smallest_normal, fi.resolution, fi.bits)
    assert c.smallest_normal == fi.tiny
    # torch.finfo has no smallest subnormal: compare with the pattern 0...01 viewed as the dtype.
    one = torch.tensor([1], dtype=torch.int64).to({8: torch.uint8, 16: torch.int16, 32: torch.int32, 64: torch.int64}[c.bits])
    assert c.smallest_subnormal == one.view(FORMATS[name].dtype()).item()


def test_constants_from_the_issue():
    fp16 = constants("fp16")
    assert fp16.max == 65504 and fp16.smallest_subnormal == 2.0**-24 and abs(fp16.smallest_subnormal - 6e-8) < 1e-9
    assert constants("fp8_e4m3").max == 448 and constants("bf16").smallest_normal == constants("fp32").smallest_normal


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, width=64), st.sampled_from(list(FORMATS)))
def test_round_to_is_the_nearest_and_idempotent(x, name):
    r = round_to(x, name)
    assert round_to(r, name) == r or math.isinf(r)
    if math.isfinite(r):
        around = neighbours(x, name, 1)  # the representable values next to r
        assert all(abs(r - x) <= abs(v - x) for v in around)


def test_fp64_encode_is_the_identity_on_bits():
    for x in (0.1, -1e-320, 2.0**-1074, 1e308, -0.0):
        assert same(decode(encode(x, "fp64"), "fp64"), x)


def test_neighbours_are_consecutive_values():
    assert neighbours(1000.0, "fp16", 2) == [999.0, 999.5, 1000.0, 1000.5, 1001.0]
    assert neighbours(0.0, "fp8_e4m3", 1) == [-2.0**-9, 0.0, 2.0**-9]
    assert neighbours(1e9, "fp16", 1) == [65472.0, 65504.0]  # clamped at the largest finite value


def test_formats_by_torch_name_and_dtype():
    assert get_format(torch.float8_e4m3fn) is FORMATS["fp8_e4m3"] and get_format("bfloat16") is FORMATS["bf16"]
    assert decode(0x3C00, torch.float16) == 1.0
    assert [FORMATS[n].bits for n in FORMATS] == [64, 32, 16, 16, 8, 8]
    assert FORMATS["fp16"].bias == 15 and FORMATS["fp8_e4m3"].bias == 7 and FORMATS["fp8_e5m2"].bias == 15


@pytest.mark.parametrize("call, error, match", [
    (lambda: decode(0, "fp12"), ValueError, r"fmt must be one of 'fp64', 'fp32'.*got 'fp12'"),
    (lambda: encode(1.0, torch.int32), ValueError, r"fmt must be one of .*got torch.int32"),
    (lambda: decode(0, 16), TypeError, r"fmt must be a format name.*got int: 16"),
    (lambda: decode(1 << 16, "fp16"), ValueError, r"bits must be an int in \[0, 65535\]; got 65536"),
    (lambda: decode(-1, "fp8_e5m2"), ValueError, r"bits must be an int in \[0, 255\]; got -1"),
    (lambda: decode(1.0, "fp16"), TypeError, r"bits must be an int; got float: 1.0"),
    (lambda: decode("0x3c00", "fp16"), TypeError, r"bits must be an int; got str"),
    (lambda: decode(True, "fp16"), TypeError, r"bits must be an int; got bool"),
    (lambda: encode("1.0", "fp16"), TypeError, r"value must be a real number; got str"),
    (lambda: neighbours(math.nan, "fp16"), ValueError, r"value must not be NaN"),
    (lambda: neighbours(1.0, "fp16", -1), ValueError, r"count must be an int in \[0, inf\]"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
