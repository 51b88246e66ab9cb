"""Checked, not hoped: ruff (pyflakes, pycodestyle, import order, pyupgrade, bugbear) and mypy.

Both are configured in pyproject.toml and run here, so ``python3 course.py test`` (and CI) fails
on an unused import, a shadowed loop variable or a type error in ``course_lib/``.
"""

from __future__ import annotations

import subprocess
import sys

from course_lib import _notebooks

ROOT = _notebooks.ROOT


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *cmd], cwd=ROOT, capture_output=True, text=True)


def test_ruff_is_clean():
    done = _run("ruff", "check", "--no-fix", "course_lib", "tests", "benchmarks", "notebooks", "course.py")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_is_clean_on_course_lib():
    done = _run("mypy", "--no-incremental")
    assert done.returncode == 0, done.stdout + done.stderr
