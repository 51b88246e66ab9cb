"""The exercises of chapter 9 accept right answers and reject wrong ones, naming the input."""

from __future__ import annotations

import pytest
import torch

from course_lib.attention.exercises import causal_tile_skip, kernel_rescale_line, merge_softmax_states
from course_lib.runtime import triton_available


def test_merge_exercise():
    def right(m1, l1, acc1, m2, l2, acc2):  # written differently from the reference: via logaddexp
        m = torch.maximum(m1, m2)
        safe = torch.where(torch.isinf(m), 0.0, m).to(m.dtype)
        w1, w2 = torch.exp(m1 - safe), torch.exp(m2 - safe)
        return m, torch.exp(torch.logaddexp(torch.log(l1) + m1, torch.log(l2) + m2) - safe), \
            w1[:, None] * acc1 + w2[:, None] * acc2

    def no_rescale(m1, l1, acc1, m2, l2, acc2):
        return torch.maximum(m1, m2), l1 + l2, acc1 + acc2

    def nan_on_empty(m1, l1, acc1, m2, l2, acc2):
        m = torch.maximum(m1, m2)
        a, b = torch.exp(m1 - m), torch.exp(m2 - m)
        return m, a * l1 + b * l2, a[:, None] * acc1 + b[:, None] * acc2

    assert merge_softmax_states.check(right, quiet=True)
    for wrong in (no_rescale, nan_on_empty):
        result = merge_softmax_states.check(wrong, quiet=True)
        assert not result and result.attempted and result.failing_case is not None
        assert "m1 = tensor" in result.message
    result = merge_softmax_states.check(nan_on_empty, quiet=True)
    assert "edge case" in result.message or "random input" in result.message


def test_causal_skip_exercise():
    assert causal_tile_skip.check(lambda i, j, block_m, block_n: j * block_n >= (i + 1) * block_m, quiet=True)
    for wrong in (lambda i, j, block_m, block_n: j > i,  # only right when block_m == block_n
                  lambda i, j, block_m, block_n: j * block_n > (i + 1) * block_m):  # off by one
        result = causal_tile_skip.check(wrong, quiet=True)
        assert not result and result.failing_case is not None and "block_m = " in result.message


@pytest.mark.skipif(not triton_available(), reason="runs the Triton kernel; tests/test_attention_no_triton.py")
def test_kernel_line_exercise_runs_the_kernel():
    def right(acc, l_i, alpha):
        scaled = acc * alpha[:, None]
        return scaled, alpha * l_i

    def stub(acc, l_i, alpha):
        raise NotImplementedError  # your code here

    def forgot_the_sum(acc, l_i, alpha):
        return acc * alpha[:, None], l_i

    def no_rescaling(acc, l_i, alpha):
        return acc, l_i

    # (named functions, not lambdas: on a GPU triton.jit compiles them from their source)
    assert kernel_rescale_line.check(right, quiet=True)
    for wrong in (forgot_the_sum, no_rescaling):
        result = kernel_rescale_line.check(wrong, quiet=True)
        assert not result and result.attempted and "q = tensor" in result.message
    result = kernel_rescale_line.check(stub, quiet=True)
    assert not result and not result.attempted and "not attempted" in result.message
    assert "alpha[:, None]" in kernel_rescale_line.solution()


# --- the worked solutions: instructive, and equal to the library ------------------------------------------


def _called_names(fn) -> set[str]:
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    return {node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute)}


def test_no_solution_merely_calls_the_function_it_teaches():
    solutions = {  # what solution() shows -> the functions the exercise teaches
        merge_softmax_states.reference: {"merge_states", "block_state", "online_softmax"},
        causal_tile_skip.reference: {"causal_tile_skipped", "tile_kind", "tile_schedule"},
        kernel_rescale_line.line_solution: {"rescale_accumulator"},
    }
    for solution, taught in solutions.items():
        assert not _called_names(solution) & taught, solution.__name__


def test_solutions_equal_the_library():
    from course_lib.attention import SoftmaxState, causal_tile_skipped, merge_states

    for case in merge_softmax_states.cases():
        s = merge_states(SoftmaxState(case["m1"], case["l1"], case["acc1"]),
                         SoftmaxState(case["m2"], case["l2"], case["acc2"]))
        for got, expected in zip(merge_softmax_states.reference(**case), (s.m, s.l, s.acc)):
            torch.testing.assert_close(got, expected, atol=1e-12, rtol=1e-12)
    for case in causal_tile_skip.cases():
        assert causal_tile_skip.reference(**case) == causal_tile_skipped(**case)
