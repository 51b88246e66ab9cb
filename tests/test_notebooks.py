"""Every notebook pair is in sync, executed top to bottom from its current sources, and clean.

nbval (configured in pyproject.toml) re-executes each ``.ipynb``; these tests check what nbval
cannot: that the ``.ipynb`` is the one its ``.py`` describes, that its committed outputs came
from running those very sources top to bottom, and the conventions every chapter follows.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from course_lib import _notebooks

PY_FILES = sorted(_notebooks.NOTEBOOKS.glob("[0-9][0-9]_*.py"))
IPYNB_FILES = sorted(_notebooks.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
NAMES = sorted({p.stem for p in PY_FILES} | {p.stem for p in IPYNB_FILES})
REBUILD = "rebuild it with `python3 course.py notebooks {}`"


def load(name: str):
    return nbformat.read(_notebooks.NOTEBOOKS / f"{name}.ipynb", as_version=4)


def test_there_are_notebooks():
    assert "00_start_here" in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_pair_exists(name):
    for suffix in (".py", ".ipynb"):
        assert (_notebooks.NOTEBOOKS / f"{name}{suffix}").exists(), f"notebooks/{name}{suffix} is missing"


@pytest.mark.parametrize("name", NAMES)
def test_pair_in_sync(name):
    py = _notebooks.source_cells(_notebooks.read_py(_notebooks.NOTEBOOKS / f"{name}.py"))
    ipynb = _notebooks.source_cells(load(name))
    assert len(py) == len(ipynb), f"{name}: {len(py)} cells in .py, {len(ipynb)} in .ipynb; " + REBUILD.format(name)
    for i, (a, b) in enumerate(zip(py, ipynb)):
        assert a == b, f"{name}: cell {i} differs between .py and .ipynb; " + REBUILD.format(name)


@pytest.mark.parametrize("name", NAMES)
def test_outputs_come_from_current_sources(name):
    nb = load(name)
    assert _notebooks.recorded_hash(nb) == _notebooks.source_hash(nb), (
        f"{name}.ipynb's outputs were not produced from its current sources; " + REBUILD.format(name))
    library = _notebooks.recorded_library(nb)
    assert any(path.startswith("course_lib/") for path in library), (
        f"{name}.ipynb records no course_lib files it ran; " + REBUILD.format(name))
    stale = _notebooks.stale_library_files(nb)
    assert not stale, (f"{name}.ipynb's outputs came from older versions of {stale}; " + REBUILD.format(name))
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1)), f"{name}: not executed top to bottom once: {counts}"
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            assert out.output_type != "error", f"{name}: cell {i} raised {out.get('ename')}"


@pytest.mark.parametrize("name", NAMES)
def test_conventions(name):
    nb = _notebooks.read_py(_notebooks.NOTEBOOKS / f"{name}.py")
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), f"{name}: starts with a title"
    assert _notebooks.launch_links(name) in nb.cells[0].source, f"{name}: title cell needs the Colab/Binder badges"
    assert code[0] == _notebooks.colab_cell(), (
        f"{name}: the first code cell must be the Colab install cell:\n{_notebooks.colab_cell()}")
    for i, src in enumerate(code):
        for line in src.splitlines():
            assert not re.match(r"\s*[%!]", line), f"{name}: code cell {i} uses an IPython magic: {line!r}"
    joined = "\n".join(code)
    assert "assert " in joined, f"{name}: key claims must be asserts"
    tagged = [c for c in nb.cells if "nbval-check-output" in c.metadata.get("tags", [])]
    assert tagged, f"{name}: tag at least one deterministic cell with nbval-check-output"


def test_colab_cell_pins_this_version():
    repo, version = _notebooks.repository_and_version()
    assert f"github.com/{repo}@v{version}" in _notebooks.colab_cell()


def test_hash_detects_a_changed_source():
    nb = load("00_start_here")
    before = _notebooks.source_hash(nb)
    nb.cells[-1].source += "\nchanged"
    assert _notebooks.source_hash(nb) != before


def test_library_change_makes_a_notebook_stale(tmp_path: Path, monkeypatch):
    source = tmp_path / "course_lib" / "mod.py"
    source.parent.mkdir()
    source.write_text("x = 1\n")
    monkeypatch.setattr(_notebooks, "ROOT", tmp_path)
    nb = nbformat.v4.new_notebook()
    nb.metadata["course"] = {_notebooks.LIBRARY_KEY: _notebooks.file_hashes(["course_lib/mod.py"])}
    assert _notebooks.stale_library_files(nb) == []
    source.write_text("x = 2\n")
    assert _notebooks.stale_library_files(nb) == ["course_lib/mod.py"]
    source.unlink()
    assert _notebooks.stale_library_files(nb) == ["course_lib/mod.py"]


def test_sync_check_detects_drift(tmp_path: Path):
    nb = _notebooks.read_py(_notebooks.NOTEBOOKS / "00_start_here.py")
    ipynb = load("00_start_here")
    ipynb.cells[3].source += "  # edited in JupyterLab"
    assert _notebooks.source_cells(nb) != _notebooks.source_cells(ipynb)
