"""Offsets predicted per position, on digits at random scales: the dataset
(course_lib.deform.scaled_digits), the classifier and its harness (course_lib.deform.experiment),
the committed checkpoint and its widget (course_lib.deform.learned_offsets_view)."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F

from course_lib.deform import (
    learned_offsets_state,
    learned_offsets_view,
    learned_offsets_widget,
    offset_field,
    scale_offsets,
    scaled_digits,
)
from course_lib.deform.experiment import (
    CHECKPOINT,
    DigitClassifier,
    ScaleConfig,
    load_classifiers,
    measure_offsets,
    on_digit,
    pearson,
    sampling_spread,
    train_classifier,
)
from course_lib.deform.learned_offsets_view import GALLERY
from course_lib.deform.scaled_digits import TRAIN_DIGITS

# --- the dataset ----------------------------------------------------------------------------------


def test_shapes_dtypes_and_ranges():
    batch = scaled_digits(33, canvas=32, min_scale=1.2, max_scale=3.0, seed=4)
    assert batch.images.shape == (33, 1, 32, 32) and batch.images.dtype == torch.float32
    assert batch.labels.shape == batch.scales.shape == batch.index.shape == (33,) and batch.centres.shape == (33, 2)
    assert len(batch) == 33
    assert ((batch.scales >= 1.2) & (batch.scales <= 3.0)).all()
    assert batch.images.min() >= 0 and batch.images.max() <= 1
    assert (batch.index < TRAIN_DIGITS).all()
    assert (scaled_digits(50, split="test").index >= TRAIN_DIGITS).all()


def test_labels_are_load_digits_targets_and_scale_one_is_the_digit_itself():
    from sklearn.datasets import load_digits

    data = load_digits()
    batch = scaled_digits(7, canvas=8, min_scale=1.0, max_scale=1.0, split="test", seed=3)
    assert batch.labels.tolist() == data.target[batch.index.numpy()].tolist()
    expected = torch.tensor(data.images[batch.index.numpy()], dtype=torch.float32)[:, None] / 16
    torch.testing.assert_close(batch.images, expected, atol=1e-6, rtol=0)


def test_the_digit_lies_inside_the_canvas_where_the_centre_says():
    batch = scaled_digits(64, canvas=32, min_scale=1.0, max_scale=4.0, seed=5)
    for image, scale, (cy, cx) in zip(batch.images[:, 0], batch.scales, batch.centres):
        ys, xs = torch.nonzero(image > 0, as_tuple=True)
        half = 4.5 * scale  # half of the 8 digit pixels, plus the half pixel blended with the zeros around
        assert (ys - cy).abs().max() <= half and (xs - cx).abs().max() <= half
        assert 0 <= cy - 4 * scale + 0.5 and cy + 4 * scale - 0.5 <= 31 + 1e-4  # wholly on the canvas


def test_same_seed_same_batch_other_seed_other_batch():
    a, b, c = scaled_digits(9, seed=11), scaled_digits(9, seed=11), scaled_digits(9, seed=12)
    assert torch.equal(a.images, b.images) and torch.equal(a.scales, b.scales)
    assert not torch.equal(a.scales, c.scales)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"n": 0}, ValueError, r"n must be an int in \[1, inf\]; got 0"),
    ({"n": 2.0}, TypeError, r"n must be an int; got float"),
    ({"n": 1, "min_scale": 0.5}, ValueError, r"min_scale must be a number in \[1.0, inf\]; got 0.5"),
    ({"n": 1, "min_scale": 2.0, "max_scale": 1.5}, ValueError, r"max_scale must be a number in \[2.0, inf\]"),
    ({"n": 1, "canvas": 20}, ValueError, r"canvas must hold the largest digit, 8·max_scale = 28 pixels; got"),
    ({"n": 1, "split": "val"}, ValueError, r"split must be one of 'train', 'test'; got 'val'"),
])
def test_bad_arguments_raise_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        scaled_digits(**kwargs)


# --- the classifier, the spread, the loop ----------------------------------------------------------


def test_a_fresh_deformable_network_is_its_plain_twin():
    torch.manual_seed(0)
    model = DigitClassifier(deformable=True)
    x = scaled_digits(5, seed=1).images
    assert torch.equal(model.offsets(x), torch.zeros(5, 18, 16, 16))  # the offset head starts at zero
    features = model.features(x)
    layer = model.layer
    torch.testing.assert_close(layer(features), F.conv2d(features, layer.weight, layer.bias, padding=1),
                               atol=1e-5, rtol=1e-5)
    twin = DigitClassifier(deformable=False)
    twin.load_state_dict({k: v for k, v in model.state_dict().items() if "offset_conv" not in k})
    torch.testing.assert_close(model(x), twin(x), atol=1e-5, rtol=1e-5)
    assert torch.equal(twin.offsets(x), torch.zeros(5, 18, 16, 16))


def test_sampling_spread_is_the_effective_dilation():
    for d in (1.0, 2.0, 0.5, 3.25):
        offset = offset_field(scale_offsets(3, 3, d), 2, 4, 5)
        torch.testing.assert_close(sampling_spread(offset), torch.full((2, 4, 5), d, dtype=torch.float64))
    shifted = offset_field(scale_offsets(3, 3, 2.0) + 0.7, 1, 3, 3)  # a shift of the whole grid
    torch.testing.assert_close(sampling_spread(shifted), torch.full((1, 3, 3), 2.0, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"offset must have 18 channels .*got shape \(1, 8, 3, 3\)"):
        sampling_spread(torch.zeros(1, 8, 3, 3))


def test_measure_offsets_of_a_layer_set_to_a_dilation_two_grid():
    model = DigitClassifier(deformable=True)
    with torch.no_grad():
        model.layer.offset_conv.bias.copy_(scale_offsets(3, 3, 2.0).float())  # every position: dilation 2
    data = scaled_digits(20, seed=2)
    measured = measure_offsets(model, data, buckets=4)
    torch.testing.assert_close(measured.spread, torch.full((20,), 2.0), atol=1e-5, rtol=0)
    # |Δp_k| = |(i-1, j-1)|: 0 at the centre, 1 on 4 edges, √2 on 4 corners; ×2 input px per feature px
    torch.testing.assert_close(measured.magnitude, torch.full((20,), 2 * (4 + 4 * math.sqrt(2)) / 9),
                               atol=1e-5, rtol=0)
    rows = measured.buckets()
    assert len(rows) == 4 and sum(r[4] for r in rows) == 20
    assert math.isnan(measured.correlation)  # a constant spread has no correlation with anything
    assert abs(pearson(torch.arange(5.0), 3 * torch.arange(5.0) + 1) - 1) < 1e-12
    assert on_digit(data.images).shape == (20, 16, 16)


def test_the_loop_reduces_the_loss_and_moves_the_offsets():
    # the plain 8x8 digits (scale 1 on an 8x8 canvas) learn in a few dozen steps; scaled ones take hundreds
    config = ScaleConfig(canvas=8, min_scale=1.0, max_scale=1.0, batch=32, steps=40, lr=2e-2, seed=3)
    data = scaled_digits(256, canvas=8, min_scale=1.0, max_scale=1.0, seed=77)
    torch.manual_seed(config.seed)
    fresh = DigitClassifier(config.deformable, config.channels)  # the loop's initial weights
    model, losses = train_classifier(config, progress=False)
    assert len(losses) == 40 and all(math.isfinite(v) for v in losses)
    with torch.no_grad():
        before = F.cross_entropy(fresh(data.images), data.labels).item()
        after = F.cross_entropy(model(data.images), data.labels).item()
    assert before > 2.2 and after < 0.7 * before
    assert model.offsets(data.images).abs().max() > 0.1  # the offsets left the regular grid
    _, losses_again = train_classifier(config, progress=False)
    assert losses_again == losses  # seeded


def test_bad_configs_and_models_raise():
    with pytest.raises(TypeError, match=r"config must be"):
        train_classifier({"steps": 3})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"config.steps must be an int in \[1, inf\]; got 0"):
        train_classifier(ScaleConfig(steps=0))
    with pytest.raises(ValueError, match=r"channels must be three ints"):
        DigitClassifier(channels=(4, 4))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"model must be"):
        measure_offsets(torch.nn.Conv2d(1, 1, 3), scaled_digits(1))  # type: ignore[arg-type]


# --- the committed checkpoint -------------------------------------------------------------------------


def test_the_checkpoint_is_small_records_its_command_and_learned_offsets():
    assert CHECKPOINT.stat().st_size < 1_000_000
    models, config, info = load_classifiers()
    assert set(models) == {"deformable", "plain"} and config.deformable
    assert info["command"].startswith("python -m course_lib.deform.train")
    assert len(info["seeds"]) >= 2
    x = scaled_digits(4, split="test", seed=0).images
    assert models["deformable"].offsets(x).abs().mean() > 0.1  # feature px: moved off the grid


# --- the widget ------------------------------------------------------------------------------------------


def _taps(caption: str) -> list[tuple[float, ...]]:
    found = re.findall(r"regular \((-?[\d.]+), (-?[\d.]+)\) -> sampled \((-?[\d.]+), (-?[\d.]+)\)", caption)
    return [tuple(float(v) for v in row) for row in found]


def test_state_is_the_layers_offsets_in_input_pixels():
    state = learned_offsets_state(digit=GALLERY - 1, y=7, x=9)
    models, _, _ = load_classifiers()
    image = state.image[None, None]
    offset = models["deformable"].offsets(image)[0, :, 7, 9].reshape(9, 2)  # (9, 2) feature px
    torch.testing.assert_close(state.sampled - state.regular, 2 * offset)
    assert state.regular[4].tolist() == [2 * 7 + 0.5, 2 * 9 + 0.5]
    assert abs(state.spread - sampling_spread(models["deformable"].offsets(image))[0, 7, 9].item()) < 1e-6
    small = learned_offsets_state(digit=0)
    assert small.scale <= state.scale  # ranked by scale
    with pytest.raises(ValueError, match=rf"digit must be an int in \[0, {GALLERY - 1}\]; got {GALLERY}"):
        learned_offsets_state(digit=GALLERY)
    with pytest.raises(ValueError, match=r"y must be an int in \[0, 15\]; got 16"):
        learned_offsets_state(y=16)


def test_view_caption_and_size():
    from course_lib.widgets import figure_png

    view = learned_offsets_view(digit=3, y=2, x=14)
    state = learned_offsets_state(digit=3, y=2, x=14)
    taps = _taps(view.caption)
    assert len(taps) == 9
    assert [(round(ry, 1), round(rx, 1)) for ry, rx, *_ in taps] == [tuple(p) for p in state.regular.tolist()]
    assert f"scale {state.scale:.2f}" in view.caption and f"effective dilation {state.spread:.2f}" in view.caption
    png = figure_png(view.figure, dpi=90)
    assert int.from_bytes(png[16:20], "big") <= 850


def test_widget_moves_headlessly():
    w = learned_offsets_widget()
    assert len(w.controls) == 3  # wraps into rows of at most ~2-3 sliders at 850 px
    caption, image = w.caption.value, bytes(w.image.value)
    w.controls["digit"].value = GALLERY - 1
    assert w.caption.value != caption and bytes(w.image.value) != image
    assert f"test digit {GALLERY - 1} (by scale)" in w.caption.value
    w.controls["x"].value = 3
    assert "output (8, 3)" in w.caption.value
    assert w.renders == 3
