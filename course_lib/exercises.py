"""Auto-checked exercises: the learner writes a function, :meth:`Exercise.check` judges it.

Every chapter ends with exercises built from this one class. An exercise owns a *reference*
solution and a source of inputs — hand-picked edge cases plus seeded random ones. ``check(fn)``
calls the learner's ``fn`` and the reference on copies of the same inputs and stops at the first
disagreement, saying exactly which input failed, what was expected and what arrived. Hints come
one at a time on request; the solution (the reference's own source) only when asked for.

In a notebook::

    from course_lib.numerics.exercises import fp16_spacing
    fp16_spacing.show()          # the task
    def spacing(x): ...          # the learner's attempt
    fp16_spacing.check(spacing)  # ✓ or ✗ with the failing input
    fp16_spacing.hint()          # next hint
    fp16_spacing.solution()      # the reference, when the learner gives up

An exercise can also judge a *piece* of the library's machinery: with ``run=`` the learner's
function is not compared directly but plugged into the machinery (``run(fn, case)``, e.g. the
autograd engine with the learner's topological order), and with ``oracle=`` the expected result
comes from an independent reference (e.g. torch's gradients) instead of the solution. The
solution must still pass: ``tests/test_exercises.py`` checks every exercise's reference.

A function that still raises ``NotImplementedError`` counts as "not attempted", so a chapter's
notebook runs top to bottom in CI with the learner's stub in place. Tests:
``tests/test_exercises.py``; each chapter tests its exercises with right and wrong functions.
"""

from __future__ import annotations

import copy
import inspect
import math
import random
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

Case = Mapping[str, Any]  # keyword arguments for one call, e.g. {"x": tensor, "dim": 1}


def randn(rng: random.Random, *shape: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A standard-normal tensor drawn reproducibly from ``rng`` (for random-case generators)."""
    gen = torch.Generator().manual_seed(rng.randrange(2**31))
    return torch.randn(*shape, generator=gen, dtype=dtype)


def default_equal(got: Any, expected: Any, rtol: float = 1e-5, atol: float = 1e-7) -> bool:
    """Structural comparison: tensors by shape, dtype and ``allclose``; numbers by ``isclose``."""
    if isinstance(expected, torch.Tensor):
        return (
            isinstance(got, torch.Tensor)
            and got.shape == expected.shape
            and got.dtype == expected.dtype
            and torch.allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)
        )
    if isinstance(expected, bool) or isinstance(got, bool):
        return type(got) is type(expected) and got == expected
    if isinstance(expected, float | int) and isinstance(got, float | int):
        if isinstance(expected, float) and math.isnan(expected):
            return isinstance(got, float) and math.isnan(got)
        return math.isclose(got, expected, rel_tol=rtol, abs_tol=atol)
    if isinstance(expected, Sequence) and not isinstance(expected, str):
        return (
            isinstance(got, Sequence)
            and not isinstance(got, str)
            and len(got) == len(expected)
            and all(default_equal(g, e, rtol, atol) for g, e in zip(got, expected))
        )
    if isinstance(expected, Mapping):
        return (
            isinstance(got, Mapping)
            and got.keys() == expected.keys()
            and all(default_equal(got[k], expected[k], rtol, atol) for k in expected)
        )
    return got == expected


def describe(value: Any, limit: int = 16) -> str:
    """A short, exact-enough rendering of an input or output for feedback messages."""
    if isinstance(value, torch.Tensor):
        head = f"tensor(shape={tuple(value.shape)}, dtype={value.dtype}"
        if value.numel() <= limit:
            return head + f", values={value.tolist()})"
        return head + f", first values={value.flatten()[:6].tolist()}...)"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k!r}: {describe(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple) and len(value) <= limit:
        inner = ", ".join(describe(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


@dataclass(frozen=True)
class Result:
    """The verdict of one :meth:`Exercise.check` call."""

    passed: bool  # every case agreed with the reference
    attempted: bool  # False while the learner's function raises NotImplementedError
    message: str  # what the learner reads
    failing_case: Case | None = None  # the first input that disagreed, if any

    def __repr__(self) -> str:
        return self.message

    def __bool__(self) -> bool:
        return self.passed


@dataclass
class Exercise:
    """One auto-checked exercise.

    Attributes:
        title: a short name shown in feedback.
        task: what the learner is asked to write, including the signature.
        reference: the solution; called with the same keyword arguments as the learner's function.
        edge_cases: hand-picked inputs, each a dict of keyword arguments, checked first.
        random_case: draws one random input (a dict of keyword arguments) from a seeded rng.
        hints: revealed one at a time by :meth:`hint`.
        equal: how outputs are compared; defaults to :func:`default_equal`.
        n_random: how many random inputs ``check`` tries after the edge cases.
        run: how a candidate is exercised on a case, ``run(fn, case)``; default ``fn(**case)``.
            Use it to plug the learner's piece into the library's machinery.
        oracle: the expected result of a case, computed independently of ``reference``
            (``oracle(case)``); default ``run(reference, case)``.
    """

    title: str
    task: str
    reference: Callable[..., Any]
    edge_cases: Sequence[Case] = ()
    random_case: Callable[[random.Random], Case] | None = None
    hints: Sequence[str] = ()
    equal: Callable[[Any, Any], bool] = default_equal
    n_random: int = 25
    run: Callable[[Callable[..., Any], Case], Any] | None = None
    oracle: Callable[[Case], Any] | None = None
    _hints_shown: int = field(default=0, repr=False)

    def _call(self, fn: Callable[..., Any], case: Case) -> Any:
        """``fn`` on a fresh copy of ``case``, directly or plugged in through ``run``."""
        fresh = copy.deepcopy(dict(case))
        return fn(**fresh) if self.run is None else self.run(fn, fresh)

    def cases(self, seed: int = 0) -> list[Case]:
        """The inputs ``check`` uses: the edge cases, then ``n_random`` seeded random ones."""
        rng = random.Random(seed)
        drawn = [self.random_case(rng) for _ in range(self.n_random)] if self.random_case else []
        return [*self.edge_cases, *drawn]

    def show(self) -> str:
        """Print (and return) the task."""
        text = f"Exercise: {self.title}\n\n{textwrap.dedent(self.task).strip()}"
        print(text)
        return text

    def check(self, fn: Callable[..., Any], seed: int = 0, quiet: bool = False) -> Result:
        """Run ``fn`` against the reference on every case; report the first disagreement.

        Args:
            fn: the learner's function, called with each case's keyword arguments.
            seed: seeds the random cases, so a failure can be reproduced.
            quiet: do not print the verdict (it is still in the returned result).

        Returns:
            A :class:`Result`; truthy when every case passed.

        Raises:
            TypeError: ``fn`` is not callable.
        """
        if not callable(fn):
            raise TypeError(f"fn must be a function; got {type(fn).__name__}: {fn!r}")
        result = self._judge(fn, seed)
        if not quiet:
            print(result.message)
        return result

    def _judge(self, fn: Callable[..., Any], seed: int) -> Result:
        cases = self.cases(seed)
        for i, case in enumerate(cases):
            expected = self.oracle(copy.deepcopy(dict(case))) if self.oracle else self._call(self.reference, case)
            try:
                got = self._call(fn, case)
            except NotImplementedError:
                return Result(False, False, f"… {self.title}: not attempted yet — replace the "
                              "`raise NotImplementedError` with your code and run this cell again.")
            except Exception as exc:  # the learner's bug, reported against the input that caused it
                return Result(False, True, self._failure(i, len(cases), case, expected,
                                                         f"raised {type(exc).__name__}: {exc}"), case)
            if not self.equal(got, expected):
                return Result(False, True, self._failure(i, len(cases), case, expected, describe(got)), case)
        n_edge = len(self.edge_cases)
        return Result(True, True, f"✓ {self.title}: correct on {n_edge} edge cases and "
                      f"{len(cases) - n_edge} random inputs.")

    def _failure(self, i: int, n: int, case: Case, expected: Any, got: str) -> str:
        kind = "edge case" if i < len(self.edge_cases) else "random input"
        args = "\n".join(f"    {k} = {describe(v)}" for k, v in case.items())
        return (f"✗ {self.title}: wrong on {kind} {i + 1} of {n}:\n{args}\n"
                f"  expected: {describe(expected)}\n  got:      {got}")

    def hint(self) -> str:
        """Print (and return) the next hint; after the last one, say so."""
        if not self.hints:
            text = "No hints for this one — try `solution()`."
        elif self._hints_shown >= len(self.hints):
            text = f"That was the last hint ({len(self.hints)}). `solution()` shows the answer."
        else:
            self._hints_shown += 1
            text = f"Hint {self._hints_shown}/{len(self.hints)}: {self.hints[self._hints_shown - 1]}"
        print(text)
        return text

    def solution(self) -> str:
        """Print (and return) the reference solution's source."""
        source = textwrap.dedent(inspect.getsource(self.reference))
        print(source)
        return source
