"""Command line: ``python -m course_lib.mtp.train`` retrains the committed MTP modules.

Loads the main model (default: the committed ``course_lib/lm/checkpoints/tiny_code_lm.pt``),
trains a :class:`~course_lib.mtp.MultiTokenPredictor` with the main model frozen
(:func:`~course_lib.mtp.train_mtp`), reports each depth's accuracy on held-out windows and
writes ``course_lib/mtp/checkpoints/mtp_modules.pt``. Exports nothing, so running it as
``__main__`` registers no public name twice.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

import torch

from course_lib.lm.checkpoint import load_checkpoint
from course_lib.lm.corpus import load_corpus, validation_slice
from course_lib.mtp.mtp_module import MTP_CHECKPOINT, MultiTokenPredictor, save_mtp
from course_lib.mtp.mtp_training import depth_accuracy, train_mtp


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m course_lib.mtp.train",
                                     description="Train DeepSeek-V3-style MTP modules on the committed tiny code "
                                                 "model.")
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint", default=None, help="the main model (default: the committed one)")
    parser.add_argument("--out", default=str(MTP_CHECKPOINT))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, _ = load_checkpoint(args.checkpoint)
    mtp = MultiTokenPredictor(model, args.depth)
    start = time.time()
    losses = train_mtp(model, mtp, steps=args.steps)
    seconds = time.time() - start
    windows = validation_slice(load_corpus().val, 32, model.config.block_size + 1)
    acc = depth_accuracy(model, mtp, windows)
    print(acc)
    save_mtp(mtp, args.out, steps=args.steps, seconds=seconds, losses=losses, main_top1=acc.main,
             depth_top1=acc.depths,
             command="python -m course_lib.mtp.train " + shlex.join(sys.argv[1:] if argv is None else argv))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
