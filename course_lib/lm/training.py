"""Training the tiny code model; the command line is ``python -m course_lib.lm.train`` (:mod:`.train`).

Plain next-token training as in nanoGPT's ``train.py``: random windows of the training split,
AdamW (β = 0.9, 0.95, weight decay on matrices only), linear warm-up then cosine decay of the
learning rate, gradient clipping at 1.0, a progress bar, and the validation loss on fixed,
evenly spaced windows of the validation split every ``eval_interval`` steps. The checkpoint is
written at every evaluation (marked ``finished: False``) and at the end, with the validation
loss, a stored validation slice and its loss (see :mod:`course_lib.lm.checkpoint`).

Presets (same model shape, so a learner's quick model loads like the committed one):

* ``full`` — the committed checkpoint ``course_lib/lm/checkpoints/tiny_code_lm.pt``: 3600 steps
  of 16 x 256 bytes (14.7 M bytes, ~1.4 passes over the training split); 31 minutes with one
  thread on a shared 2-core machine, validation loss 0.929 nats/byte.
* ``quick`` — 300 steps, a few minutes; written to ``tiny_code_lm_quick.pt`` in the current
  directory.

Difference from nanoGPT: no gradient accumulation, no mixed precision, no dropout — this is a
CPU-sized run. Notebook: ``10_medusa``. Tests: ``tests/test_lm.py``.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from course_lib import _checks
from course_lib._export import export
from course_lib.lm.checkpoint import evaluate, round_trip_fp16, save_checkpoint
from course_lib.lm.corpus import load_corpus, random_batch, validation_slice
from course_lib.lm.model import GPT, GPTConfig, lm_loss

VAL_SLICE_WINDOWS = 8  # windows stored in the checkpoint for a fast re-check (tests/test_lm.py)


@export("lm.TrainConfig")
@dataclass
class TrainConfig:
    """How to train."""

    steps: int = 3600  # optimizer steps
    batch_size: int = 16  # windows per step
    lr: float = 2e-3  # peak learning rate
    min_lr: float = 1e-4  # learning rate at the end of the cosine decay
    warmup: int = 100  # linear warm-up steps
    weight_decay: float = 0.1  # AdamW decay on weight matrices and embeddings
    eval_interval: int = 250  # steps between validation evaluations (and checkpoint writes)
    eval_windows: int = 64  # validation windows per evaluation
    seed: int = 0  # initialisation and batch order
    threads: int = 1  # torch.set_num_threads (1 is fastest on a shared, oversubscribed CPU)


PRESETS: dict[str, tuple[GPTConfig, TrainConfig]] = {
    "full": (GPTConfig(block_size=256, n_layer=4, n_head=4, n_embd=128), TrainConfig()),
    "quick": (GPTConfig(block_size=256, n_layer=4, n_head=4, n_embd=128),
              TrainConfig(steps=300, warmup=30, eval_interval=100, eval_windows=32)),
}


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``cfg.lr``, then cosine decay to ``cfg.min_lr`` at ``cfg.steps``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(progress, 1.0)))


@export("lm.train_model")
def train_model(model_config: GPTConfig, cfg: TrainConfig, out: str | Path | None = None,
          command: str = "", progress: bool = True) -> tuple[GPT, dict]:
    """Train a :class:`GPT` on the standard library's source; optionally write a checkpoint.

    Args:
        model_config: the model's shape.
        cfg: the training settings.
        out: where to write the checkpoint (at each evaluation and at the end); None: nowhere.
        command: the command line, stored in the checkpoint so the run can be reproduced.
        progress: show a tqdm bar.

    Returns:
        ``(model, info)`` — the trained model (float32) and the dict stored in the checkpoint.
    """
    _checks.instance("model_config", model_config, GPTConfig)
    _checks.instance("cfg", cfg, TrainConfig)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    corpus = load_corpus()
    T = model_config.block_size
    val_windows = validation_slice(corpus.val, cfg.eval_windows, T + 1)
    val_slice = validation_slice(corpus.val, VAL_SLICE_WINDOWS, T + 1)
    model = GPT(model_config)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(cfg.seed)
    history: dict[str, list[float]] = {"step": [], "train_loss": [], "val_loss": []}
    info: dict = {}
    start, smooth = time.time(), None
    bar = tqdm(range(cfg.steps), desc="train", disable=not progress)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, cfg)
        loss = lm_loss(model, random_batch(corpus.train, cfg.batch_size, T + 1, gen))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        smooth = loss.item() if smooth is None else 0.95 * smooth + 0.05 * loss.item()
        bar.set_postfix(loss=f"{smooth:.3f}")
        last = step + 1 == cfg.steps
        if (step + 1) % cfg.eval_interval == 0 or last:
            val = evaluate(model, val_windows)
            history["step"].append(step + 1)
            history["train_loss"].append(smooth)
            history["val_loss"].append(val)
            bar.write(f"step {step + 1}: train {smooth:.4f}  val {val:.4f} nats/byte  ({time.time() - start:.0f} s)")
            if out is not None:
                info = _save(model, cfg, model_config, out, val_windows, val_slice, history, command,
                             step + 1, time.time() - start, finished=last)
    if out is None:
        info = {"val_loss": history["val_loss"][-1], "history": history}
    return model, info


def _save(model: GPT, cfg: TrainConfig, model_config: GPTConfig, out: str | Path, val_windows: torch.Tensor,
          val_slice: torch.Tensor, history: dict, command: str, steps: int, seconds: float, finished: bool) -> dict:
    """Write the checkpoint; losses are measured on the float16-rounded weights that get saved."""
    rounded = GPT(model_config)
    rounded.load_state_dict(model.state_dict())
    round_trip_fp16(rounded)
    info = {
        "val_loss": evaluate(rounded, val_windows),
        "val_slice": val_slice.to(torch.uint8),
        "val_slice_loss": evaluate(rounded, val_slice),
        "history": {k: list(v) for k, v in history.items()},
        "train": {**asdict(cfg), "steps_done": steps, "finished": finished, "seconds": seconds,
                  "tokens_seen": steps * cfg.batch_size * model_config.block_size,
                  "command": command, "python": sys.version.split()[0], "torch": str(torch.__version__)},
    }
    save_checkpoint(rounded, out, **info)
    return info


@export("lm.AddonConfig")
@dataclass(frozen=True)
class AddonConfig:
    """How to fit an add-on (Medusa heads, MTP modules) on a frozen model with :func:`train_addon`."""

    steps: int = 600  # optimizer steps (AdamW, no weight decay)
    batch_size: int = 16  # windows of block_size + 1 bytes per step
    lr: float = 3e-3  # peak learning rate, cosine-decayed to lr / 20 over the steps
    seed: int = 0  # fixes the batch order
    progress: bool = True  # show a tqdm bar
    desc: str = "add-on"  # the bar's label

    def __post_init__(self) -> None:
        _checks.integer("steps", self.steps, minimum=1)
        _checks.integer("batch_size", self.batch_size, minimum=1)
        _checks.real("lr", self.lr, minimum=0.0, open_min=True)
        _checks.integer("seed", self.seed)
        _checks.instance("progress", self.progress, bool)
        _checks.instance("desc", self.desc, str)


def train_addon(model: GPT, addon: nn.Module, loss_fn: Callable[[torch.Tensor], torch.Tensor],
                config: AddonConfig) -> list[float]:
    """Fit ``addon`` (Medusa heads, MTP modules) in place on random training windows, ``model`` frozen.

    AdamW without weight decay, learning rate cosine-decayed from ``config.lr`` to
    ``config.lr / 20``. The model's parameters are frozen for the run and given back their
    ``requires_grad`` after it.

    Args:
        model: the language model (eval mode, unchanged).
        addon: the module whose parameters are trained.
        loss_fn: the loss of a batch, Tensor[batch_size, block_size + 1] of token ids.
        config: steps, batch size, learning rate, seed, progress bar (:class:`AddonConfig`).

    Returns:
        The loss of every step.

    Raises:
        TypeError: ``config`` is not an :class:`AddonConfig`.
    """
    _checks.instance("config", config, AddonConfig)
    corpus = load_corpus()
    model.eval()
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    addon.train()
    opt = torch.optim.AdamW(addon.parameters(), lr=config.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.steps, eta_min=config.lr / 20)
    gen = torch.Generator().manual_seed(config.seed)
    losses: list[float] = []
    bar = tqdm(range(config.steps), desc=config.desc, disable=not config.progress)
    try:
        for _ in bar:
            loss = loss_fn(random_batch(corpus.train, config.batch_size, model.config.block_size + 1, gen))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    finally:
        for p in frozen:
            p.requires_grad_(True)
        addon.eval()
    return losses
