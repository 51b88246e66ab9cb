"""Saving and loading the tiny code model: a plain dict of tensors and numbers, safe to load.

The file is written with ``torch.save`` and read with ``torch.load(path, weights_only=True)``,
which refuses to unpickle arbitrary objects, so a checkpoint can never run code. It holds

* ``config`` — the :class:`~course_lib.lm.model.GPTConfig` as a dict,
* ``model`` — the state dict in float16 (half the bytes; the tied output head is stored once),
* ``val_loss`` — the validation loss (nats/byte) the run reached, over its evaluation windows,
* ``val_slice`` / ``val_slice_loss`` — a few validation windows stored *in* the checkpoint and
  the loss of the float16 weights on them, so a test can re-check the model on any machine,
* ``train`` — how it was trained (the command line, steps, seconds, tokens) and ``history``.

A missing, truncated or foreign file raises :class:`CheckpointError` whose message says how to
train a new one. :func:`save_addon` / :func:`load_addon` do the same for modules trained on top
of the model (Medusa heads, MTP modules). Notebook: ``10_medusa``. Tests: ``tests/test_lm.py``.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from course_lib import _checks
from course_lib._export import export
from course_lib.lm.model import GPT, GPTConfig

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
DEFAULT_CHECKPOINT = CHECKPOINT_DIR / "tiny_code_lm.pt"
FORMAT = 1  # bump when the layout of the dict changes
RETRAIN = "python -m course_lib.lm.train --preset full  (about 30 minutes on 2 CPU cores; --quick: a few minutes)"
_TIED = "lm_head.weight"  # the same tensor as wte.weight
M = TypeVar("M", bound=nn.Module)


@export("lm.CheckpointError")
class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or not a tiny-code-LM checkpoint."""


@export("lm.save_checkpoint")
def save_checkpoint(model: GPT, path: str | Path, **info: Any) -> Path:
    """Write ``model`` (float16 weights) and ``info`` (numbers, strings, tensors) to ``path``."""
    _checks.instance("model", model, GPT)
    state = {k: v.detach().to("cpu", torch.float16) for k, v in model.state_dict().items() if k != _TIED}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": FORMAT, "config": asdict(model.config), "model": state, **info}, path)
    return path


def round_trip_fp16(model: GPT) -> GPT:
    """Round ``model``'s weights through float16 in place, as saving and loading would."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    return model


@export("lm.load_checkpoint")
def load_checkpoint(path: str | Path | None = None, device: torch.device | str = "cpu") -> tuple[GPT, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint` (default: the committed model).

    Args:
        path: the ``.pt`` file; default ``course_lib/lm/checkpoints/tiny_code_lm.pt``.
        device: where to put the model.

    Returns:
        ``(model, info)``: the float32 model in eval mode and the rest of the checkpoint's dict.

    Raises:
        CheckpointError: the file is missing, corrupted, or lacks the expected entries; the
            message says how to train a new checkpoint.
    """
    path = Path(DEFAULT_CHECKPOINT if path is None else path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}. Train one with: {RETRAIN}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as err:
        raise CheckpointError(f"checkpoint {path} is corrupted or unreadable. Retrain it with: {RETRAIN}\n"
                              f"(cause: {_cause(err)})") from err
    if not isinstance(blob, dict) or blob.get("format") != FORMAT or "config" not in blob or "model" not in blob:
        raise CheckpointError(f"{path} is not a tiny-code-LM checkpoint (format {FORMAT}). Retrain it with: {RETRAIN}")
    try:
        model = GPT(GPTConfig(**blob["config"]))
        state = {k: v.float() for k, v in blob["model"].items()}
        state[_TIED] = state["wte.weight"]
        model.load_state_dict(state)
    except (TypeError, ValueError, KeyError, RuntimeError) as err:
        raise CheckpointError(f"checkpoint {path} does not match the model. Retrain it with: {RETRAIN}\n"
                              f"(cause: {_cause(err)})") from err
    info = {k: v for k, v in blob.items() if k not in ("model", "format")}
    return model.to(device).eval(), info


@export("lm.evaluate")
@torch.no_grad()
def evaluate(model: GPT, windows: torch.Tensor, batch_size: int = 16) -> float:
    """Mean next-token cross-entropy (nats/byte) of ``model`` over ``windows`` (Tensor[N, T + 1])."""
    _checks.tensor("windows", windows, ndim=2)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for chunk in windows.split(batch_size):
        logits, _ = model(chunk[:, :-1].long())
        total += torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), chunk[:, 1:].reshape(-1).long(), reduction="sum"
        ).item()
        count += chunk[:, 1:].numel()
    model.train(was_training)
    return total / count


def _cause(err: BaseException) -> str:
    """The first line of an error's message (or its type), short enough for one line."""
    text = str(err).strip()
    return text.splitlines()[0][:160] if text else type(err).__name__


def save_addon(module: nn.Module, path: str | Path, state_key: str, **info: Any) -> Path:
    """Write an add-on module's weights (float16) under ``state_key``, with ``info``, to ``path``.

    ``info`` holds what :func:`load_addon`'s ``build`` needs to rebuild the module (e.g. its
    depth) and how it was trained: numbers, strings, lists.
    """
    state = {k: v.detach().to("cpu", torch.float16) for k, v in module.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**info, state_key: state}, path)
    return path


def load_addon(path: str | Path, build: Callable[[dict[str, Any]], M], state_key: str, what: str,
               retrain: str) -> tuple[M, dict[str, Any]]:
    """Load what :func:`save_addon` wrote: ``build(info)`` makes the module, the weights go in.

    Args:
        path: the ``.pt`` file.
        build: makes the empty module from the checkpoint's dict (raising on a shape mismatch).
        state_key: where the weights are in the dict.
        what: the add-on's name for messages, e.g. ``"Medusa heads"``.
        retrain: the command that trains a new one, for messages.

    Returns:
        ``(module, info)``: the float32 module in eval mode and the rest of the dict.

    Raises:
        CheckpointError: missing, corrupted, or made for another model shape; the message says
            how to retrain.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no {what} at {path}. Train them with: {retrain}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        module = build(blob)
        module.load_state_dict({k: v.float() for k, v in blob[state_key].items()})
    except (RuntimeError, EOFError, OSError, KeyError, TypeError, ValueError,
            pickle.UnpicklingError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"{what} {path} are corrupted or do not fit this model. "
                              f"Retrain them with: {retrain}\n(cause: {_cause(err)})") from err
    return module.eval(), {k: v for k, v in blob.items() if k != state_key}
