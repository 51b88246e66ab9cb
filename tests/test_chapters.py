"""Every chapter in the catalogue has its parts, and the README's generated tables are current."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib import _notebooks
from course_lib.chapters import CHAPTERS, by_notebook

ROOT = _notebooks.ROOT


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.notebook)
def test_chapter_has_its_parts(chapter):
    for suffix in (".py", ".ipynb"):
        assert (ROOT / "notebooks" / f"{chapter.notebook}{suffix}").exists(), f"{chapter.notebook}{suffix} missing"
    module = importlib.import_module(chapter.module)
    assert module.__doc__, f"{chapter.module} needs a module docstring (the concept card)"
    short = chapter.module.split(".")[-1]
    assert list((ROOT / "tests").glob(f"test_{short}*.py")), f"tests/test_{short}.py missing"
    source = (ROOT / "notebooks" / f"{chapter.notebook}.py").read_text()
    assert chapter.module in source, f"{chapter.notebook} must import from {chapter.module}"


def test_every_notebook_is_in_the_catalogue():
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")):
        by_notebook(path.stem)


def test_chapters_are_in_course_order():
    numbers = [c.number for c in CHAPTERS]
    assert numbers == sorted(set(numbers)) and numbers[0] == 0


def test_readme_tables_are_current():
    # In a fresh interpreter, as `python3 course.py readme` runs: the registry a test worker holds
    # depends on which tests ran in it before (test order), the README's must not.
    code = "import sys; from course_lib.__main__ import refresh_readme; sys.exit(0 if refresh_readme(check=True) else 1)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, (
        "README.md's generated tables are stale: run `python3 course.py readme`\n" + done.stderr[-2000:])


def test_unknown_notebook_is_a_clear_error():
    with pytest.raises(LookupError, match="no chapter has notebook '99_nope'"):
        by_notebook("99_nope")


def test_readme_states_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert "python3 course.py lab" in text and "python3 course.py test" in text
    assert "python3 course.py test" in (ROOT / ".ci" / "run").read_text()


def test_binder_opens_chapter_zero():
    assert Path(ROOT / "binder" / "requirements.txt").exists() and Path(ROOT / "binder" / "postBuild").exists()
