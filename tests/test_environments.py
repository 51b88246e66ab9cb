"""The environment matrix: the course installed the way each kind of learner installs it.

Each entry builds a fresh virtual environment, installs the course as that learner would, and
executes every notebook under nbval (lax: only cells tagged ``nbval-check-output`` have their
output compared, as in the main suite):

* ``colab`` — Python 3.13 and Colab's packages pinned by ``envs/colab.txt``; then every
  notebook's first cell runs as it does on Colab (``course_lib._notebooks.colab_cell()``, pointed
  at this checkout instead of GitHub), and no package that was installed before may change.
* ``no_triton`` — Python 3.12 and today's stack (``pip install .``, newest versions),
  then Triton uninstalled as on macOS, Windows or Linux on ARM: the Triton sections must skip
  themselves. (With the suite itself on 3.11, the matrix covers every Python the course claims.)
* ``oldest`` — Python 3.10 and exactly the lower bounds of ``requirements.txt``: a bound there
  is a version this test runs.

Downloads are cached by pip (``~/.cache/pip``), so only the first run fetches the several-GB
torch wheels. An interpreter that is missing skips its entry, unless
``COURSE_REQUIRE_ENVIRONMENTS=1`` (``.ci/run`` sets it). Each entry prints its install and run
times (``pytest -s`` shows them); ``COURSE_ENVIRONMENTS_DIR=<folder>`` keeps the environments
there to look into afterwards.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from course_lib import _notebooks

ROOT = _notebooks.ROOT
ENVS = ROOT / "envs"
pytestmark = pytest.mark.slow

INSTALL_TIMEOUT = 1800  # seconds; a cold pip cache downloads ~4 GB of torch and CUDA wheels
RUN_TIMEOUT = 1800
# What the notebooks need to run under nbval, beyond the course itself.
NOTEBOOK_TOOLS = ("pytest>=8.0", "pytest-xdist>=3.5", "nbval>=0.11")


def interpreter(version: str) -> Path:
    """``python<version>`` from the PATH or pyenv; skips (or fails in CI) when absent."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(glob.glob(str(pyenv / "versions" / f"{version}.*" / "bin" / f"python{version}")))
    for candidate in filter(None, candidates):
        check = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"],
                               capture_output=True, text=True)
        if check.returncode == 0 and check.stdout.strip() == str(tuple(map(int, version.split(".")))):
            return Path(candidate)
    message = f"Python {version} is not installed (looked on the PATH and in {pyenv}/versions)"
    if os.environ.get("COURSE_REQUIRE_ENVIRONMENTS") == "1":
        pytest.fail(f"{message}, and COURSE_REQUIRE_ENVIRONMENTS=1")
    pytest.skip(message)


class Env:
    """A fresh virtual environment and the commands run in it, timed."""

    def __init__(self, path: Path, base_python: Path):
        if keep := os.environ.get("COURSE_ENVIRONMENTS_DIR"):  # keep them there to look into afterwards
            path = Path(keep) / path.name
            shutil.rmtree(path, ignore_errors=True)
        subprocess.run([base_python, "-m", "venv", path], check=True)
        self.path = path
        self.python = path / "bin" / "python"
        # Nothing of the outer test process leaks in: its course_lib, its Triton mode, its xdist worker.
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("PYTEST_", "COURSE_", "TRITON_")) and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        self.env |= {"VIRTUAL_ENV": str(path), "PATH": f"{path / 'bin'}{os.pathsep}{os.environ['PATH']}",
                     "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        self.seconds: dict[str, float] = {}

    def run(self, step: str, *args: str | Path, timeout: int = INSTALL_TIMEOUT) -> str:
        start = time.perf_counter()
        done = subprocess.run(list(map(str, args)), env=self.env, cwd=ROOT, capture_output=True, text=True,
                              timeout=timeout)
        self.seconds[step] = self.seconds.get(step, 0.0) + time.perf_counter() - start
        assert done.returncode == 0, f"{step}: {' '.join(map(str, args))}\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    def pip(self, step: str, *args: str | Path) -> str:
        return self.run(step, self.python, "-m", "pip", *args)

    def freeze(self) -> dict[str, str]:
        """``{normalised name: pip freeze line}`` of everything installed."""
        lines = self.pip("freeze", "freeze", "--all").splitlines()
        return {re.sub(r"[-_.]+", "-", re.split(r"\s*(?:==|@)\s*", line)[0]).lower(): line for line in lines if line}

    def run_notebooks(self) -> None:
        """Every notebook under nbval, with this repository's pytest settings (pyproject.toml)."""
        notebooks = sorted(map(str, (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")))
        start = time.perf_counter()
        done = subprocess.run([str(self.python), "-m", "pytest", "-q", "-n", "2", "--dist", "loadfile", *notebooks],
                              env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT)
        self.seconds["notebooks"] = time.perf_counter() - start
        self.report()
        assert done.returncode == 0, "notebooks failed here:\n" + "\n".join(nbval_failures(done.stdout))

    def report(self) -> None:
        times = ", ".join(f"{step} {seconds:.0f} s" for step, seconds in self.seconds.items())
        print(f"\n[environment {self.path.name}] {times}; total {sum(self.seconds.values()):.0f} s", flush=True)


def nbval_failures(output: str) -> list[str]:
    """``notebook::Cell N | the error it raised`` for each failing cell of an nbval run's output."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", output)
    failures, cell = [], "?"
    for line in text.splitlines():
        if heading := re.match(r"^_+ (notebooks/\S+::Cell \d+) _+$", line):
            cell = heading.group(1)
        elif re.match(r"^[A-Za-z_.]*(Error|Exception|Interrupt|Exit)\b: ?", line):
            failures.append(f"{cell} | {line[:300]}")
    summary = [line for line in text.splitlines() if re.match(r"^(FAILED |\d+ (failed|passed))", line)]
    return failures + summary or [text[-3000:]]


def pins(path: Path) -> dict[str, str]:
    """``{normalised name: version}`` of a pin list (``name==version`` lines, comments allowed)."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            out[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return out


def colab_python_version() -> str:
    match = re.search(r"^# python: (3\.\d+)$", (ENVS / "colab.txt").read_text(), re.M)
    assert match, "envs/colab.txt must name Colab's Python as '# python: 3.N'"
    return match.group(1)


def lower_bounds() -> list[str]:
    """``requirements.txt`` with every ``>=`` bound turned into ``==`` (markers kept)."""
    out = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            assert ">=" in line, f"requirements.txt: every requirement needs a lower bound; got {line!r}"
            out.append(line.replace(">=", "==", 1))
    return out


def local_colab_cell() -> str:
    """The Colab cell verbatim, on a pretend Colab, installing this checkout instead of GitHub."""
    repo, version = _notebooks.repository_and_version()
    url = f'"git+https://github.com/{repo}@v{version}"'
    cell = _notebooks.colab_cell()
    assert cell.count(url) == 1, "colab_cell() must install from GitHub at this version"
    pretend = "import sys, types\nsys.modules['google.colab'] = types.ModuleType('google.colab')\n"
    return pretend + cell.replace(url, repr(str(ROOT)))


# --- fast checks of the inputs, then the three entries ---------------------------------------


def test_pin_lists_and_bounds_agree():
    colab = pins(ENVS / "colab.txt")
    assert {"torch", "torchvision", "triton", "ipywidgets", "ipykernel", "numpy"} <= set(colab)
    bounds = {re.split(r"[=;\s]", line)[0].lower(): line.split("==")[1].split(";")[0].strip()
              for line in lower_bounds()}
    assert bounds["torch"] == colab["torch"] and bounds["torchvision"] == colab["torchvision"]
    assert bounds["ipywidgets"] == colab["ipywidgets"]  # the widgets must work on Colab's 7.7
    assert "jupyterlab" not in bounds and "ipykernel" not in bounds  # Colab and Binder bring their own


def test_colab(tmp_path: Path):
    env = Env(tmp_path / "colab", interpreter(colab_python_version()))
    pinned = pins(ENVS / "colab.txt")
    env.pip("install Colab's packages", "install", "-r", ENVS / "colab.txt")
    before = env.freeze()
    assert {name: before[name].split("==")[1] for name in pinned} == pinned

    env.run("install as the first cell does", env.python, "-c", local_colab_cell())
    after = env.freeze()
    changed = {name: (line, after.get(name)) for name, line in before.items() if after.get(name) != line}
    assert not changed, f"the Colab cell changed packages Colab had: {changed}"
    assert set(after) - set(before) == {"course-lib"}, set(after) - set(before)

    env.pip("install nbval", "install", "-c", ENVS / "colab.txt", *NOTEBOOK_TOOLS)
    assert {name: env.freeze()[name].split("==")[1] for name in pinned} == pinned, "nbval's install moved a pin"
    env.run_notebooks()


def test_no_triton(tmp_path: Path):
    env = Env(tmp_path / "no-triton", interpreter("3.12"))
    env.pip("install today's stack", "install", str(ROOT), *NOTEBOOK_TOOLS)
    env.pip("uninstall triton", "uninstall", "-y", "triton")
    env.run("check triton is gone", env.python, "-c",
            "import importlib.util, sys; sys.exit(importlib.util.find_spec('triton') is not None)")
    doctor = env.run("doctor", env.python, "-m", "course_lib", "doctor")
    assert "Triton      unavailable" in doctor and 'flash_attention(impl="torch")' in doctor, doctor
    env.run_notebooks()


def test_oldest(tmp_path: Path):
    env = Env(tmp_path / "oldest", interpreter("3.10"))
    (tmp_path / "lower-bounds.txt").write_text("\n".join(lower_bounds()) + "\n")
    env.pip("install the lower bounds", "install", "-c", tmp_path / "lower-bounds.txt", str(ROOT), *NOTEBOOK_TOOLS)
    installed = env.freeze()
    for line in lower_bounds():
        requirement = line.split(";")[0].strip()
        name = re.sub(r"[-_.]+", "-", requirement.split("==")[0]).lower()
        if name in installed:  # triton only where its marker holds
            assert installed[name].split("==")[1] == requirement.split("==")[1], installed[name]
    env.run_notebooks()
