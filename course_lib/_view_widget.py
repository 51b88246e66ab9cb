""":class:`ViewWidget`: ipywidgets controls wired to a pure view (see :mod:`course_lib.widgets`).

Kept apart from :mod:`course_lib.widgets` so that importing a chapter does not import
ipywidgets; ``course_lib.widgets.ViewWidget`` is this class. Tests: ``tests/test_widgets.py``.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from course_lib.widgets import View, figure_png


class ViewWidget(widgets.VBox):
    """Controls wired to a pure ``view(**values) -> View``; see the module docstring.

    Attributes:
        controls: the named controls, in display order; their names are ``view``'s arguments.
        image: the rendered figure (PNG bytes in ``image.value``).
        caption: the view's caption as ``<pre>`` HTML in ``caption.value``.
        renders: how many times the view has been rendered (tests use it).
    """

    def __init__(self, view: Callable[..., View], dpi: int = 90, **controls: widgets.ValueWidget) -> None:
        if not callable(view):
            raise TypeError(f"view must be a function returning a View; got {type(view).__name__}")
        for name, control in controls.items():
            if not isinstance(control, widgets.ValueWidget):
                raise TypeError(f"control {name!r} must be an ipywidgets value widget; got {type(control).__name__}")
            control.description = control.description or name
        self.view = view
        self.dpi = dpi
        self.controls = dict(controls)
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.caption = widgets.HTML()
        self.renders = 0
        super().__init__([widgets.HBox(list(controls.values())), self.image, self.caption])
        for control in controls.values():
            control.observe(self._on_change, names="value")
        self.refresh()

    def values(self) -> dict[str, Any]:
        """The current value of every control, by name."""
        return {name: c.value for name, c in self.controls.items()}

    def refresh(self) -> View:
        """Render the view for the current control values and show it."""
        shown = self.view(**self.values())
        if not isinstance(shown, View):
            raise TypeError(f"view must return a View; got {type(shown).__name__}")
        self.image.value = figure_png(shown.figure, self.dpi)
        self.caption.value = f"<pre>{html.escape(shown.caption)}</pre>"
        self.renders += 1
        return shown

    def _on_change(self, _change: dict[str, Any]) -> None:
        # A learner typing into a control can produce input the view rejects ("zz" as a bit
        # pattern). Inside a callback an exception would vanish into the browser's log, so the
        # view's own error message is shown in the caption instead, above the last good picture.
        try:
            self.refresh()
        except (ValueError, TypeError) as err:
            self.caption.value = f"<pre>⚠ {html.escape(str(err))}</pre>"
