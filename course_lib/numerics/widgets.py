"""The chapter's widgets: a bit editor, a value in every format, and a number line.

Thin wiring over the pure views of :mod:`course_lib.numerics.views` (``tests`` move every control
headlessly and read the caption):

* :class:`BitEditorWidget` — a format dropdown, the pattern as hex text, and one toggle button per
  bit (coloured by field). Clicking a bit flips it; changing the format keeps the *value* and
  shows its bits in the new format. Text that is not a pattern of the format ("zz", "0x10000")
  puts the view's ``ValueError`` message in the caption (``ViewWidget`` does that) and leaves the
  buttons on the last valid pattern; clicking a bit or switching the format starts from them.
* :func:`value_widget` — type a value, see its bits and rounding error in every format.
* :func:`number_line_widget` — a value and a window width; the representable values around it.

Notebook: ``03_floating_point`` (section "Widgets"). Tests: ``tests/test_numerics_views.py``.
"""

from __future__ import annotations

import ipywidgets as widgets

from course_lib.api import export
from course_lib.numerics.codec import decode, encode
from course_lib.numerics.formats import FORMATS, get_format
from course_lib.numerics.views import _field_of, bit_editor_view, number_line_view, parse_bits, value_view
from course_lib.widgets import ViewWidget

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
