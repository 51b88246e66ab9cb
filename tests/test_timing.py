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


def test_sample_warmup_runs_untimed_calls_before_each_sample(monkeypatch):
    # a fake clock: a call costs 10 s right after another alternative ran, 1 s otherwise
    import course_lib.timing as timing

    now, last = [0.0], [None]

    def call(name):
        def fn():
            now[0] += 1.0 if last[0] == name else 10.0
            last[0] = name
        return fn

    monkeypatch.setattr(timing.time, "perf_counter", lambda: now[0])
    fns = {"a": call("a"), "b": call("b")}
    cold = compare(fns, repeats=4, warmup=0, number=2)
    warm = compare(fns, repeats=4, warmup=0, number=2, sample_warmup=1)
    assert cold["a"].median == 5.5  # (10 + 1) / 2: the switch's cost lands in every sample
    assert warm["a"].median == 1.0 and warm["b"].samples == (1.0,) * 4  # steady state only
    only_a = compare(fns, repeats=4, warmup=0, number=2, sample_warmup={"a": 1})
    # b, left out, keeps its cold call whenever a ran just before it (rounds 0 and 2; in rounds 1
    # and 3 the rotation puts b first, right after its own sample)
    assert only_a["a"].median == 1.0 and only_a["b"].samples == (5.5, 1.0, 5.5, 1.0)
    with pytest.raises(ValueError, match="sample_warmup"):
        compare(fns, sample_warmup=-1)
    with pytest.raises(ValueError, match=r"sample_warmup names alternatives that fns lacks: \['c'\]"):
        compare(fns, sample_warmup={"c": 1})


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
