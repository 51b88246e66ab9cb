"""Benchmark: ring and naive all-reduce (course_lib.distributed) against ``dist.all_reduce``, same run.

Run: ``python benchmarks/bench_distributed.py [--quick] [--nproc 2 4 8]``

One launch of max(N) processes times the three algorithms on float32 messages of B bytes for
every N, in sub-groups of ranks 0..N-1 (``course_lib.distributed.experiment.time_all_reduces``:
``course_lib.timing.compare`` with a barrier as its sync and the same calls per sample on every
rank; the median of the repeats, with its IQR). Bytes each rank sends, per algorithm:

* ring: ``2 (N-1)/N · B`` on every rank (``ring_bytes_per_rank``);
* naive: ``(N-1) · B`` on rank 0, ``B`` elsewhere (``naive_bytes_per_rank``);
* ``dist.all_reduce`` (gloo or NCCL): chosen by the backend; a ring for large messages moves
  the same ``2 (N-1)/N · B``.

Reported: ms per call, ``bus GB/s = 2 (N-1)/N · B / t`` (nccl-tests' "busbw": the per-rank link
rate a ring needs to finish in t), and ratio = t(algorithm) / t(dist.all_reduce) (> 1: slower than
the production collective). On one CPU machine the "network" is loopback and the processes share
the cores, so the ratios show the algorithms' shape, not a cluster's.
"""

from __future__ import annotations

import argparse

from course_lib.distributed import experiment, launch, naive_bytes_per_rank, ring_bytes_per_rank


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two sizes, N = 2 only")
    parser.add_argument("--nproc", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sizes = [2**12, 2**16, 2**20, 2**23, 2**25] if not args.quick else [2**12, 2**20]
    world_sizes = [2] if args.quick else args.nproc
    print(f"{'N':>2} {'bytes':>10} {'algorithm':>9} {'ms':>9} {'bus GB/s':>9} {'ratio':>6} "
          f"{'sent by rank 0':>15}")
    timings = launch(experiment.time_all_reduces, max(world_sizes), (sizes, args.repeats),
                     dict(group_sizes=sorted(set(world_sizes))), show_output=False).results[0]
    for n in world_sizes:
        times = {a: [t.median for t in per_size] for a, per_size in timings[n].items()}
        for i, nbytes in enumerate(sizes):
            numel = nbytes // 4
            sent = {"ring": ring_bytes_per_rank(numel, n, 4), "naive": naive_bytes_per_rank(numel, n, 4),
                    "torch": ring_bytes_per_rank(numel, n, 4)}
            for algorithm in ("ring", "naive", "torch"):
                t = times[algorithm][i]
                bus = 2 * (n - 1) / n * nbytes / t / 1e9
                ratio = t / times["torch"][i]
                sent_text = f"{sent[algorithm]:,}" + (" (if ring)" if algorithm == "torch" else "")
                iqr = timings[n][algorithm][i].spread
                print(f"{n:>2} {nbytes:>10,} {algorithm:>9} {1e3 * t:>9.3f} {bus:>9.3f} {ratio:>6.2f} {sent_text:>15}"
                      f"  (IQR {100 * iqr:.0f} %)")


if __name__ == "__main__":
    main()
