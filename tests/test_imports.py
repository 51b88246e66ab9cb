"""Dependencies point the right way: a chapter imports without matplotlib, ipywidgets or Triton.

Widget modules import matplotlib and ipywidgets inside their drawing and widget functions, and
Triton kernel modules load on first use (:mod:`course_lib._lazy`), so ``import course_lib.<chapter>``
works on a machine without Triton (macOS, Linux on ARM) and costs no plotting stack.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from course_lib.chapters import CHAPTERS

HEAVY = ("matplotlib", "ipywidgets", "triton")
PACKAGES = sorted({c.module for c in CHAPTERS} | {"course_lib.lm", "course_lib.timing", "course_lib.source"})


@pytest.mark.parametrize("module", PACKAGES)
def test_importing_a_chapter_loads_no_plotting_widgets_or_triton(module):
    code = f"import sys, {module}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"import {module} loaded {out}"


def test_no_chapter_imports_a_widget_or_experiment_module_of_another():
    """Imports point down: chapter A may use chapter B's concepts, never B's views or harnesses."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "course_lib"
    bad = []
    for path in root.glob("*/*.py"):
        chapter = path.parent.name
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("course_lib."):
                parts = node.module.split(".")
                if len(parts) > 2 and parts[1] != chapter and (parts[2].endswith("_view") or parts[2] == "experiment"):
                    bad.append(f"{path.relative_to(root)} imports {node.module}")
    assert not bad, bad
