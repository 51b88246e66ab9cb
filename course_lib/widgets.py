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

Stored outputs: a ViewWidget displays a PNG of its view beside the live widget (a static face for
viewers without widgets); :func:`settle_progress_outputs` does the same for tqdm's progress bars
when a notebook is built.

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
    """Render ``fig`` to PNG bytes, cropped to its artists as ``bbox_inches="tight"`` crops.

    Draws once and crops the pixels (``savefig(bbox_inches="tight")`` lays the figure out twice,
    ~30 % slower, and a widget re-renders on every control change). Falls back to ``savefig``
    when an artist reaches past the figure's edge (a legend placed outside it), where cropping
    could not show it. By default closes the figure (so figures don't pile up in memory).
    """
    import matplotlib
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    PAD_INCHES = 0.1  # savefig's default pad_inches around the tight box
    try:
        fig.set_dpi(dpi)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        tight = fig.get_tightbbox(canvas.get_renderer())  # inches, origin bottom-left
        width, height = fig.get_size_inches()
        if tight.x0 < 0 or tight.y0 < 0 or tight.x1 > width or tight.y1 > height:
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", pad_inches=PAD_INCHES)
            return buf.getvalue()
        box = tight.padded(PAD_INCHES)
        pixels = np.asarray(canvas.buffer_rgba())  # (H, W, 4), row 0 at the top
        rows, cols = pixels.shape[:2]
        top, bottom = rows - int(np.ceil(box.y1 * dpi)), rows - int(box.y0 * dpi)
        left, right = int(box.x0 * dpi), int(np.ceil(box.x1 * dpi))
        crop = pixels[max(top, 0):min(bottom, rows), max(left, 0):min(right, cols)]
        # The pad may reach past the canvas (artists at its edge): fill it as savefig does.
        margins = ((max(-top, 0), max(bottom - rows, 0)), (max(-left, 0), max(right - cols, 0)), (0, 0))
        if any(m for pair in margins for m in pair):
            face = np.array([round(255 * c) for c in matplotlib.colors.to_rgba(fig.get_facecolor())], np.uint8)
            crop = np.concatenate([np.pad(crop[..., i], margins[:2], constant_values=face[i])[..., None]
                                   for i in range(4)], axis=-1)
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(crop)).save(buf, format="png")
        return buf.getvalue()
    finally:
        if close:
            plt.close(fig)


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _progress_text(models: dict[str, Any], box: dict[str, Any]) -> str | None:
    """tqdm.notebook's bar as tqdm prints it in a terminal, from its stored widget models."""
    import html

    ids = [child.removeprefix("IPY_MODEL_") for child in box.get("state", {}).get("children", [])]
    kinds = [models.get(i, {}).get("model_name") for i in ids]
    if kinds != ["HTMLModel", "FloatProgressModel", "HTMLModel"]:
        return None
    left, bar, right = (models[i]["state"] for i in ids)
    done = bar.get("value", 0) / bar["max"] if bar.get("max") else 0.0
    filled = round(10 * min(max(done, 0.0), 1.0))

    def text(state: dict[str, Any]) -> str:
        return html.unescape(state.get("value", "")).replace("\u2007", " ")

    return f"{text(left)}|{'█' * filled}{' ' * (10 - filled)}|{text(right)}"


def settle_progress_outputs(nb: Any) -> int:
    """Give each stored progress bar the text of its final state; return how many were changed.

    ``tqdm.auto`` in a notebook displays an ipywidgets bar whose plain-text form is taken when
    the bar appears ("0%| 0/150"); a viewer without widgets (GitHub, nbviewer, Colab's preview)
    shows that text forever. nbclient stores every widget's *final* state in the notebook's
    metadata, so this rewrites each bar's ``text/plain`` from it ("100%|██████████| 150/150 ...").
    ``course_lib._notebooks.build`` calls it before writing a notebook.

    Args:
        nb: an executed notebook (``nbformat.NotebookNode`` or the same as plain dicts).
    """
    models = nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    changed = 0
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            box = models.get(view.get("model_id")) if view else None
            text = _progress_text(models, box) if box and box.get("model_name") == "HBoxModel" else None
            if text is not None and output["data"].get("text/plain") != text:
                output["data"]["text/plain"] = text
                changed += 1
    return changed


def __getattr__(name: str) -> Any:
    if name == "ViewWidget":  # imports ipywidgets: only when a widget is built
        from course_lib._view_widget import ViewWidget

        return ViewWidget
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["View", "ViewWidget", "figure_png", "settle_progress_outputs"]
