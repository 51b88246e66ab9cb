"""Notebook tooling: the ``.py`` ⇄ ``.ipynb`` pairs, their source hash, and execution.

Each chapter's source of truth is ``notebooks/NN_slug.py`` in jupytext's percent format. The
paired ``.ipynb`` is *generated*: :func:`build` reads the ``.py``, executes it top to bottom
with nbclient and writes the ``.ipynb`` with its outputs and, in its metadata, the SHA-256 of
the cell types and sources it ran (:func:`source_hash`). ``tests/test_notebooks.py`` uses the
same functions to fail when a pair drifts or when outputs come from other sources than the
current ones.

Used by ``course.py notebooks``; not part of the course's public API.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
HASH_KEY = "source_sha256"
LIBRARY_KEY = "library_sha256"  # {path relative to the repository: SHA-256} of the course_lib files it ran
# Run after the notebook's own cells by :func:`build` (and removed again): which course_lib files
# the kernel loaded, so a change to any of them makes the notebook's outputs stale.
_LOADED_FILES_CELL = (
    "import json as _json, sys as _sys\n"
    "print(_json.dumps(sorted({m.__file__ for n, m in list(_sys.modules.items())\n"
    "                          if n.split('.')[0] == 'course_lib' and getattr(m, '__file__', None)})))"
)


def repository_and_version() -> tuple[str, str]:
    """The GitHub ``owner/name`` and the package version, read from ``pyproject.toml``."""
    text = (ROOT / "pyproject.toml").read_text()
    repo = re.search(r'^repository\s*=\s*"([^"]+)"', text, re.M)
    version = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
    assert repo and version, "pyproject.toml must set [project].version and [tool.course].repository"
    return repo.group(1), version.group(1)


def colab_cell() -> str:
    """The first code cell of every notebook: on Colab only, install this course's version.

    Colab's own packages stay exactly as they are: replacing torch, ipywidgets 7 (the version
    Colab's front end renders) or the kernel's own packages under a running kernel breaks it. So
    the course goes in without its dependencies, and then its requirements are named *without
    versions*: pip installs those Colab lacks and leaves every one it has alone.
    ``tests/test_environments.py`` (``colab``) runs this cell on Colab's package list and checks
    that no pinned package changed.
    """
    repo, version = repository_and_version()
    return (
        "import sys  # On Colab only: install this course at this notebook's version."
        " GPU: Runtime > Change runtime type.\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        "    import importlib.metadata\n"
        "    import re\n"
        "    import subprocess\n"
        "\n"
        "    # The course without its dependencies, then its requirements by name only: pip adds what Colab\n"
        "    # lacks and leaves every package Colab has (torch, ipywidgets 7, the kernel) as it is.\n"
        '    pip = [sys.executable, "-m", "pip", "install", "-q"]\n'
        f'    subprocess.run([*pip, "--no-deps", "git+https://github.com/{repo}@v{version}"], check=True)\n'
        '    names = [re.sub(r"^([\\w.-]+)[^;]*", r"\\1", r)'
        ' for r in importlib.metadata.requires("course-lib") if "extra ==" not in r]\n'
        "    subprocess.run([*pip, *names], check=True)"
    )


def launch_links(notebook: str) -> str:
    """The Colab and Binder badges for ``notebooks/<notebook>.ipynb`` (markdown)."""
    repo, _ = repository_and_version()
    colab = f"https://colab.research.google.com/github/{repo}/blob/main/notebooks/{notebook}.ipynb"
    binder = f"https://mybinder.org/v2/gh/{repo}/main?labpath=notebooks%2F{notebook}.ipynb"
    return (f"[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab}) "
            f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder})")


def read_py(path: Path):
    """The notebook a ``.py`` source describes (no outputs)."""
    import jupytext

    return jupytext.read(path, fmt="py:percent")


def source_cells(nb) -> list[tuple[str, str]]:
    """``(cell_type, source)`` for every cell: what a pair must agree on."""
    return [(cell.cell_type, cell.source.strip()) for cell in nb.cells]


def source_hash(nb) -> str:
    """SHA-256 of the cell types and sources (outputs and metadata excluded)."""
    return hashlib.sha256(json.dumps(source_cells(nb)).encode()).hexdigest()


def recorded_hash(nb) -> str | None:
    """The hash :func:`build` stored when it last executed this notebook."""
    return nb.metadata.get("course", {}).get(HASH_KEY)


def file_hashes(paths: list[str]) -> dict[str, str]:
    """``{path: SHA-256 of the file}`` for paths relative to the repository ('missing' if gone)."""
    def digest(rel: str) -> str:
        path = ROOT / rel
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"

    return {rel: digest(rel) for rel in paths}


def recorded_library(nb) -> dict[str, str]:
    """The course_lib files (and their hashes) the notebook's last :func:`build` ran."""
    return dict(nb.metadata.get("course", {}).get(LIBRARY_KEY, {}))


def stale_library_files(nb) -> list[str]:
    """Recorded course_lib files whose content changed since the notebook was built."""
    recorded = recorded_library(nb)
    return sorted(rel for rel, sha in file_hashes(sorted(recorded)).items() if sha != recorded[rel])


def build(py_path: Path, timeout: int = 900) -> float:
    """Execute ``py_path`` top to bottom and write its ``.ipynb`` beside it; return seconds taken.

    Raises:
        nbclient.exceptions.CellExecutionError: a cell raised; no ``.ipynb`` is written.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = read_py(py_path)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.pop("jupytext", None)
    nb.cells.append(nbformat.v4.new_code_cell(_LOADED_FILES_CELL))
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(py_path.parent)}}).execute()
    elapsed = time.perf_counter() - start
    probe = nb.cells.pop()
    loaded = json.loads("".join(o.get("text", "") for o in probe.outputs if o.output_type == "stream"))
    library = sorted(str(Path(f).resolve().relative_to(ROOT)) for f in loaded
                     if Path(f).resolve().is_relative_to(ROOT))
    from course_lib.widgets import settle_progress_outputs

    settle_progress_outputs(nb)  # stored tqdm bars show their final state, not "0%| 0/150"
    nb.metadata["course"] = {HASH_KEY: source_hash(nb), LIBRARY_KEY: file_hashes(library),
                             "executed_seconds": round(elapsed, 1), "python": sys.version.split()[0]}
    nbformat.write(nb, py_path.with_suffix(".ipynb"))
    return elapsed
