"""The sampling-offsets widget (course_lib.deform.sampling_view): the caption's numbers come from
the same sampling as deform_conv2d, and the widget moves headlessly."""

from __future__ import annotations

import re

import pytest
import torch

from course_lib.deform import deform_conv2d, sampling_state, sampling_view, sampling_widget
from course_lib.deform.sampling_view import SIZE, _digits, example_mask, preset_offsets


def _taps(caption: str) -> list[tuple[float, float, float, float, float]]:
    """(sampled row, sampled col, mask, value) per tap, read back from the caption."""
    found = re.findall(r"sampled \((-?[\d.]+), (-?[\d.]+)\), mask ([\d.]+), value (-?[\d.]+)", caption)
    return [tuple(float(v) for v in row) for row in found]


def test_state_without_matplotlib_matches_the_library():
    """The pure state: positions from sampling_positions, values from bilinear_sample, the column
    is mask × value, the chosen tap's weights sum to 1."""
    state = sampling_state(preset="scale", strength=1.0, y=0, x=SIZE - 1, tap=2, modulated=True, digit=4)
    assert state.regular.shape == state.sampled.shape == (9, 2)
    torch.testing.assert_close(state.sampled - state.regular,
                               torch.tensor([[(i - 1.0), (j - 1.0)] for i in range(3) for j in range(3)],
                                            dtype=torch.float64))  # scale 2 = dilation 2: offset = tap - centre
    torch.testing.assert_close(state.column, state.values * example_mask()[0, :, 0, SIZE - 1])
    assert state.outside == 4 and state.values[2] == 0  # tap 2 reads (-2, SIZE + 1): wholly outside
    assert abs(state.neighbours.weights.sum().item() - 1) < 1e-12
    with pytest.raises(ValueError, match=r"tap must be an int in \[0, 8\]; got 9"):
        sampling_state(tap=9)


def test_view_fits_the_output_area_with_readable_text():
    from course_lib.widgets import figure_png

    view = sampling_view(preset="random", strength=2.0, y=15, x=0, tap=4, modulated=True)
    texts = [t for ax in view.figure.axes for t in (*ax.texts, ax.title, ax.xaxis.label, *ax.get_xticklabels())]
    legends = [t for ax in view.figure.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert min(t.get_fontsize() for t in texts + legends if t.get_text()) >= 8  # 8 pt = 10 px at 90 dpi
    png = figure_png(view.figure, dpi=90)
    assert int.from_bytes(png[16:20], "big") <= 850  # the PNG's width: shown at its own size


def test_weight_labels_do_not_overlap():
    import matplotlib

    matplotlib.use("Agg")
    for preset, strength, tap in (("rotation", 0.5, 2), ("random", 1.0, 0), ("zero", 0.0, 4), ("scale", 0.3, 8)):
        view = sampling_view(preset=preset, strength=strength, y=7, x=7, tap=tap)
        ax = view.figure.axes[0]
        view.figure.canvas.draw()
        boxes = [t.get_window_extent() for t in ax.texts if t.get_text()]  # not the arrows
        assert len(boxes) == 4
        assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:]), (preset, tap)


def test_zero_preset_samples_the_regular_grid():
    view = sampling_view(preset="zero", strength=1.0, y=5, x=0, tap=4)
    assert "zero offsets (a plain conv)" in view.caption and "no mask (DCNv1)" in view.caption
    taps = _taps(view.caption)
    assert [(r, c) for r, c, *_ in taps] == [(5 - 1 + i, -1 + j) for i in range(3) for j in range(3)]
    assert "tap 4 blends (5, 0) w=1.000, (5, 1) w=0.000, (6, 0) w=0.000, (6, 1) w=0.000" in view.caption
    assert len(view.figure.axes) == 2


def test_caption_values_are_what_deform_conv2d_multiplies():
    # a deform conv whose kernel is one-hot on tap k outputs exactly the caption's value of tap k
    offset, _ = preset_offsets("rotation", 0.5)
    image = _digits()[3:4]
    view = sampling_view(preset="rotation", strength=0.5, y=6, x=9, tap=2, modulated=True, digit=3)
    mask = example_mask()
    for k, (_, _, m, value) in enumerate(_taps(view.caption)):
        weight = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
        weight.view(-1)[k] = 1.0
        out = deform_conv2d(image, offset, weight, padding=1, mask=mask)
        true_mask = mask[0, k, 6, 9].item()
        assert abs(out[0, 0, 6, 9].item() - true_mask * value) < 6e-4  # the caption rounds to 3 decimals
        assert abs(m - true_mask) <= 5e-3
    assert "rotation by 22.5 degrees; DCNv2 mask" in view.caption


def test_scale_two_reads_a_dilated_grid_and_outside_points_are_zero():
    view = sampling_view(preset="scale", strength=1.0, y=0, x=SIZE - 1, tap=2)
    assert "scale s = 2.00" in view.caption
    taps = _taps(view.caption)
    assert (taps[0][0], taps[0][1]) == (-2.0, SIZE - 3.0) and (taps[8][0], taps[8][1]) == (2.0, SIZE + 1.0)
    assert taps[2][3] == 0.0 and "(4 outside the image, read as 0)" in view.caption


def test_random_offsets_differ_per_position_and_presets_change_the_picture():
    a = _taps(sampling_view(preset="random", strength=1.0, y=3, x=3).caption)
    b = _taps(sampling_view(preset="random", strength=1.0, y=4, x=3).caption)
    offsets_a = [(r - (2 + k // 3), c - (2 + k % 3)) for k, (r, c, *_) in enumerate(a)]
    offsets_b = [(r - (3 + k // 3), c - (2 + k % 3)) for k, (r, c, *_) in enumerate(b)]
    assert offsets_a != offsets_b


@pytest.mark.parametrize("kwargs, error, match", [
    ({"preset": "shear"}, ValueError, r"preset must be one of 'zero', 'scale', 'rotation', 'random'; got 'shear'"),
    ({"strength": -1}, ValueError, r"strength must be a number in \[0, 4\]"),
    ({"y": SIZE}, ValueError, rf"y must be an int in \[0, {SIZE - 1}\]; got {SIZE}"),
    ({"tap": 9}, ValueError, r"tap must be an int in \[0, 8\]; got 9"),
    ({"digit": 1.5}, TypeError, r"digit must be an int; got float"),
])
def test_view_rejects_bad_controls(kwargs, error, match):
    with pytest.raises(error, match=match):
        sampling_view(**kwargs)


def test_widget_moves_headlessly():
    w = sampling_widget()
    caption, image = w.caption.value, bytes(w.image.value)
    w.controls["preset"].value = "scale"
    assert w.caption.value != caption and bytes(w.image.value) != image
    assert "scale s = 1.50" in w.caption.value
    w.controls["strength"].value = 1.0
    assert "scale s = 2.00" in w.caption.value
    w.controls["tap"].value = 8
    assert "tap 8 blends" in w.caption.value
    before = bytes(w.image.value)
    w.controls["modulated"].value = True
    assert "DCNv2 mask" in w.caption.value and bytes(w.image.value) != before
    assert w.renders == 5
