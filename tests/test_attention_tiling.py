"""course_lib.attention.tiling (the schedule, the causal skip rule against a per-element loop)
and the tiling widget (course_lib.attention.tiling_view), moved headlessly."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.attention import causal_tile_skipped, tile_schedule, tiling_state, tiling_view, tiling_widget
from course_lib.attention.tiling_view import example_scores, row_states


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 12), st.integers(1, 12), st.booleans())
def test_schedule_against_per_element_loop(n, block_m, block_n, causal):
    steps = tile_schedule(n, block_m, block_n, causal)
    assert len(steps) == math.ceil(n / block_m) * math.ceil(n / block_n)
    covered = torch.zeros(n, n, dtype=torch.int64)
    for st_ in steps:
        visible = [(r, c) for r in st_.rows for c in st_.cols if not causal or c <= r]  # the paper's mask
        expected = "skipped" if not visible else ("full" if len(visible) == len(st_.rows) * len(st_.cols) else "masked")
        assert st_.kind == expected, (st_, expected)
        assert causal_tile_skipped(st_.i, st_.j, block_m, block_n) == (causal and not visible) or not causal
        covered[st_.rows.start:st_.rows.stop, st_.cols.start:st_.cols.stop] += 1
    assert torch.all(covered == 1)  # every score in exactly one tile
    assert [(s.i, s.j) for s in steps] == sorted((s.i, s.j) for s in steps)  # outer loop over Q blocks


def test_causal_skips_about_half_for_long_sequences():
    steps = tile_schedule(1024, 64, 64, causal=True)
    skipped = sum(s.kind == "skipped" for s in steps)
    assert skipped == 16 * 15 // 2  # strictly above the block diagonal
    assert sum(s.kind == "masked" for s in steps) == 16


def test_row_states_converge_to_the_exact_softmax_row():
    scores = example_scores(24, causal=False)
    states = row_states(scores[5], block_n=7)
    assert len(states) == 4
    exact = torch.softmax(scores[5], -1)
    assert torch.allclose(states[-1].acc / states[-1].l, exact, atol=1e-14)
    assert not torch.allclose(states[0].acc / states[0].l, exact, atol=1e-3)
    assert all(a.m <= b.m for a, b in zip(states, states[1:]))  # the running max never decreases


def test_state_steps_in_tiles_and_tracks_the_row():
    """The pure state, without matplotlib: step counts tiles (0..n_steps), skipped ones included."""
    start = tiling_state(n=24, block_m=8, block_n=6, step=0, row=20, causal=True)
    assert start.n_steps == 12 and start.active is None and start.seen == 0 and start.state is None
    assert start.counts() == {"full": 3, "masked": 6, "skipped": 3}
    assert torch.equal(start.partial, torch.zeros(24, dtype=torch.float64))
    first = tiling_state(n=24, block_m=8, block_n=6, step=1, row=20, causal=True)
    assert (first.active.i, first.active.j, first.active.kind) == (0, 0, "masked")
    mid = tiling_state(n=24, block_m=8, block_n=6, step=10, row=20, causal=True)
    assert (mid.active.i, mid.active.j) == (2, 1) and mid.seen == 2 and len(mid.row_states) == 4
    assert mid.gap > 1e-3
    last = tiling_state(n=24, block_m=8, block_n=6, step=999, row=20, causal=True)  # clamped to the end
    assert last.step == last.n_steps == 12 and last.seen == 4 and last.gap < 1e-12
    torch.testing.assert_close(last.partial, last.exact, atol=1e-12, rtol=0)
    plain = tiling_state(n=10, block_m=4, block_n=4, step=3, row=99, causal=False)
    assert plain.row == 9 and plain.counts()["skipped"] == 0
    with pytest.raises(ValueError, match=r"n must be an int in \[1, 256\]; got 0"):
        tiling_state(n=0)
    with pytest.raises(ValueError, match=r"step must be an int in \[0, inf\]; got -1"):
        tiling_state(step=-1)


def test_view_caption_tracks_the_loops():
    start = tiling_view(n=24, block_m=8, block_n=6, step=0, row=20, causal=True)
    assert "12 tiles (3 full, 6 on the diagonal, 3 skipped)" in start.caption
    assert "step 0/12: no tile processed yet" in start.caption
    assert "row 20: 0/4 K/V blocks folded in; not started" in start.caption
    first = tiling_view(n=24, block_m=8, block_n=6, step=1, row=20, causal=True)
    assert "step 1/12: Q block 0 (rows 0-7) x K/V block 0 (cols 0-5): masked" in first.caption
    mid = tiling_view(n=24, block_m=8, block_n=6, step=10, row=20, causal=True)
    assert "row 20: 2/4 K/V blocks folded in; m = 7.583" in mid.caption
    assert len(mid.figure.axes) >= 3


def test_view_fits_the_output_area_with_readable_text():
    from course_lib.widgets import figure_png

    view = tiling_view(n=64, block_m=5, block_n=7, step=40, row=63)
    texts = [t for ax in view.figure.axes for t in (ax.title, ax.xaxis.label, ax.yaxis.label, *ax.get_xticklabels())]
    assert min(t.get_fontsize() for t in texts if t.get_text()) >= 8  # 8 pt = 10 px at the widget's 90 dpi
    png = figure_png(view.figure, dpi=90)
    width = int.from_bytes(png[16:20], "big")
    assert width <= 850, width


def test_widget_moves_headlessly_and_the_step_slider_counts_tiles():
    w = tiling_widget()
    step = w.controls["step"]
    assert (step.min, step.max) == (0, 12)  # 12 tiles, not 0..4095
    caption, image = w.caption.value, bytes(w.image.value)
    step.value = 10
    assert w.caption.value != caption and bytes(w.image.value) != image
    assert "step 10/12" in w.caption.value
    w.controls["causal"].value = False
    assert "0 skipped" in w.caption.value and w.renders == 3
    w.controls["block_n"].value = 12  # 3 x 2 tiles now: the slider's end follows, the value is clamped
    assert step.max == 6 and step.value == 6 and "step 6/6" in w.caption.value
    w.controls["n"].value = 8
    assert w.controls["row"].max == 7 and step.max == 1
