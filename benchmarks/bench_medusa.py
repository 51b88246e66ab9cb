"""Benchmark: Medusa vs plain greedy decoding on the committed tiny code model, and why.

    python benchmarks/bench_medusa.py [--prompts 8] [--tokens 128] [--threads 1] [--repeats 5]

Every timing uses ``course_lib.timing.compare`` (warm-up, interleaved alternatives, ≥ 5 repeats,
median and IQR); every ratio is between medians of one run. Reported:

* c(N)/c(1) — one cached forward pass over N tokens against one over 1 token. A pass reads all
  P weights once (≈ 4·P bytes in float32) and does ≈ 2·P·N FLOPs (plus attention over the
  cache): arithmetic intensity ≈ N/2 FLOP/byte. Memory-bound hardware makes c(N) ≈ c(1);
  a tiny model whose weights sit in a CPU's cache does not.
* per method (plain; Medusa × tree × acceptance): tokens per step, wall-clock speed-up with the
  IQR of both timings, and the base model's NLL of what it wrote (quality);
* the cost model, per tree: speed-up ≈ E[tokens/step] / (c(N)/c(1) + overhead), with c(N) and
  the step's overhead from ``course_lib.speculative.experiment.step_breakdown`` — predicted
  against a plain and a Medusa decode of the first prompt timed in the same interleaved run,
  and the relative error.

Greedy Medusa is asserted to write exactly the plain greedy tokens. Not a test: timings vary
with the machine and its load.
"""

from __future__ import annotations

import argparse

import torch

from course_lib import lm, speculative
from course_lib.speculative import experiment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=8, help="held-out prompts of 64 bytes")
    parser.add_argument("--tokens", type=int, default=128, help="new tokens per prompt")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, info = lm.load_checkpoint()
    heads, _ = speculative.load_heads(model)
    prompts = lm.code_prompts(lm.load_corpus().val, args.prompts, 64)
    P = model.num_params()
    print(f"model: {P:,} parameters, validation loss {info['val_loss']:.3f} nats/byte; "
          f"{args.prompts} prompts x {args.tokens} new tokens, {args.threads} thread(s), {args.repeats} repeats")
    nodes = sorted({speculative.medusa_tree(t).num_nodes for t in speculative.EXAMPLE_TREES} | {1})
    cost = experiment.forward_time(model, nodes, cache_len=64 + args.tokens // 2, repeats=args.repeats)
    print(f"\n{'N':>3s} {'FLOP/byte':>9s} {'c(N) ms':>8s} {'c(N)/c(1)':>9s}")
    for n in nodes:
        print(f"{n:3d} {2 * P * n / (4 * P):9.1f} {1e3 * cost.timings[n].median:8.3f} {cost.ratio(n):9.2f}")

    rows = experiment.compare_decoding(model, heads, prompts, args.tokens, repeats=args.repeats)
    print(f"\n{'method':24s} {'nodes':>5s} {'tokens/step':>11s} {'median s':>9s} {'IQR s':>15s} "
          f"{'speed-up':>8s} {'NLL':>6s}")
    for r in rows:
        print(f"{r.method:24s} {r.nodes:5d} {r.tokens_per_step:11.2f} {r.timing.median:9.3f} "
              f"{r.timing.q1:7.3f}–{r.timing.q3:7.3f} {r.speedup:8.2f} {r.nll:6.3f}")

    print(f"\n{'method':24s} {'c(N)/c(1)':>9s} {'overhead':>8s} {'fwd-only':>8s} {'predicted':>9s} "
          f"{'measured':>8s} {'error':>6s}")
    # the step is timed at the mean cache length of a run: the prompt plus half the new tokens
    state = lm.code_prompts(lm.load_corpus().val, 1, 64 + args.tokens // 2)[0]
    for r in rows[1:]:
        tree, acceptance = r.method.split("/")[1:]
        # the prediction and measured decodes of the prompts come from one interleaved run
        b = experiment.step_breakdown(model, heads, state, tree, acceptance, repeats=args.repeats,
                                      decode_prompts=prompts, max_new_tokens=args.tokens)
        predicted = b.predicted_speedup(b.tokens_per_step, args.tokens)
        print(f"{r.method:24s} {b.forward_ratio:9.2f} {b.overhead:8.2f} "
              f"{b.forward_only_speedup(b.tokens_per_step):8.2f} {predicted:9.2f} {b.measured_speedup:8.2f} "
              f"{predicted / b.measured_speedup - 1:+6.0%}")


if __name__ == "__main__":
    main()
