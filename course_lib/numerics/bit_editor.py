"""The bit editor widget: click the bits of a float and watch its value.

A :class:`~course_lib.widgets.ViewWidget` over :func:`~course_lib.numerics.formats_view.bit_editor_view`
with one toggle button per bit. It subclasses ``ViewWidget``, so this module imports ipywidgets at
the top; ``course_lib.numerics`` loads it only when the class is first used (``lazy_exports``).

Notebook: ``03_floating_point`` ("Widgets"). Tests: ``tests/test_numerics_view.py``.
"""

from __future__ import annotations

import ipywidgets as widgets

from course_lib._export import export
from course_lib._view_widget import ViewWidget
from course_lib.numerics.codec import decode, encode
from course_lib.numerics.formats import FORMATS, get_format
from course_lib.numerics.formats_view import _field_of, _hex, bit_editor_view, flip_bit, parse_bits

_BUTTON_STYLE = {"sign": "danger", "exponent": "info", "mantissa": "success"}


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
        children = tuple(self.children)  # type: ignore[has-type]  # a traitlets trait mypy cannot see
        self.children = (children[0], self._buttons_box, *children[1:])

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
