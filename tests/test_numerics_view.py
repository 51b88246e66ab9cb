"""course_lib.numerics views and widgets moved headlessly; the chapter's exercises, right and wrong."""

import math

import pytest
import torch

from course_lib.numerics import (
    bit_editor_view,
    bit_editor_widget,
    bits_figure,
    decode,
    encode,
    number_line_view,
    number_line_widget,
    value_view,
    value_widget,
)
from course_lib.numerics import exercises as ex
from course_lib.numerics.formats_view import flip_bit, parse_bits


def test_bit_editor_view_decodes_field_by_field():
    one = bit_editor_view("fp16", 0x3C00)
    assert "0 01111 0000000000" in one.caption and "value = 1.0" in one.caption and "normal" in one.caption
    assert one.figure.axes
    sub = bit_editor_view("fp8_e4m3", "0x01")
    assert "subnormal" in sub.caption and "value = 0.001953125" in sub.caption
    assert "value = -inf" in bit_editor_view("bf16", 0xFF80).caption
    assert "value = nan" in bit_editor_view("fp8_e4m3", "0b01111111").caption
    assert "value = 448.0" in bit_editor_view("fp8_e4m3", 0x7E).caption


def test_value_view_lists_every_format_with_its_error():
    view = value_view(0.1)
    lines = view.caption.splitlines()
    assert len(lines) == 7 and lines[0] == "value = 0.1"
    assert "fp16      0x2e66  stored 0.0999755859375" in view.caption
    assert "fp8_e4m3  0x1d  stored 0.1015625" in view.caption
    assert value_view(1e6).caption != view.caption and "inf" in value_view(1e6).caption
    with pytest.raises(TypeError, match="value must be a real number; got str"):
        value_view("0.1")


def test_number_line_view_counts_and_spacing():
    view = number_line_view(1000.0, 4)
    assert "fp16" in view.caption and "gap here 0.5;" in view.caption  # FP16 values near 1000 are 0.5 apart
    assert "fp8_e5m2" in view.caption and "nearest 1024.0" in view.caption
    assert "fp8_e4m3" in view.caption and "nearest 448.0" in view.caption  # saturated
    small = number_line_view(1.0, 2)
    assert "window [0.5, 1.5]" in small.caption  # 2 gaps of E5M2 (0.25 above 1.0, the coarsest)
    assert small.figure.axes
    with pytest.raises(ValueError, match="count must be an int in \\[1, 50\\]"):
        number_line_view(1.0, 0)


def test_bits_figure_draws_one_row_per_pattern():
    fig = bits_figure([("fp32", encode(1.0, "fp32")), ("fp16", 0x3C00), ("fp8_e5m2", 0x3C)])
    assert len(fig.axes[0].patches) == 32 + 16 + 8


def test_parse_and_flip_bits():
    assert parse_bits("0x3c00", "fp16") == parse_bits("0b0011_1100_0000_0000", "fp16") == parse_bits(15360, "fp16")
    assert flip_bit(0x3C00, 15, "fp16") == 0xBC00
    with pytest.raises(ValueError, match="bits must be an integer like 0x3c00"):
        parse_bits("one", "fp16")
    with pytest.raises(ValueError, match="bits must be an int in \\[0, 255\\]; got 256"):
        parse_bits("0x100", "fp8_e4m3")
    with pytest.raises(ValueError, match="index must be in \\[0, 15\\] for fp16; got 16"):
        flip_bit(0, 16, "fp16")


def test_bit_editor_widget_clicks_bits_and_switches_formats():
    w = bit_editor_widget("fp16", 1.0)
    assert len(w.bit_buttons) == 16 and "value = 1.0" in w.caption.value
    image = bytes(w.image.value)
    w.bit_buttons[15].value = True  # click the sign bit
    assert w.controls["bits"].value == "0xbc00" and "value = -1.0" in w.caption.value
    assert bytes(w.image.value) != image
    w.bit_buttons[9].value = True  # the top mantissa bit: 1.5
    assert w.value() == -1.5
    w.controls["fmt"].value = "fp8_e4m3"  # keeps the value, 8 buttons now
    assert len(w.bit_buttons) == 8 and w.controls["bits"].value == "0xbc" and "value = -1.5" in w.caption.value
    w.controls["bits"].value = "0x7e"  # typing a pattern updates the buttons
    assert [b.value for b in w.bit_buttons] == [False, True, True, True, True, True, True, False]
    assert "value = 448.0" in w.caption.value
    w.controls["fmt"].value = "fp16"
    assert w.controls["bits"].value == "0x5f00" and w.value() == 448.0


@pytest.mark.parametrize("typed, message", [
    ("zz", "bits must be an integer like 0x3c00 or 0b0011110000000000; got &#x27;zz&#x27;"),
    ("1.5", "bits must be an integer like 0x3c00"),
    ("", "bits must be an integer like 0x3c00"),
    ("0x10000", "bits must be an int in [0, 65535]; got 65536"),
    ("-1", "bits must be an int in [0, 65535]; got -1"),
    ("9" * 5000, "got &#x27;" + "9" * 40 + "…&#x27;"),  # too long for int(); the message stays short
])
def test_bit_editor_shows_bad_typed_bits_in_the_caption(typed, message):
    w = bit_editor_widget("fp16", 1.0)
    with pytest.raises(ValueError):  # the view itself refuses with ValueError, nothing else
        bit_editor_view("fp16", typed)
    image = bytes(w.image.value)
    w.controls["bits"].value = typed  # must not raise inside the widget's callbacks
    assert w.caption.value.startswith("<pre>⚠ ") and message in w.caption.value
    assert bytes(w.image.value) == image  # the last good picture stays
    assert [b.value for b in w.bit_buttons] == [bool(0x3C00 >> i & 1) for i in range(16)]  # and its bits
    w.bit_buttons[15].value = True  # a click starts again from the last valid pattern, 1.0
    assert w.controls["bits"].value == "0xbc00" and "value = -1.0" in w.caption.value
    w.controls["bits"].value = typed
    w.controls["fmt"].value = "bf16"  # so does a format change
    assert w.controls["bits"].value == "0xbf80" and "value = -1.0" in w.caption.value and len(w.bit_buttons) == 16


def test_value_and_number_line_widgets_react():
    v = value_widget(0.1)
    before = v.caption.value
    v.controls["value"].value = 1 / 3
    assert v.caption.value != before and "0.3333333333333333" in v.caption.value
    n = number_line_widget(1000.0, 4)
    before, image = n.caption.value, bytes(n.image.value)
    n.controls["value"].value = 0.1
    assert n.caption.value != before and bytes(n.image.value) != image and "value = 0.1;" in n.caption.value
    n.controls["value"].value = 1e39  # beyond the view's range: its ValueError goes to the caption
    assert n.caption.value.startswith("<pre>⚠ value must be a number in [-1e+38, 1e+38]; got 1e+39")


# --- exercises: a correct alternative passes, wrong ones fail and name the input -------------

def decode_e5m2_via_torch(bits):
    return torch.tensor([bits], dtype=torch.uint8).view(torch.float8_e5m2).item()


def fp16_spacing_via_torch(x):
    t = torch.tensor(x, dtype=torch.float16)
    return (torch.nextafter(t, torch.tensor(math.inf, dtype=torch.float16)) - t).item()


def encode_via_torch(value, fmt):
    """A correct alternative: torch's float64 -> format cast (one rounding), NaN as the exercise asks."""
    if math.isnan(value):
        return fmt.nan_bits(negative=math.copysign(1.0, value) < 0)
    t = torch.tensor(value, dtype=torch.float64).to(fmt.dtype())
    int_type = {8: torch.uint8, 16: torch.int16, 32: torch.int32}[fmt.bits]
    return t.view(int_type).item() & ((1 << fmt.bits) - 1)


def encode_truncating(value, fmt):
    bits = encode_via_torch(value, fmt)
    below = encode_via_torch(math.copysign(abs(decode(bits, fmt)), value), fmt)
    return bits - 1 if math.isfinite(value) and value and abs(decode(bits, fmt)) > abs(value) else below


def encode_without_subnormals(value, fmt):
    bits = encode_via_torch(value, fmt)
    exponent = (bits >> fmt.mantissa_bits) & fmt.exponent_all_ones
    return bits & fmt.sign_mask if exponent == 0 else bits


def bf16_via_torch(bits):
    x = torch.tensor([bits], dtype=torch.int64).to(torch.uint32).view(torch.float32)
    return x.to(torch.bfloat16).view(torch.int16).item() & 0xFFFF


def next_scale_by_hand(scale, growth_tracker, found_inf, growth_factor, backoff_factor, growth_interval):
    if found_inf:
        return scale * backoff_factor, 0
    if growth_tracker + 1 < growth_interval:
        return scale, growth_tracker + 1
    grown = scale * growth_factor
    return (grown if grown <= torch.finfo(torch.float32).max else scale), 0


@pytest.mark.parametrize("exercise, right", [
    (ex.decode_e5m2, decode_e5m2_via_torch),
    (ex.fp16_spacing, fp16_spacing_via_torch),
    (ex.bf16_rounding, bf16_via_torch),
    (ex.loss_scale_rule, next_scale_by_hand),
    (ex.encode_format, encode_via_torch),
])
def test_exercises_accept_correct_alternatives(exercise, right):
    result = exercise.check(right, quiet=True)
    assert result.passed, result.message


@pytest.mark.parametrize("exercise, wrong, shown", [
    (ex.decode_e5m2, lambda bits: decode_e5m2_via_torch(bits & 0x7F), "bits = 128"),  # loses -0.0
    (ex.decode_e5m2, lambda bits: (1 + (bits & 3) / 4) * 2.0 ** (((bits >> 2) & 31) - 15), "bits = 0"),
    (ex.fp16_spacing, lambda x: 2.0 ** (math.frexp(x)[1] - 1 - 10), "x = 5.960464477539063e-08"),  # no subnormal clamp
    (ex.fp16_spacing, lambda x: x * 2.0**-10, "x = 1000.0"),
    (ex.bf16_rounding, lambda bits: bits >> 16, "bits = 1065451520"),  # truncation: fails on 0x3F818000
    (ex.bf16_rounding, lambda bits: (bits + 0x8000) >> 16, "bits = 1065385984"),  # ties away from zero
    (ex.loss_scale_rule, lambda **k: (k["scale"] * k["growth_factor"], 0), "found_inf = True"),
    (ex.loss_scale_rule, lambda scale, growth_tracker, found_inf, growth_factor, backoff_factor, growth_interval:
        (scale * backoff_factor, 0) if found_inf else (scale * growth_factor, 0), "growth_tracker = 0"),
    (ex.encode_format, encode_truncating, "value = 2051.0"),  # rounds toward zero: the tie goes down
    (ex.encode_format, encode_without_subnormals, "value = 1e-07"),  # flushes subnormals to zero
    (ex.encode_format, lambda value, fmt: encode_via_torch(abs(value), fmt), "value = -2.0"),  # loses the sign
])
def test_exercises_reject_wrong_functions(exercise, wrong, shown):
    """Each wrong answer fails on the input that exposes its mistake (the message names it)."""
    result = exercise.check(wrong, quiet=True)
    assert not result.passed and result.attempted and result.failing_case is not None
    assert shown in result.message, result.message


def test_exercise_stubs_and_hints():
    def stub(bits):
        raise NotImplementedError

    result = ex.decode_e5m2.check(stub, quiet=True)
    assert not result.attempted and "not attempted" in result.message
    assert len(ex.fp16_spacing.hints) == 3 and "def _fp16_spacing" in ex.fp16_spacing.solution()
    assert "def update_scale" in ex.loss_scale_rule.solution()


# --- pure states (no matplotlib) ------------------------------------------------------------

def test_states_are_pure_and_match_the_captions():
    from course_lib.numerics import bit_editor_state, number_line_state, value_state

    s = bit_editor_state("fp16", 0x3C01)
    assert (s.sign, s.exponent, s.mantissa, s.kind, s.hex) == (0, 15, 1, "normal", "0x3c01")
    assert s.caption == bit_editor_view("fp16", 0x3C01).caption
    v = value_state(0.1, ("fp16", "fp8_e4m3"))
    assert [r.bits for r in v.rows] == [0x2E66, 0x1D] and v.caption == value_view(0.1, ("fp16", "fp8_e4m3")).caption
    assert math.isnan(value_state(0.0, ("fp16",)).rows[0].relative)  # 0/0: no relative error, not 0
    line = number_line_state(1000.0, 4)
    assert [r.fmt for r in line.rows] == ["fp16", "bf16", "fp8_e4m3", "fp8_e5m2"]
    assert line.caption == number_line_view(1000.0, 4).caption


def test_number_line_band_stops_at_the_formats_max():
    """Issue 14: at 50000 FP16's band ran past 65504 to the window's edge (~82768)."""
    from course_lib.numerics import constants, number_line_state

    state = number_line_state(50000.0, 4)
    fp16 = state.rows[0]
    assert state.hi > constants("fp16").max  # the window reaches past FP16's range ...
    assert fp16.band is not None and fp16.band[1] == constants("fp16").max  # ... its band does not
    assert "fp16" in state.caption and "passes its max" in state.caption.splitlines()[1]
    assert max(state.rows[3].ticks) <= constants("fp8_e5m2").max  # tick rows never passed it
    assert number_line_state(-50000.0, 4).rows[0].band[0] == -constants("fp16").max


def test_encode_exercise_reference_equals_the_library_encode():
    """The instructive solution (Python's round(), no bit tricks) is the library's encode, bit for bit."""
    import random

    rng = random.Random(7)
    for _ in range(3000):
        case = ex._random_encode_case(rng)
        assert ex.encode_format.reference(**case) == encode(case["value"], case["fmt"]), case
