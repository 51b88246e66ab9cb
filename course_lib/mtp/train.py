"""Command line: ``python -m course_lib.mtp.train`` retrains the committed MTP modules.

Loads the main model (default: the committed ``course_lib/lm/checkpoints/tiny_code_lm.pt``),
trains a :class:`~course_lib.mtp.MultiTokenPredictor` with the main model frozen
(:func:`~course_lib.mtp.train_mtp`), reports each depth's accuracy on held-out windows and
writes ``course_lib/mtp/checkpoints/mtp_modules.pt``.

``--ablation`` instead trains one depth-1 module of every variant (``"mtp"``, ``"hidden_only"``,
``"medusa_block"``: :data:`~course_lib.mtp.mtp_module.MTP_VARIANTS`) with the same steps,
batch, learning rate and seed, and writes ``checkpoints/ablation/<variant>_<steps>.pt`` at every
budget in ``--snapshots`` and at the end: snapshots of one run, whose cosine schedule spans
``--steps`` (an intermediate snapshot has not had its learning rate decayed). Each file
records the command, its step count and the seconds trained so far, and loads with
:func:`~course_lib.mtp.load_mtp`. Exports nothing, so running it as ``__main__`` registers no
public name twice.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch

from course_lib.lm.checkpoint import load_checkpoint
from course_lib.lm.corpus import load_corpus, validation_slice
from course_lib.lm.model import GPT
from course_lib.mtp.mtp_module import MTP_ABLATION_DIR, MTP_CHECKPOINT, MTP_VARIANTS, MultiTokenPredictor, save_mtp
from course_lib.mtp.mtp_training import depth_accuracy, train_mtp


def _ablation(model: GPT, steps: int, snapshots: list[int], out: Path, command: str, variants: list[str]) -> None:
    windows = validation_slice(load_corpus().val, 32, model.config.block_size + 1)
    for variant in variants:
        torch.manual_seed(0)
        mtp = MultiTokenPredictor(model, 1, variant)
        start = time.time()

        def save(done: int, mtp: MultiTokenPredictor = mtp, variant: str = variant, start: float = start) -> None:
            if done not in snapshots and done != steps:
                return
            seconds = time.time() - start
            acc = depth_accuracy(model, mtp.eval(), windows)
            mtp.train()
            path = save_mtp(mtp, out / f"{variant}_{done}.pt", steps=done, run_steps=steps, seconds=seconds,
                            depth_top1=acc.depths, command=command)
            print(f"{variant} after {done} steps ({seconds:.0f} s): depth-1 top-1 {acc.depths[0]:.3f} -> {path}",
                  flush=True)

        train_mtp(model, mtp, steps=steps, before_step=save, progress=False)
        save(steps)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m course_lib.mtp.train",
                                     description="Train DeepSeek-V3-style MTP modules on the committed tiny code "
                                                 "model.")
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint", default=None, help="the main model (default: the committed one)")
    parser.add_argument("--out", default=None, help="file (default: the committed one) or, with --ablation, folder")
    parser.add_argument("--ablation", action="store_true", help="train every variant at depth 1 (see above)")
    parser.add_argument("--variants", default=",".join(MTP_VARIANTS), help="with --ablation: which, comma-separated")
    parser.add_argument("--snapshots", default="", help="with --ablation: step counts to save, e.g. 50,150")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, _ = load_checkpoint(args.checkpoint)
    command = "python -m course_lib.mtp.train " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.ablation:
        snapshots = [int(s) for s in args.snapshots.split(",") if s]
        _ablation(model, args.steps, snapshots, Path(args.out or MTP_ABLATION_DIR), command, args.variants.split(","))
        return
    out = args.out or str(MTP_CHECKPOINT)
    mtp = MultiTokenPredictor(model, args.depth)
    start = time.time()
    losses = train_mtp(model, mtp, steps=args.steps)
    seconds = time.time() - start
    windows = validation_slice(load_corpus().val, 32, model.config.block_size + 1)
    acc = depth_accuracy(model, mtp, windows)
    print(acc)
    save_mtp(mtp, out, steps=args.steps, seconds=seconds, losses=losses, main_top1=acc.main,
             depth_top1=acc.depths, command=command)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
