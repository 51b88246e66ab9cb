"""The chapter's pictures as pure functions: bit fields, a value in every format, a number line.

* :func:`bits_figure` — bit patterns drawn as coloured fields (sign red, exponent blue,
  mantissa green), one row per format.
* :func:`bit_editor_view` — one pattern of one format, decoded field by field.
* :func:`value_view` — a typed value rounded into every format: bits, stored value, error.
* :func:`number_line_view` — where the representable values of FP16, BF16 and both FP8
  formats fall around a value.

Each view draws a pure state — :func:`bit_editor_state`, :func:`value_state`,
:func:`number_line_state`, frozen dataclasses tested without matplotlib — and returns a
:class:`course_lib.widgets.View` (figure + caption with the numbers). The widgets at the end of
the file only wire controls to them (matplotlib and ipywidgets are imported inside the
functions, so ``import course_lib.numerics`` loads neither):

* :class:`~course_lib.numerics.bit_editor.BitEditorWidget` — a format dropdown, the pattern as
  hex text, and one toggle button per bit (coloured by field). Clicking a bit flips it;
  changing the format keeps the *value* and shows its bits in the new format. Text that is not
  a pattern of the format ("zz", "0x10000") puts the view's ``ValueError`` message in the
  caption (``ViewWidget`` does that) and leaves the buttons on the last valid pattern; clicking
  a bit or switching the format starts from them.
* :func:`value_widget` — type a value, see its bits and rounding error in every format.
* :func:`number_line_widget` — a value and a window width; the representable values around it.

Notebook: ``03_floating_point`` (sections "Bit layouts" and "Widgets"). Tests:
``tests/test_numerics_view.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from course_lib import _checks
from course_lib._export import export
from course_lib.numerics.codec import FormatLike, Kind, _from_ordinal, _ordinal, classify, decode, encode, fields
from course_lib.numerics.formats import FORMATS, constants, get_format
from course_lib.widgets import View

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from course_lib._view_widget import ViewWidget
    from course_lib.numerics.bit_editor import BitEditorWidget

FIELD_COLOURS = {"sign": "#d62728", "exponent": "#1f77b4", "mantissa": "#2ca02c"}
LINE_FORMATS = ("fp16", "bf16", "fp8_e4m3", "fp8_e5m2")  # the number line's rows
MAX_TICKS = 400  # beyond this many values in the window a row is drawn as a band


def parse_bits(bits: int | str, fmt: FormatLike) -> int:
    """A bit pattern from an int or a string (``"0x3c00"``, ``"0b0011110000000000"``, ``"15360"``).

    Raises:
        TypeError: neither int nor str.
        ValueError: a string that is not an integer literal, or a pattern out of range.
    """
    f = get_format(fmt)
    if isinstance(bits, str):
        text = bits
        try:
            bits = int(text.strip().replace("_", ""), 0)
        except ValueError:
            shown = text if len(text) <= 40 else text[:40] + "…"  # a pasted page stays one line
            raise ValueError(f"bits must be an integer like 0x3c00 or 0b0011110000000000; got {shown!r}") from None
    return _checks.integer("bits", bits, minimum=0, maximum=(1 << f.bits) - 1)


def binary_fields(bits: int, fmt: FormatLike) -> str:
    """The pattern as ``sign exponent mantissa`` binary strings, e.g. ``0 01111 0000000000``."""
    f = get_format(fmt)
    s, e, m = fields(bits, f)
    return f"{s} {e:0{f.exponent_bits}b} {m:0{f.mantissa_bits}b}"


def _field_of(index: int, fmt_bits: int, mantissa_bits: int) -> str:
    if index == fmt_bits - 1:
        return "sign"
    return "exponent" if index >= mantissa_bits else "mantissa"


def _draw_row(ax, y: float, bits: int, fmt: FormatLike, label: str, cell: float) -> None:
    """One pattern as a row of coloured cells, most significant bit on the left."""
    from matplotlib.patches import Rectangle

    f = get_format(fmt)
    for pos in range(f.bits):
        index = f.bits - 1 - pos
        bit = (bits >> index) & 1
        colour = FIELD_COLOURS[_field_of(index, f.bits, f.mantissa_bits)]
        ax.add_patch(Rectangle((pos * cell, y), cell, 0.8, facecolor=colour, alpha=0.85 if bit else 0.25,
                               edgecolor="white"))
        if cell >= 0.5:
            ax.text((pos + 0.5) * cell, y + 0.4, str(bit), ha="center", va="center", fontsize=8,
                    color="white" if bit else "black")
    ax.text(-0.3, y + 0.4, label, ha="right", va="center", fontsize=9)


@export("numerics.bits_figure")
def bits_figure(patterns: Sequence[tuple[str, int]], labels: Sequence[str] | None = None,
                title: str = "") -> Figure:
    """Draw bit patterns as coloured fields, one row per ``(format, bits)``; cells share one width.

    Args:
        patterns: ``(format name, bit pattern)`` pairs, drawn top to bottom.
        labels: the text left of each row (default: the format names).
        title: the figure's title.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    names = [get_format(fmt).name for fmt, _ in patterns]
    labels = list(labels) if labels is not None else names
    widest = max(get_format(fmt).bits for fmt, _ in patterns)
    cell = 1.0 if widest <= 32 else 0.5
    # At most 8.5 in wide: drawn at dpi 100 it fits JupyterLab's ~850 px output area unscaled.
    fig, ax = plt.subplots(figsize=(min(8.5, max(6.0, 0.22 * widest * cell + 2.5)), 0.45 * len(patterns) + 0.9))
    for row, ((fmt, bits), label) in enumerate(zip(patterns, labels)):
        _draw_row(ax, len(patterns) - 1 - row, bits, fmt, label, cell)
    ax.set_xlim(-0.2, widest * cell + 0.2)
    ax.set_ylim(-0.3, len(patterns) + 0.1)
    ax.axis("off")
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in FIELD_COLOURS.values()]
    ax.legend(handles, list(FIELD_COLOURS), loc="upper right", bbox_to_anchor=(1.0, 0.0), ncol=3,
              fontsize=8, frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


@dataclass(frozen=True)
class BitEditorState:
    """One bit pattern decoded field by field (what :func:`bit_editor_view` draws)."""

    fmt: str  # the format's course name
    bits: int  # the pattern
    sign: int  # the three fields, as unsigned ints
    exponent: int
    mantissa: int
    kind: Kind  # zero, subnormal, normal, inf or nan
    value: float  # what the pattern means
    how: str  # the formula (or rule) that gives the value

    @property
    def hex(self) -> str:
        return _hex(self.bits, self.fmt)

    @property
    def caption(self) -> str:
        f = get_format(self.fmt)
        return (f"{f.name}  {self.hex} = {binary_fields(self.bits, f)}  (sign | exponent | mantissa)\n"
                f"{self.kind}: {self.how}\nvalue = {self.value!r}")


@export("numerics.bit_editor_state")
def bit_editor_state(fmt: str, bits: int | str) -> BitEditorState:
    """Decode one pattern of ``fmt`` step by step (pure: no drawing).

    Raises:
        ValueError: ``bits`` is not a pattern of ``fmt`` (see :func:`parse_bits`); an unknown format.
    """
    f = get_format(fmt)
    b = parse_bits(bits, f)
    kind = classify(b, f)
    s, e, m = fields(b, f)
    if kind == "normal":
        how = (f"(-1)^{s} · 2^{e - f.bias} · (1 + {m}/2^{f.mantissa_bits})"
               f"   [exponent field {e} - bias {f.bias}]")
    elif kind == "subnormal":  # no implicit 1; the exponent stays at the smallest normal's
        how = f"(-1)^{s} · 2^{1 - f.bias} · (0 + {m}/2^{f.mantissa_bits})   [subnormal: no implicit 1]"
    else:
        how = {"zero": "exponent and mantissa all zero", "inf": "exponent all ones, mantissa zero",
               "nan": "a NaN pattern"}[kind]
    return BitEditorState(f.name, b, s, e, m, kind, decode(b, f), how)


@export("numerics.bit_editor_view")
def bit_editor_view(fmt: str, bits: int | str) -> View:
    """One bit pattern of ``fmt``, drawn as fields and decoded step by step in the caption."""
    state = bit_editor_state(fmt, bits)
    fig = bits_figure([(state.fmt, state.bits)], title=f"{state.fmt}: {state.hex} → {state.value!r}")
    return View(fig, state.caption)


@dataclass(frozen=True)
class ValueRow:
    """``value`` stored in one format."""

    fmt: str  # the format's course name
    bits: int  # the pattern encode gives
    stored: float  # the value that pattern holds
    error: float  # stored - value (NaN when either is not finite)
    relative: float  # |error| / |value| (NaN for value 0 or a non-finite error)


@dataclass(frozen=True)
class ValueState:
    """A value rounded into several formats (what :func:`value_view` draws)."""

    value: float
    rows: tuple[ValueRow, ...]

    @property
    def caption(self) -> str:
        lines = [f"{r.fmt:<9} {_hex(r.bits, r.fmt)}  stored {r.stored!r:<24} "
                 f"error {r.error:+.3e}  relative {r.relative:.2e}" for r in self.rows]
        return f"value = {self.value!r}\n" + "\n".join(lines)


@export("numerics.value_state")
def value_state(value: float, formats: Sequence[str] = tuple(FORMATS)) -> ValueState:
    """``value`` rounded into each format: its bits, the stored value and the rounding error (pure).

    Raises:
        TypeError: ``value`` is not a real number.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"value must be a real number; got {type(value).__name__}: {value!r}")
    rows = []
    for name in formats:
        f = get_format(name)
        b = encode(value, f)
        stored = decode(b, f)
        error = stored - value if math.isfinite(stored) and math.isfinite(value) else math.nan
        relative = abs(error) / abs(value) if value and math.isfinite(error) else math.nan
        rows.append(ValueRow(f.name, b, stored, error, relative))
    return ValueState(value, tuple(rows))


@export("numerics.value_view")
def value_view(value: float, formats: Sequence[str] = tuple(FORMATS)) -> View:
    """``value`` rounded into each format: its bits, the stored value and the rounding error."""
    state = value_state(value, formats)
    patterns = [(r.fmt, r.bits) for r in state.rows]
    labels = [f"{r.fmt} → {r.stored:.6g}" for r in state.rows]
    return View(bits_figure(patterns, labels, title=f"{value!r} in every format"), state.caption)


def _values_between(lo: float, hi: float, fmt: FormatLike) -> range:
    """Ordinals (see codec) of the finite values of ``fmt`` in ``[lo, hi]``."""
    f = get_format(fmt)
    top = f.max_finite_magnitude
    first = max(-top, _ordinal(encode(lo, f), f))
    last = min(top, _ordinal(encode(hi, f), f))
    if decode(_from_ordinal(first, f), f) < lo:
        first += 1
    if decode(_from_ordinal(last, f), f) > hi:
        last -= 1
    return range(first, last + 1)


def _spacing(value: float, fmt: FormatLike) -> float:
    """The gap between the two representable values around ``value`` (at the largest, the last gap)."""
    f = get_format(fmt)
    o = max(-f.max_finite_magnitude, min(f.max_finite_magnitude, _ordinal(encode(value, f), f)))
    if o == f.max_finite_magnitude:
        o -= 1
    return decode(_from_ordinal(o + 1, f), f) - decode(_from_ordinal(o, f), f)


@dataclass(frozen=True)
class NumberLineRow:
    """One format's representable values inside the window."""

    fmt: str  # the format's course name
    count: int  # how many finite values lie in the window
    ticks: tuple[float, ...]  # those values, or () when there are more than MAX_TICKS (a band)
    band: tuple[float, float] | None  # the part of the window the format covers when drawn as a band
    spacing: float  # the gap between representable values around the value
    nearest: float  # the value rounded into the format (the course's convention: E4M3 saturates)


@dataclass(frozen=True)
class NumberLineState:
    """What :func:`number_line_view` draws: a window around ``value`` and one row per format."""

    value: float
    lo: float  # the window [lo, hi]
    hi: float
    rows: tuple[NumberLineRow, ...]  # in LINE_FORMATS order, top to bottom

    @property
    def caption(self) -> str:
        lines = [f"value = {self.value!r}; window [{self.lo:.6g}, {self.hi:.6g}]"]
        for r in self.rows:
            beyond = "; the window passes its max" if r.band is not None and r.band != (self.lo, self.hi) else ""
            lines.append(f"{r.fmt:<9} {r.count:>6} values in window; gap here {r.spacing:.4g}; "
                         f"nearest {r.nearest!r} (error {r.nearest - self.value:+.3g}){beyond}")
        return "\n".join(lines)


@export("numerics.number_line_state")
def number_line_state(value: float, count: int = 4) -> NumberLineState:
    """The representable values of FP16, BF16 and FP8 near ``value`` (pure: no drawing).

    The window is ``value ± count`` gaps of the coarsest format that still reaches ``value``. A
    row with more than ``MAX_TICKS`` values in the window becomes a band, clipped to the
    format's finite range: FP16's band stops at ±65504.

    Raises:
        TypeError: ``value`` not a real number, ``count`` not an int.
        ValueError: ``|value|`` > 1e38 or NaN; ``count`` outside [1, 50].
    """
    v = _checks.real("value", value, minimum=-1e38, maximum=1e38)
    count = _checks.integer("count", count, minimum=1, maximum=50)
    in_range = [n for n in LINE_FORMATS if abs(v) <= constants(n).max]
    half = count * max(_spacing(v, n) for n in (in_range or LINE_FORMATS))
    lo, hi = v - half, v + half
    rows = []
    for name in LINE_FORMATS:
        f = get_format(name)
        ordinals = _values_between(lo, hi, name)
        top = constants(name).max
        band_lo, band_hi = max(lo, -top), min(hi, top)
        band = (band_lo, band_hi) if len(ordinals) > MAX_TICKS and band_lo <= band_hi else None
        ticks = () if len(ordinals) > MAX_TICKS else tuple(decode(_from_ordinal(o, f), f) for o in ordinals)
        rows.append(NumberLineRow(name, len(ordinals), ticks, band, _spacing(v, name), decode(encode(v, name), name)))
    return NumberLineState(v, lo, hi, tuple(rows))


@export("numerics.number_line_view")
def number_line_view(value: float, count: int = 4) -> View:
    """Draw :func:`number_line_state`: ticks (or a band) per format, the value, where it rounds."""
    import matplotlib.pyplot as plt

    state = number_line_state(value, count)
    fig, ax = plt.subplots(figsize=(8, 2.6))
    n = len(state.rows)
    for row, r in enumerate(state.rows):
        y = n - 1 - row
        if r.band is not None:
            ax.fill_between(list(r.band), y - 0.15, y + 0.15, color="tab:blue", alpha=0.3)
        else:
            ax.vlines(list(r.ticks), y - 0.3, y + 0.3, color="tab:blue")
        if state.lo <= r.nearest <= state.hi:
            ax.plot([r.nearest], [y], "o", color="tab:orange")
    ax.axvline(state.value, color="tab:red", ls="--", lw=1)
    ax.set_yticks(range(n), [r.fmt for r in reversed(state.rows)])
    ax.set_xlim(state.lo, state.hi)
    ax.set_title(f"representable values around {state.value:g} (red: the value; orange: where it rounds)",
                 fontsize=10)
    return View(fig, state.caption)


def _hex(bits: int, fmt: str) -> str:
    return f"0x{bits:0{(get_format(fmt).bits + 3) // 4}x}"


def flip_bit(bits: int, index: int, fmt: str) -> int:
    """``bits`` with bit ``index`` (0 = the last mantissa bit) flipped."""
    f = get_format(fmt)
    if not 0 <= index < f.bits:
        raise ValueError(f"index must be in [0, {f.bits - 1}] for {f.name}; got {index}")
    return parse_bits(bits, f) ^ (1 << index)


@export("numerics.bit_editor_widget")
def bit_editor_widget(fmt: str = "fp16", value: float = 1.0) -> BitEditorWidget:
    """A :class:`~course_lib.numerics.bit_editor.BitEditorWidget` showing ``value`` in ``fmt``."""
    from course_lib.numerics.bit_editor import BitEditorWidget

    return BitEditorWidget(fmt, value)


@export("numerics.value_widget")
def value_widget(value: float = 0.1) -> ViewWidget:
    """Type a value; see it in every format with its rounding error (:func:`value_view`)."""
    import ipywidgets as widgets

    from course_lib.widgets import ViewWidget

    return ViewWidget(value_view, value=widgets.FloatText(value=value, description="value"))


@export("numerics.number_line_widget")
def number_line_widget(value: float = 1000.0, count: int = 4) -> ViewWidget:
    """A value and a window; the representable values around it (:func:`number_line_view`)."""
    import ipywidgets as widgets

    from course_lib.widgets import ViewWidget

    return ViewWidget(number_line_view,
                      value=widgets.FloatText(value=value, description="value"),
                      count=widgets.IntSlider(value=count, min=1, max=20, description="gaps", continuous_update=False))
