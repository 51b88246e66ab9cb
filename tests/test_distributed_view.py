"""Tests for the ring stepper (course_lib.distributed.ring_view): the pure state, the view, the widget."""

from __future__ import annotations

import pytest
import torch

from course_lib.distributed import ring_schedule, ring_state, ring_view, ring_widget, simulate_ring


@pytest.mark.parametrize("n", range(1, 9))
def test_ring_state_starts_local_and_ends_complete(n: int) -> None:
    assert ring_state(n, 0).sums == tuple(((r,),) * n for r in range(n))
    everyone = tuple(range(n))
    assert ring_state(n, 2 * (n - 1)).sums == tuple((everyone,) * n for _ in range(n))
    assert ring_state(n, 2 * (n - 1)).phase == "done"
    if n > 1:  # after reduce-scatter rank r owns the full chunk r + 1, and only that one complete
        middle = ring_state(n, n - 1).sums
        for r in range(n):
            complete = [c for c in range(n) if middle[r][c] == everyone]
            assert complete == [(r + 1) % n]


def test_ring_state_agrees_with_a_numeric_simulation() -> None:
    n, step = 5, 3
    xs = [torch.full((n,), 10.0 ** r, dtype=torch.float64) for r in range(n)]  # digits mark ranks
    numeric = simulate_ring(xs, stop_after=step)
    state = ring_state(n, step)
    assert state.upcoming == tuple(ring_schedule(n)[step]) and state.caption == ring_view(n, step).caption
    for r, chunks in enumerate(state.sums):
        for c, ranks in enumerate(chunks):
            assert numeric[r][c].item() == sum(10.0 ** k for k in ranks)


def test_ring_view_caption_states_what_the_picture_shows() -> None:
    view = ring_view(4, 2)
    lines = view.caption.splitlines()
    assert lines[0] == "N=4, after step 2 of 6; next phase: reduce-scatter"
    next_chunks = [t.chunk for t in ring_schedule(4)[2]]
    assert lines[1] == f"rank 0: c0=0 | c1=0 | c2=0+2+3 | c3=0+3; sends chunk {next_chunks[0]} to rank 1"
    assert view.figure.axes and view.figure.axes[0].patches  # the chunk boxes are drawn
    done = ring_view(4, 99)  # clamped to the last step
    assert done.caption.startswith("N=4, after step 6 of 6; next phase: done")
    assert "c0=all | c1=all | c2=all | c3=all" in done.caption
    assert ring_view(1, 0).caption.startswith("N=1, after step 0 of 0")


def test_ring_view_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"world_size must be an int in \[1, 8\]"):
        ring_view(9, 0)
    with pytest.raises(ValueError, match="step must be an int"):
        ring_view(4, -1)
    with pytest.raises(TypeError, match="world_size must be an int"):
        ring_view(4.0, 1)


def test_ring_widget_moves_headlessly() -> None:
    w = ring_widget(4)
    first_caption, first_image = w.caption.value, w.image.value
    w.controls["step"].value = 3
    assert "after step 3 of 6" in w.caption.value and w.caption.value != first_caption
    assert w.image.value != first_image
    w.controls["world_size"].value = 2  # fewer ranks: the step slider shrinks to 2 (N - 1)
    assert w.controls["step"].max == 2 and w.controls["step"].value == 2
    assert "N=2, after step 2 of 2" in w.caption.value
    with pytest.raises(ValueError, match="world_size"):
        ring_widget(1)


def test_ring_view_fits_a_laptop_screen() -> None:
    """Issue 14: the widget was 950 px tall. The figure is now at most 8.5 x 4.6 in (765 x 414 px
    at the widget's dpi 90), so sliders, picture and a 9-line caption fit on one screen."""
    for n in (2, 5, 8):
        width, height = ring_view(n, 1).figure.get_size_inches()
        assert width <= 8.5 and height <= 4.6
