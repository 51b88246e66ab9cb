"""Where code runs: the device and the Triton mode, chosen in one place.

The course runs everywhere — a 2-core laptop, Binder, Colab with a GPU. Two decisions follow
from the machine, and every chapter takes them from here rather than deciding again:

* **device** — ``cuda`` when a CUDA GPU is present, else ``cpu``. ``COURSE_DEVICE=cpu`` forces
  the CPU on a GPU machine (useful to see what a learner without a GPU sees).
* **Triton mode** — Triton compiles kernels for GPUs only. Without one, Triton's interpreter
  (``TRITON_INTERPRET=1``) runs the same kernels on CPU tensors, slowly but exactly. Triton
  reads that variable when ``@triton.jit`` runs, i.e. when a kernel module is *imported*, so it
  must be set before any kernel module is imported. ``course_lib/__init__.py`` calls
  :func:`configure_triton` first thing, so importing anything from ``course_lib`` is enough.
  A value the user set themselves is respected. One order defeats this: ``import torchvision``
  imports ``triton.language`` (its ``@jit`` helpers such as ``tl.max`` are then compiled-mode
  functions), so importing torchvision *before* ``course_lib`` on a CPU leaves the interpreter
  unable to run any kernel. :func:`triton_problem` says so, and the Triton paths raise that
  message instead of Triton's "Cannot call @triton.jit'd outside of the scope of a kernel".

Notebook: ``00_start_here`` (the doctor's report). Tests: ``tests/test_runtime.py``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Literal

import torch

TritonMode = Literal["native", "interpreter", "unavailable"]


def _cuda_wanted() -> bool:
    return os.environ.get("COURSE_DEVICE", "").lower() != "cpu" and torch.cuda.is_available()


def configure_triton() -> None:
    """Switch on Triton's interpreter when there is no GPU, unless the user chose already.

    Idempotent; must run before any module with ``@triton.jit`` kernels is imported.
    """
    global _TRITON_IMPORTED_TOO_EARLY
    if "TRITON_INTERPRET" not in os.environ and not _cuda_wanted():
        os.environ["TRITON_INTERPRET"] = "1"
        _TRITON_IMPORTED_TOO_EARLY = "triton.language" in sys.modules


_TRITON_IMPORTED_TOO_EARLY = False  # set by configure_triton: triton.language came before the interpreter


def triton_problem() -> str | None:
    """Why Triton kernels cannot run in this process although triton is installed, or ``None``."""
    if _TRITON_IMPORTED_TOO_EARLY:
        return ("triton was imported (torchvision imports it) before course_lib switched on Triton's "
                "interpreter, so no kernel can run in this process: restart the kernel and import "
                "course_lib before torchvision, or use impl=\"torch\"")
    return None


@cache
def device() -> torch.device:
    """The device every chapter uses: ``cuda`` when present (and not overridden), else ``cpu``."""
    return torch.device("cuda" if _cuda_wanted() else "cpu")


def triton_available() -> bool:
    """Whether the ``triton`` package is importable here."""
    return importlib.util.find_spec("triton") is not None


def triton_mode() -> TritonMode:
    """How Triton kernels run here: natively on the GPU, in the interpreter, or not at all."""
    if not triton_available():
        return "unavailable"
    return "interpreter" if os.environ.get("TRITON_INTERPRET") == "1" else "native"


def triton_device() -> torch.device:
    """The device Triton kernels take their tensors on: the GPU natively, the CPU interpreted."""
    return torch.device("cpu") if triton_mode() == "interpreter" else device()


def bf16_supported() -> bool:
    """Whether bfloat16 matrix math runs natively on :func:`device` (CPUs emulate it).

    Natively means compute capability >= 8.0 (Ampere on): ``torch.cuda.is_bf16_supported()``
    alone also says yes on older GPUs such as Colab's T4, which only emulate bf16.
    """
    if device().type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return False


@dataclass(frozen=True)
class GpuInfo:
    name: str  # e.g. "NVIDIA H200"
    capability: tuple[int, int]  # CUDA compute capability, e.g. (9, 0)
    memory_gib: float  # total device memory


def gpu_info() -> GpuInfo | None:
    """The GPU :func:`device` runs on, or ``None`` on the CPU."""
    if device().type != "cuda":
        return None
    props = torch.cuda.get_device_properties(device())
    return GpuInfo(props.name, (props.major, props.minor), props.total_memory / 2**30)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the body on one torch thread and one BLAS thread; restore the counts afterwards.

    The course's models and ops are tiny: splitting them across threads costs more in
    synchronisation than it saves, and on a shared, busy CPU spin-waiting threads made steps
    10–60× slower in our measurements. Timings taken on one thread measure the code, not the load.
    """
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)
