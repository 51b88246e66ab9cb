#!/usr/bin/env python3
"""The course's two commands, and the maintainer's few more. Needs only Python >= 3.10.

    python3 course.py lab         # set up .venv, open JupyterLab on chapter 0
    python3 course.py test        # set up .venv, run the full suite (unit tests + every notebook)

    python3 course.py test tests/test_autograd.py notebooks/01_autograd.ipynb   # some of it
    python3 course.py notebooks [01_autograd ...]   # rebuild .ipynb from .py and execute them
    python3 course.py doctor      # what this machine can run
    python3 course.py readme      # refresh the README's generated tables
    python3 course.py freeze      # record the exact tested versions in constraints.txt
    python3 course.py gpu-report  # on a CUDA machine: check and measure the GPU half (results/gpu/)

The virtual environment lives in ``.venv`` (``COURSE_VENV`` chooses another folder). Set-up is
skipped when nothing it installs from has changed since the last one.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("COURSE_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
INSTALL_INPUTS = ("pyproject.toml", "requirements.txt", "requirements-lab.txt", "requirements-test.txt")


def run(*cmd: str | Path, **kw) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run(list(map(str, cmd)), check=True, cwd=ROOT, **kw)


def setup() -> None:
    """Create ``.venv`` and install the course with JupyterLab and the test tools, unless already current."""
    if sys.version_info < (3, 10):  # noqa: UP036 - course.py is what an older python3 runs first
        sys.exit(f"The course needs Python >= 3.10; this is {sys.version.split()[0]}.")
    stamp = VENV / ".course-installed"
    digest = hashlib.sha256(b"".join((ROOT / f).read_bytes() for f in INSTALL_INPUTS)).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and PYTHON.exists():
        return
    if not PYTHON.exists():
        print(f"Creating a virtual environment in {VENV} ...", flush=True)
        venv.create(VENV, with_pip=True)
    print("Installing the course and its dependencies (a few minutes the first time) ...", flush=True)
    run(PYTHON, "-m", "pip", "install", "--disable-pip-version-check", "-e", ".[lab,test]")
    stamp.write_text(digest)


def main(argv: list[str]) -> None:
    command, args = (argv[0], argv[1:]) if argv else ("help", [])
    if command in ("help", "-h", "--help"):
        print(__doc__)
        return
    setup()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    if command == "lab":
        # Learners see the notebooks only: the server's root is notebooks/, where the jupytext
        # .py sources (maintainers edit those) and nbval's sanitize.cfg are hidden. No news
        # fetched and no update check: nothing covers chapter 0 on first launch.
        import json

        hidden = ["__pycache__", "*.pyc", "*.pyo", ".DS_Store", "*~", "*.py", "sanitize.cfg"]
        # .jupyter/labconfig sets JupyterLab's defaults: never ask about news (the question is a
        # setting; news_url=None alone does not stop it).
        config_path = os.pathsep.join(p for p in (str(ROOT / ".jupyter"), env.get("JUPYTER_CONFIG_PATH")) if p)
        as_root = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
        run(BIN / "jupyter", "lab", "00_start_here.ipynb", f"--ServerApp.root_dir={ROOT / 'notebooks'}",
            f"--ContentsManager.hide_globs={json.dumps(hidden)}", "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", *as_root, *args,
            env={**env, "JUPYTER_CONFIG_PATH": config_path})
    elif command == "test":
        workers = os.environ.get("COURSE_TEST_WORKERS", "2")
        run(PYTHON, "-m", "pytest", "-n", workers, "--dist", "loadfile", *args, env=env)
    elif command == "gpu-report":
        run(PYTHON, "-m", "course_lib.gpu_report", *args, env=env)
    elif command in ("notebooks", "doctor", "readme", "freeze"):
        run(PYTHON, "-m", "course_lib", command, *args, env=env)
    else:
        sys.exit(f"unknown command {command!r}; see `python3 course.py help`")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except subprocess.CalledProcessError as err:
        sys.exit(err.returncode)
    except KeyboardInterrupt:
        sys.exit(130)
