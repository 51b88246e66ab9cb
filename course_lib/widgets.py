"""The pattern every chapter's widget follows: pure views, thin controls.

A widget is two layers:

1. **A view function in the chapter's library module** — pure, unit-tested, no ipywidgets:
   it takes plain values (a step, a block size, a toggle) and returns a :class:`View`: a
   matplotlib figure plus a caption that states in text what the figure shows (the numbers a
   test can read and a screen reader can speak).
2. **:class:`ViewWidget`** — wires ipywidgets controls to that function. Moving any control
   calls the view again and puts the rendered PNG into an ``Image`` and the caption into an
   ``HTML`` widget. Both are widget *values*, so a headless test can move a control by setting
   ``.value`` and assert that ``caption.value`` / ``image.value`` changed — an ``Output`` widget
   would capture nothing outside a kernel.

Example::

    def softmax_view(temperature: float) -> View: ...
    w = ViewWidget(softmax_view, temperature=FloatSlider(value=1.0, min=0.1, max=5.0))
    w.controls["temperature"].value = 2.0   # re-renders
    w.caption.value                         # "<pre>T=2.00 ...</pre>"

``import course_lib.widgets`` loads neither matplotlib nor ipywidgets: :class:`ViewWidget` lives in
:mod:`course_lib._view_widget` and is imported on first use, so a chapter's view module can be
imported (and its pure state functions tested) without either.

Notebook: ``00_start_here`` shows the pattern. Tests: ``tests/test_widgets.py``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from course_lib._view_widget import ViewWidget


@dataclass
class View:
    """What a widget shows for one setting of its controls."""

    figure: Figure  # the picture; closed after rendering
    caption: str  # the same content in words and numbers, for tests and screen readers


def figure_png(fig: Figure, dpi: int = 90, close: bool = True) -> bytes:
    """Render ``fig`` to PNG bytes; by default close it (so figures don't pile up in memory)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    if close:
        plt.close(fig)
    return buf.getvalue()


def __getattr__(name: str) -> Any:
    if name == "ViewWidget":  # imports ipywidgets: only when a widget is built
        from course_lib._view_widget import ViewWidget

        return ViewWidget
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["View", "ViewWidget", "figure_png"]
