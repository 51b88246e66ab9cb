"""Two ways to write a registering decorator, and what each costs per call.

A decorator is a function ``d(f) -> g``; ``@d`` above ``def f`` means ``f = d(f)``. A
registering decorator can return

* **a wrapper** — ``functools.wraps(f)(lambda *a, **k: f(*a, **k))``: the name and docstring
  are copied, but every call now runs one more Python frame, and ``g is not f``; or
* **the object itself** — what :class:`course_lib.api.api_export` does: ``g is f``, so the
  call cost is exactly the original's, and ``isinstance``/subclassing of a class still work.

:func:`wrapping_register` is the wrapper version, kept only to be measured against;
:func:`call_overhead` times a tiny function bare, wrapped and exported.

Notebook: ``05_api_export`` (section "Wrapper or the object itself"). Tests: ``tests/test_api.py``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from course_lib import _checks
from course_lib._export import api_export, clear
from course_lib.timing import Timing, compare

_export = api_export  # ``export`` is bound in the package ``__init__``, after this module
DEMO_API = "overhead_demo"  # a throw-away API, cleared after each measurement


def wrapping_register(name: str, table: dict[str, Callable[..., Any]]
                      ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A registering decorator that returns a ``functools.wraps`` wrapper (the costly way).

    Args:
        name: the key under which to record the wrapper in ``table``.
        table: a plain dict acting as the registry.

    Returns:
        A decorator; the function it returns is a new object that calls the original.
    """

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **kwargs)

        table[name] = wrapper
        return wrapper

    return decorator


def _fresh_add_one() -> Callable[[int], int]:
    """A new tiny function object per call (so exporting it under a toy API is repeatable)."""

    def add_one(x: int) -> int:
        return x + 1  # as cheap as possible, so only the call itself is measured

    return add_one


@dataclass(frozen=True)
class CallOverhead:
    """Nanoseconds per call of one tiny function, three ways: medians of one interleaved run."""

    bare_ns: float  # the undecorated function
    wrapped_ns: float  # behind a functools.wraps wrapper
    exported_ns: float  # after api_export: the same object, so the same call — bare_ns, not timed again
    exported_is_bare: bool  # api_export returned the function itself
    timings: dict[str, Timing]  # "bare" and "wrapped": every sample (course_lib.timing.compare)

    @property
    def wrapper_overhead_ns(self) -> float:
        """What the wrapper adds to each call."""
        return self.wrapped_ns - self.bare_ns


def call_overhead(number: int = 200_000, repeat: int = 7) -> CallOverhead:
    """Time a bare, a wrapped and an exported copy of a tiny function with :func:`course_lib.timing.compare`.

    ``api_export`` returns the function itself, so the exported copy *is* the bare one: timing
    it separately would only measure noise (two timings of one object can differ by 2x on a
    busy machine). So bare and wrapped are warmed up and timed interleaved in one run, each
    number the median of ``repeat`` samples, and ``exported_ns`` is ``bare_ns`` when
    ``exported_is_bare``. Each call goes through a ``functools.partial`` (the same cost for
    both), so the *difference* ``wrapped - bare`` is the wrapper's cost.

    Args:
        number: calls per sample.
        repeat: samples per alternative.

    Returns:
        :class:`CallOverhead` in nanoseconds per call (medians).

    Raises:
        TypeError / ValueError: ``number`` or ``repeat`` is not a positive int.
    """
    _checks.integer("number", number, minimum=1)
    _checks.integer("repeat", repeat, minimum=1)
    bare = _fresh_add_one()
    wrapped = wrapping_register("add_one", {})(bare)
    exported = api_export("add_one", api_name=DEMO_API)(bare)
    clear(DEMO_API)

    timings = compare({"bare": functools.partial(bare, 1), "wrapped": functools.partial(wrapped, 1)},
                      repeats=repeat, number=number)
    ns = {label: t.median * 1e9 for label, t in timings.items()}
    if exported is not bare:  # never, by construction; then it would need its own timing
        ns["exported"] = compare({"exported": functools.partial(exported, 1)}, repeats=repeat,
                                 number=number)["exported"].median * 1e9
    return CallOverhead(ns["bare"], ns["wrapped"], ns.get("exported", ns["bare"]), exported is bare, timings)


_export("api.wrapping_register", api_name="course_lib")(wrapping_register)
_export("api.call_overhead", api_name="course_lib")(call_overhead)
_export("api.CallOverhead", api_name="course_lib")(CallOverhead)
