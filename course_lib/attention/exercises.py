"""Exercises of chapter 9 (FlashAttention), checked automatically.

* :data:`merge_softmax_states` — the online-softmax merge rule for two partial (m, l, acc) states.
* :data:`causal_tile_skip` — the condition under which a causal tile is never loaded.
* :data:`kernel_rescale_line` — the missing line of the Triton forward kernel: the learner's
  function is plugged into ``_flash_attention_fwd_kernel`` (as its ``RESCALE`` argument) and the
  kernel's output is compared with :func:`attention_ref`. Needs the triton package; without it
  the check says it is skipped.

Each solution is the mechanism written out, never a call of the function taught
(``merge_states``, ``causal_tile_skipped``, ``rescale_accumulator``); ``tests/test_attention_exercises.py``
checks each against the library.

Notebook: ``09_flash_attention`` §8. Tests: ``tests/test_attention_exercises.py``.
"""

from __future__ import annotations

import functools
import inspect
import math
import random
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from course_lib.attention.reference import attention_ref
from course_lib.exercises import Exercise, Result, randn
from course_lib.runtime import triton_available, triton_device, triton_mode

# --- 1. the merge rule -----------------------------------------------------------------------------


def _merge_solution(m1, l1, acc1, m2, l2, acc2):
    m = torch.maximum(m1, m2)  # the new running max
    # exp(s - m1) = exp(s - m) · exp(m1 - m): each old sum is rescaled by a factor <= 1.
    # Both empty (m = -inf): subtract 0 instead, or exp(-inf - -inf) = nan; their sums are 0 anyway.
    m_safe = torch.where(m == float("-inf"), torch.zeros_like(m), m)
    a, b = torch.exp(m1 - m_safe), torch.exp(m2 - m_safe)  # (R,) each
    return m, a * l1 + b * l2, a[..., None] * acc1 + b[..., None] * acc2  # acc: (R, D), so [..., None]


def _random_state(rng: random.Random, rows: int, d: int) -> dict[str, torch.Tensor]:
    s = 3 * randn(rng, rows, rng.randint(1, 6))  # the scores of some block
    v = randn(rng, s.shape[1], d)
    m = s.amax(-1)
    p = torch.exp(s - m[:, None])
    return {"m": m, "l": p.sum(-1), "acc": p @ v}


def _random_merge_case(rng: random.Random) -> dict[str, torch.Tensor]:
    rows, d = rng.randint(1, 4), rng.randint(1, 5)
    a, b = _random_state(rng, rows, d), _random_state(rng, rows, d)
    return {"m1": a["m"], "l1": a["l"], "acc1": a["acc"], "m2": b["m"], "l2": b["l"], "acc2": b["acc"]}


_INF = float("-inf")
merge_softmax_states = Exercise(
    title="merge two partial softmax states",
    task="""
        Write `my_merge(m1, l1, acc1, m2, l2, acc2) -> (m, l, acc)`.
        (m1, l1, acc1) summarises the scores s_j of some keys of each row:
            m1 = max_j s_j,  l1 = Σ_j exp(s_j - m1),  acc1 = Σ_j exp(s_j - m1) v_j
        and (m2, l2, acc2) the same over other keys. Return the state over all of them.
        Shapes: m, l are Tensor[R] (one entry per row), acc is Tensor[R, D]; float64.
        An empty state has m = -inf, l = 0, acc = 0; merging with it must not produce nan.
    """,
    reference=_merge_solution,
    edge_cases=[
        {"m1": torch.tensor([0.0], dtype=torch.float64), "l1": torch.tensor([1.0], dtype=torch.float64),
         "acc1": torch.tensor([[2.0]], dtype=torch.float64), "m2": torch.tensor([0.0], dtype=torch.float64),
         "l2": torch.tensor([1.0], dtype=torch.float64), "acc2": torch.tensor([[4.0]], dtype=torch.float64)},
        {"m1": torch.tensor([1000.0], dtype=torch.float64), "l1": torch.tensor([1.0], dtype=torch.float64),
         "acc1": torch.tensor([[1.0, 2.0]], dtype=torch.float64), "m2": torch.tensor([-5.0], dtype=torch.float64),
         "l2": torch.tensor([2.0], dtype=torch.float64), "acc2": torch.tensor([[3.0, 1.0]], dtype=torch.float64)},
        {"m1": torch.tensor([_INF, 2.0, _INF], dtype=torch.float64),
         "l1": torch.tensor([0.0, 1.5, 0.0], dtype=torch.float64),
         "acc1": torch.tensor([[0.0], [1.0], [0.0]], dtype=torch.float64),
         "m2": torch.tensor([1.0, _INF, _INF], dtype=torch.float64),
         "l2": torch.tensor([2.0, 0.0, 0.0], dtype=torch.float64),
         "acc2": torch.tensor([[3.0], [0.0], [0.0]], dtype=torch.float64)},  # row 3: both empty
    ],
    random_case=_random_merge_case,
    hints=[
        "The merged maximum is m = max(m1, m2). Each old sum was taken relative to its own maximum.",
        "exp(s - m1) = exp(s - m) · exp(m - m1)... so multiply l1 and acc1 by exp(m1 - m) (<= 1), "
        "and l2, acc2 by exp(m2 - m), then add.",
        "acc has one more dim than m: the factor needs `[..., None]`. For m = -inf in both states, "
        "subtract 0 instead of m (both sums are 0 anyway).",
    ],
)

# --- 2. the causal tile-skip condition ---------------------------------------------------------------


def _skip_reference(i: int, j: int, block_m: int, block_n: int) -> bool:
    first_key = j * block_n  # the tile's leftmost key column
    last_query = (i + 1) * block_m - 1  # its bottom query row
    return first_key > last_query  # even the earliest key comes after the latest query: nothing visible


def _random_skip_case(rng: random.Random) -> dict[str, int]:
    block_m, block_n = rng.choice([1, 2, 3, 4, 8, 16, 32, 64]), rng.choice([1, 2, 3, 4, 8, 16, 32, 64])
    i = rng.randint(0, 8)
    # j near the diagonal, where the answer changes
    j_diag = ((i + 1) * block_m) // block_n
    return {"i": i, "j": max(0, j_diag + rng.randint(-2, 2)), "block_m": block_m, "block_n": block_n}


causal_tile_skip = Exercise(
    title="which causal tiles can be skipped",
    task="""
        Write `my_skipped(i, j, block_m, block_n) -> bool`.
        Tile (i, j) holds the scores of query rows i·block_m ... (i+1)·block_m - 1 against key
        columns j·block_n ... (j+1)·block_n - 1. Under a causal mask, query r sees key c only when
        c <= r. Return True exactly when *no* score in the tile is visible, so the kernel never
        needs to load K_j and V_j for this Q block.
    """,
    reference=_skip_reference,
    edge_cases=[
        {"i": 0, "j": 0, "block_m": 4, "block_n": 4},
        {"i": 0, "j": 1, "block_m": 4, "block_n": 4},
        {"i": 1, "j": 1, "block_m": 64, "block_n": 128},
        {"i": 0, "j": 1, "block_m": 64, "block_n": 32},
        {"i": 0, "j": 2, "block_m": 64, "block_n": 32},
        {"i": 2, "j": 5, "block_m": 2, "block_n": 1},
        {"i": 2, "j": 6, "block_m": 2, "block_n": 1},
    ],
    random_case=_random_skip_case,
    n_random=60,
    hints=[
        "The tile's smallest key index is j·block_n; its largest query index is (i+1)·block_m - 1.",
        "Nothing is visible when even the smallest key comes after the largest query.",
    ],
)

# --- 3. the missing line of the Triton kernel -----------------------------------------------------------


def _rescale_solution(acc, l_i, alpha):
    # the same line as flash_triton.rescale_accumulator
    return acc * alpha[:, None], l_i * alpha


def _probe(line: Callable[..., Any]) -> None:
    """Call ``line`` once on small torch tensors, so a stub's NotImplementedError surfaces here
    (inside the kernel the interpreter would wrap it). Other errors are left to the kernel run:
    a learner may use triton.language functions that need the kernel."""
    try:
        line(acc=torch.ones(2, 3), l_i=torch.ones(2), alpha=torch.full((2,), 0.5))
    except NotImplementedError:
        raise
    except Exception:  # noqa: BLE001 — judged by running the kernel
        pass


def run_kernel_with_line(line: Callable[..., Any], q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                         causal: bool) -> torch.Tensor:
    """The forward kernel's output with ``line`` as its rescaling step (16×16 tiles, so several per row).

    Raises:
        RuntimeError: the triton package is not installed (the kernel cannot run here).
    """
    if not triton_available():
        raise RuntimeError("this exercise runs your line inside the Triton kernel, and the triton package is "
                           "not installed here; the other exercises of the chapter need no Triton")
    from course_lib.attention.flash_triton import KernelConfig, _launch_flash_attention_fwd  # needs triton

    _probe(line)
    if triton_mode() == "native":
        import triton

        line = line if isinstance(line, triton.JITFunction) else triton.jit(line)
    dev = triton_device()
    o, _ = _launch_flash_attention_fwd(q.to(dev), k.to(dev), v.to(dev), causal, 1 / math.sqrt(q.shape[-1]),
                                       KernelConfig(16, 16), rescale=line)
    return o.cpu()


def _attention_reference(q, k, v, causal):
    return attention_ref(q, k, v, causal)


def _random_kernel_case(rng: random.Random) -> dict[str, Any]:
    t = rng.randint(17, 48)
    q, k, v = (randn(rng, 1, 1, t, 16, dtype=torch.float32) * 2 for _ in range(3))
    return {"q": q, "k": k, "v": v, "causal": rng.random() < 0.5}


def _ramp(start: float, end: float, t: int) -> torch.Tensor:
    """Evenly spaced values as a ``Tensor[1, 1, t, 16]``: scores that rise along the row, so the
    running max changes from tile to tile."""
    return torch.linspace(start, end, t * 16).reshape(1, 1, t, 16)


def _close(got: Any, expected: torch.Tensor) -> bool:
    return (isinstance(got, torch.Tensor) and got.shape == expected.shape
            and torch.allclose(got, expected, rtol=1e-4, atol=1e-5))


@dataclass
class KernelLineExercise(Exercise):
    """An exercise whose answer is one line of a kernel: :meth:`check` runs the kernel with it.

    ``reference`` computes the expected output from the case; ``run_kernel(line, **case)`` runs
    the kernel with the learner's ``line`` plugged in; ``line_solution`` is what
    :meth:`solution` shows.
    """

    run_kernel: Callable[..., Any] | None = None  # (line, **case) -> the kernel's output
    line_solution: Callable[..., Any] | None = None  # the correct line, shown by solution()

    def check(self, fn: Callable[..., Any], seed: int = 0, quiet: bool = False) -> Result:  # noqa: D102
        if not callable(fn):
            raise TypeError(f"fn must be a function; got {type(fn).__name__}: {fn!r}")
        if not triton_available():  # nothing to judge: say why, do not blame the learner's line
            result = Result(False, False, f"… {self.title}: skipped — this check runs your line inside the "
                            "Triton kernel, and the triton package is not installed here (macOS, Linux on ARM). "
                            "Try it on Colab or a Linux x86-64 machine.")
            if not quiet:
                print(result.message)
            return result
        if self.run_kernel is None:
            raise TypeError(f"{self.title}: run_kernel is not set")
        plugged = functools.partial(self.run_kernel, fn)
        return super().check(plugged, seed, quiet)

    def solution(self) -> str:  # noqa: D102
        if self.line_solution is None:
            raise TypeError(f"{self.title}: line_solution is not set")
        source = textwrap.dedent(inspect.getsource(self.line_solution))
        print(source)
        return source


kernel_rescale_line = KernelLineExercise(
    title="the rescaling line of the Triton kernel",
    task="""
        In `_flash_attention_fwd_kernel` each K/V tile may raise a row's running max from m_old to
        m_new. The kernel computes alpha = exp(m_old - m_new) (one per row, Tensor[BLOCK_M]) and then
        runs *your* line before adding the new tile:
            acc, l_i = my_rescale(acc, l_i, alpha)
            l_i += sum(p);  acc += p @ V_j
        Write `my_rescale(acc, l_i, alpha) -> (acc, l_i)`, where acc is the (BLOCK_M, BLOCK_D)
        un-normalised output and l_i the (BLOCK_M,) running sum, using only arithmetic and
        indexing (it runs inside the Triton kernel). The checker runs the kernel with your line
        and compares its output with attention_ref.
    """,
    reference=_attention_reference,
    run_kernel=run_kernel_with_line,
    line_solution=_rescale_solution,
    edge_cases=[
        {"q": torch.ones(1, 1, 1, 16), "k": torch.ones(1, 1, 1, 16), "v": torch.arange(16.0).reshape(1, 1, 1, 16),
         "causal": False},
        {"q": _ramp(-2, 2, 40), "k": _ramp(-2, 2, 40), "v": _ramp(0, 1, 40), "causal": False},
        {"q": _ramp(2, -2, 33), "k": _ramp(-3, 3, 33), "v": _ramp(1, 0, 33), "causal": True},
    ],
    random_case=_random_kernel_case,
    n_random=3,
    equal=_close,
    hints=[
        "acc and l_i were summed relative to m_old; the new tile is relative to m_new. "
        "exp(s - m_old) · exp(m_old - m_new) = exp(s - m_new).",
        "Both acc and l_i need the factor alpha; acc has a second dim, so alpha needs `[:, None]`.",
    ],
)
