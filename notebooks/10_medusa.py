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
# # 10 · Medusa: speculative decoding on a tiny code model
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dl-systems-course/dl-systems-course/blob/main/notebooks/10_medusa.ipynb) [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/dl-systems-course/dl-systems-course/main?labpath=notebooks%2F10_medusa.ipynb)
#
# A language model writes one token per forward pass, and each pass reads *every* weight of the
# model to produce that single token. On a large model and a GPU, the time goes into moving the
# weights, not into arithmetic — so checking ten guessed tokens in one pass costs about as much
# as producing one. **Medusa** (Cai et al., 2024) adds a few small *heads* that guess the 2nd,
# 3rd, 4th … next tokens, arranges their guesses in a **tree**, checks the whole tree in **one**
# forward pass with a tree-shaped attention mask, and keeps the longest guess the model agrees
# with. With greedy acceptance the output is *exactly* what plain greedy decoding writes — only
# in fewer steps.
#
# This chapter: why decoding is memory-bound → the tiny code model this course trained on
# Python's own standard library → Medusa heads and their accuracy → the draft tree, its mask and
# one verification pass → greedy and typical acceptance → the lossless check → tokens per step
# and speed-up for several trees → a viewer that steps through decoding → exercises.

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

# %%
import inspect
import time

import matplotlib.pyplot as plt
import torch

from course_lib import lm, speculative

# The model is tiny (a few MB): one thread is faster than two fighting over a shared CPU, and
# the whole chapter runs on the CPU so that the timings below describe the machine you have.
torch.set_num_threads(1)

# %% [markdown]
# ## 1 · Why decoding is memory-bound
#
# One decoding step for a model with $P$ parameters reads all $P$ weights (≈ $4P$ bytes in
# float32) and, for $N$ new tokens, does ≈ $2PN$ floating-point operations: an *arithmetic
# intensity* of about $N/2$ FLOP per byte. A GPU needs well over 100 FLOP/byte to be busy, so at
# $N = 1$ it mostly waits for memory, and $N = 10$ tokens take about the same time as one.
# That is the budget speculative decoding spends: extra tokens checked per pass, almost free.
#
# Our model is small enough to sit in the CPU's caches, so here fixed per-call costs play the
# part of memory traffic. Measured: one cached forward pass over $N$ new tokens,
# with `course_lib.speculative.forward_time`.

# %%
model, info = lm.load_checkpoint()
n_params = model.num_params()
print(f"tiny code model: {n_params:,} parameters ({4 * n_params / 1e6:.1f} MB in float32), "
      f"{model.config.n_layer} layers, width {model.config.n_embd}, context {model.config.block_size} bytes")
sizes = [1, 2, 4, 8, 16, 32, 64]
ms = [1e3 * speculative.forward_time(model, n, cache_len=64, repeats=15) for n in sizes]
for n, t in zip(sizes, ms):
    print(f"N = {n:3d} new tokens: {t:6.2f} ms per pass, {t / n:6.3f} ms per token")
assert ms[sizes.index(16)] < 8 * ms[0]  # 16 tokens in one pass cost far less than 16 passes
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(sizes, ms, marker="o", label="one pass over N tokens")
ax.plot(sizes, [ms[0] * n for n in sizes], ls="--", c="gray", label="N passes of 1 token")
ax.set_xscale("log", base=2)
ax.set_yscale("log")
ax.set_xlabel("N new tokens per forward pass")
ax.set_ylabel("ms")
ax.legend()
plt.show()

# %% [markdown]
# ## 2 · The tiny code model
#
# `course_lib.lm` is a nanoGPT-style transformer on **bytes** (256 tokens, no tokenizer to
# train), trained on the source code of Python's standard library read from this machine — no
# downloads. `python -m course_lib.lm.train --preset full` trained the committed checkpoint;
# `--quick` trains your own in a few minutes. The checkpoint stores how it was made:

# %%
print("trained with:", info["train"]["command"])
print(f"{info['train']['steps_done']} steps, {info['train']['tokens_seen'] / 1e6:.1f} M bytes seen, "
      f"{info['train']['seconds'] / 60:.0f} min on the CPU")
print(f"validation loss: {info['val_loss']:.3f} nats/byte "
      f"(uniform guessing: {torch.log(torch.tensor(256.0)):.2f})")
# the stored validation slice, re-evaluated here, gives the stored loss
assert abs(lm.evaluate(model, info["val_slice"].long()) - info["val_slice_loss"]) < 1e-4
fig, ax = plt.subplots(figsize=(6, 2.8))
ax.plot(info["history"]["step"], info["history"]["train_loss"], marker=".", label="train (smoothed)")
ax.plot(info["history"]["step"], info["history"]["val_loss"], marker=".", label="validation")
ax.set_xlabel("step")
ax.set_ylabel("nats / byte")
ax.legend()
plt.show()

# %% [markdown]
# Two additions to nanoGPT make Medusa possible: a **KV cache** (keys and values of the tokens
# already seen are kept, so a step feeds only new tokens) and an **attention mask** argument
# for the new tokens (default causal; Medusa passes a tree). Here is the attention, printed from
# the library:

# %%
print(inspect.getsource(lm.model.CausalSelfAttention.forward))

# %% [markdown]
# Greedy decoding and sampling from a held-out prompt — and the check that decoding with the
# KV cache writes exactly what recomputing the whole prefix every step writes:

# %%
corpus = lm.load_corpus()
prompts = lm.code_prompts(corpus.val, 16, 64)  # held-out files, each prompt starting a line
prompt = prompts[2]
greedy = lm.generate(model, prompt, 120)
sampled = lm.generate(model, prompt, 120, temperature=0.8, generator=torch.Generator().manual_seed(0))
print("PROMPT\n" + lm.decode(prompt))
print("GREEDY\n" + lm.decode(greedy[64:]))
print("SAMPLED (T = 0.8)\n" + lm.decode(sampled[64:]))
assert torch.equal(greedy, lm.generate(model, prompt, 120, use_cache=False))

# %% [markdown]
# A model of under a million parameters soon falls into loops under greedy decoding (sampling
# avoids them, at the price of more mistakes). Loops and boilerplate are also what makes its
# next bytes easy to guess — which the heads below exploit. (Its validation loss is helped by
# two repetitive codec tables, `encodings/cp437.py` and `cp862.py`, among the held-out files.)
#
# ## 3 · Medusa heads
#
# Head $k$ reads the same final hidden state $h_t$ as the model's own LM head and predicts the
# token $k + 2$ places ahead: $p_k(x_{t+2+k}) = \mathrm{softmax}(W_k\,(h_t + \mathrm{SiLU}(A_k h_t + b_k)))$.
# Each head starts as a copy of the base head ($A_k = 0$, $W_k = W$), then **Medusa-1**
# training fits the heads with the backbone frozen, with cross-entropy weighted by $0.8^k$
# (`course_lib.speculative.medusa_training.medusa_loss`):

# %%
print(inspect.getsource(speculative.MedusaHeads.forward))
print(inspect.getsource(speculative.medusa_training.medusa_loss))

# %% [markdown]
# Train a fresh set of four heads here with `course_lib.speculative.train_heads`, for 60 steps
# of 16 windows (about 15 seconds on one core; the backbone gets no gradient):

# %%
my_heads = speculative.MedusaHeads(model, num_heads=4)
my_losses = speculative.train_heads(model, my_heads, steps=60, batch_size=16)
print(f"weighted loss: {sum(my_losses[:5]) / 5:.3f} (first 5 steps) -> {sum(my_losses[-5:]) / 5:.3f} (last 5)")
assert sum(my_losses[-5:]) < sum(my_losses[:5])

# %% [markdown]
# The committed heads had the same training for 600 steps
# (`python -m course_lib.speculative.train`, a few minutes). Each head's accuracy on held-out
# windows — untrained (a copy of the base head), after your 60 steps, after 600:

# %%
heads, heads_info = speculative.load_heads(model)
windows = lm.validation_slice(corpus.val, 24, model.config.block_size + 1)
untrained = speculative.head_accuracy(model, speculative.MedusaHeads(model, heads.num_heads), windows, k=5)
mine = speculative.head_accuracy(model, my_heads, windows, k=5)
trained = speculative.head_accuracy(model, heads, windows, k=5)
print(f"yours (60 steps):\n{mine}\n\ncommitted heads ({heads_info['steps']} steps):\n{trained}")
assert all(a > b for a, b in zip(mine.top1, untrained.top1))  # 60 steps already help every head
assert all(a > b for a, b in zip(trained.top1, mine.top1))  # and 600 help more
assert all(k5 >= k1 for k1, k5 in zip(trained.top1, trained.topk))
assert trained.top1 == sorted(trained.top1, reverse=True)  # further ahead is harder

# %%
fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 3.2))
offsets = range(2, 2 + heads.num_heads)
for shift, acc, label in ((-0.3, untrained.top1, "top-1, untrained"), (-0.1, mine.top1, "top-1, 60 steps"),
                          (0.1, trained.top1, f"top-1, {heads_info['steps']} steps"),
                          (0.3, trained.topk, f"top-5, {heads_info['steps']} steps")):
    ax_acc.bar([o + shift for o in offsets], acc, width=0.2, label=label)
ax_acc.axhline(trained.base_top1, c="k", ls="--", label="base model, offset 1")
ax_acc.set_xlabel("head predicts the token this many places ahead")
ax_acc.set_ylabel("accuracy on held-out code")
ax_acc.legend(fontsize=7)
ax_loss.plot(heads_info["losses"], lw=0.8, label=f"committed heads ({heads_info['steps']} steps)")
ax_loss.plot(my_losses, lw=0.8, label="yours (60 steps)")
ax_loss.set_xlabel("Medusa-1 training step")
ax_loss.set_ylabel("weighted loss")
ax_loss.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## 4 · The draft tree
#
# Guesses are combined into a tree given by its *paths* (Medusa's "medusa choices"): path
# $(i_0, i_1)$ is "head 0's $i_0$-th guess, then head 1's $i_1$-th". Node 0, the root, is the
# base model's own next token. From the paths, `course_lib.speculative.MedusaTree` builds
#
# * the **tree mask**: node $i$ may attend to node $j$ iff $j$ is $i$ or an ancestor of $i$;
# * the **position ids**: cache length + depth, so siblings share a position;
# * the **retrieve indices**: for each leaf, the nodes from the root to it — one candidate each.

# %% tags=["nbval-check-output"]
tree = speculative.medusa_tree("small")
print("paths:", tree.paths)
print("mask (row attends to column):")
for row in tree.mask.int().tolist():
    print("   ", " ".join(map(str, row)))
print("depths:", tree.depths.tolist())
print("retrieve indices:", tree.retrieve_indices.tolist())
for name, paths in speculative.EXAMPLE_TREES.items():
    t = speculative.medusa_tree(name)
    print(f"{name:8s}: {t.num_nodes:2d} nodes, depth {t.depth}, top-{t.top_k} per head, {len(t.retrieve_indices)} candidates")

# %%
print(inspect.getsource(speculative.MedusaTree.mask.func))

# %% [markdown]
# ## 5 · One step: draft, verify in one pass, accept, compact
#
# `medusa_step` takes the top-$k$ guesses of every head, puts them on the tree, runs **one**
# forward pass over all nodes with the tree mask on top of the KV cache, picks the accepted
# path, and keeps only that path's keys and values in the cache:

# %%
print(inspect.getsource(speculative.medusa_step))

# %% [markdown]
# The one tree-masked pass must give each node the logits it would get if its path were simply
# appended to the text. Checked for every node of the "medium" tree:

# %%
tree = speculative.medusa_tree("medium")
context = prompts[0][None]
nodes = torch.randint(0, 256, (1, tree.num_nodes), generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    cache = lm.KVCache(model.config)
    model(context, cache=cache)
    tree_logits, _ = model(nodes, cache=cache, attn_mask=tree.mask, positions=context.shape[1] + tree.depths)
    for i in range(tree.num_nodes):
        path = tree.mask[i].nonzero()[:, 0]  # node i and its ancestors, root first
        plain_logits, _ = model(torch.cat([context, nodes[:, path]], dim=1))
        assert torch.allclose(tree_logits[0, i], plain_logits[0, -1], atol=1e-4)
print(f"all {tree.num_nodes} nodes verified in one pass agree with {tree.num_nodes} separate passes")

# %% [markdown]
# ## 6 · Acceptance
#
# **Greedy**: a guessed token is kept iff it equals the model's argmax at its parent and all
# guesses before it were kept. **Typical** (for sampling at temperature $\tau$): a guess $x$ is
# kept iff $p(x) > \min(\varepsilon,\ \alpha\,e^{-H(p)})$ — a fixed threshold when the model is
# sure, a lower one when its distribution is flat (high entropy $H$). Typical acceptance keeps
# more, but is no longer exactly the model's own sampling distribution.

# %%
print(inspect.getsource(speculative.greedy_acceptance))

# %% [markdown]
# ## 7 · Lossless: greedy Medusa writes exactly what greedy decoding writes
#
# Every kept token is the base model's argmax given exactly the tokens before it, so greedy
# Medusa can only write what plain greedy decoding writes. (In exact arithmetic. In floating
# point the tree pass adds the same terms in another order than the one-token passes, so two
# logits closer than the rounding error could swap; over this chapter's 16 held-out prompts the
# closest gap between the top two logits is about $7 \cdot 10^{-4}$, far above float32 rounding,
# and `tests/test_speculative.py` repeats the check in float64.) Over held-out prompts, several
# lengths and two trees:

# %%
checked = 0
for p in prompts[:8]:
    for n in (1, 9, 50, 120):
        plain = lm.generate(model, p, n)
        for name in ("small", "large"):
            assert torch.equal(speculative.medusa_generate(model, heads, p, n, tree=name).tokens, plain)
            checked += 1
print(f"{checked} Medusa runs, every one identical to plain greedy decoding")

# %% [markdown]
# ## 8 · Experiment: tokens per step and speed-up
#
# 16 held-out prompts, 128 new bytes each; plain greedy decoding against Medusa with four trees
# and both acceptance rules (`course_lib.speculative.compare_decoding`, which also re-checks
# that greedy Medusa is lossless). *Tokens per step* depends only on the model and heads;
# *speed-up* is wall-clock time, measured in the same run, and varies with the machine.

# %%
cpu_start = time.process_time()
rows = speculative.compare_decoding(model, heads, prompts, 128)
print(f"{'method':24s} {'nodes':>5s} {'tokens/step':>11s} {'seconds':>8s} {'speed-up':>8s}")
for r in rows:
    print(f"{r.method:24s} {r.nodes:5d} {r.tokens_per_step:11.2f} {r.seconds:8.2f} {r.speedup:8.2f}")
print(f"({time.process_time() - cpu_start:.1f} s CPU time)")
by = {r.method: r for r in rows}
greedy_tps = [by[f"medusa/{t}/greedy"].tokens_per_step for t in speculative.EXAMPLE_TREES]
assert min(greedy_tps) > 1.5  # every tree writes well over one token per pass
assert all(by[f"medusa/{t}/typical"].tokens_per_step >= by[f"medusa/{t}/greedy"].tokens_per_step * 0.95
           for t in speculative.EXAMPLE_TREES)

# %%
names = list(speculative.EXAMPLE_TREES)
fig, (ax_tps, ax_speed) = plt.subplots(1, 2, figsize=(11, 3.2))
xs = range(len(names))
for shift, acceptance in ((-0.2, "greedy"), (0.2, "typical")):
    ax_tps.bar([x + shift for x in xs], [by[f"medusa/{t}/{acceptance}"].tokens_per_step for t in names],
               width=0.4, label=acceptance)
    ax_speed.bar([x + shift for x in xs], [by[f"medusa/{t}/{acceptance}"].speedup for t in names],
                 width=0.4, label=acceptance)
labels = [f"{t}\n({by[f'medusa/{t}/greedy'].nodes} nodes)" for t in names]
for ax, ylabel in ((ax_tps, "mean tokens per step"), (ax_speed, "wall-clock speed-up vs plain")):
    ax.set_xticks(list(xs), labels)
    ax.axhline(1.0, c="k", lw=0.8)
    ax.set_ylabel(ylabel)
    ax.legend()
plt.show()

# %% [markdown]
# Medusa writes two to three bytes per forward pass with greedy acceptance and three to four
# with typical acceptance, and bigger trees keep more per step. The wall-clock gain is much
# smaller (on the machine that built this notebook: about 1.0–1.1× greedy, 1.2–1.4× typical):
# this model's 3 MB of weights sit in the CPU's caches, so a step is *not* limited by memory
# traffic, and a pass over the 13 nodes of "medium" costs about 1.7× a one-token pass (section
# 1); the step's bookkeeping (top-$k$, gathering paths, compacting the cache) adds ~10 %. On a
# large model on a GPU, where each step reads gigabytes of weights, the speed-up follows the
# tokens per step much more closely — the Medusa paper reports 2.2–3.6× on 7B–33B models.
# Bigger trees accept more per step but cost more per pass: the best tree depends on the hardware.
#
# ## 9 · Watch the tree
#
# `course_lib.speculative.draft_tree_widget` decodes a prompt once and lets you step through it:
# the candidate tree with its tokens (␣ is a space, ↵ a newline), the accepted path in green,
# the tree mask beside it, and the text so far. Each picture is the pure function
# `draft_tree_view(result, step)`.

# %%
widget = speculative.draft_tree_widget(model, heads, lm.decode(prompts[10]), max_new_tokens=48, tree="medium")
widget

# %%
before = widget.caption.value
widget.controls["step"].value = 3
assert widget.caption.value != before and "step 4 of" in widget.caption.value
widget.controls["step"].value = 0

# %% [markdown]
# ## 10 · Exercises
#
# Replace each `raise NotImplementedError` with your code and run the cell; the check compares
# your function with the reference on edge cases and random inputs. `tree_mask.hint()` gives a
# hint (call it again for the next), `tree_mask.solution()` shows the answer — likewise for the
# other two.

# %%
from course_lib.speculative.exercises import greedy_accept, retrieve_paths, tree_mask

tree_mask.show();

# %%
def my_tree_mask(paths):
    raise NotImplementedError  # your code here


tree_mask.check(my_tree_mask);

# %%
retrieve_paths.show();

# %%
def my_retrieve_paths(paths):
    raise NotImplementedError  # your code here


retrieve_paths.check(my_retrieve_paths);

# %%
greedy_accept.show();

# %%
def my_greedy_accept(candidates, logits):
    raise NotImplementedError  # your code here


greedy_accept.check(my_greedy_accept);

# %% [markdown]
# ## Summary
#
# * Decoding reads all weights per token; checking many tokens in one pass is nearly free where
#   that reading dominates (section 1).
# * Medusa heads guess several tokens ahead from one hidden state (`MedusaHeads`, trained with
#   the backbone frozen: `train_heads`); their accuracy falls with the distance.
# * A tree of guesses is verified in one pass with a tree mask, tree position ids and the KV
#   cache (`MedusaTree`, `medusa_step`); the cache is then compacted to the accepted path.
# * Greedy acceptance is lossless — asserted above over many prompts and lengths; typical
#   acceptance keeps more tokens when sampling.
# * Here: 2–4 tokens per step; the wall-clock gain depends on how memory-bound a step is, and
#   on a tiny model whose weights fit in the CPU's caches it is small.
#
# **References.** T. Cai, Y. Li, Z. Geng, H. Peng, J. D. Lee, D. Chen, T. Dao, "Medusa: Simple LLM
# Inference Acceleration Framework with Multiple Decoding Heads", ICML 2024, and its code
# (FasterDecoding/Medusa). Y. Leviathan, M. Kalman, Y. Matias, "Fast Inference from
# Transformers via Speculative Decoding", ICML 2023. A. Karpathy, nanoGPT.
# Tests: `tests/test_lm.py`, `tests/test_speculative.py`; benchmark: `benchmarks/bench_medusa.py`.
