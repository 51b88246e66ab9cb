"""The widget pattern: a pure view, controls wired to it, state readable headlessly."""

import ipywidgets as widgets
import matplotlib.pyplot as plt
import pytest

from course_lib.widgets import View, ViewWidget, figure_png


def _view(n: int, label: str) -> View:
    fig, ax = plt.subplots()
    ax.plot(range(n))
    return View(fig, f"{label}: {n} points")


def test_moving_a_control_rerenders():
    w = ViewWidget(_view, n=widgets.IntSlider(value=2, min=1, max=9), label=widgets.Text(value="a"))
    assert w.caption.value == "<pre>a: 2 points</pre>" and w.renders == 1
    first_image = bytes(w.image.value)
    assert first_image.startswith(b"\x89PNG")
    w.controls["n"].value = 7
    assert w.caption.value == "<pre>a: 7 points</pre>" and bytes(w.image.value) != first_image
    w.controls["label"].value = "<b>"
    assert w.caption.value == "<pre>&lt;b&gt;: 7 points</pre>"  # escaped: the caption is text
    assert w.renders == 3 and w.values() == {"n": 7, "label": "<b>"}


def test_figures_are_closed_after_rendering():
    before = len(plt.get_fignums())
    w = ViewWidget(_view, n=widgets.IntSlider(value=2), label=widgets.Text(value="a"))
    for n in range(3, 8):
        w.controls["n"].value = n
    assert len(plt.get_fignums()) == before
    fig, _ = plt.subplots()
    assert figure_png(fig).startswith(b"\x89PNG") and not plt.fignum_exists(fig.number)


def test_bad_wiring_is_refused():
    with pytest.raises(TypeError, match="view must be a function"):
        ViewWidget(3)
    with pytest.raises(TypeError, match="control 'n' must be an ipywidgets value widget; got int"):
        ViewWidget(_view, n=3)
    with pytest.raises(TypeError, match="view must return a View; got str"):
        ViewWidget(lambda n: "no", n=widgets.IntSlider())


def test_bad_control_input_is_shown_in_the_caption():
    def strict(n: int) -> View:
        if n > 5:
            raise ValueError(f"n must be at most 5; got {n}")
        return _view(n, "ok")

    w = ViewWidget(strict, n=widgets.IntSlider(value=2, max=9))
    image = bytes(w.image.value)
    w.controls["n"].value = 7
    assert w.caption.value == "<pre>⚠ n must be at most 5; got 7</pre>" and bytes(w.image.value) == image
    w.controls["n"].value = 3
    assert w.caption.value == "<pre>ok: 3 points</pre>"
