"""Binder's environment, built the way Binder builds it, runs chapter 0.

mybinder.org's repo2docker installs ``binder/requirements.txt``, runs ``binder/postBuild`` from
the repository root, and opens the ``labpath`` of the launch link. This test does the same in a
fresh virtual environment — as far as this machine allows: PyTorch's CPU wheel index is not
reachable here, so its ``--extra-index-url`` line is dropped and torch comes from the default
index (on Binder the CPU index supplies it). Then it executes chapter 0 with that environment's
own Jupyter and kernel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib import _notebooks

ROOT = _notebooks.ROOT
pytestmark = pytest.mark.slow


def test_binder_launch_link_opens_chapter_zero():
    links = _notebooks.launch_links("00_start_here")
    assert "mybinder.org/v2/gh/" in links and "labpath=notebooks%2F00_start_here.ipynb" in links
    assert (ROOT / "binder" / "runtime.txt").read_text().startswith("python-3.")


def test_binder_requirements_ask_for_cpu_wheels():
    text = (ROOT / "binder" / "requirements.txt").read_text()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in text
    assert os.access(ROOT / "binder" / "postBuild", os.X_OK)


def test_binder_bounds_are_the_course_bounds():
    course = {line.split(">=")[0]: line for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line.startswith(("torch>=", "torchvision>="))}
    binder = [line for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines()
              if line.startswith(("torch", "torchvision"))]
    assert sorted(binder) == sorted(course.values()), (binder, course)


def test_fresh_binder_environment_runs_chapter_zero(tmp_path: Path):
    env_dir = tmp_path / "binder-env"
    subprocess.run([sys.executable, "-m", "venv", env_dir], check=True)
    bin_dir = env_dir / "bin"
    reachable = [line for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines()
                 if not line.startswith(("--extra-index-url", "--index-url"))]
    (tmp_path / "requirements.txt").write_text("\n".join(reachable) + "\n")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(env_dir)}
    env.pop("PYTHONPATH", None)
    pip = [bin_dir / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", tmp_path / "requirements.txt"], check=True, env=env, capture_output=True)
    subprocess.run(["bash", ROOT / "binder" / "postBuild"], check=True, env=env, cwd=ROOT, capture_output=True)

    notebook = tmp_path / "00_start_here.ipynb"
    shutil.copy(ROOT / "notebooks" / "00_start_here.ipynb", notebook)
    subprocess.run([bin_dir / "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
                    "--ExecutePreprocessor.kernel_name=python3", notebook],
                   check=True, env=env, cwd=tmp_path, capture_output=True)
    executed = json.loads(notebook.read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors, errors
    texts = (o.get("text", "") for c in executed["cells"] for o in c.get("outputs", []))
    outputs = "".join(t if isinstance(t, str) else "".join(t) for t in texts)
    assert "course_lib doctor" in outputs and "not attempted yet" in outputs  # first and last cells ran
