"""Chapter 9 without the triton package (macOS, Linux on ARM): everything but the kernels works.

Each test runs a snippet in a fresh interpreter in which ``import triton`` fails, as where it is not
installed: ``sys.modules["triton"] = None`` makes the import raise ``ModuleNotFoundError`` and
``importlib.util.find_spec("triton")`` return ``None`` (what ``course_lib.runtime.triton_available``
asks). Issue 12 ("No Triton, no failure").
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_without_triton(snippet: str) -> str:
    code = 'import sys\nsys.modules["triton"] = None\n' + textwrap.dedent(snippet)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_torch_path_exercises_widget_and_benchmark_formula_need_no_triton():
    out = run_without_triton("""
        import torch
        import course_lib.attention as attention
        import course_lib.attention.benchmark as benchmark
        import course_lib.attention.exercises as exercises
        from course_lib.runtime import triton_available, triton_mode

        assert not triton_available() and triton_mode() == "unavailable"
        q, k, v = torch.randn(3, 1, 2, 19, 16, dtype=torch.float64).unbind(0)
        ref = attention.attention_ref(q, k, v, causal=True)
        assert torch.allclose(attention.flash_attention(q, k, v, causal=True, impl="torch"), ref)
        assert torch.allclose(attention.FlashAttention(causal=True, impl="torch")(q, k, v), ref)
        try:
            attention.flash_attention(q.float(), k.float(), v.float())
        except RuntimeError as err:
            assert 'impl="torch"' in str(err), err
        else:
            raise AssertionError("impl='triton' ran without triton")
        assert benchmark.attention_flops(1, 1, 4, 4) == 256
        assert attention.tiling_state().n_steps > 0
        def merge(m1, l1, acc1, m2, l2, acc2):
            return exercises._merge_solution(m1, l1, acc1, m2, l2, acc2)

        assert exercises.merge_softmax_states.check(merge, quiet=True)  # the other exercises run as usual

        def line(acc, l_i, alpha):
            return acc * alpha[:, None], l_i * alpha

        result = exercises.kernel_rescale_line.check(line, quiet=True)
        assert not result.attempted and "triton package is not installed" in result.message
        print(sorted(m for m in sys.modules if m.startswith("triton") and sys.modules[m] is not None))
    """)
    assert out.strip() == "[]"


@pytest.mark.slow
def test_notebook_09_runs_without_triton(tmp_path):
    """Chapter 9 top to bottom with triton hidden: the Triton cells print why they skip, the rest
    (torch path, IO model, decoding, widget state, exercises) runs and its asserts hold."""
    from course_lib import _notebooks

    nb = _notebooks.read_py(_notebooks.NOTEBOOKS / "09_flash_attention.py")
    code = "\n\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")
    script = tmp_path / "nb09.py"
    script.write_text(code)
    out = run_without_triton(f"""
        import matplotlib
        matplotlib.use("Agg")
        import runpy
        runpy.run_path({str(script)!r}, run_name="__main__")
    """)
    assert out.count("skipped: the triton package is not installed") == 3  # kernel, launcher, check
    assert "kernel, and the triton package is not installed here" in out  # exercise 3 says so too
    assert "equal to SDPA with the bottom-right mask" in out and "Triton mode: unavailable" in out
