"""The README's layout map matches the tree: no listed path is missing, no core part unlisted."""

from __future__ import annotations

import re
import subprocess

from course_lib import _notebooks

ROOT = _notebooks.ROOT


def _layout_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Layout", 1)[1]
    return section.split("```", 2)[1]


def _named_paths(block: str) -> list[str]:
    """Every path the map names: the first word of a line, and words of the header line."""
    lines = [line for line in block.splitlines() if line.strip()]
    paths = lines[0].split()
    parent = ""
    for line in lines[1:]:
        word = line.split()[0]
        if not line.startswith(" "):
            parent = word if word.endswith("/") else ""
            paths.append(word)
        else:
            paths.append(parent + word)
    return paths


def _tracked_top_level() -> set[str]:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True).stdout.split()
    return {f.split("/")[0] + ("/" if "/" in f else "") for f in files}


def test_every_named_path_exists():
    missing = [p for p in _named_paths(_layout_block()) if not (ROOT / p.rstrip("/")).exists()]
    assert not missing, f"README's layout names paths that do not exist: {missing}"


def test_every_top_level_folder_and_core_module_is_named():
    named = set(_named_paths(_layout_block()))
    folders = {p for p in _tracked_top_level() if p.endswith("/") and p not in (".ci/", ".dev/")}  # named by file
    assert folders <= named, f"top-level folders missing from README's layout: {sorted(folders - named)}"
    core = {f"course_lib/{p.name}" for p in (ROOT / "course_lib").glob("*.py") if p.name != "__init__.py"}
    assert core <= named, f"core modules missing from README's layout: {sorted(core - named)}"
    assert re.search(r"^\.ci/run", _layout_block(), re.M) and ".dev/CONVENTIONS.md" in named
