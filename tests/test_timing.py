"""course_lib.timing: the discipline (warm-up, calibration, interleaving, median) — not speed."""

import pytest

from course_lib.timing import Timing, compare, ratio


def test_warmup_interleaving_and_counts():
    log = []
    fns = {name: (lambda name=name: log.append(name)) for name in "abc"}
    t = compare(fns, repeats=3, warmup=2, number=2)
    assert log[:6] == list("aabbcc")  # warm-up, each alternative in turn
    timed = log[6:]
    # each repeat runs every alternative `number` times, the order rotating between repeats
    assert timed == list("aabbcc") + list("bbccaa") + list("ccaabb")
    assert [len(x.samples) for x in t.values()] == [3, 3, 3] and all(x.number == 2 for x in t.values())


def test_calibration_reaches_min_sample_and_sync_is_called():
    syncs = []
    t = compare({"noop": lambda: None}, repeats=2, warmup=0, min_sample_s=0.002, sync=lambda: syncs.append(1))
    assert t["noop"].number > 100  # a no-op needs many calls to last 2 ms
    assert len(syncs) >= 4


def test_statistics():
    t = Timing("x", (1.0, 2.0, 3.0, 4.0, 100.0), 1)
    assert t.median == 3.0 and t.q1 == 2.0 and t.q3 == 4.0
    assert t.spread == pytest.approx(2 / 3)
    assert ratio(Timing("a", (6.0,), 1), Timing("b", (3.0,), 1)) == 2.0
    assert "median of 5" in str(t)


def test_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        compare({})
    with pytest.raises(TypeError, match=r"fns\['a'\] must be a zero-argument callable"):
        compare({"a": 3})
    with pytest.raises(ValueError, match="repeats"):
        compare({"a": lambda: None}, repeats=0)
    with pytest.raises(TypeError, match="numerator"):
        ratio(1.0, Timing("b", (1.0,), 1))
