""":class:`ViewWidget`: ipywidgets controls wired to a pure view (see :mod:`course_lib.widgets`).

Kept apart from :mod:`course_lib.widgets` so that importing a chapter does not import
ipywidgets; ``course_lib.widgets.ViewWidget`` is this class.

Layout, the same in every chapter (issue 14: "widgets fit a laptop"):

- the controls sit in a row that **wraps** onto as many lines as it needs, so no control is
  squeezed: at 1280 px with JupyterLab's file browser open the output area is about 850 px;
- every control keeps its own width (a slider its track and readout), its description is
  shown whole (a long one widens the control) and is repeated as a tooltip; controls update on
  release (``continuous_update=False``), so a drag renders once instead of once per pixel;
- the picture is shown at its **natural pixel size**: the ``Image`` is exactly as wide as the
  PNG, never stretched. A figure that would be wider than :data:`MAX_WIDTH` or taller than
  :data:`MAX_HEIGHT` at the widget's dpi is rendered again at a dpi that fits (its text
  shrinks with it, so a chapter should size its figure to fit at the default dpi);
- a long caption line scrolls inside the widget instead of widening the page.

Static face: displaying a ViewWidget also sends a PNG of its current view and a one-line text,
beside the live widget's mimetype. JupyterLab, Colab and VS Code show the live widget; a viewer
without widgets (GitHub, nbviewer, JupyterLab before the kernel ran) shows the picture instead
of the raw ``ViewWidget(children=...)`` repr.

Works with ipywidgets 7.7 (Colab) and 8.x (JupyterLab 4): only traits that exist in both are
used, and tooltips and displaying go through the one spelling each version has.

Tests: ``tests/test_widgets.py`` (headless), ``tests/test_browser.py`` (Chromium, every notebook).
"""

from __future__ import annotations

import base64
import html
import struct
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from course_lib.widgets import View, figure_png

MAX_WIDTH = 850  # px: JupyterLab's output area at a 1280 px window with the file browser open
MAX_HEIGHT = 640  # px: leaves room for the controls and the caption on a ~900 px laptop viewport
SLIDER_WIDTH = 300  # px: description + track (>= 100 px) + readout, in ipywidgets 7 and 8
LABEL_PX_PER_CHAR = 8  # px: a generous width per character of a description at 13 px

IPYWIDGETS_7 = widgets.__version__.startswith("7.")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def png_size(png: bytes) -> tuple[int, int]:
    """The (width, height) in pixels stored in a PNG's header."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"png must start with the PNG signature; got {png[:8]!r}")
    return struct.unpack(">II", png[16:24])


def fitted_png(figure: Any, dpi: int, max_width: int = MAX_WIDTH, max_height: int = MAX_HEIGHT) -> tuple[bytes, int]:
    """Render ``figure`` at ``dpi``, or at the lower dpi that fits ``max_width`` × ``max_height``.

    Returns the PNG and the dpi it was rendered at. The figure is closed.
    """
    import matplotlib.pyplot as plt

    try:
        png = figure_png(figure, dpi, close=False)
        width, height = png_size(png)
        scale = min(1.0, max_width / width, max_height / height)
        if scale < 1.0:
            # bbox_inches="tight" scales with dpi, so one more render at the scaled dpi fits
            # (the floor and the -1 keep rounding from overshooting by a pixel).
            dpi = max(1, int(dpi * scale) - 1)
            png = figure_png(figure, dpi, close=False)
        return png, dpi
    finally:
        plt.close(figure)


def _set_tooltip(control: widgets.Widget, text: str) -> None:
    # ipywidgets 7 calls it description_tooltip (its `tooltip` is a button's own); 8 renamed it
    # `tooltip` and warns on the old name.
    name = "description_tooltip" if IPYWIDGETS_7 else "tooltip"
    if control.has_trait(name) and not getattr(control, name):
        setattr(control, name, text)


def fit_control(control: widgets.Widget) -> None:
    """Give ``control`` a layout that survives a wrapping row at ~850 px (both ipywidgets majors).

    A slider or text box keeps a fixed width: its description whole (widened for a long one) and,
    for a slider, a track of at least ``SLIDER_WIDTH`` minus label and readout. A row of toggle
    buttons sizes each button to its label. A checkbox is not indented by an empty label.
    """
    description = control.description or ""
    _set_tooltip(control, description)
    if control.has_trait("continuous_update"):
        # One render per release: a drag would queue a render (100-500 ms) per pixel moved, and
        # the picture would trail the mouse by seconds (chapter 6 measured 2.6 s).
        control.continuous_update = False
    control.layout.flex = "0 0 auto"  # keep its width: the row wraps instead of squeezing
    if isinstance(control, widgets.Checkbox):
        control.indent = False
        control.layout.width = "auto"
        return
    if isinstance(control, widgets.ToggleButtons):
        control.style.button_width = "auto"
        control.style.description_width = "initial"
        if not control.tooltips:
            control.tooltips = [str(label) for label in control._options_labels]
        control.layout.width = "auto"
        return
    if "description_width" in control.style.keys:
        control.style.description_width = "initial"
    label = LABEL_PX_PER_CHAR * len(description)
    if not control.layout.width:
        # the stock width assumes a label of at most ~80-100 px; a longer one widens the control
        control.layout.width = f"{SLIDER_WIDTH + max(0, label - 80)}px"


class ViewWidget(widgets.VBox):
    """Controls wired to a pure ``view(**values) -> View``; see the module docstring.

    Attributes:
        controls: the named controls, in display order; their names are ``view``'s arguments.
        image: the rendered figure (PNG bytes in ``image.value``), shown at its pixel size.
        caption: the view's caption as ``<pre>`` HTML in ``caption.value``.
        renders: how many times the view has been rendered (tests use it).
        shown_dpi: the dpi of the last render (lower than ``dpi`` when the figure had to fit).
    """

    def __init__(self, view: Callable[..., View], dpi: int = 90, **controls: widgets.ValueWidget) -> None:
        if not callable(view):
            raise TypeError(f"view must be a function returning a View; got {type(view).__name__}")
        for name, control in controls.items():
            if not isinstance(control, widgets.ValueWidget):
                raise TypeError(f"control {name!r} must be an ipywidgets value widget; got {type(control).__name__}")
            control.description = control.description or name
            fit_control(control)
        self.view = view
        self.dpi = dpi
        self.shown_dpi = dpi
        self.controls = dict(controls)
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto"))
        self.caption = widgets.HTML(layout=widgets.Layout(max_width="100%", overflow="auto"))
        self.renders = 0
        row = widgets.HBox(list(controls.values()),
                           layout=widgets.Layout(flex_flow="row wrap", align_items="center", max_width="100%"))
        row.add_class("course-view-controls")
        super().__init__([row, self.image, self.caption], layout=widgets.Layout(max_width="100%"))
        self.add_class("course-view-widget")  # how tests/test_browser.py finds it on the page
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
        png, self.shown_dpi = fitted_png(shown.figure, self.dpi)
        width, _ = png_size(png)
        self.image.layout.width = f"{width}px"  # natural size: one image pixel per CSS pixel
        self.image.value = png
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

    # --- the static face ------------------------------------------------------------------

    def static_bundle(self) -> dict[str, Any]:
        """What a viewer without widgets shows: the current picture and a one-line summary."""
        caption = html.unescape(self.caption.value.removeprefix("<pre>").removesuffix("</pre>"))
        first_line = caption.strip().splitlines()[0] if caption.strip() else ""
        return {"text/plain": f"{type(self).__name__}: {first_line}"[:110],
                "image/png": base64.b64encode(bytes(self.image.value)).decode("ascii")}

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        """ipywidgets 8: the live widget's mimetype plus :meth:`static_bundle`."""
        data = super()._repr_mimebundle_(**kwargs) if hasattr(super(), "_repr_mimebundle_") else None
        if data is None or WIDGET_VIEW not in data:
            return data
        return {**data, **self.static_bundle()}

    if IPYWIDGETS_7:
        def _ipython_display_(self, **kwargs: Any) -> None:
            """ipywidgets 7 displays itself here; the same bundle as :meth:`_repr_mimebundle_`."""
            from IPython.display import display

            data = self.static_bundle()
            data[WIDGET_VIEW] = {"version_major": 2, "version_minor": 0, "model_id": self._model_id}
            display(data, raw=True)
            self._handle_displayed(**kwargs)
