"""The training corpus: Python's own standard library, read from this machine, split by file.

Every Python installation ships its standard library as source (``sysconfig.get_paths()["stdlib"]``),
~600 modules and ~11 MB once the test suites, ``idlelib``, ``lib2to3`` and installed packages are
left out — enough to train a small code model without downloading anything.

Split: files are sorted by their path relative to the stdlib root, and a file goes to
validation when the first byte of the SHA-1 of that path is below ``val_fraction * 256``. The
split is therefore deterministic, by file (no validation file leaks into training), and stable
when a file is added or removed. Files are joined with a ``\\n\\n`` separator into one byte
tensor per split.

Limitation: the corpus depends on the Python version (3.11 here); a checkpoint stores its own
validation slice (:func:`validation_slice`) so its loss can be re-checked on any machine.

Notebook: ``10_medusa``. Tests: ``tests/test_lm.py``.
"""

from __future__ import annotations

import hashlib
import sysconfig
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch

from course_lib import _checks
from course_lib._export import export

EXCLUDED_DIRS = ("test", "tests", "idlelib", "lib2to3", "site-packages", "dist-packages", "__pycache__")
SEPARATOR = b"\n\n"


@dataclass(frozen=True)
class Corpus:
    """The two splits of the corpus as flat byte tensors."""

    train: torch.Tensor  # Tensor[N_train] uint8, the training files joined
    val: torch.Tensor  # Tensor[N_val] uint8, the validation files joined
    train_files: tuple[str, ...]  # paths relative to the stdlib root, in order
    val_files: tuple[str, ...]  # paths relative to the stdlib root, in order


def stdlib_root() -> Path:
    """The directory of this interpreter's standard library source."""
    return Path(sysconfig.get_paths()["stdlib"])


def _is_val(relpath: str, val_fraction: float) -> bool:
    return hashlib.sha1(relpath.encode()).digest()[0] < val_fraction * 256


@cache
def _load(root: str, val_fraction: float) -> Corpus:
    base = Path(root)
    files = sorted(
        p.relative_to(base).as_posix()
        for p in base.rglob("*.py")
        if not any(part in EXCLUDED_DIRS for part in p.relative_to(base).parts)
    )
    if not files:
        raise FileNotFoundError(f"no Python files found under {base}; is the standard library source installed?")
    splits: dict[bool, list[bytes]] = {False: [], True: []}
    names: dict[bool, list[str]] = {False: [], True: []}
    for rel in files:
        is_val = _is_val(rel, val_fraction)
        splits[is_val].append((base / rel).read_bytes())
        names[is_val].append(rel)

    def join(chunks: list[bytes]) -> torch.Tensor:
        return torch.frombuffer(bytearray(SEPARATOR.join(chunks)), dtype=torch.uint8)

    return Corpus(join(splits[False]), join(splits[True]), tuple(names[False]), tuple(names[True]))


@export("lm.load_corpus")
def load_corpus(val_fraction: float = 0.05, root: str | Path | None = None) -> Corpus:
    """Read the standard library's source and split it into train and validation by file.

    Args:
        val_fraction: the share of files (by hash of their path) held out for validation.
        root: the directory to read; default :func:`stdlib_root`.

    Returns:
        A :class:`Corpus` (cached: the second call is free).

    Raises:
        ValueError: ``val_fraction`` outside (0, 0.5].
        FileNotFoundError: no ``.py`` files under ``root``.
    """
    _checks.real("val_fraction", val_fraction, minimum=0.0, maximum=0.5, open_min=True)
    return _load(str(stdlib_root() if root is None else Path(root)), float(val_fraction))


@export("lm.validation_slice")
def validation_slice(data: torch.Tensor, n_windows: int, length: int) -> torch.Tensor:
    """``n_windows`` evenly spaced windows of ``length`` tokens from ``data`` (deterministic).

    Args:
        data: Tensor[N] of byte tokens.
        n_windows: how many windows.
        length: tokens per window (a window of ``T + 1`` gives ``T`` next-token targets).

    Returns:
        Tensor[n_windows, length] of dtype long.

    Raises:
        ValueError: ``data`` shorter than ``length``.
    """
    _checks.tensor("data", data, ndim=1)
    _checks.integer("n_windows", n_windows, minimum=1)
    _checks.integer("length", length, minimum=2)
    if data.numel() < length:
        raise ValueError(f"data must have at least length={length} tokens; got {data.numel()}")
    starts = torch.linspace(0, data.numel() - length, n_windows).long()
    return torch.stack([data[s : s + length] for s in starts.tolist()]).long()  # (n_windows, length)


def random_batch(data: torch.Tensor, batch_size: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """``batch_size`` random windows of ``length`` tokens: Tensor[batch_size, length] long."""
    starts = torch.randint(0, data.numel() - length, (batch_size,), generator=generator)
    offsets = torch.arange(length)
    return data[starts[:, None] + offsets].long()  # (batch_size, length)


@export("lm.code_prompts")
def code_prompts(data: torch.Tensor, n: int, length: int) -> list[torch.Tensor]:
    """``n`` prompts of ``length`` bytes from evenly spaced places in ``data``, each starting a line.

    Args:
        data: Tensor[N] of byte tokens (e.g. ``load_corpus().val``: held-out code).
        n: how many prompts.
        length: bytes per prompt.

    Returns:
        A list of ``n`` Tensor[length] of dtype long (deterministic).
    """
    _checks.tensor("data", data, ndim=1)
    _checks.integer("n", n, minimum=1)
    _checks.integer("length", length, minimum=1)
    if data.numel() < 2 * length + 1:
        raise ValueError(f"data must have more than 2 * length = {2 * length} tokens; got {data.numel()}")
    newline = ord("\n")
    prompts = []
    for start in torch.linspace(0, data.numel() - 2 * length - 1, n).long().tolist():
        window = data[start : start + length]  # first line break inside the window, if any
        breaks = (window == newline).nonzero()
        begin = start + (int(breaks[0]) + 1 if breaks.numel() else 0)
        prompts.append(data[begin : begin + length].long())
    return prompts
