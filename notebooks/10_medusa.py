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
# one verification pass → greedy and typical acceptance → the lossless check → tokens per step,
# speed-up and quality for several trees → where a step's time goes, and a cost model that
# predicts the speed-up → building a tree from measured acceptance, and Medusa-2's joint-training
# recipe (combined loss, learning rates, heads warm-up) drawn → lossless speculative *sampling*
# → a viewer that steps through decoding → exercises.

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
import matplotlib.pyplot as plt
import torch
from tqdm.auto import tqdm

from course_lib import lm, speculative
from course_lib.source import show_source
from course_lib.speculative import experiment

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
# Our model is small enough to sit in the CPU's caches, so here fixed per-call costs and
# arithmetic play the part of memory traffic. Measured: $c(N)$, one cached forward pass over $N$
# new tokens, with `course_lib.speculative.experiment.forward_time` — every size timed in the
# same interleaved run (`course_lib.timing.compare`: warm-up, ≥ 5 repeats, median and IQR). The
# same for two larger, randomly initialised models of the same shape family: how $c(N)/c(1)$
# grows with $N$ depends on the model and the machine, and it is the denominator of every
# speed-up below.

# %%
model, info = lm.load_checkpoint()
n_params = model.num_params()
print(f"tiny code model: {n_params:,} parameters ({4 * n_params / 1e6:.1f} MB in float32), "
      f"{model.config.n_layer} layers, width {model.config.n_embd}, context {model.config.block_size} bytes")
sizes = [1, 2, 4, 8, 16, 32, 64]
cost = experiment.forward_time(model, sizes, cache_len=64, repeats=7)
for n in sizes:
    t = cost.timings[n]
    print(f"N = {n:3d}: {1e3 * t.median:6.2f} ms per pass (IQR {1e3 * t.q1:.2f}–{1e3 * t.q3:.2f}), "
          f"c(N)/c(1) = {cost.ratio(n):5.2f}")
assert cost.ratio(16) < 8  # 16 tokens in one pass cost far less than 16 passes

torch.manual_seed(0)
bigger = {f"{lm.GPT(c).num_params() / 1e6:.1f} M params": lm.GPT(c).eval()
          for c in (lm.GPTConfig(n_layer=6, n_head=4, n_embd=256), lm.GPTConfig(n_layer=8, n_head=8, n_embd=512))}
ratios = {f"{n_params / 1e6:.1f} M params (ours)": {n: cost.ratio(n) for n in (1, 4, 16, 64)}}
with torch.no_grad():
    for name, m in bigger.items():
        c = experiment.forward_time(m, (1, 4, 16, 64), cache_len=64, repeats=5)
        ratios[name] = {n: c.ratio(n) for n in (1, 4, 16, 64)}
        print(f"{name}: c(1) = {1e3 * c.timings[1].median:.2f} ms, c(16)/c(1) = {c.ratio(16):.2f}, "
              f"c(64)/c(1) = {c.ratio(64):.2f}")
fig, (ax, ax_r) = plt.subplots(1, 2, figsize=(8.4, 3.2))
ax.errorbar(sizes, [1e3 * cost.timings[n].median for n in sizes], marker="o", label="one pass over N tokens",
            yerr=[[1e3 * (cost.timings[n].median - cost.timings[n].q1) for n in sizes],
                  [1e3 * (cost.timings[n].q3 - cost.timings[n].median) for n in sizes]])
ax.plot(sizes, [1e3 * cost.timings[1].median * n for n in sizes], ls="--", c="gray", label="N passes of 1 token")
ax.set(xscale="log", yscale="log", xlabel="N new tokens per forward pass", ylabel="ms (median, IQR)")
ax.set_xticks(sizes, [str(n) for n in sizes])
ax.legend(fontsize=9, loc="upper left")
for name, r in ratios.items():
    ax_r.plot(list(r), list(r.values()), marker="o", label=name)
ax_r.axhline(1.0, c="k", lw=0.8, ls=":", label="memory-bound ideal: c(N) = c(1)")
ax_r.set(xscale="log", yscale="log", xlabel="N", ylabel="c(N) / c(1)")
ax_r.set_xticks([1, 4, 16, 64], ["1", "4", "16", "64"])
ax_r.legend(fontsize=8, loc="upper left")
fig.tight_layout()
plt.show()

# %% [markdown]
# On a CPU, a larger model turns compute-bound sooner: its matrix products already keep the
# cores busy at $N = 1$, so $N$ tokens cost nearly $N$ times as much, and speculative decoding has
# little to gain. A GPU reads a large model's weights from memory at a few TB/s but computes at
# hundreds of TFLOP/s: there $c(N)/c(1)$ stays near 1 up to tens of tokens — the memory-bound
# regime the papers' speed-ups come from. (The GPU cell at the end of the chapter measures it
# when CUDA is present.)

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
show_source(lm.model.CausalSelfAttention.forward)

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
show_source(speculative.MedusaHeads.forward, speculative.medusa_training.medusa_loss)

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
fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(8.4, 3.4))
offsets = list(range(2, 2 + heads.num_heads))
for shift, acc, label in ((-0.3, untrained.top1, "top-1, untrained"), (-0.1, mine.top1, "top-1, 60 steps"),
                          (0.1, trained.top1, f"top-1, {heads_info['steps']} steps"),
                          (0.3, trained.topk, f"top-5, {heads_info['steps']} steps")):
    ax_acc.bar([o + shift for o in offsets], acc, width=0.2, label=label)
ax_acc.axhline(trained.base_top1, c="k", ls="--", label="base model, offset 1")
ax_acc.set_xticks(offsets, [str(o) for o in offsets])  # integer offsets only
ax_acc.set(xlabel="tokens ahead the head predicts", ylabel="accuracy on held-out code", ylim=(0, 1))
ax_acc.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)  # above the bars
ax_loss.plot(heads_info["losses"], lw=0.8, label=f"committed ({heads_info['steps']} steps)")
ax_loss.plot(my_losses, lw=0.8, label="yours (60 steps)")
ax_loss.set(xlabel="Medusa-1 training step", ylabel="weighted loss")
ax_loss.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
fig.tight_layout()
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
for name in speculative.EXAMPLE_TREES:
    t = speculative.medusa_tree(name)
    print(f"{name:8s}: {t.num_nodes:2d} nodes, depth {t.depth}, top-{t.top_k} per head, {len(t.retrieve_indices)} candidates")

# %%
show_source(speculative.MedusaTree.mask.func)

# %% [markdown]
# ## 5 · One step: draft, verify in one pass, accept, compact
#
# `medusa_step` checks its arguments and runs four phases — `draft_candidates` (the top-$k$
# guesses of every head, placed on the tree), `verify_tree` (**one** forward pass over all nodes
# with the tree mask on top of the KV cache), `accept_path` (the accepted path) and
# `KVCache.compact` (keep only that path's keys and values) — then the heads on the last
# accepted node. The decoding loop calls the unchecked `_step` (its arguments were checked once):

# %%
show_source(speculative.draft_candidates, speculative.verify_tree, speculative.accept_path,
            speculative.medusa_decode._step)

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
# guesses before it were kept. **Typical** (Medusa §2.3.1): with $p = \mathrm{softmax}(z/\tau)$,
# a guess $x$ is kept iff $p(x) > \min(\varepsilon,\ \alpha\,e^{-H(p)})$ — a fixed threshold
# when the model is sure, a lower one when its distribution is flat (high entropy $H$).
#
# Be clear about what typical acceptance is: a **deterministic** decoder. Nothing is sampled —
# the root is the base model's argmax, the guesses are the heads' top-$k$, and $\tau$ only shapes
# the threshold — so it is not "sampling at temperature $\tau$, faster". It keeps more tokens per
# step than greedy because it also keeps tokens the model did *not* rank first; section 8
# measures what that does to the text. Sampling that is exactly the model's distribution is
# section 11. The parameters $\tau, \varepsilon, \alpha$ live in one `TypicalConfig`:

# %%
print(speculative.TypicalConfig())
show_source(speculative.greedy_acceptance, speculative.typical_acceptance)

# %% [markdown]
# ## 7 · Lossless: greedy Medusa writes exactly what greedy decoding writes
#
# Every kept token is the base model's argmax given exactly the tokens before it, so greedy
# Medusa can only write what plain greedy decoding writes. (In exact arithmetic. In floating
# point the tree pass adds the same terms in another order than the one-token passes, so two
# logits closer than the rounding error could swap: the cell below would catch it, and
# `tests/test_speculative.py` repeats the check in float64.) Over held-out prompts, several
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
# ## 8 · Experiment: tokens per step, speed-up and quality
#
# 8 held-out prompts, 128 new bytes each; plain greedy decoding against Medusa with four trees
# and both acceptance rules (`course_lib.speculative.experiment.compare_decoding`). All nine
# methods are timed in **one interleaved run** — after a warm-up, each repeat runs every method
# once in a rotating order, 5 repeats, median and IQR — so a slow moment of a shared machine hits
# all of them alike; the speed-up is a ratio of medians from that run. *Tokens per step* depends
# only on the model and heads. *Quality*: the base model's mean negative log-likelihood of each
# continuation (nats per byte; greedy text sits at the model's mode, lower is likelier) and the
# fraction of repeated 8-byte n-grams (`course_lib.lm.continuation_nll`, `repetition_rate`).
# Greedy Medusa is re-checked to be lossless along the way.

# %%
exp_prompts = prompts[:8]
rows = experiment.compare_decoding(model, heads, exp_prompts, 128, repeats=5)
print(f"{'method':24s} {'nodes':>5s} {'tokens/step':>11s} {'median s':>9s} {'IQR s':>13s} {'speed-up':>8s} "
      f"{'NLL':>6s} {'repeats':>7s}")
for r in rows:
    print(f"{r.method:24s} {r.nodes:5d} {r.tokens_per_step:11.2f} {r.timing.median:9.3f} "
          f"{r.timing.q1:6.3f}–{r.timing.q3:6.3f} {r.speedup:8.2f} {r.nll:6.3f} {r.repetition:7.2f}")
by = {r.method: r for r in rows}
names = list(speculative.EXAMPLE_TREES)
greedy_tps = [by[f"medusa/{t}/greedy"].tokens_per_step for t in names]
typical_tps = [by[f"medusa/{t}/typical"].tokens_per_step for t in names]
assert min(greedy_tps) > 1.5  # every tree writes well over one token per pass
assert all(by[f"medusa/{t}/greedy"].nll == by["plain"].nll for t in names)  # lossless: the same text
typical_nll = [by[f"medusa/{t}/typical"].nll for t in names]
# typical: less likely text on average over the trees (one tree can land near greedy's: seen on torch 2.11)
assert sum(typical_nll) / len(typical_nll) > by["plain"].nll
print(f"greedy Medusa: {min(greedy_tps):.2f}–{max(greedy_tps):.2f} tokens per step, speed-up "
      f"{min(by[f'medusa/{t}/greedy'].speedup for t in names):.2f}–"
      f"{max(by[f'medusa/{t}/greedy'].speedup for t in names):.2f}x on this machine now")
print(f"typical Medusa: {min(typical_tps):.2f}–{max(typical_tps):.2f} tokens per step, and its text costs the "
      f"base model {min(by[f'medusa/{t}/typical'].nll for t in names):.3f}–"
      f"{max(by[f'medusa/{t}/typical'].nll for t in names):.3f} nats/byte against greedy's {by['plain'].nll:.3f}")

# %%
fig, (ax_tps, ax_speed, ax_nll) = plt.subplots(1, 3, figsize=(8.4, 3.2))
xs = list(range(len(names)))
for shift, acceptance in ((-0.2, "greedy"), (0.2, "typical")):
    sel = [by[f"medusa/{t}/{acceptance}"] for t in names]
    ax_tps.bar([x + shift for x in xs], [r.tokens_per_step for r in sel], width=0.4, label=acceptance)
    # the speed-up's spread: plain's median over this method's quartiles
    ax_speed.bar([x + shift for x in xs], [r.speedup for r in sel], width=0.4, label=acceptance,
                 yerr=[[r.speedup - by["plain"].timing.median / r.timing.q3 for r in sel],
                       [by["plain"].timing.median / r.timing.q1 - r.speedup for r in sel]], capsize=2)
    ax_nll.bar([x + shift for x in xs], [r.nll for r in sel], width=0.4, label=acceptance)
ax_nll.axhline(by["plain"].nll, c="k", lw=0.8, ls="--", label="plain greedy")
for ax, ylabel in ((ax_tps, "tokens per step"), (ax_speed, "speed-up vs plain"),
                   (ax_nll, "base-model NLL (nats/byte)")):
    ax.set_xticks(xs, [f"{t}\n{by[f'medusa/{t}/greedy'].nodes}" for t in names], fontsize=9)
    ax.set_ylabel(ylabel)
ax_tps.axhline(1.0, c="k", lw=0.8)
ax_speed.axhline(1.0, c="k", lw=0.8)
ax_tps.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
ax_nll.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
ax_speed.set_xlabel("tree (nodes)")
fig.tight_layout()
plt.show()

# %% [markdown]
# The printed ranges above, not any fixed number, are this machine's result: the speed-up is far
# smaller than the tokens per step. Typical acceptance's extra tokens per step are bought with
# text the base model finds less likely than its own greedy text — it is another decoder, judged
# by what it writes, not a faster route to the same distribution.
#
# ## 9 · Where a step's time goes, and a cost model
#
# Why is the speed-up so much smaller than the tokens per step? A Medusa step is not only a
# forward pass. `course_lib.speculative.experiment.step_breakdown` times each phase of one step
# — drafting the candidates (argmax, top-$k$, placing them on the tree), the forward pass over
# the $N$ nodes, acceptance, cache compaction, the heads — on the same state, interleaved with
# the whole step, one plain step $c(1)$ and the prefill. The step's time outside the phases is
# Python: building the step record, calls, small allocations. The cost model
# (`course_lib.speculative.StepBreakdown`):
#
# $$\text{speed-up} \approx \frac{E[\text{tokens per step}]}{c(N)/c(1) + \text{overhead}},
#   \qquad \text{overhead} = \frac{\text{step} - c(N)}{c(1)},$$
#
# with the prefill (paid once by both decoders) added for a 128-token run. Both decoders are
# costed as their loops run: $c(1)$ is one iteration of `lm.generate`'s loop (the pass, picking
# the token, appending it), not the bare pass, and the Medusa rate is tokens per *forward pass*
# (a run's last step may emit only the root token, without a pass). Predicted against a
# measured speed-up, for every tree and both acceptance rules: the steps are timed at the mean
# cache length of a run (64 + 64 tokens), and whole plain and Medusa decodes of four held-out
# prompts are timed **in the same interleaved run** — on a shared machine whose load drifts,
# comparing numbers taken minutes apart would measure the drift. Four prompts, not one, make
# the tokens per step an average rather than one prompt's luck; the prefill in the model is
# theirs. Interleaving has one cost of its own: the first call of a phase after a whole decode
# finds the caches and the allocator in the decode's state and runs slower, a cost a decode —
# its steps back to back — does not pay per step. Each phase's sample therefore starts after
# one untimed call (`timing.compare(..., sample_warmup=...)`).

# %%
state = lm.code_prompts(corpus.val, 1, 128)[0]  # a 128-byte held-out context: the mean cache length
breakdowns = {r.method: experiment.step_breakdown(model, heads, state, r.method.split("/")[1],
                                                  r.method.split("/")[2], repeats=7, decode_prompts=prompts[:4],
                                                  max_new_tokens=128)
              for r in tqdm(rows[1:], desc="step breakdowns")}  # about 15 s each on one CPU thread
print(f"{'method':24s} {'c(N)/c(1)':>9s} {'overhead':>8s} {'fwd only':>8s} {'predicted':>9s} {'measured':>8s} "
      f"{'error':>6s}")
errors = {}
for method, b in breakdowns.items():
    predicted = b.predicted_speedup(b.tokens_per_step, b.max_new_tokens)
    errors[method] = predicted / b.measured_speedup - 1
    print(f"{method:24s} {b.forward_ratio:9.2f} {b.overhead:8.2f} {b.forward_only_speedup(b.tokens_per_step):8.2f} "
          f"{predicted:9.2f} {b.measured_speedup:8.2f} {errors[method]:+6.0%}")
worst = max(errors, key=lambda m: abs(errors[m]))
within = sum(abs(e) <= 0.10 for e in errors.values())
print(f"prediction within 10 % of the measurement (same run, 4 prompts) for {within} of {len(errors)} methods; "
      f"worst: {worst} ({errors[worst]:+.0%}); "
      f"{sum(e < 0 for e in errors.values())} of {len(errors)} predictions below the measurement")
medium = breakdowns["medusa/medium/greedy"]
share = {k: t.median / medium.step.median for k, t in medium.phases.items()}
print("medium tree, greedy: " + ", ".join(f"{k} {v:.0%}" for k, v in share.items())
      + f", Python and the rest {medium.other / medium.step.median:.0%} of a step")

# %%
fig, (ax_b, ax_p) = plt.subplots(1, 2, figsize=(8.4, 3.6), gridspec_kw={"width_ratios": [1.3, 1]})
greedy_b = [breakdowns[f"medusa/{t}/greedy"] for t in names]
bottom = [0.0] * len(names)
for phase in ["forward", "candidates", "acceptance", "compaction", "heads", "other"]:
    ms = [1e3 * (b.other if phase == "other" else b.phases[phase].median) for b in greedy_b]
    ax_b.bar(xs, ms, bottom=bottom, label=phase)
    bottom = [a + m for a, m in zip(bottom, ms)]
ax_b.axhline(1e3 * greedy_b[0].plain.median, c="k", ls="--", lw=1, label="plain step c(1)")
ax_b.set_xticks(xs, [f"{t}\n{b.nodes} nodes" for t, b in zip(names, greedy_b)], fontsize=9)
ax_b.set_ylabel("ms per step (medians)")
ax_b.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)  # above the bars
pred = [b.predicted_speedup(b.tokens_per_step, b.max_new_tokens) for b in breakdowns.values()]
meas = [b.measured_speedup for b in breakdowns.values()]
ax_p.scatter(meas, pred, c=["tab:blue" if m.endswith("greedy") else "tab:orange" for m in breakdowns])
lim = (0.0, max(pred + meas) * 1.15)
ax_p.plot(lim, lim, c="k", lw=0.8)
ax_p.fill_between(lim, [0.9 * v for v in lim], [1.1 * v for v in lim], color="0.85", label="±10 %")
ax_p.set(xlim=lim, ylim=lim, xlabel="measured speed-up", ylabel="predicted speed-up")
ax_p.set_title("blue: greedy, orange: typical", fontsize=9)
ax_p.legend(fontsize=8, loc="upper left")
fig.tight_layout()
plt.show()

# %% [markdown]
# Read the left plot from the bottom: the forward pass over $N$ nodes grows with $N$ (this CPU
# is not memory-bound, section 1), and the rest of the step — drafting, acceptance, compaction,
# the heads and Python — is paid on every step and not by plain decoding. The cost model
# explains the gap between tokens per step and speed-up; how close its predictions come is
# printed above. The error left is partly the load's noise — this notebook is built on a shared,
# busy machine, and two builds of it differ by several per cent per method, the overhead term
# moving most — and partly what the model still leaves out: steps near the end use a pruned
# tree, and the cache grows during a run. Where most errors share a sign (counted above), there
# is also a bias that phases timed one at a time, on one state, do not capture; we leave it
# measured rather than fit a correction to the speed-ups the model is meant to predict. The overhead that was not the model's and was easy
# to cut is cut: the decoding loop no longer re-checks its arguments on every step (`_step`),
# and the tree's mask, depths and paths are built once per tree (cached properties). On a GPU
# with a large model, $c(N)/c(1) \approx 1$ and a step's Python and bookkeeping are small
# against the pass: the speed-up approaches the tokens per step — the Medusa paper reports
# 2.2–3.6× on 7B–33B models.

# %% [markdown]
# ## 10 · Building a tree, not only using one
#
# The four example trees were written by hand. Medusa (§2.3.3) builds one from measurements:
# let $a_{d,i}$ be the probability that head $d$'s $i$-th guess is accepted — that it equals the
# base model's own greedy token there (`course_lib.speculative.rank_agreement`, teacher-forced on
# held-out code). Treating guesses as independent, a node is accepted with the product of $a$
# along its path, and a tree's expected accepted length is the sum over its nodes
# (`expected_accept_length`). A child's product never exceeds its parent's, so adding the most
# likely missing node, one at a time, keeps the tree valid and is optimal for every size
# (`greedy_tree`; `tests/test_speculative.py` checks optimality by brute force). Built trees
# against the hand-written ones at the same node count — predicted and measured tokens per step:

# %%
rank_probs = speculative.rank_agreement(model, heads, windows, k=4)
for d, row in enumerate(rank_probs.tolist()):
    print(f"head {d}: P(i-th guess accepted) = " + "  ".join(f"{p:.3f}" for p in row))
compare_trees = {}
for name in ("small", "medium", "large"):
    hand = speculative.medusa_tree(name)
    built = speculative.greedy_tree(rank_probs, hand.num_nodes)
    for label, t in ((name, hand), (f"built-{hand.num_nodes}", built)):
        results = [speculative.medusa_generate(model, heads, p, 128, tree=t) for p in exp_prompts]
        measured = sum(len(r.new_tokens) for r in results) / sum(len(r.steps) for r in results)
        compare_trees[label] = (t.num_nodes, 1 + speculative.expected_accept_length(t, rank_probs), measured)
    # the built tree is optimal for the measured probabilities, so it can only predict more
    assert compare_trees[f"built-{hand.num_nodes}"][1] >= compare_trees[name][1] - 1e-12
print(f"{'tree':10s} {'nodes':>5s} {'predicted tokens/step':>21s} {'measured':>8s}")
for label, (n, pred, meas) in compare_trees.items():
    print(f"{label:10s} {n:5d} {pred:21.2f} {meas:8.2f}")
print("the built 13-node tree's paths:", speculative.greedy_tree(rank_probs, 13).paths)

# %%
fig, ax = plt.subplots(figsize=(7, 3.2))
for kind, marker in (("hand-written", "o"), ("built", "s")):
    pts = [(n, pred, meas) for label, (n, pred, meas) in compare_trees.items()
           if label.startswith("built") == (kind == "built")]
    ax.plot([p[0] for p in pts], [p[2] for p in pts], marker=marker, label=f"{kind}, measured")
    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, ls="--", alpha=0.6, label=f"{kind}, predicted")
ax.set_xticks([7, 13, 23])
ax.set(xlabel="nodes in the tree", ylabel="tokens per step")
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
fig.tight_layout()
plt.show()

# %% [markdown]
# The prediction treats each guess as independent of the ones before it and uses agreement on
# real code, while decoding runs on the model's own greedy text, which is more repetitive —
# where measured exceeds predicted, that is why.
#
# **Medusa-2** (same paper, §2.2.2) goes further: it trains the heads *together with* the
# backbone, so the backbone's hidden states learn to carry what the heads need; the heads'
# accuracies rise and so does every tree's expected length. Three ingredients keep the
# backbone's own next-token quality from dropping (`speculative.medusa2_loss`,
# `speculative.Medusa2Recipe`):
#
# * a **combined loss** $L = L_\text{LM} + \lambda_0 \sum_k 0.8^k L_k$ — the backbone's own
#   next-token loss plus the Medusa-1 loss, weighted by $\lambda_0$ (0.2 in the reference's
#   training scripts), backpropagated into the backbone *and* the heads;
# * **differential learning rates**: the backbone's smaller than the heads' (the reference: the
#   heads at 4× the base rate);
# * **heads warm-up**: Medusa-1 first (backbone frozen) so that random heads do not send large
#   gradients into a trained backbone, then joint training. (The arXiv version says the backbone
#   first; the authors call that a typo in FasterDecoding/Medusa issue #74.)
#
# This chapter keeps Medusa-1 so that the committed model, and with it every lossless check,
# stays fixed. The picture below draws the recipe from `Medusa2Recipe` and, on the right, the
# combined loss's terms measured on held-out code for our backbone and committed heads — what
# each would contribute to the backbone's gradient.

# %%
recipe = speculative.Medusa2Recipe(lr=3e-3, warmup_steps=200)
steps_axis = range(600)
with torch.no_grad():  # the terms only: nothing is trained here
    combined = speculative.medusa2_loss(model, heads, windows[:8], lambda0=recipe.lambda0)
head_terms = [recipe.lambda0 * combined.decay**k * v.item() for k, v in enumerate(combined.heads)]
assert abs(combined.total.item() - combined.lm.item() - sum(head_terms)) < 1e-4  # L = L_LM + λ0 Σ 0.8^k L_k
assert all(a < b for a, b in zip(combined.heads, combined.heads[1:]))  # further ahead, harder
print(f"on held-out code: L_LM = {combined.lm.item():.3f} nats; heads' L_k = "
      + ", ".join(f"{v.item():.2f}" for v in combined.heads)
      + f"; λ0 Σ 0.8^k L_k = {sum(head_terms):.3f} ({sum(head_terms) / combined.total.item():.0%} of L)")
fig, (ax_lr, ax_l) = plt.subplots(1, 2, figsize=(8.4, 3.2), gridspec_kw={"width_ratios": [1.4, 1]})
ax_lr.plot(steps_axis, [1e3 * recipe.lr] * 600, c="tab:orange", lw=2, label="heads (Medusa-1 and -2)")
ax_lr.plot(steps_axis, [0.0] * 600, c="tab:blue", ls=":", lw=2, label="backbone, Medusa-1 (frozen)")
ax_lr.plot(steps_axis, [1e3 * recipe.learning_rates(i)[1] for i in steps_axis], c="tab:blue", lw=2,
           label=f"backbone, Medusa-2 (×{recipe.backbone_lr_ratio:g} after warm-up)")
ax_lr.axvspan(0, recipe.warmup_steps, color="0.9")
ax_lr.text(recipe.warmup_steps / 2, 0.6e3 * recipe.lr, "heads\nwarm-up", ha="center", va="center", fontsize=8)
ax_lr.set(xlabel="optimizer step", ylabel="learning rate (×10⁻³)", ylim=(-0.2e3 * recipe.lr, 1.9e3 * recipe.lr))
ax_lr.legend(fontsize=8, loc="upper right")
bottom = combined.lm.item()
ax_l.bar(0, bottom, color="tab:blue", label="$L_{LM}$ (backbone's own)")
for k, term in enumerate(head_terms):
    ax_l.bar(0, term, bottom=bottom, color=plt.cm.Oranges(0.35 + 0.15 * k), label=f"$λ_0 0.8^{k} L_{k}$ (head {k})")
    bottom += term
ax_l.set(xticks=[0], xticklabels=["combined loss L"], ylabel="nats per token", xlim=(-0.6, 2.4))
ax_l.legend(fontsize=8, loc="center right")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 11 · Lossless speculative sampling
#
# To *sample* at temperature $\tau$ and still get exactly the model's distribution
# (Leviathan et al. 2023; Chen et al. 2023): draw the draft $x \sim q$ from the drafter, compute
# the model's $p$ at that position in the verification pass, and
#
# * accept $x$ with probability $\min(1,\ p(x)/q(x))$;
# * otherwise sample from the residual $\mathrm{norm}(\max(0,\ p - q))$.
#
# Then $P(\text{output} = x) = \min(p, q)(x) + \max(0, p - q)(x) = p(x)$ for any $q$: the
# drafter only decides how often we get two tokens for one pass. Here the drafter is Medusa's
# first head (`course_lib.speculative.MedusaDrafter`); chapter 11 uses the MTP module.

# %%
show_source(speculative.speculative_accept)

# %% [markdown]
# The claim is about distributions, so it is checked by sampling: a tiny model over a 3-token
# vocabulary, every 2-token continuation's exact probability by enumeration, 600 speculative
# samples, and Pearson's chi-square test (`tests/test_speculative.py` also shows that a plausible
# mistake — resampling from $p$ instead of the residual — fails the same test).

# %%
torch.manual_seed(0)
toy = lm.GPT(lm.GPTConfig(vocab_size=3, block_size=8, n_layer=1, n_head=1, n_embd=8)).double().eval()
toy_heads = speculative.MedusaHeads(toy, 1).double().eval()
with torch.no_grad():
    for prm in toy.parameters():
        prm.mul_(3)  # context-dependent distributions
    toy_heads.head_weight.mul_(3).add_(3 * torch.randn_like(toy_heads.head_weight))  # a deliberately poor drafter
toy_prompt, tau = torch.tensor([1, 2]), 0.8
conts = torch.cartesian_prod(torch.arange(3), torch.arange(3))  # (9, 2): every 2-token continuation
with torch.no_grad():
    toy_logits, _ = toy(torch.cat([toy_prompt.expand(9, -1), conts], dim=1)[:, :-1])
exact = torch.log_softmax(toy_logits[:, 1:].double() / tau, -1).gather(-1, conts[..., None])[..., 0].sum(-1).exp()
gen = torch.Generator().manual_seed(1)
counts, toy_accepted = torch.zeros(9), []
for _ in range(600):
    res = speculative.speculative_sample(toy, speculative.MedusaDrafter(toy_heads), toy_prompt, 2, tau, gen)
    a, b = res.tokens[2:].tolist()
    counts[3 * a + b] += 1
    toy_accepted += res.accepted
expected = exact * counts.sum()
chi2 = float(((counts - expected) ** 2 / expected).sum())
pvalue = float(torch.special.gammaincc(torch.tensor(4.0, dtype=torch.float64), torch.tensor(chi2 / 2)))
print("exact P:     " + " ".join(f"{v:.3f}" for v in exact.tolist()))
print("sampled freq " + " ".join(f"{v:.3f}" for v in (counts / counts.sum()).tolist()))
print(f"drafts accepted {sum(toy_accepted) / len(toy_accepted):.0%}; chi-square {chi2:.1f} on 8 degrees of "
      f"freedom, p-value {pvalue:.2f}")
assert 0.1 < sum(toy_accepted) / len(toy_accepted) < 0.9  # both branches of the rule were exercised
assert pvalue > 1e-3  # consistent with sampling the model itself

# %% [markdown]
# On the real model, with the trained first head as the drafter, at $\tau = 0.8$: how often the
# drafted token survives, and so how many tokens each verification pass commits.

# %%
gen = torch.Generator().manual_seed(0)
drafter = speculative.MedusaDrafter(heads)
sampled_runs = [speculative.speculative_sample(model, drafter, p, 96, 0.8, gen) for p in prompts[:6]]
rate = sum(sum(r.accepted) for r in sampled_runs) / sum(len(r.accepted) for r in sampled_runs)
print(f"Medusa head 0 as drafter at tau = 0.8: {rate:.0%} of drafts accepted, {1 + rate:.2f} tokens per pass")
print("sample:", repr(lm.decode(sampled_runs[0].tokens[64:])))
assert 0.0 < rate < 1.0

# %% [markdown]
# ## 12 · Watch the tree
#
# `course_lib.speculative.draft_tree_widget` decodes a prompt once and lets you step through it:
# the candidate tree with its tokens (␣ is a space, ↵ a newline); beside each node its position
# id (siblings share one) and the base model's argmax there — a child is accepted exactly when it
# equals its parent's argmax; the accepted path in green, the tree mask beside it, and the text
# so far. Each picture is `draft_tree_view(result, step)`, which draws the pure
# `draft_tree_state(result, step)`.

# %%
widget = speculative.draft_tree_widget(model, heads, lm.decode(prompts[10]), max_new_tokens=48, tree="medium")
widget

# %%
before = widget.caption.value
widget.controls["step"].value = 3
assert widget.caption.value != before and "step 4 of" in widget.caption.value
widget.controls["step"].value = 0
st = speculative.draft_tree_state(speculative.medusa_generate(model, heads, prompts[10], 48, tree="medium"), 0)
assert all(st.tokens[c] == st.argmax[p] for p, c in zip(st.accepted, st.accepted[1:]))  # the acceptance rule

# %% [markdown]
# ## 13 · Exercises
#
# Replace each `raise NotImplementedError` with your code and run the cell; the check compares
# your function with the reference on edge cases and random inputs. `tree_mask.hint()` gives a
# hint (call it again for the next), `tree_mask.solution()` shows the answer — likewise for the
# other three (the last one scores a tree as section 10 does).

# %%
from course_lib.speculative.exercises import expected_length, greedy_accept, retrieve_paths, tree_mask

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

# %%
expected_length.show();

# %%
def my_expected_length(paths, rank_probs):
    raise NotImplementedError  # your code here


expected_length.check(my_expected_length);

# %% [markdown]
# ## Summary
#
# * Decoding reads all weights per token; checking many tokens in one pass is nearly free where
#   that reading dominates — not on a tiny model on a CPU, where $c(N)/c(1)$ was measured to
#   grow with $N$ (section 1).
# * Medusa heads guess several tokens ahead from one hidden state (`MedusaHeads`, trained with
#   the backbone frozen: `train_heads`); their accuracy falls with the distance. Medusa-2 trains
#   them with the backbone: $L_\text{LM} + \lambda_0 \sum_k 0.8^k L_k$ (`medusa2_loss`), the
#   backbone at a smaller learning rate, after a heads-only warm-up (`Medusa2Recipe`).
# * A tree of guesses is verified in one pass with a tree mask, tree position ids and the KV
#   cache (`MedusaTree`, `medusa_step`); the cache is then compacted to the accepted path.
# * Greedy acceptance is lossless — asserted over many prompts and lengths. Typical acceptance
#   is a different, deterministic decoder: more tokens per step, text the model finds less likely.
# * The speed-up is $E[\text{tokens per step}] / (c(N)/c(1) + \text{overhead})$; both terms were
#   measured (`experiment.step_breakdown`) and the prediction set against the measurement.
# * Speculative *sampling* — accept with $\min(1, p/q)$, else resample from $\max(0, p-q)$ —
#   samples exactly the model's distribution, whatever the drafter (checked by chi-square).
#
# **References.** T. Cai, Y. Li, Z. Geng, H. Peng, J. D. Lee, D. Chen, T. Dao, "Medusa: Simple LLM
# Inference Acceleration Framework with Multiple Decoding Heads", ICML 2024, and its code
# (FasterDecoding/Medusa). Y. Leviathan, M. Kalman, Y. Matias, "Fast Inference from
# Transformers via Speculative Decoding", ICML 2023. C. Chen, S. Borgeaud, G. Irving,
# J.-B. Lespiau, L. Sifre, J. Jumper, "Accelerating Large Language Model Decoding with
# Speculative Sampling", arXiv:2302.01318 (2023). A. Holtzman, J. Buys, L. Du, M. Forbes, Y. Choi,
# "The Curious Case of Neural Text Degeneration", ICLR 2020. A. Karpathy, nanoGPT.
# Tests: `tests/test_lm.py`, `tests/test_speculative.py`; benchmark: `benchmarks/bench_medusa.py`.
