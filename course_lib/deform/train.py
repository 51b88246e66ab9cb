"""Command line: ``python -m course_lib.deform.train`` retrains the committed scaled-digit classifiers.

Trains the :class:`~course_lib.deform.experiment.DigitClassifier` with a deformable third layer
and its plain twin (:func:`~course_lib.deform.experiment.train_classifier`, one CPU thread) for
each seed, measures test accuracy and how the learned offsets' spread follows the digit's scale
(:func:`~course_lib.deform.experiment.measure_offsets`), and writes the first seed's two models,
every seed's measurements and the command to :data:`~course_lib.deform.experiment.CHECKPOINT`
(68 KB). It took 4 to 10 minutes per seed on one core of a shared 2-core machine, nearly all of it
the deformable network's 300 steps (``info["train_seconds"]`` keeps the last seed's times).
Exports nothing, so running it as ``__main__`` registers no public name twice.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import replace

from course_lib.deform.experiment import (
    CHECKPOINT,
    ScaleConfig,
    accuracy,
    held_out_digits,
    measure_offsets,
    save_classifiers,
    train_classifier,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m course_lib.deform.train",
                                     description="Train the deformable and the plain classifier on scaled digits.")
    parser.add_argument("--steps", type=int, default=ScaleConfig.steps)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="the first one is saved")
    parser.add_argument("--out", default=str(CHECKPOINT))
    args = parser.parse_args(argv)
    base = ScaleConfig(steps=args.steps, seed=args.seeds[0])
    test = held_out_digits(base)
    seeds, saved, seconds = [], {}, {}
    for seed in args.seeds:
        row: dict[str, float] = {"seed": seed}
        for name in ("deformable", "plain"):
            start = time.time()
            model, losses = train_classifier(replace(base, deformable=name == "deformable", seed=seed))
            seconds[name] = time.time() - start
            row[f"{name}_accuracy"] = accuracy(model, test)
            row[f"{name}_final_loss"] = sum(losses[-20:]) / len(losses[-20:])
            if name == "deformable":
                measured = measure_offsets(model, test)
                row["correlation"] = measured.correlation
                row["spread_by_bucket"] = [b[2] for b in measured.buckets()]  # type: ignore[assignment]
            if seed == args.seeds[0]:
                saved[name] = model
        print(row, flush=True)
        seeds.append(row)
    given = shlex.join(sys.argv[1:] if argv is None else argv)
    save_classifiers(saved, base, args.out, seeds=seeds, train_seconds=seconds,
                     command=f"python -m course_lib.deform.train {given}".strip())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
