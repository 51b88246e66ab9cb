"""course_lib.attention.tiling (the schedule, the causal skip rule against a per-element loop)
and the tiling widget (course_lib.attention.tiling_view), moved headlessly."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.attention import causal_tile_skipped, tile_schedule, tiling_view, tiling_widget
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


def test_view_caption_tracks_the_loops():
    first = tiling_view(n=24, block_m=8, block_n=6, step=0, row=20, causal=True)
    assert "12 tiles (3 full, 6 on the diagonal, 3 skipped)" in first.caption
    assert "Q block 0 (rows 0-7) x K/V block 0 (cols 0-5): masked" in first.caption
    assert "row 20: 0/4 K/V blocks folded in; not started" in first.caption
    mid = tiling_view(n=24, block_m=8, block_n=6, step=9, row=20, causal=True)
    assert "row 20: 2/4 K/V blocks folded in; m = 7.583" in mid.caption
    last = tiling_view(n=24, block_m=8, block_n=6, step=999, row=20, causal=True)  # clamped to the end
    assert "step 12/12" in last.caption and last.caption.endswith("max |partial - exact| = 2.22e-16")
    plain = tiling_view(n=10, block_m=4, block_n=4, step=3, row=99, causal=False)
    assert "0 skipped" in plain.caption and "row 9:" in plain.caption
    assert len(mid.figure.axes) >= 3
    with pytest.raises(ValueError, match=r"n must be an int in \[1, 256\]; got 0"):
        tiling_view(n=0)


def test_widget_moves_headlessly():
    w = tiling_widget()
    caption, image = w.caption.value, bytes(w.image.value)
    w.controls["step"].value = 9
    assert w.caption.value != caption and bytes(w.image.value) != image
    assert "step 10/12" in w.caption.value
    w.controls["causal"].value = False
    assert "0 skipped" in w.caption.value and w.renders == 3
