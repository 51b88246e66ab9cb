"""Command line: ``python -m course_lib.lm.train --preset quick|full`` (see :mod:`.training`).

``--preset full`` rewrites the committed checkpoint ``course_lib/lm/checkpoints/tiny_code_lm.pt``
(about 30 minutes on 2 CPU cores); ``--quick`` (or ``--preset quick``) trains the same model shape
for a few minutes and writes ``tiny_code_lm_quick.pt`` in the current directory; load either with
``course_lib.lm.load_checkpoint(path)``. This module only parses arguments (it exports nothing,
so running it as ``__main__`` registers no public name twice).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace
from pathlib import Path

from course_lib.lm.checkpoint import DEFAULT_CHECKPOINT
from course_lib.lm.model import GPT
from course_lib.lm.training import PRESETS, train_model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m course_lib.lm.train",
                                     description="Train the tiny code model on the standard library.")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    parser.add_argument("--quick", action="store_true", help="shorthand for --preset quick")
    parser.add_argument("--steps", type=int, help="override the preset's number of steps")
    parser.add_argument("--threads", type=int, help="override torch.set_num_threads")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--out", type=Path,
                        help="checkpoint path (full: the committed one; quick: ./tiny_code_lm_quick.pt)")
    args = parser.parse_args(argv)
    preset = "quick" if args.quick else args.preset
    model_config, cfg = PRESETS[preset]
    overrides = {k: getattr(args, k) for k in ("steps", "threads", "seed") if getattr(args, k) is not None}
    cfg = replace(cfg, **overrides)
    out = args.out or (DEFAULT_CHECKPOINT if preset == "full" else Path("tiny_code_lm_quick.pt"))
    command = "python -m course_lib.lm.train " + shlex.join(argv if argv is not None else sys.argv[1:])
    print(f"{preset}: {GPT(model_config).num_params():,} parameters, {cfg.steps} steps of "
          f"{cfg.batch_size}x{model_config.block_size} bytes -> {out}")
    _, info = train_model(model_config, cfg, out=out, command=command)
    print(f"done: validation loss {info['val_loss']:.4f} nats/byte; checkpoint {out}")


if __name__ == "__main__":
    main()
