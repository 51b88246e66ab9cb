"""One timing discipline for the whole course: warm up, interleave, repeat, report median and spread.

Every wall-clock number a chapter or benchmark states comes from :func:`compare`:

1. **Warm-up** — each alternative runs ``warmup`` times first (caches, allocators, lazy init,
   Triton and cuDNN autotuning are not what we measure).
2. **Calibration** — ``number`` calls per sample, chosen so one sample lasts ≥ ``min_sample_s``
   (a single call of a µs-scale function is below the clock's resolution and jitter).
3. **Interleaving** — each repeat runs every alternative once, in a rotating order, so a slow
   phase of a shared machine (another process, thermal throttling) hits all alternatives alike
   instead of whichever happened to run then.
4. **Repeats, median and spread** — ``repeats`` samples per alternative; the median is reported
   with the interquartile range, and ratios are taken between medians of the same run.
5. **Warm samples, when asked** (``sample_warmup``) — interleaving has a cost: the first call
   after another alternative ran finds the caches and the allocator in that alternative's state.
   On the Medusa chapter's step (about 3 ms on one CPU thread), the first call after a whole
   decode took 1.5–3 times as long as the calls after it: several per cent of a 20-call
   sample, a bias that a long sample (a whole decode) does not carry. Untimed calls just before
   each sample remove it, so short and long alternatives are both measured in the steady state
   they run in (``course_lib.speculative.experiment.step_breakdown`` relies on it).

On CUDA, ``torch.cuda.synchronize`` runs before each clock read, so a sample includes the
kernels it launched (as ``torch.utils.benchmark.Timer`` does). Timings are never asserted in
tests (house style, rule 16): they are measured results, shown with their spread.

Notebooks: every chapter that times something. Tests: ``tests/test_timing.py``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from course_lib import _checks
from course_lib._export import export


def _synchronize() -> None:
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


@export("timing.Timing")
@dataclass(frozen=True)
class Timing:
    """The samples of one alternative, in seconds per call."""

    name: str  # the alternative's label
    samples: tuple[float, ...]  # one per repeat, each the mean over `number` calls
    number: int  # calls per sample

    @property
    def median(self) -> float:
        """Median seconds per call."""
        return statistics.median(self.samples)

    @property
    def q1(self) -> float:
        """First quartile of the samples (seconds per call)."""
        return _quartiles(self.samples)[0]

    @property
    def q3(self) -> float:
        """Third quartile of the samples (seconds per call)."""
        return _quartiles(self.samples)[1]

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median (0.05 = the middle half within 5 %)."""
        return (self.q3 - self.q1) / self.median if self.median > 0 else 0.0

    def __str__(self) -> str:
        return (f"{self.name}: {_human(self.median)} per call (median of {len(self.samples)}, "
                f"IQR {_human(self.q1)}–{_human(self.q3)}, {self.number} calls per sample)")


def _quartiles(samples: tuple[float, ...]) -> tuple[float, float]:
    if len(samples) < 2:
        return samples[0], samples[0]
    q = statistics.quantiles(samples, n=4, method="inclusive")
    return q[0], q[2]


def _human(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _calibrate(fn: Callable[[], object], min_sample_s: float, sync: Callable[[], None]) -> int:
    """Calls per sample so that one sample lasts at least ``min_sample_s``."""
    number = 1
    while True:
        sync()
        start = time.perf_counter()
        for _ in range(number):
            fn()
        sync()
        elapsed = time.perf_counter() - start
        if elapsed >= min_sample_s or number >= 1 << 20:
            return number
        number = max(number * 2, int(number * min_sample_s / max(elapsed, 1e-9) * 1.2))


@export("timing.compare")
def compare(fns: Mapping[str, Callable[[], object]], repeats: int = 7, warmup: int = 2,
            min_sample_s: float = 0.01, number: int | None = None,
            sync: Callable[[], None] | None = None,
            sample_warmup: int | Mapping[str, int] = 0) -> dict[str, Timing]:
    """Time alternatives with the course's discipline (see the module docstring).

    Args:
        fns: ``{label: zero-argument callable}``; all are timed in the same run.
        repeats: samples per alternative (≥ 1; 5 or more for a median worth quoting).
        warmup: untimed calls of each alternative before anything is timed.
        min_sample_s: the shortest a sample may last; sets the calls per sample.
        number: calls per sample for every alternative (default: calibrated per alternative).
        sync: called before each clock read (default: ``torch.cuda.synchronize`` when CUDA is
            in use, else nothing).
        sample_warmup: untimed calls of an alternative just before each of its samples (point
            5 of the module docstring): one count for every alternative, or ``{label: count}``
            (labels left out: 0). 0 keeps the cold first call in the sample, as an end-to-end
            measurement (a whole decode a user waits for) should.

    Returns:
        ``{label: Timing}`` in the order of ``fns``.

    Raises:
        TypeError: ``fns`` is not a mapping of callables.
        ValueError: no alternatives, or a count out of range.

    Example:
        >>> t = compare({"sum": lambda: sum(range(100)), "len": lambda: len(range(100))}, repeats=5)
        >>> t["sum"].median > t["len"].median
        True
    """
    _checks.instance("fns", fns, Mapping)
    if not fns:
        raise ValueError("fns must name at least one alternative; got an empty mapping")
    for label, fn in fns.items():
        if not callable(fn):
            raise TypeError(f"fns[{label!r}] must be a zero-argument callable; got {type(fn).__name__}")
    repeats = _checks.integer("repeats", repeats, minimum=1)
    warmup = _checks.integer("warmup", warmup, minimum=0)
    _checks.real("min_sample_s", min_sample_s, minimum=0.0)
    if number is not None:
        number = _checks.integer("number", number, minimum=1)
    labels = list(fns)
    if isinstance(sample_warmup, Mapping):
        unknown = sorted(set(sample_warmup) - set(labels))
        if unknown:
            raise ValueError(f"sample_warmup names alternatives that fns lacks: {unknown}; fns has {labels}")
        warm = {label: _checks.integer(f"sample_warmup[{label!r}]", sample_warmup.get(label, 0), minimum=0)
                for label in labels}
    else:
        count = _checks.integer("sample_warmup", sample_warmup, minimum=0)
        warm = dict.fromkeys(labels, count)
    sync = sync or _synchronize
    for label in labels:
        for _ in range(warmup):
            fns[label]()
    calls = {label: number or _calibrate(fns[label], min_sample_s, sync) for label in labels}
    samples: dict[str, list[float]] = {label: [] for label in labels}
    for r in range(repeats):
        for label in labels[r % len(labels):] + labels[:r % len(labels)]:  # rotate the order
            fn, n = fns[label], calls[label]
            for _ in range(warm[label]):
                fn()
            sync()
            start = time.perf_counter()
            for _ in range(n):
                fn()
            sync()
            samples[label].append((time.perf_counter() - start) / n)
    return {label: Timing(label, tuple(samples[label]), calls[label]) for label in labels}


@export("timing.ratio")
def ratio(numerator: Timing, denominator: Timing) -> float:
    """``numerator.median / denominator.median``: how many times slower the first is."""
    _checks.instance("numerator", numerator, Timing)
    _checks.instance("denominator", denominator, Timing)
    return numerator.median / denominator.median
