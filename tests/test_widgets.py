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


# --- layout: issue 14 ("widgets fit a laptop"), on ipywidgets 7.7 (Colab) and 8 (JupyterLab 4) ---

from course_lib._view_widget import MAX_HEIGHT, MAX_WIDTH, fitted_png, png_size  # noqa: E402


def _sized_view(width_in: float, height_in: float = 3.0) -> View:
    fig, ax = plt.subplots(figsize=(width_in, height_in))
    ax.plot([0, 1])
    return View(fig, "sized")


def test_controls_wrap_and_keep_their_width():
    w = ViewWidget(_view, n=widgets.IntSlider(value=2, min=1, max=9, description="a much longer description"),
                   label=widgets.Text(value="a"))
    row = w.children[0]
    assert row.layout.flex_flow == "row wrap"
    slider = w.controls["n"]
    assert slider.layout.flex == "0 0 auto" and slider.style.description_width == "initial"
    assert slider.continuous_update is False  # one render per release, not one per pixel dragged
    assert int(slider.layout.width.removesuffix("px")) > 300  # widened for its long description
    assert w.controls["label"].layout.width == "300px"
    tooltip = "description_tooltip" if widgets.__version__.startswith("7.") else "tooltip"
    assert getattr(slider, tooltip) == "a much longer description"


def test_toggle_buttons_and_checkboxes_size_to_their_labels():
    def pick(mode: str, on: bool) -> View:
        return _view(2, f"{mode} {on}")

    w = ViewWidget(pick, mode=widgets.ToggleButtons(options=["functional, mode not passed", "module"]),
                   on=widgets.Checkbox(value=True))
    assert w.controls["mode"].style.button_width == "auto"
    assert list(w.controls["mode"].tooltips) == ["functional, mode not passed", "module"]
    assert w.controls["on"].indent is False and w.controls["on"].description == "on"


def test_image_is_shown_at_its_pixel_size():
    w = ViewWidget(lambda width: _sized_view(width), width=widgets.FloatSlider(value=4.0, min=1.0, max=20.0))
    width, height = png_size(bytes(w.image.value))
    assert w.image.layout.width == f"{width}px" and w.shown_dpi == w.dpi
    assert 4.0 * w.dpi * 0.8 < width <= 4.0 * w.dpi  # tight bbox: a little under figsize × dpi
    w.controls["width"].value = 16.0  # 1440 px at dpi 90: rendered again at a dpi that fits
    width, height = png_size(bytes(w.image.value))
    assert MAX_WIDTH * 0.95 <= width <= MAX_WIDTH and height <= MAX_HEIGHT and w.shown_dpi < w.dpi
    assert w.image.layout.width == f"{width}px"


def test_tall_figures_fit_the_screen():
    png, dpi = fitted_png(_sized_view(4.0, 12.0).figure, 90)
    width, height = png_size(png)
    assert MAX_HEIGHT * 0.95 <= height <= MAX_HEIGHT and dpi < 90 and not plt.get_fignums()
    with pytest.raises(ValueError, match="png must start with the PNG signature"):
        png_size(b"GIF89a" + bytes(30))


def test_display_leaves_a_static_picture_beside_the_live_widget(monkeypatch):
    import base64

    w = ViewWidget(_view, n=widgets.IntSlider(value=2, min=1, max=9), label=widgets.Text(value="first\nsecond"))
    if widgets.__version__.startswith("7."):  # ipywidgets 7 displays itself: capture what it sends
        import IPython.display

        sent = []
        monkeypatch.setattr(IPython.display, "display", lambda data, raw: sent.append(data))
        w._ipython_display_()
        (bundle,) = sent
    else:
        bundle = w._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == w.model_id
    assert base64.b64decode(bundle["image/png"]) == bytes(w.image.value)
    assert bundle["text/plain"] == "ViewWidget: first"  # not ViewWidget(children=(HBox(...


# --- static faces in stored notebooks ---------------------------------------------------------

def _stored_progress_bar(value: float, maximum: float) -> dict:
    """A notebook as nbclient stores one tqdm.auto bar (shape taken from a real run)."""
    def model(name: str, **state) -> dict:
        return {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": state}

    return {
        "cells": [{"cell_type": "code", "outputs": [{"output_type": "display_data", "metadata": {}, "data": {
            "text/plain": "CPC:   0%|          | 0/150 [00:00<?, ?it/s]",
            "application/vnd.jupyter.widget-view+json": {"version_major": 2, "version_minor": 0, "model_id": "box"}}}]}],
        "metadata": {"widgets": {"application/vnd.jupyter.widget-state+json": {"version_major": 2, "version_minor": 0, "state": {
            "box": model("HBoxModel", children=["IPY_MODEL_left", "IPY_MODEL_bar", "IPY_MODEL_right"]),
            "left": model("HTMLModel", value="CPC:\u2007100%"),
            "bar": model("FloatProgressModel", value=value, max=maximum, bar_style="success"),
            "right": model("HTMLModel", value="\u2007150/150\u2007[00:10&lt;00:00,\u200714.2it/s]"),
        }}}},
    }


def test_stored_progress_bars_show_their_final_state():
    from course_lib.widgets import settle_progress_outputs

    nb = _stored_progress_bar(150.0, 150.0)
    assert settle_progress_outputs(nb) == 1
    text = nb["cells"][0]["outputs"][0]["data"]["text/plain"]
    assert text == "CPC: 100%|██████████| 150/150 [00:10<00:00, 14.2it/s]"
    assert settle_progress_outputs(nb) == 0  # already settled
    half = _stored_progress_bar(75.0, 150.0)
    settle_progress_outputs(half)
    assert "|█████     |" in half["cells"][0]["outputs"][0]["data"]["text/plain"]


def test_other_stored_widgets_are_left_alone():
    from course_lib.widgets import settle_progress_outputs

    nb = _stored_progress_bar(150.0, 150.0)
    state = nb["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    state["box"]["state"]["children"] = ["IPY_MODEL_left", "IPY_MODEL_right"]  # not tqdm's three parts
    assert settle_progress_outputs(nb) == 0
    assert settle_progress_outputs({"cells": [{"cell_type": "markdown"}], "metadata": {}}) == 0


@pytest.mark.slow
def test_readme_gallery_is_current():
    from course_lib._gallery import BUILDERS, stale_pictures
    from course_lib.chapters import CHAPTERS

    assert set(BUILDERS) == {c.number for c in CHAPTERS}  # every chapter has a widget in the gallery
    assert not stale_pictures(), "docs/gallery is stale: run `python3 course.py readme`"


def test_figure_png_crops_like_savefig_tight():
    import io

    from course_lib._view_widget import png_size

    def figure(outside_legend: bool):
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot([0, 1], label="a line")
        ax.set_title("title")
        if outside_legend:  # reaches past the figure's right edge: savefig's path
            ax.legend(loc="upper left", bbox_to_anchor=(1.05, 1.0))
        return fig

    for outside in (False, True):
        buf = io.BytesIO()
        figure(outside).savefig(buf, format="png", dpi=90, bbox_inches="tight")
        plt.close("all")
        expected = png_size(buf.getvalue())
        got = png_size(figure_png(figure(outside), dpi=90))
        assert abs(got[0] - expected[0]) <= 2 and abs(got[1] - expected[1]) <= 2, (outside, got, expected)
    assert not plt.get_fignums()


def test_figure_png_pads_artists_at_the_edge_as_savefig_does():
    import io

    from course_lib._view_widget import png_size

    def figure():
        fig = plt.figure(figsize=(4, 2))
        fig.text(0.0, 0.0, "at the corner")  # touches the figure's edge: the pad reaches past it
        return fig

    buf = io.BytesIO()
    figure().savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close("all")
    expected, got = png_size(buf.getvalue()), png_size(figure_png(figure(), dpi=90))
    assert abs(got[0] - expected[0]) <= 2 and abs(got[1] - expected[1]) <= 2, (got, expected)
