"""The chapter's pictures as pure functions: bit fields, a value in every format, a number line.

* :func:`bits_figure` — bit patterns drawn as coloured fields (sign red, exponent blue,
  mantissa green), one row per format.
* :func:`bit_editor_view` — one pattern of one format, decoded field by field.
* :func:`value_view` — a typed value rounded into every format: bits, stored value, error.
* :func:`number_line_view` — where the representable values of FP16, BF16 and both FP8
  formats fall around a value.

Each returns a :class:`course_lib.widgets.View` (figure + caption with the numbers). The widgets
at the end of the file only wire controls to them:

* :class:`BitEditorWidget` — a format dropdown, the pattern as hex text, and one toggle button per
  bit (coloured by field). Clicking a bit flips it; changing the format keeps the *value* and
  shows its bits in the new format. Text that is not a pattern of the format ("zz", "0x10000")
  puts the view's ``ValueError`` message in the caption (``ViewWidget`` does that) and leaves the
  buttons on the last valid pattern; clicking a bit or switching the format starts from them.
* :func:`value_widget` — type a value, see its bits and rounding error in every format.
* :func:`number_line_widget` — a value and a window width; the representable values around it.

Notebook: ``03_floating_point`` (sections "Bit layouts" and "Widgets"). Tests:
``tests/test_numerics_view.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from course_lib import _checks
from course_lib._export import export
from course_lib.numerics.codec import FormatLike, _from_ordinal, _ordinal, classify, decode, encode, fields
from course_lib.numerics.formats import FORMATS, constants, get_format
from course_lib.widgets import View, ViewWidget

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
        try:
            bits = int(bits.strip().replace("_", ""), 0)
        except ValueError:
            shown = bits if len(bits) <= 40 else bits[:40] + "…"  # a pasted page stays one line
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
    names = [get_format(fmt).name for fmt, _ in patterns]
    labels = list(labels) if labels is not None else names
    widest = max(get_format(fmt).bits for fmt, _ in patterns)
    cell = 1.0 if widest <= 32 else 0.5
    fig, ax = plt.subplots(figsize=(max(6.0, 0.22 * widest * cell + 2.5), 0.45 * len(patterns) + 0.9))
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


@export("numerics.bit_editor_view")
def bit_editor_view(fmt: str, bits: int | str) -> View:
    """One bit pattern of ``fmt``, drawn as fields and decoded step by step in the caption."""
    f = get_format(fmt)
    b = parse_bits(bits, f)
    value = decode(b, f)
    kind = classify(b, f)
    s, e, m = fields(b, f)
    width = (f.bits + 3) // 4
    if kind == "normal":
        how = (f"(-1)^{s} · 2^{e - f.bias} · (1 + {m}/2^{f.mantissa_bits})"
               f"   [exponent field {e} - bias {f.bias}]")
    elif kind == "subnormal":  # no implicit 1; the exponent stays at the smallest normal's
        how = f"(-1)^{s} · 2^{1 - f.bias} · (0 + {m}/2^{f.mantissa_bits})   [subnormal: no implicit 1]"
    else:
        how = {"zero": "exponent and mantissa all zero", "inf": "exponent all ones, mantissa zero",
               "nan": "a NaN pattern"}[kind]
    caption = (f"{f.name}  0x{b:0{width}x} = {binary_fields(b, f)}  (sign | exponent | mantissa)\n"
               f"{kind}: {how}\nvalue = {value!r}")
    fig = bits_figure([(f.name, b)], title=f"{f.name}: 0x{b:0{width}x} → {value!r}")
    return View(fig, caption)


@export("numerics.value_view")
def value_view(value: float, formats: Sequence[str] = tuple(FORMATS)) -> View:
    """``value`` rounded into each format: its bits, the stored value and the rounding error."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"value must be a real number; got {type(value).__name__}: {value!r}")
    rows, patterns = [], []
    for name in formats:
        f = get_format(name)
        b = encode(value, f)
        stored = decode(b, f)
        error = stored - value if math.isfinite(stored) and math.isfinite(value) else math.nan
        relative = abs(error) / abs(value) if value and math.isfinite(error) else math.nan
        patterns.append((f.name, b))
        rows.append(f"{f.name:<9} 0x{b:0{(f.bits + 3) // 4}x}  stored {stored!r:<24} "
                    f"error {error:+.3e}  relative {relative:.2e}")
    caption = f"value = {value!r}\n" + "\n".join(rows)
    labels = [f"{n} → {decode(b, n):.6g}" for n, b in patterns]
    return View(bits_figure(patterns, labels, title=f"{value!r} in every format"), caption)


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


@export("numerics.number_line_view")
def number_line_view(value: float, count: int = 4) -> View:
    """The representable values of FP16, BF16 and FP8 near ``value``, on one axis.

    The window is ``value ± count`` gaps of the coarsest format that still reaches ``value``;
    rows with more than ``MAX_TICKS`` values in it are drawn as a solid band.
    """
    v = _checks.real("value", value, minimum=-1e38, maximum=1e38)
    count = _checks.integer("count", count, minimum=1, maximum=50)
    in_range = [n for n in LINE_FORMATS if abs(v) <= constants(n).max]
    half = count * max(_spacing(v, n) for n in (in_range or LINE_FORMATS))
    lo, hi = v - half, v + half
    fig, ax = plt.subplots(figsize=(8, 2.6))
    lines = [f"value = {v!r}; window [{lo:.6g}, {hi:.6g}]"]
    for row, name in enumerate(LINE_FORMATS):
        f = get_format(name)
        y = len(LINE_FORMATS) - 1 - row
        ordinals = _values_between(lo, hi, name)
        nearest = decode(encode(v, name), name)
        if len(ordinals) > MAX_TICKS:
            ax.fill_between([lo, hi], y - 0.15, y + 0.15, color="tab:blue", alpha=0.3)
        else:
            xs = [decode(_from_ordinal(o, f), f) for o in ordinals]
            ax.vlines(xs, y - 0.3, y + 0.3, color="tab:blue")
        if lo <= nearest <= hi:
            ax.plot([nearest], [y], "o", color="tab:orange")
        lines.append(f"{name:<9} {len(ordinals):>6} values in window; gap here {_spacing(v, name):.4g}; "
                     f"nearest {nearest!r} (error {nearest - v:+.3g})")
    ax.axvline(v, color="tab:red", ls="--", lw=1)
    ax.set_yticks(range(len(LINE_FORMATS)), list(reversed(LINE_FORMATS)))
    ax.set_xlim(lo, hi)
    ax.set_title(f"representable values around {v:g} (red: the value; orange: where it rounds)", fontsize=10)
    return View(fig, "\n".join(lines))


_BUTTON_STYLE = {"sign": "danger", "exponent": "info", "mantissa": "success"}


def _hex(bits: int, fmt: str) -> str:
    return f"0x{bits:0{(get_format(fmt).bits + 3) // 4}x}"


def flip_bit(bits: int, index: int, fmt: str) -> int:
    """``bits`` with bit ``index`` (0 = the last mantissa bit) flipped."""
    f = get_format(fmt)
    if not 0 <= index < f.bits:
        raise ValueError(f"index must be in [0, {f.bits - 1}] for {f.name}; got {index}")
    return parse_bits(bits, f) ^ (1 << index)


@export("numerics.BitEditorWidget")
class BitEditorWidget(ViewWidget):
    """Click the bits of a float and watch its value (see the module docstring).

    Attributes:
        bit_buttons: one ``ToggleButton`` per bit, indexed by bit number (0 = least significant);
            shown most significant first. Setting ``bit_buttons[i].value`` is clicking bit i.
    """

    def __init__(self, fmt: str = "fp16", value: float = 1.0) -> None:
        name = get_format(fmt).name
        fmt_control = widgets.Dropdown(options=list(FORMATS), value=name, description="format")
        bits_control = widgets.Text(value=_hex(encode(value, name), name), description="bits",
                                    continuous_update=False)
        # Registered before ViewWidget's own observer, so a format change re-encodes the value
        # into the new width before the view is rendered with it.
        fmt_control.observe(self._on_format, names="value")
        self._syncing = False
        self.bit_buttons: list[widgets.ToggleButton] = []
        self._buttons_box = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap"))
        self._format = name
        super().__init__(bit_editor_view, fmt=fmt_control, bits=bits_control)
        bits_control.observe(self._on_bits, names="value")
        self._build_buttons()
        self.children = (self.children[0], self._buttons_box, *self.children[1:])

    def _build_buttons(self) -> None:
        f = get_format(self._format)
        bits = parse_bits(self.controls["bits"].value, f)
        self.bit_buttons = []
        for index in range(f.bits):
            kind = _field_of(index, f.bits, f.mantissa_bits)
            button = widgets.ToggleButton(value=bool(bits >> index & 1), description=str(bits >> index & 1),
                                          tooltip=f"bit {index} ({kind})", button_style=_BUTTON_STYLE[kind],
                                          layout=widgets.Layout(width="30px", padding="0"))
            button.observe(lambda _change, i=index: self._on_click(i), names="value")
            self.bit_buttons.append(button)
        self._buttons_box.children = tuple(reversed(self.bit_buttons))

    def _shown_bits(self) -> int:
        """The pattern the bit buttons show: the last valid one, whatever the text says."""
        return sum(int(button.value) << index for index, button in enumerate(self.bit_buttons))

    def _on_format(self, change: dict) -> None:
        old, new = change["old"], change["new"]
        try:
            bits = parse_bits(self.controls["bits"].value, old)
        except (ValueError, TypeError):  # the text is not a pattern: keep the buttons' value
            bits = self._shown_bits()
        value = decode(bits, old)
        self._format = new
        self._syncing = True  # the old buttons must not react while the pattern changes width
        self.controls["bits"].value = _hex(encode(value, new), new)
        self._syncing = False
        self._build_buttons()

    def _on_click(self, index: int) -> None:
        if self._syncing:
            return
        # Start from the buttons, not the text: after invalid text ("zz") a click flips a bit of
        # the last valid pattern instead of raising inside the callback.
        before = self._shown_bits() ^ (1 << index)  # the buttons already show this click
        self.controls["bits"].value = _hex(flip_bit(before, index, self._format), self._format)

    def _on_bits(self, _change: dict) -> None:
        try:
            bits = parse_bits(self.controls["bits"].value, self._format)
        except (ValueError, TypeError):  # ViewWidget shows the message; the buttons keep the last pattern
            return
        self._syncing = True
        for index, button in enumerate(self.bit_buttons):
            button.value = bool(bits >> index & 1)
            button.description = str(bits >> index & 1)
        self._syncing = False

    def value(self) -> float:
        """The value the current pattern encodes."""
        return decode(parse_bits(self.controls["bits"].value, self._format), self._format)


@export("numerics.bit_editor_widget")
def bit_editor_widget(fmt: str = "fp16", value: float = 1.0) -> BitEditorWidget:
    """A :class:`BitEditorWidget` showing ``value`` in ``fmt``."""
    return BitEditorWidget(fmt, value)


@export("numerics.value_widget")
def value_widget(value: float = 0.1) -> ViewWidget:
    """Type a value; see it in every format with its rounding error (:func:`value_view`)."""
    return ViewWidget(value_view, value=widgets.FloatText(value=value, description="value"))


@export("numerics.number_line_widget")
def number_line_widget(value: float = 1000.0, count: int = 4) -> ViewWidget:
    """A value and a window; the representable values around it (:func:`number_line_view`)."""
    return ViewWidget(number_line_view,
                      value=widgets.FloatText(value=value, description="value"),
                      count=widgets.IntSlider(value=count, min=1, max=20, description="gaps", continuous_update=False))
