"""course_lib.runtime and the doctor: one place decides the device and the Triton mode.

The tests at the end hide Triton, as on macOS, Windows or Linux on ARM where torch ships without
it: everything but the Triton kernels must still run, and the doctor must say what is skipped.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from course_lib import runtime
from course_lib.chapters import CHAPTERS
from course_lib.doctor import fallbacks_here, has, report

ROOT = Path(__file__).resolve().parent.parent


def _python(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "COURSE_DEVICE")}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_import_switches_on_the_interpreter_without_a_gpu():
    out = _python("import os, torch, course_lib; print(torch.cuda.is_available(), os.environ.get('TRITON_INTERPRET'))")
    cuda, mode = out.split()
    assert mode == ("None" if cuda == "True" else "1")


def test_a_users_own_setting_is_respected():
    assert _python("import os, course_lib; print(os.environ['TRITON_INTERPRET'])", TRITON_INTERPRET="0") == "0"
    assert _python("import course_lib.runtime as r; print(r.triton_mode())", TRITON_INTERPRET="0") == "native"


def test_course_device_cpu_forces_the_cpu():
    assert _python("import course_lib.runtime as r; print(r.device(), r.triton_mode())", COURSE_DEVICE="cpu") == "cpu interpreter"


def test_device_follows_cuda_availability():
    assert runtime.device().type == ("cuda" if torch.cuda.is_available() and os.environ.get("COURSE_DEVICE") != "cpu" else "cpu")
    assert (runtime.gpu_info() is None) == (runtime.device().type == "cpu")
    if runtime.device().type == "cpu":
        assert not runtime.bf16_supported() and runtime.triton_device().type == "cpu"


def test_bf16_supported_means_native_not_emulated(monkeypatch):
    asked = []

    def is_bf16_supported(including_emulation: bool = True) -> bool:  # a T4: emulation only
        asked.append(including_emulation)
        return including_emulation

    monkeypatch.setattr(runtime, "device", lambda: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    assert runtime.bf16_supported() is False and asked == [False]


def test_doctor_report_names_versions_device_and_fallbacks():
    r = report()
    text = str(r)
    for key in ("python", "torch", "torchvision", "triton", "ipywidgets"):
        assert key in r.versions and key in text
    assert r.versions["torch"] == torch.__version__.split("+")[0]
    assert f"device      {runtime.device().type}" in text and f"Triton      {runtime.triton_mode()}" in text
    sections = {(c.notebook, f.section) for c in CHAPTERS for f in c.fallbacks if not has(f.needs)}
    assert len(r.fallbacks) == len(sections)  # one line per section, however many of its needs are missing
    assert all(not has(f.needs) for _, f in fallbacks_here())
    if runtime.device().type == "cpu":
        assert any("09_flash_attention" in line and "interpreter" in line for line in r.fallbacks)


def test_doctor_command_line():
    out = subprocess.run([sys.executable, "-m", "course_lib", "doctor"], check=True, capture_output=True, text=True).stdout
    assert out.startswith("course_lib doctor") and "torch" in out


@pytest.mark.parametrize("chapter", [c for c in CHAPTERS if c.fallbacks], ids=lambda c: c.notebook)
def test_every_fallback_names_a_heading_of_its_notebook(chapter):
    source = (ROOT / "notebooks" / f"{chapter.notebook}.py").read_text()
    headings = {re.sub(r"^# #+ (\d+ · )?", "", line).strip() for line in source.splitlines() if line.startswith("# #")}
    for f in chapter.fallbacks:
        assert f.section in headings, f"{chapter.notebook} has no section {f.section!r}"


@pytest.fixture
def without_triton(tmp_path: Path) -> dict[str, str]:
    """An environment in which ``import triton`` fails as where it is not installed.

    A ``sitecustomize`` on PYTHONPATH puts ``None`` in ``sys.modules["triton"]`` at start-up, in
    every process started with it (notebook kernels and DDP workers included): ``import triton``
    then raises ModuleNotFoundError and ``importlib.util.find_spec("triton")`` returns None.
    """
    (tmp_path / "sitecustomize.py").write_text('import sys\nsys.modules["triton"] = None\n')
    clean = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "COURSE_DEVICE")}
    return {**clean, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}


WITHOUT_TRITON_CHECKS = """
import torch
try:
    import triton
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("triton is still importable")
import course_lib.attention as attention
from course_lib.doctor import report

q, k, v = torch.randn(3, 2, 3, 37, 24, dtype=torch.float64).unbind(0)
out = attention.flash_attention(q, k, v, causal=True, impl="torch")
assert torch.allclose(out, attention.attention_ref(q, k, v, causal=True))
try:
    attention.flash_attention(q, k, v, impl="triton")
except RuntimeError as err:
    assert 'impl="torch"' in str(err), err
else:
    raise AssertionError("impl='triton' ran without triton")
print(report())
"""


def _assert_reports_triton_skipped(text: str) -> None:
    assert text.startswith("course_lib doctor") and "Triton      unavailable" in text
    assert 'flash_attention(impl="torch") runs the same algorithm' in text
    nine = [line for line in text.splitlines() if "09_flash_attention: The Triton kernel" in line]
    assert len(nine) == 1 and "needs triton)" in nine[0] and "skipped" in nine[0], nine
    assert "interpreter" not in nine[0]


def test_without_triton_the_doctor_and_the_torch_attention_path_run(without_triton):
    out = subprocess.run([sys.executable, "-c", WITHOUT_TRITON_CHECKS], env=without_triton, cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout
    _assert_reports_triton_skipped(out)


def test_without_triton_the_doctor_command_line_runs(without_triton):
    out = subprocess.run([sys.executable, "-m", "course_lib", "doctor"], env=without_triton, cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout
    _assert_reports_triton_skipped(out)


@pytest.mark.parametrize("notebook", ["00_start_here", "09_flash_attention"])
def test_without_triton_the_notebook_runs(without_triton, notebook):
    """Chapter 0 whole; chapter 9 with its Triton sections skipping themselves (nbval, lax)."""
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", f"notebooks/{notebook}.ipynb"],
                         env=without_triton, cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]


def test_torchvision_imported_first_gives_a_clear_error_not_tritons():
    code = ("import torchvision.ops, torch, course_lib\n"
            "from course_lib import runtime\n"
            "from course_lib.attention import flash_attention\n"
            "q = torch.randn(1, 1, 5, 16)\n"
            "try:\n"
            "    flash_attention(q, q, q, impl='triton')\n"
            "except RuntimeError as err:\n"
            "    print('refused:', err)\n"
            "print(torch.allclose(flash_attention(q, q, q, impl='torch'), torch.softmax(q @ q.mT / 4, -1) @ q, atol=1e-6))")
    clean = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "COURSE_DEVICE")}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, "COURSE_DEVICE": "cpu"}, check=True,
                         capture_output=True, text=True).stdout
    assert "refused: triton was imported (torchvision imports it) before course_lib" in out
    assert out.strip().endswith("True")
