"""Command line: ``python -m course_lib.speculative.train`` retrains the committed Medusa heads.

Loads the base model (default: the committed ``course_lib/lm/checkpoints/tiny_code_lm.pt``),
trains :class:`~course_lib.speculative.MedusaHeads` with the backbone frozen
(:func:`~course_lib.speculative.train_heads`), reports each head's accuracy on held-out windows
and writes ``course_lib/speculative/checkpoints/medusa_heads.pt`` (a few minutes on 2 CPU cores).
Exports nothing, so running it as ``__main__`` registers no public name twice.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

import torch

from course_lib.lm.checkpoint import evaluate, load_checkpoint
from course_lib.lm.corpus import load_corpus, validation_slice
from course_lib.speculative.medusa_heads import HEADS_CHECKPOINT, MedusaHeads, save_heads
from course_lib.speculative.medusa_training import head_accuracy, train_heads


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m course_lib.speculative.train",
                                     description="Train Medusa heads on the committed tiny code model.")
    parser.add_argument("--num-heads", type=int, default=4)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint", default=None, help="the base model (default: the committed one)")
    parser.add_argument("--out", default=str(HEADS_CHECKPOINT))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, info = load_checkpoint(args.checkpoint)
    heads = MedusaHeads(model, args.num_heads)
    start = time.time()
    losses = train_heads(model, heads, steps=args.steps)
    windows = validation_slice(load_corpus().val, 32, model.config.block_size + 1)
    acc = head_accuracy(model, heads, windows)
    print(acc)
    save_heads(heads, args.out, steps=args.steps, seconds=time.time() - start, losses=losses,
               top1=acc.top1, topk=acc.topk, k=acc.k, base_top1=acc.base_top1,
               base_val_slice_loss=evaluate(model, info["val_slice"].long()),
               command="python -m course_lib.speculative.train "
               + shlex.join(sys.argv[1:] if argv is None else argv))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
