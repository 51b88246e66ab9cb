"""``python -m course_lib doctor``: what this machine is and what the course will do on it.

Reports versions (Python, torch, torchvision, triton, ipywidgets), the device and GPU (name,
compute capability, memory), bf16 support, whether Triton kernels run natively or in the
interpreter, and — from :data:`course_lib.chapters.CHAPTERS` — which chapter sections fall back
or are skipped here. Notebook: ``00_start_here``. Tests: ``tests/test_runtime.py``.
"""

from __future__ import annotations

import importlib.metadata
import platform
from dataclasses import dataclass, field

from course_lib import runtime
from course_lib.chapters import CHAPTERS, Fallback, Need


def _version(package: str) -> str:
    try:
        version = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
    if package == "triton" and not runtime.triton_available():
        return f"{version} (installed but not importable)"
    return version


def has(need: Need) -> bool:
    """Whether this machine provides ``need`` (see :class:`course_lib.chapters.Fallback`)."""
    import torch

    cuda = runtime.device().type == "cuda"
    return {
        "cuda": cuda,
        "triton": runtime.triton_mode() != "unavailable",
        "triton-native": runtime.triton_mode() == "native",
        "bf16": runtime.bf16_supported(),
        "multi-gpu": cuda and torch.cuda.device_count() > 1,
    }[need]


@dataclass
class Report:
    versions: dict[str, str]  # package -> version
    device: str  # "cuda" or "cpu"
    gpu: runtime.GpuInfo | None
    bf16: bool
    triton_mode: str
    fallbacks: list[str] = field(default_factory=list)  # one line per section that falls back here

    def __str__(self) -> str:
        lines = ["course_lib doctor", ""]
        lines += [f"  {name:<11} {version}" for name, version in self.versions.items()]
        gpu = "none" if self.gpu is None else (
            f"{self.gpu.name} (compute capability {self.gpu.capability[0]}.{self.gpu.capability[1]}, "
            f"{self.gpu.memory_gib:.0f} GiB)")
        lines += ["", f"  device      {self.device}", f"  GPU         {gpu}",
                  f"  bf16 math   {'native' if self.bf16 else 'emulated on CPU (slow, still correct)'}",
                  f"  Triton      {self.triton_mode}"]
        if self.triton_mode == "unavailable":
            lines += ["", "  Without Triton (macOS, Windows, Linux on ARM) every chapter runs; only the Triton",
                      '  kernel sections are skipped, and flash_attention(impl="torch") runs the same algorithm.']
        lines += ["", "Sections that fall back on this machine:" if self.fallbacks else
                  "Every chapter section runs as written on this machine."]
        lines += [f"  - {line}" for line in self.fallbacks]
        return "\n".join(lines)


def fallbacks_here() -> list[tuple[str, Fallback]]:
    """``(notebook, fallback)`` for every chapter section that falls back on this machine.

    Where a section lists several fallbacks (most severe first), the first whose need is missing
    is the one that happens: without Triton, the Triton kernel is skipped, not interpreted.
    """
    chosen: dict[tuple[str, str], Fallback] = {}
    for chapter in CHAPTERS:
        for f in chapter.fallbacks:
            if not has(f.needs):
                chosen.setdefault((chapter.notebook, f.section), f)
    return [(notebook, f) for (notebook, _), f in chosen.items()]


def report() -> Report:
    """Inspect this machine; see the module docstring."""
    versions = {"python": platform.python_version()}
    versions |= {p: _version(p) for p in ("torch", "torchvision", "triton", "ipywidgets", "jupyterlab")}
    fallbacks = [f"{notebook}: {f.section} (needs {f.needs}) → {f.otherwise}" for notebook, f in fallbacks_here()]
    problem = runtime.triton_problem()
    mode = runtime.triton_mode() if problem is None else f"{runtime.triton_mode()}, but unusable: {problem}"
    return Report(versions, runtime.device().type, runtime.gpu_info(), runtime.bf16_supported(), mode, fallbacks)
