"""course_lib.runtime and the doctor: one place decides the device and the Triton mode."""

import os
import subprocess
import sys

import torch

from course_lib import runtime
from course_lib.chapters import CHAPTERS
from course_lib.doctor import has, report


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
    expected = [f for c in CHAPTERS for f in c.fallbacks if not has(f.needs)]
    assert len(r.fallbacks) == len(expected)
    if runtime.device().type == "cpu":
        assert any("09_flash_attention" in line and "interpreter" in line for line in r.fallbacks)


def test_doctor_command_line():
    out = subprocess.run([sys.executable, "-m", "course_lib", "doctor"], check=True, capture_output=True, text=True).stdout
    assert out.startswith("course_lib doctor") and "torch" in out
