# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4 · Distributed data parallel and ring all-reduce, on real processes
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dl-systems-course/dl-systems-course/blob/main/notebooks/04_ddp.ipynb) [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/dl-systems-course/dl-systems-course/main?labpath=notebooks%2F04_ddp.ipynb)
#
# Training on more than one device starts with the simplest kind of parallelism: give every
# device a full copy of the model and a different slice of each batch, then *average the
# gradients* so that every copy takes the same step. The averaging is an **all-reduce**, and how
# it is done decides whether 8 GPUs train 8× faster or barely faster than one.
#
# In this chapter you run real multi-process training on your own machine: processes talking
# through `torch.distributed` (gloo on CPUs, NCCL on GPUs), a ring all-reduce written with
# nothing but `send`/`recv`, and a ~150-line DDP compared with PyTorch's. No GPU needed: every
# "device" here is a CPU process.
#
# **You will be able to**
# 1. start and supervise a group of processes that talk through `torch.distributed`;
# 2. write a ring all-reduce (reduce-scatter + all-gather) with `send`/`recv` and count its bytes;
# 3. explain what DDP communicates — gradients in buckets that overlap backward, averaged by
#    dividing *before* the sum, and buffers at every forward — and build it (`SimpleDDP`);
# 4. fit the α-β cost model of the ring to your own timings and read latency and bandwidth off it;
# 5. handle what real DDP training meets: parameters a forward skips (`find_unused_parameters`),
#    `DistributedSampler.set_epoch`, and checkpoints saved on rank 0;
# 6. read timings and failures of multi-process code on one machine with care.
#
# **Prerequisites:** chapter 1 (autograd, hooks), chapter 3 (FP16 overflow), Python's
# `multiprocessing` at the level of "a process has its own memory". **Time:** about 90 minutes
# (the cells that start processes take a few seconds each).
#
# Library: `course_lib.distributed`. Tests: `tests/test_distributed*.py`.

# %%
import sys  # On Colab only: install this course at this notebook's version. GPU: Runtime > Change runtime type.

if "google.colab" in sys.modules:
    import importlib.metadata
    import re
    import subprocess

    # The course without its dependencies, then its requirements by name only: pip adds what Colab
    # lacks and leaves every package Colab has (torch, ipywidgets 7, the kernel) as it is.
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--no-deps", "git+https://github.com/dl-systems-course/dl-systems-course@v0.1.0"], check=True)
    names = [re.sub(r"^([\w.-]+)[^;]*", r"\1", r) for r in importlib.metadata.requires("course-lib") if "extra ==" not in r]
    subprocess.run([*pip, *names], check=True)

# %% [markdown]
# ## Why DDP, and not DataParallel
#
# PyTorch has two data-parallel wrappers. `nn.DataParallel` is **one process with one thread
# per GPU**. Every step it scatters the batch from GPU 0, *copies the model* from GPU 0 to the
# others, runs the replicas' forward passes in threads, gathers the outputs back on GPU 0,
# computes the loss there and reduces the gradients onto GPU 0, where the optimizer runs. All
# the Python work of all replicas shares one interpreter, so the threads queue on the **GIL**,
# and GPU 0 does extra work and holds extra memory. It cannot span machines.
#
# `nn.parallel.DistributedDataParallel` (DDP) is **one process per device**. Each process holds
#
# * its own model replica (identical: rank 0's weights are broadcast once, at the start),
# * its own optimizer and optimizer state (also identical, because the steps are),
# * its own shard of every batch (a `DistributedSampler` in real code),
#
# and the processes exchange **gradients**, with an all-reduce that overlaps the backward pass,
# and — by default (`broadcast_buffers=True`) — rank 0's **buffers** (BatchNorm's running
# statistics) at the start of every forward. No model copy per step, no shared Python, and the
# same code runs on one laptop or 1000 machines. Why averaging gradients is right: with a global
# batch of $B = N b$ examples split into $N$ shards of $b$,
#
# $$\nabla \frac{1}{B}\sum_{i=1}^{B} \ell_i \;=\; \frac{1}{N}\sum_{r=1}^{N} \underbrace{\nabla \frac{1}{b}\sum_{i \in \text{shard } r} \ell_i}_{g_r \text{, computed by rank } r}$$
#
# so after an all-reduce of the $g_r$ and a division by $N$ — in either order, since
# $\frac{1}{N}\sum_r g_r = \sum_r \frac{g_r}{N}$ — every rank holds the full-batch gradient.
# (Which order DDP picks, and why, is below.)
#
# ## Processes, not threads
#
# `course_lib.distributed.launch(fn, N)` starts $N$ processes, joins them in a process group
# (here: gloo over `127.0.0.1`, on a free port) and runs `fn` in each. It is a small `torchrun`
# for notebooks: the worker functions live in `course_lib.distributed.experiment`, because new
# processes import them by name. Each rank's output comes back prefixed with its rank:

# %%
import matplotlib.pyplot as plt
import torch

from course_lib.distributed import experiment, launch
from course_lib.source import show_source

show_source(experiment.hello)
result = launch(experiment.hello, 4)
print("results:", result.results)
assert result.results == [(r, 4, 0.0 + 1 + 2 + 3) for r in range(4)]  # every rank got the same sum
assert len({out.split("process ")[1].split(",")[0] for out in result.outputs}) == 4  # 4 distinct processes

# %% [markdown]
# ## Ring all-reduce
#
# The obvious all-reduce sends every tensor to rank 0, which adds them up and sends the sum
# back. Rank 0's link then carries $(N-1)$ tensors in and $(N-1)$ out: it is a bottleneck that
# grows with $N$.
#
# The **ring** puts the ranks on a circle; each rank only talks to its neighbours, and all links
# are busy at once. Split each rank's tensor into $N$ chunks. Then:
#
# ```
# reduce-scatter: for s in 0 .. N-2:   rank r sends chunk (r - s) % N to r+1,
#                                      receives chunk (r - s - 1) % N from r-1 and ADDS it
#                 -> rank r now holds the complete sum of chunk (r + 1) % N
# all-gather:     for s in 0 .. N-2:   rank r sends chunk (r + 1 - s) % N to r+1,
#                                      receives chunk (r - s) % N from r-1 and COPIES it
# ```
#
# Every rank sends $2(N-1)$ chunks of $B/N$ bytes: $\frac{2(N-1)}{N}B < 2B$ **whatever $N$ is**.
# Here are 4 ranks at the start, after the reduce-scatter and at the end. The number in a chunk
# counts how many ranks' data it already sums; arrows are the next step's messages.

# %%
from course_lib.distributed import ring_view

for step in (0, 3, 6):
    view = ring_view(4, step)
    plt.show()
    print(view.caption, "\n")

# %% [markdown]
# The schedule is one function, `ring_schedule`, used by the real implementation, by a
# one-process simulation (`simulate_ring`, which the property tests and the widget use) and by
# the picture above:

# %%
from course_lib.distributed import ring_all_reduce, ring_schedule

show_source(ring_schedule)

# %% [markdown]
# And the implementation over real processes: `send`/`recv` only (posted together with
# `batch_isend_irecv` — a blocking send to the right while the right neighbour also blocks on
# its send would deadlock), in place on a flat view of the tensor, with chunk sizes that differ
# by one element when $N$ does not divide the size:

# %%
show_source(ring_all_reduce)

# %% [markdown]
# ### Check: ring and naive against `dist.all_reduce`, on 2, 4 and 8 processes
#
# `experiment.compare_all_reduces` gives every rank different random data, runs our ring, the
# naive all-reduce (`naive_all_reduce`) and PyTorch's `dist.all_reduce(SUM)` on copies, and
# returns the largest difference plus the bytes each rank sent. Awkward sizes on purpose: 1
# element (some chunks empty), 97 and 65,537 (not divisible by N). Integers must agree exactly;
# floats to rounding (the summation order differs).

# %% tags=["nbval-check-output"]
SIZES = [1, 7, 97, 1000, 65537]
checks = {}
for n in (2, 4, 8):
    out = launch(experiment.compare_all_reduces, n, (SIZES, ("float32", "int64")), show_output=False)
    checks[n] = [row for per_rank in out.results for row in per_rank]
    for row in checks[n]:
        if row["dtype"] == "int64":
            assert row["ring_error"] == row["naive_error"] == 0
        else:
            tolerance = 4 * torch.finfo(torch.float32).eps * n * max(1.0, row["scale"])
            assert row["ring_error"] <= tolerance and row["naive_error"] <= tolerance, row
    print(f"N={n}: {len(checks[n]) // n} cases × {n} ranks: ring == naive == dist.all_reduce")

# %% [markdown]
# ## Counting bytes
#
# Both algorithms return a `Traffic` record: the bytes this rank sent and received. The ring's
# exact count, uneven chunks included, is `ring_bytes_per_rank` (rank $r$ sends every chunk
# except $(r+1)$ in the reduce-scatter and every chunk except $(r+2)$ in the all-gather); with
# $N \mid$ size it is the textbook $2(N-1)/N \cdot B$. For 1000 float32 (4,000 bytes):

# %% tags=["nbval-check-output"]
from course_lib.distributed import naive_bytes_per_rank, ring_bytes_per_rank

print(f"{'N':>2} {'rank':>4} {'ring sent':>9} {'2(N-1)/N·B':>10} {'naive sent':>10}")
for n, rows in checks.items():
    for row in rows:
        if row["numel"] != 1000 or row["dtype"] != "float32":
            continue
        r, nbytes = row["rank"], 4 * row["numel"]
        assert row["ring_sent"] == ring_bytes_per_rank(1000, n, 4, r) == 2 * (n - 1) * nbytes // n
        assert row["naive_sent"] == naive_bytes_per_rank(1000, n, 4, r) == ((n - 1) * nbytes if r == 0 else nbytes)
        if r in (0, 1):
            print(f"{n:>2} {r:>4} {row['ring_sent']:>9} {2 * (n - 1) * nbytes // n:>10} {row['naive_sent']:>10}")

# %% [markdown]
# Per rank, the ring's traffic tends to $2B$ as $N$ grows; the naive hub's grows like $(N-1)B$:

# %%
ns = list(range(2, 33))
B = 4_000
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.plot(ns, [ring_bytes_per_rank(1000, n, 4) / B for n in ns], label="ring: every rank, 2(N-1)/N · B")
ax.plot(ns, [naive_bytes_per_rank(1000, n, 4, 0) / B for n in ns], label="naive: rank 0, (N-1) · B")
measured = {n: max(row["ring_sent"] for row in rows if row["numel"] == 1000 and row["dtype"] == "float32") / B
            for n, rows in checks.items()}
ax.scatter(list(measured), list(measured.values()), c="k", zorder=3, label="ring, measured above")
ax.set_xlabel("ranks N")
ax.set_ylabel("bytes sent / tensor bytes")
ax.set_yscale("log")
ax.legend()
plt.show()

# %% [markdown]
# ## Timing: ring vs naive vs `dist.all_reduce`
#
# `experiment.time_all_reduces` times the three algorithms on messages from 4 KB to 16 MB with
# the course's one timing discipline, `course_lib.timing.compare` (warm-up, alternatives
# interleaved, repeats, median and IQR), run inside every worker with two settings that make it
# work across processes: `sync` is a **barrier**, so a sample starts when every rank is ready and
# ends when the slowest rank has its result; and `number` (calls per sample) is **agreed** by
# the ranks (one all-reduce of a trial call's time, slowest rank) — if each rank calibrated on
# its own clock, ranks could choose different counts, issue different numbers of collectives,
# and hang. One launch of 4 processes times a group of 2 (ranks 0–1) and the whole world of 4.
#
# Read these numbers with care: here the "network" is the loopback interface and $N$ processes
# share this machine's few cores, so large $N$ measures CPU contention as much as the
# algorithm. Small messages are dominated by *latency* — the ring needs $2(N-1)$ sequential
# steps, each paying the per-message cost; large messages by *bandwidth*, where the naive hub's
# $(N-1)B$ shows. The byte counts above are what carries over to a real cluster.

# %%
import os

from course_lib.timing import Timing

SIZES_BYTES = [4**k * 2**12 for k in range(7)]  # 4 KiB ... 16 MiB
timed: dict[int, dict[str, list[Timing]]] = launch(
    experiment.time_all_reduces, 4, (SIZES_BYTES,), dict(repeats=7, group_sizes=(2, 4)), show_output=False).results[0]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
for ax, (n, per_algorithm) in zip(axes, timed.items()):
    for algorithm, per_size in per_algorithm.items():
        medians = [1e3 * t.median for t in per_size]
        spread = [[1e3 * (t.median - t.q1) for t in per_size], [1e3 * (t.q3 - t.median) for t in per_size]]
        ax.errorbar(SIZES_BYTES, medians, yerr=spread, marker="o", capsize=3, label=algorithm)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_title(f"N = {n} processes")
    ax.set_xlabel("message size (bytes)")
axes[0].set_ylabel("ms per all-reduce (median, IQR bars)")
axes[0].legend()
plt.show()
for n, per_algorithm in timed.items():
    print(f"N={n}, 16 MiB: " + ", ".join(f"{a} {1e3 * s[-1].median:.1f} ms" for a, s in per_algorithm.items()))
    assert all(len(s) == len(SIZES_BYTES) and min(t.median for t in s) > 0 for s in per_algorithm.values())

# %% [markdown]
# ## An α-β model fitted to our timings
#
# The classic cost model of a message of $n$ bytes is $\alpha + n\beta$: a fixed **latency**
# $\alpha$ plus $\beta$ seconds per byte ($1/\beta$ is the bandwidth). The ring runs $2(N-1)$
# steps, each moving a chunk of $n/N$ bytes on every link at once, so
#
# $$t(n, N) \;\approx\; 2(N-1)\,\alpha \;+\; \frac{2(N-1)}{N}\, n\, \beta .$$
#
# The model is linear in $(\alpha, \beta)$, so `fit_alpha_beta` fits both by least squares
# (relative errors, since the times span orders of magnitude; both kept $\ge 0$), tested on
# synthetic timings with known $\alpha$, $\beta$ in `tests/test_distributed_cost_model.py`.
# We fit our ring's medians on the process counts this machine has a core for (each process
# needs one; beyond that, $\alpha$ measures the scheduler, not the ring). On a busy machine the
# small messages scatter — a process that waits for the CPU adds milliseconds to a
# microsecond-scale step — so the checks below ask what survives that: both terms are needed
# ($\alpha > 0$ and $\beta > 0$), and at the large sizes, where the bandwidth term dominates, the
# model is within a factor of 2 of the measurement. The printed errors show the rest:

# %%
from course_lib.distributed import fit_alpha_beta, ring_time

show_source(ring_time)
FIT_NS = [n for n in timed if n <= (os.cpu_count() or 1)] or [2]
rows = [(nbytes, n, t.median) for n in FIT_NS for nbytes, t in zip(SIZES_BYTES, timed[n]["ring"])]
fit = fit_alpha_beta(*zip(*rows))
print(f"fitted on N = {FIT_NS}: alpha = {fit.alpha_us:.0f} µs per ring step, "
      f"1/beta = {fit.bandwidth_gb_s:.2f} GB/s effective bandwidth")
fig, ax = plt.subplots(figsize=(6, 3.4))
dense = [2**k for k in range(12, 25)]
for n in timed:
    ax.loglog(SIZES_BYTES, [1e3 * t.median for t in timed[n]["ring"]], "o", c=f"C{n}", label=f"measured, N = {n}")
    ax.loglog(dense, [1e3 * fit.predict(b, n) for b in dense], "-" if n in FIT_NS else ":", c=f"C{n}",
              label=f"α-β model, N = {n}" + ("" if n in FIT_NS else " (extrapolated)"))
ax.set_xlabel("message size n (bytes)")
ax.set_ylabel("ms per ring all-reduce")
ax.legend(fontsize=8)
plt.show()
for n in FIT_NS:
    errors = [e for (_, m, _), e in zip(rows, fit.relative_errors) if m == n]
    print(f"N = {n}, (model - measured) / measured from 4 KiB to 16 MiB: " + ", ".join(f"{e:+.0%}" for e in errors))
    ratios = [1 + e for e in errors[-2:]]  # model / measured at 4 and 16 MiB, where bandwidth dominates
    assert all(0.5 <= r <= 2.0 for r in ratios), ratios  # the bandwidth end within a factor of 2
assert fit.alpha > 0 and fit.beta > 0  # both terms are needed: neither latency nor bandwidth alone fits
crossover = 2 * fit.alpha / fit.beta if fit.beta > 0 else float("inf")  # n* = N α / β, N = 2
latency_share = ring_time(4096, 2, fit.alpha, 0.0) / fit.predict(4096, 2)
print(f"N = 2: latency and bandwidth terms are equal at n* = {crossover / 1e3:.0f} KB; "
      f"at 4 KiB the latency term is {latency_share:.0%} of the model's time")

# %% [markdown]
# Two numbers now summarise the ring on this machine. Below the crossover size
# $n^* = N\alpha/\beta$ (where $2(N-1)\alpha = \frac{2(N-1)}{N} n \beta$) the latency term dominates: sending gradients in
# a few large buckets instead of many small ones saves $2(N-1)\alpha$ per bucket — the reason
# DDP's buckets are 25 MiB by default (read from a real `DistributedDataParallel` below), not one
# per parameter. Above it, only fewer bytes help (FP16 gradients, compression). On this machine
# $\alpha$ is large (Python and the processes' scheduling are part of each step) and $1/\beta$
# includes the additions of the reduce-scatter; NCCL on NVLink has $\alpha$ of a few µs and
# $1/\beta$ of hundreds of GB/s, but the same formula.

# %%
cap = launch(experiment.ddp_default_bucket_bytes, 1, show_output=False).results[0]
print(f"DistributedDataParallel with default arguments: bucket_bytes_cap = {cap:,} bytes = {cap / 2**20:g} MiB; "
      f"at N = 2 that is {cap / crossover:,.0f} times this machine's crossover size n*")
assert cap == 25 * 2**20 and cap > crossover

# %% [markdown]
# ## SimpleDDP
#
# `course_lib.distributed.SimpleDDP` does what DDP does, in the same order:
#
# 1. **broadcast** parameters and buffers from rank 0 (replicas start identical);
# 2. **buckets**: group parameters into buckets of about `bucket_cap_mb`, in *reverse*
#    parameter order — backward produces the last layer's gradients first (`assign_buckets`);
# 3. a **hook** per parameter (`register_post_accumulate_grad_hook`) counts arriving gradients;
#    when a bucket is full its gradients are copied into it **multiplied by $1/N$** and an
#    **asynchronous** `all_reduce` starts, while backward goes on computing earlier layers;
# 4. at the end of backward (a callback queued on the autograd engine) it **waits** for every
#    bucket and writes the sums of $g_r/N$ — the averages — back into `.grad`, before
#    `optimizer.step()`;
# 5. before every forward, it **broadcasts the buffers** from rank 0 again (DDP's default).
#
# Dividing *before* the sum is PyTorch's order too (its reducer multiplies by $1/N$ while copying
# gradients into the bucket): the sum of $N$ FP16 gradients can overflow where the sum of
# $g_r/N$ cannot exceed the largest of them.

# %%
from course_lib.distributed import SimpleDDP, assign_buckets

show_source(assign_buckets, SimpleDDP._launch_ready_buckets, SimpleDDP.finish_gradient_synchronization)

# %% [markdown]
# The order matters in FP16. Two ranks each hold the FP16 gradient 40000 (FP16's max is 65504):

# %% tags=["nbval-check-output"]
orders = launch(experiment.average_order, 2, show_output=False).results[0]
print("\n".join(f"{how:<16} {value}" for how, value in orders.items()))
assert orders["sum_then_divide"] == float("inf")  # 80000 overflowed before the division
assert orders["divide_then_sum"] == orders["simple_ddp"] == orders["torch_ddp"] == 40000.0

# %% [markdown]
# And the buffers: each rank sets its BatchNorm running mean to its own rank number *after*
# wrapping, then runs one forward. With `broadcast_buffers=True` (the default) every rank sees
# rank 0's value afterwards, in both implementations; with `False`, each keeps its own:

# %% tags=["nbval-check-output"]
for broadcast in (True, False):
    means = launch(experiment.buffers_each_forward, 3, kwargs=dict(broadcast_buffers=broadcast),
                   show_output=False).results
    print(f"broadcast_buffers={broadcast!s:<5}: running mean per rank {[m['torch_ddp'] for m in means]} "
          f"(torch DDP) {[m['simple_ddp'] for m in means]} (SimpleDDP)")
    assert all(m["simple_ddp"] == m["torch_ddp"] == (0.0 if broadcast else float(r)) for r, m in enumerate(means))

# %% [markdown]
# ### Check: SimpleDDP = PyTorch's DDP = one process on the full batch
#
# `experiment.compare_ddp` trains a small MLP for 5 SGD steps three ways on 2 processes: with
# `SimpleDDP` (each rank starting from *different* random weights — the broadcast must fix
# that), with `torch.nn.parallel.DistributedDataParallel`, and in one process on the whole
# batch. A tiny bucket cap makes several buckets, so the overlap is exercised.

# %% tags=["nbval-check-output"]
ddp_check = launch(experiment.compare_ddp, 2, kwargs=dict(steps=5), show_output=False).results[0]
assert ddp_check["simple_vs_torch"] <= 1e-6 and ddp_check["simple_vs_single"] <= 1e-6
assert ddp_check["launched_during_backward"]  # an all-reduce started before backward finished
print(f"{ddp_check['buckets']} buckets; after 5 steps the parameters agree to 1e-6: "
      "SimpleDDP = torch DDP = single process, full batch")

# %% [markdown]
# ### Gradient accumulation with `no_sync`
#
# A global batch too large for memory is split into micro-batches whose gradients add up in
# `.grad` before one optimizer step. Communicating after every micro-batch would send the
# gradients $k$ times; inside `with model.no_sync():` backward only accumulates locally, and the
# backward after the block all-reduces the sum once. `experiment.accumulation` runs 4
# micro-batches on 2 processes with `SimpleDDP.no_sync`, with torch DDP's `no_sync`, and with
# communication after every micro-batch (`SimpleDDP.bytes_sent` counts what was all-reduced):

# %% tags=["nbval-check-output"]
acc = launch(experiment.accumulation, 2, kwargs=dict(micro_batches=4), show_output=False).results[0]
assert acc["simple_vs_torch"] <= 1e-6 and acc["synced_vs_no_sync"] <= 1e-6  # the same gradients
assert acc["bytes_no_sync"] == acc["gradient_bytes"] and acc["bytes_every_step"] == 4 * acc["gradient_bytes"]
print(f"gradients {acc['gradient_bytes']} bytes: no_sync sent {acc['bytes_no_sync']} bytes, "
      f"syncing every micro-batch {acc['bytes_every_step']} bytes — the same accumulated gradients")

# %% [markdown]
# ### Parameters a forward skips: `find_unused_parameters`
#
# DDP's reducer waits for a gradient from *every* parameter before the last bucket can go. A
# model whose forward skips a parameter on some steps (a branch, a gated expert, a frozen-then-
# unfrozen head) breaks that. `experiment.unused_parameters` builds a model whose forward adds
# one of two "experts" (linear layers), chosen per rank and step — at step 0 rank $r$ uses expert
# $r \bmod 2$, at step 1 every rank expert 0 (no rank uses expert 1), at step 2 only rank 0 uses
# expert 1 — and wraps it three ways on 2 processes. PyTorch's DDP (default
# `find_unused_parameters=False`) says nothing at step 0: backward returns, the bucket holding
# the skipped expert never fills, so *no* gradient of that bucket is all-reduced — the ranks'
# gradients differ and `optimizer.step()` would use them. The error comes at the next forward
# (its first sentence, the same in torch 2.11 and 2.14):

# %% tags=["nbval-check-output"]
unused = launch(experiment.unused_parameters, 2, show_output=False).results
print(f"torch DDP, {unused[0]['torch_error_at']}:\n  {unused[0]['torch_error']}")
print(f"SimpleDDP, {unused[0]['simple_error_at']}:\n  {unused[0]['simple_error']}")
for out in unused:
    assert out["torch_error"].startswith("RuntimeError: Expected to have finished reduction in the prior iteration")
    assert "find_unused_parameters=True" in out["torch_error_message"]
    assert out["torch_step0_grads_synchronised"] is False  # the quiet step before the error
    assert out["simple_error_at"] == "backward of step 0" and "find_unused_parameters=True" in out["simple_error"]

# %% [markdown]
# SimpleDDP checks at the end of the backward that skipped (the engine callback that waits for the
# buckets sees one that never launched), so the error names the parameters *before* any optimizer
# step uses unsynchronised gradients. The fix is the same in both: `find_unused_parameters=True`.
# After every forward the wrapper walks the autograd graph from the outputs; parameters it cannot
# reach are marked ready (contributing zeros) as soon as backward's first gradient arrives, so
# every bucket launches. A small all-reduce of a "used" flag per parameter then tells every rank
# which parameters *no* rank used: their `.grad` is left alone (`None` stays `None`, so the
# optimizer skips them); one used by some ranks only gets the average with zeros from the others.
# Against one process computing the mean of the ranks' losses, over the three steps:

# %%
from course_lib.distributed.ddp import _reachable_parameters

show_source(_reachable_parameters)

# %% tags=["nbval-check-output"]
for out in unused:
    assert out["simple_vs_single"] <= 1e-6 and out["torch_vs_single"] <= 1e-6
    assert out["expert1_grad_is_none_after_step1"]  # no rank used it: no gradient, as in one process
print("find_unused_parameters=True: SimpleDDP = torch DDP = one process to 1e-6 at every step, "
      "including 'no rank used expert 1' and 'only rank 0 used it'")

# %% [markdown]
# The price: a graph traversal after every forward and one extra small all-reduce per step, which
# is why it is off by default. If no rank's loss
# reaches any parameter, or if only some ranks skip a parameter without the flag, the other
# ranks wait in an all-reduce that never completes — `launch`'s timeout names the rank.

# %% [markdown]
# ### Loss curves on 2 processes
#
# The training script `course_lib.distributed.training.run_training` fits a small MLP to a fixed
# random "teacher" network. The same function runs from this notebook through `launch` and,
# unchanged, under `torchrun` (see the end of the chapter).

# %%
from course_lib.distributed import TrainConfig, run_training

curves = {}
for ddp in ("simple", "torch"):
    run = launch(run_training, 2, (TrainConfig(ddp=ddp, steps=40, lr=0.3, bucket_cap_mb=0.05),), show_output=False)
    curves[ddp] = run.results[0]["losses"]
torch.testing.assert_close(curves["simple"], curves["torch"], rtol=0, atol=1e-6)
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.plot(curves["torch"], lw=4, alpha=0.4, label="torch DistributedDataParallel")
ax.plot(curves["simple"], "k--", label="SimpleDDP")
ax.set_xlabel("step")
ax.set_ylabel("mean loss over ranks")
ax.legend()
plt.show()
print(f"loss {curves['simple'][0]:.4f} -> {curves['simple'][-1]:.4f}; the curves agree to 1e-6")
assert curves["simple"][-1] < 0.7 * curves["simple"][0]  # it learns

# %% [markdown]
# ### The effect of bucket size
#
# A wider model (about 0.8 M parameters, 3.1 MB of gradients) on 2 processes, with buckets from
# tiny to one single bucket. `SimpleDDP.events` records, for the last step, when each gradient
# arrived and when each bucket's all-reduce was launched and waited for
# (`overlaps_backward(events)` reads them). With small buckets
# the first all-reduce starts while backward is still producing gradients (overlap); with one
# bucket it can only start after the very last gradient — nothing overlaps.

# %%
from course_lib.distributed import overlaps_backward

CAPS_MB = [0.01, 0.5, 2.0, 8.0]
wide_runs = {}
for cap in CAPS_MB:
    cfg = TrainConfig(ddp="simple", steps=20, width=512, depth=4, global_batch=32, bucket_cap_mb=cap)
    wide_runs[cap] = launch(run_training, 2, (cfg,), show_output=False).results[0]
print(f"{wide_runs[8.0]['parameters']:,} parameters = {4 * wide_runs[8.0]['parameters'] / 2**20:.1f} MB of gradients")


fig, (ax_events, ax_time) = plt.subplots(1, 2, figsize=(12, 3.4))
markers = {"grad": ("|", "gradient ready"), "launch": ("^", "all-reduce launched"), "wait": ("v", "waited for")}
for row, run in enumerate(wide_runs.values()):
    for kind, (marker, label) in markers.items():
        xs = [i for i, (k, _) in enumerate(run["events"]) if k == kind]
        ax_events.scatter(xs, [row] * len(xs), marker=marker, s=60, label=label if row == 0 else None,
                          c={"grad": "gray", "launch": "C2", "wait": "C3"}[kind])
ax_events.set_yticks(range(len(CAPS_MB)), [f"{cap} MB: {r['buckets']} buckets" for cap, r in wide_runs.items()])
ax_events.set_xlabel("order of events in one backward pass")
ax_events.set_ylim(-0.5, len(CAPS_MB) - 0.5)
ax_events.legend(loc="upper center", bbox_to_anchor=(0.5, 1.18), ncol=3, fontsize=8)
ax_time.semilogx(CAPS_MB, [r["ms_per_step"] for r in wide_runs.values()], marker="o")
ax_time.set_xlabel("bucket_cap_mb")
ax_time.set_ylabel("ms per training step (median)")
plt.show()
for cap, r in wide_runs.items():
    print(f"cap {cap:>5} MB: {r['buckets']:>2} buckets, overlap {overlaps_backward(r['events'])}, "
          f"{r['ms_per_step']:.1f} ms/step")
assert overlaps_backward(wide_runs[0.01]["events"])  # small buckets overlap backward
assert wide_runs[8.0]["buckets"] == 1 and not overlaps_backward(wide_runs[8.0]["events"])

# %% [markdown]
# The time per step is the honest part of the story on a laptop: both processes share a few CPU
# cores, gloo's communication threads compete with backward for them, and the loopback "network"
# is nearly free, so the differences are small and noisy. On GPUs with a real interconnect,
# backward runs on the GPU while NCCL moves the first buckets, and the overlap is what lets DDP
# scale; the 25 MiB default balances per-message latency against starting early.

# %% [markdown]
# ## Data and checkpoints in real DDP training
#
# ### Each rank its own shard: `DistributedSampler` and `set_epoch`
#
# In real code each rank's `DataLoader` takes a `torch.utils.data.DistributedSampler(dataset)`,
# which shuffles the indices with a seed, pads them to a multiple of $N$ and gives rank $r$
# every $N$-th one starting at $r$. The shuffle's seed is `seed + epoch`, and the sampler only
# learns the epoch through `sampler.set_epoch(epoch)`: forget it and every epoch visits the same
# order. `experiment.sampler_shards` builds the samplers of 3 ranks for 10 examples (in one
# process — the sampler takes `num_replicas` and `rank` as arguments):

# %%
for set_epoch in (False, True):
    shards = experiment.sampler_shards(10, 3, epochs=2, set_epoch=set_epoch)
    print(f"set_epoch={set_epoch!s:<5}: epoch 0 {shards[0]}\n                 epoch 1 {shards[1]}")
    if set_epoch:
        assert shards[1] != shards[0]  # a new order every epoch
    else:
        assert shards[1] == shards[0]  # the same order, epoch after epoch
    for epoch in shards:
        flat = [i for shard in epoch for i in shard]
        assert set(flat) == set(range(10)) and len(flat) == 12  # covers the data set, padded to 3 × 4
        repeated = sorted(i for i in set(flat) if flat.count(i) > 1)
        assert len(repeated) == 2 and all(len(shard) == 4 for shard in epoch)
print(f"10 examples on 3 ranks: 4 per rank, so 2 are visited twice per epoch (last epoch: {repeated})")
shards = experiment.sampler_shards(12, 3, epochs=1)[0]
assert sorted(i for shard in shards for i in shard) == list(range(12))  # divisible: disjoint, no padding

# %% [markdown]
# The padding repeats the first indices of the shuffled order so that every rank runs the same
# number of steps — a rank with one batch fewer would leave its peers waiting in an all-reduce.
# (`drop_last=True` drops the tail instead; evaluation that must count every example once needs
# care either way.)
#
# ### Saving a checkpoint: rank 0 writes, everyone loads
#
# The replicas are identical after every step, so one copy of the state is the checkpoint. Only
# rank 0 writes: $N$ processes writing the same path at once can interleave and leave a corrupt
# file (and on a shared file system cost $N$ times the I/O). Then a **barrier**, so no rank reads
# before rank 0 has finished — and rank 0 writes to a temporary name and renames it, so a file
# under the real name is always complete. Every rank loads with `map_location=` its own device:
# a checkpoint saved from `cuda:0` would otherwise put every process's copy on GPU 0.
# `experiment.checkpoint_on_rank0` trains a DDP model 3 steps on 2 processes, saves, and loads
# into fresh models whose random weights differ per rank:

# %%
import tempfile

from course_lib.distributed.experiment import checkpoint_on_rank0

show_source(checkpoint_on_rank0)

# %% tags=["nbval-check-output"]
with tempfile.TemporaryDirectory() as directory:
    saved = launch(checkpoint_on_rank0, 2, (directory,), show_output=False).results
for rank, out in enumerate(saved):
    print(f"rank {rank}: wrote {out['wrote']}, saw {out['files']}, fresh weights differed across ranks "
          f"{out['differed_before_load']}, after loading: max |difference| from rank 0 {out['max_diff_across_ranks']}")
    assert out["wrote"] == (rank == 0) and out["files"] == ["checkpoint.pt"]
    assert out["differed_before_load"] and out["max_diff_across_ranks"] == 0.0 and out["max_diff_vs_trained"] == 0.0

# %% [markdown]
# ## When a rank fails
#
# Distributed programs have a failure mode single processes don't: one rank dies and the
# others wait for it forever inside a collective. `launch` watches every process; when one
# raises or dies, it collects the reports for a moment, stops every other rank and raises
# `WorkerError` naming the rank that failed first and what happened. Here rank 2 raises before
# the all-reduce its peers are waiting in, and then rank 2 simply vanishes (`os._exit`, like a
# segfault or the out-of-memory killer):

# %% tags=["nbval-check-output"]
from course_lib.distributed import WorkerError

for how in ("raise", "exit"):
    try:
        launch(experiment.fail_on_rank, 4, (2, how), timeout=20, show_output=False)
    except WorkerError as err:
        print(str(err).splitlines()[0])
        assert err.rank == 2 and set(err.failures) == {0, 1, 2, 3}
    else:
        raise AssertionError("the launch should have failed")

# %% [markdown]
# Bad input is caught before it can corrupt or hang anything. A tensor whose shape differs
# between ranks would make a ring exchange chunks of different sizes; instead every rank raises
# the same `ValueError` (one tiny `all_gather` of the shapes comes first):

# %% tags=["nbval-check-output"]
errors = launch(experiment.bad_input_errors, 3, show_output=False).results[0]
print(errors["ring"])
assert "same shape and dtype on every rank" in errors["ring"]

# %% [markdown]
# ## Widget: step through the ring
#
# `course_lib.distributed.ring_widget()` wires two sliders to the pure function
# `ring_view(world_size, step)`: choose $N$, then walk through the $2(N-1)$ steps. Watch the
# number in each chunk climb to $N$ during the reduce-scatter, then the complete chunks travel
# around during the all-gather. The cell after it moves the sliders from code, as the tests do.

# %%
from course_lib.distributed import ring_widget

widget = ring_widget(4)
widget

# %%
before = widget.caption.value
widget.controls["step"].value = 3
assert widget.caption.value != before and "after step 3 of 6" in widget.caption.value
widget.controls["world_size"].value = 8
assert widget.controls["step"].max == 14
widget.controls["world_size"].value = 4
widget.controls["step"].value = 0

# %% [markdown]
# ## Running the same script with torchrun
#
# `launch` is for notebooks on one machine. The training above is also a script: from a
# terminal, in the repository,
#
# ```
# python -m course_lib.distributed.train --nproc 2 --ddp simple          # starts 2 processes itself
# torchrun --nproc-per-node 2 -m course_lib.distributed.train --ddp torch
# ```
#
# and on two machines (run on each, with `--node-rank 0` and `1`, `HOST` = the first machine):
#
# ```
# torchrun --nnodes 2 --node-rank 0 --master-addr HOST --master-port 29500 \
#          --nproc-per-node 4 -m course_lib.distributed.train
# ```
#
# Under torchrun the script finds `RANK`, `WORLD_SIZE`, `MASTER_ADDR` and `MASTER_PORT` in its
# environment (`course_lib.distributed.init_from_env`) and runs the very same `run_training`.

# %% [markdown]
# ## Exercises
#
# Replace each `raise NotImplementedError` and run the cell. Every exercise has `.hint()` (call
# it again for the next hint) and `.solution()`.
#
# ### 1. One step of the ring, on real processes
#
# The chapter's central mechanism. Your function is plugged into the library's `ring_all_reduce`
# in place of `ring_step` and run on 2, 3 and 5 processes against `dist.all_reduce` (a few
# seconds per world size).

# %%
from course_lib.distributed.exercises import (
    bucket_assignment,
    gradient_averaging_hook,
    reduce_scatter_schedule,
    ring_bytes,
    ring_step,
)

ring_step.show();


# %%
def my_ring_step(chunks, rank, world_size, step, exchange):
    raise NotImplementedError  # your code here


ring_step.check(my_ring_step);

# %% [markdown]
# ### 2. The reduce-scatter schedule, 3. bytes per rank, 4. buckets, 5. the averaging hook

# %%
reduce_scatter_schedule.show();

# %%
def my_reduce_scatter_schedule(world_size, rank):
    raise NotImplementedError  # your code here


reduce_scatter_schedule.check(my_reduce_scatter_schedule);

# %%
ring_bytes.show();

# %%
def my_ring_bytes(numel, world_size, element_size, rank):
    raise NotImplementedError  # your code here


ring_bytes.check(my_ring_bytes);

# %%
bucket_assignment.show();

# %%
def my_bucket_assignment(sizes_bytes, cap_bytes):
    raise NotImplementedError  # your code here


bucket_assignment.check(my_bucket_assignment);

# %%
gradient_averaging_hook.show();

# %%
def my_gradient_averaging_hook(bucket, world_size, all_reduce):
    raise NotImplementedError  # your code here


gradient_averaging_hook.check(my_gradient_averaging_hook);

# %% [markdown]
# ## Summary
#
# * DDP runs **one process per device**; gradients travel in buckets, averaged by an all-reduce
#   that overlaps backward, and buffers are re-broadcast from rank 0 at every forward (by
#   default), so the replicas stay identical. DataParallel's threads share one interpreter and
#   one GPU hub.
# * The **ring** all-reduce (reduce-scatter + all-gather) sends $2(N-1)/N$ of the tensor per
#   rank, whatever $N$; the naive hub carries $(N-1)$ tensors each way. Latency, not bandwidth,
#   decides small messages.
# * **SimpleDDP**: broadcast, reverse-order buckets, gradient hooks, divide by $N$ then an async
#   all-reduce during backward, wait before the step, buffers broadcast every forward — equal to
#   PyTorch's DDP to 1e-6. Dividing before the sum keeps FP16 gradients from overflowing.
# * `no_sync()` makes gradient accumulation communicate once per optimizer step, not once per
#   micro-batch (4× fewer bytes for 4 micro-batches, the same gradients).
# * The **α-β model** $t \approx 2(N-1)\alpha + \frac{2(N-1)}{N} n\beta$, fitted to this
#   chapter's `timing.compare` medians, gives a latency per ring step and an effective bandwidth;
#   below $n^* = N\alpha/\beta$ latency dominates — why gradients travel in large buckets.
# * A forward that skips parameters needs **`find_unused_parameters=True`**: DDP otherwise takes a
#   silently unsynchronised step and fails at the next forward; SimpleDDP fails in that backward.
#   With it, SimpleDDP = DDP = one process, `None` gradients kept for parameters no rank used.
# * **`DistributedSampler.set_epoch(epoch)`** every epoch, or every epoch repeats the same order;
#   shards are disjoint and padded by repeating a few indices when $N$ does not divide the data.
# * **Checkpoints**: rank 0 writes (atomically), a barrier, every rank loads with `map_location`.
# * Multi-process code needs **fault handling**: a dead rank must stop everyone, with its name
#   on the error.
#
# References: Li et al., *PyTorch Distributed: Experiences on Accelerating Data Parallel
# Training*, VLDB 2020; Patarasuk & Yuan, *Bandwidth optimal all-reduce algorithms for clusters
# of workstations*, JPDC 2009; Sergeev & Del Balso, *Horovod: fast and easy distributed deep
# learning in TensorFlow*, 2018; the PyTorch tutorial *Getting Started with Distributed Data
# Parallel* and the `torch.distributed` documentation.
