"""Benchmark: Medusa vs plain greedy decoding on the committed tiny code model (CPU).

    python benchmarks/bench_medusa.py [--prompts 16] [--tokens 128] [--threads 1]

Reports, for plain decoding and for Medusa with each example tree and both acceptance rules,
measured in the same run on the same held-out prompts:

* tokens per step — generated tokens / forward passes (plain: 1);
* wall-clock seconds and the speed-up ``time(plain) / time(medusa)``;
* the cost model: one pass over N tokens reads all weights once (≈ 4·P bytes in float32) and does
  ≈ 2·P·N FLOPs (plus attention over the cache), an arithmetic intensity of ≈ N/2 FLOP/byte;
  the measured time of one pass over N = 1 and N = nodes tokens shows how far this machine is
  from the memory-bound regime where N tokens cost the same as one.

Greedy Medusa is asserted to write exactly the plain greedy tokens. Not a test: timings vary
with the machine and its load. Uses ``course_lib.speculative.compare_decoding``.
"""

from __future__ import annotations

import argparse

import torch

from course_lib import lm, speculative


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=16, help="held-out prompts of 64 bytes")
    parser.add_argument("--tokens", type=int, default=128, help="new tokens per prompt")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, info = lm.load_checkpoint()
    heads, _ = speculative.load_heads(model)
    prompts = lm.code_prompts(lm.load_corpus().val, args.prompts, 64)
    P = model.num_params()
    print(f"model: {P:,} parameters, validation loss {info['val_loss']:.3f} nats/byte; "
          f"{args.prompts} prompts x {args.tokens} new tokens, {args.threads} thread(s)")
    t1 = speculative.forward_time(model, 1, cache_len=64)
    rows = speculative.compare_decoding(model, heads, prompts, args.tokens)
    print(f"{'method':24s} {'nodes':>5s} {'FLOP/byte':>9s} {'pass ms':>8s} {'tokens/step':>11s} "
          f"{'seconds':>8s} {'speed-up':>8s}")
    for r in rows:
        pass_ms = 1e3 * (t1 if r.nodes == 1 else speculative.forward_time(model, r.nodes, cache_len=64))
        intensity = 2 * P * r.nodes / (4 * P)  # FLOPs / weight bytes of one pass
        print(f"{r.method:24s} {r.nodes:5d} {intensity:9.1f} {pass_ms:8.3f} {r.tokens_per_step:11.2f} "
              f"{r.seconds:8.2f} {r.speedup:8.2f}")


if __name__ == "__main__":
    main()
