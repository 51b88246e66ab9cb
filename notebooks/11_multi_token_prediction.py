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
# # 11 · Multi-token prediction, DeepSeek-V3 style
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dl-systems-course/dl-systems-course/blob/main/notebooks/11_multi_token_prediction.ipynb) [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/dl-systems-course/dl-systems-course/main?labpath=notebooks%2F11_multi_token_prediction.ipynb)
#
# A language model is trained to predict one token ahead. **Multi-token prediction** (MTP) asks
# it to predict several: DeepSeek-V3 (2024) adds *MTP modules*, each a single transformer block,
# chained so that module $k$ predicts the token $k + 1$ places ahead. During training they
# densify the learning signal; at inference they can be thrown away — or kept as a built-in
# **draft model**: the first module guesses the token after next, one forward pass of the main
# model checks the guess, and DeepSeek reports that the guess is right 85–90 % of the time, for
# about 1.8× the tokens per second.
#
# The difference from Medusa (chapter 10) is one input. A Medusa head guesses $t_{i+2}$ from the
# hidden state $h_i$ alone. An MTP module is also *told* $t_{i+1}$ — the token it stands on — so
# the chain of predictions stays causal, and each guess is better informed. With the main model
# frozen, as here, a one-block drafter fed the main model's features and the next token's
# embedding is exactly the design of **EAGLE** (Li et al., ICML 2024).
#
# This chapter: the chain of modules and its causal structure → training the modules on the
# frozen tiny code model of chapter 10 → accuracy per depth against Medusa's heads, and why
# accuracy is not acceptance → self-speculative decoding with the first module, checked
# lossless → tokens per pass, where a pass's time goes, wall-clock → lossless sampling with the
# module as drafter → a capacity-controlled ablation: what the next token's embedding, attention
# over earlier positions and the training budget each buy → a viewer that steps through the
# drafts → exercises.

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
import numpy as np
import torch

from course_lib import lm, mtp, speculative
from course_lib.mtp import experiment
from course_lib.source import show_source

# The model is tiny (a few MB): one thread is faster than two fighting over a shared CPU, and
# the whole chapter runs on the CPU so that the timings below describe the machine you have.
torch.set_num_threads(1)

# %% [markdown]
# ## 1 · The chain of MTP modules
#
# The main model turns $t_0 \dots t_i$ into a final hidden state $h^0_i$, whose logits predict
# $t_{i+1}$. Module $k$ ($k = 1 \dots D$) combines the previous depth's state with the embedding
# of the token $k$ places ahead, runs one causal transformer block, and predicts through the
# *shared* output head:
#
# $$h'^{k}_i = M_k\,\big[\mathrm{RMSNorm}(h^{k-1}_i)\,;\,\mathrm{RMSNorm}(\mathrm{Emb}(t_{i+k}))\big],\qquad
#   h^k_{0:n} = \mathrm{TRM}_k(h'^{k}_{0:n}),\qquad
#   P^k_{i+k+1} = \mathrm{softmax}(\mathrm{OutHead}(h^k_i)).$$
#
# ```
#  t_0 … t_i ──► main model ──► h⁰_i ──► head ──► t_{i+1}
#                                 │
#            Emb(t_{i+1}) ──► [module 1] ──► h¹_i ──► head ──► t_{i+2}
#                                              │
#                         Emb(t_{i+2}) ──► [module 2] ──► h²_i ──► head ──► t_{i+3}
# ```
#
# The library's module is exactly that formula (`course_lib.mtp.MTPModule`):

# %%
show_source(mtp.MTPModule.forward, mtp.MultiTokenPredictor.all_logits)

# %% [markdown]
# **The causal chain, checked.** Depth $k$ at position $i$ may depend on $t_0 \dots t_{i+k}$
# and on nothing later. Change one token $t_j$ of a sequence and see which positions of each
# depth's logits move: for depth $k$, exactly the positions $i \ge j - k$.

# %%
model, model_info = lm.load_checkpoint()
chain, mtp_info = mtp.load_mtp(model)
print(f"main model: {model.num_params():,} parameters; MTP modules: depth {chain.depth}, "
      f"{sum(p.numel() for p in chain.parameters()):,} parameters "
      f"({sum(p.numel() for p in chain.layers[0].parameters()):,} per module)")

idx = lm.encode("def add(a, b):\n    return a + b")[None]  # (1, T)
T = idx.shape[1]
with torch.no_grad():
    before = chain.all_logits(model, idx)
    moved = np.zeros((chain.depth + 1, T, T), dtype=bool)  # [depth, changed token j, position i]
    for j in range(T):
        changed = idx.clone()
        changed[0, j] = (changed[0, j] + 1) % 256
        for k, (b, a) in enumerate(zip(before, chain.all_logits(model, changed))):
            moved[k, j, : T - k] = ((b - a).abs().amax(-1)[0] > 1e-4).numpy()  # float32 noise is far below
for k in range(chain.depth + 1):
    i, j = np.meshgrid(np.arange(T), np.arange(T))  # (j rows, i columns)
    assert (moved[k] == ((i + k >= j) & (i < T - k))).all(), f"depth {k} breaks the causal chain"
fig, axes = plt.subplots(1, chain.depth + 1, figsize=(8.4, 3.2))
for k, ax in enumerate(axes):
    ax.imshow(moved[k], cmap="Greens", vmin=0, vmax=1.3)
    ax.set(title=f"depth {k}: predicts t(i+{k + 1})", xlabel="position i", ylabel="changed token j" if k == 0 else "")
fig.suptitle("which logits move when token t_j changes (green): depth k sees t_0 … t_(i+k)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 2 · Training the modules
#
# DeepSeek-V3 trains the modules *jointly* with the main model and adds their loss, averaged over
# depths and weighted by $\lambda$, to the main loss. Here the main model (chapter 10's) stays
# frozen — shared embedding and head included — and only the modules learn
# (`course_lib.mtp.train_mtp`, loss `mtp_loss`): cheaper, and the main model the drafts are
# checked against does not change. The committed modules were trained with the command below;
# first, a fresh depth-1 module for a few steps, to watch the loss fall.

# %%
show_source(mtp.mtp_loss)

# %%
torch.manual_seed(0)
fresh = mtp.MultiTokenPredictor(model, depth=1)
fresh_losses = mtp.train_mtp(model, fresh, steps=25, batch_size=8)
print(f"fresh module: loss {fresh_losses[0]:.2f} -> {fresh_losses[-1]:.2f} nats in 25 steps")
assert fresh_losses[-1] < fresh_losses[0] - 2.0

print(f"committed modules: {mtp_info['command'].strip()!r}, {mtp_info['steps']} steps, {mtp_info['seconds'] / 60:.1f} min")
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(mtp_info["losses"], lw=0.6, label="committed modules (mean over depths 1, 2)")
ax.plot(fresh_losses, lw=1.5, label="the fresh module above (depth 1)")
ax.set(xlabel="step", ylabel="cross-entropy (nats)", yscale="log")
ax.legend(fontsize=9, loc="upper right")
plt.show()

# %% [markdown]
# ## 3 · How far ahead can it see — and how often is a draft accepted?
#
# Top-1 accuracy on held-out standard-library code (`course_lib.mtp.depth_accuracy`): the main
# model for the next token, depth 1 for the token after, depth 2 for the one after that — and
# Medusa's heads of chapter 10, which predict the same offsets from $h_i$ alone.
#
# Note what the chain implies: depth $k$ is told *every* token before its target, so each depth
# is a next-token predictor in disguise. What limits it is not distance but capacity: the main
# model folds the newest token in through all four of its layers, depth 1 through one block of
# its own, depth 2 through two. A Medusa head must guess $t_{i+2}$ without ever seeing $t_{i+1}$,
# and loses more with every offset. The comparison is **not capacity-controlled**: an MTP module
# is a whole transformer block plus a projection, a Medusa head one residual layer — their
# parameter counts are printed below. Section 5 separates size from input.

# %%
windows = lm.validation_slice(lm.load_corpus().val, 32, model.config.block_size + 1)
accuracy = mtp.depth_accuracy(model, chain, windows)
medusa_heads = speculative.load_heads(model)[0]
medusa = speculative.head_accuracy(model, medusa_heads, windows)
per_module = sum(p.numel() for p in chain.layers[0].parameters())
per_head = medusa_heads.res_weight[0].numel() + medusa_heads.res_bias[0].numel()  # + the head: tied at init
per_head_with_output = per_head + medusa_heads.head_weight[0].numel()
print(accuracy)
print(f"Medusa head 0 (offset 2): top-1 {medusa.top1[0]:.3f};  head 1 (offset 3): top-1 {medusa.top1[1]:.3f}")
print(f"capacity: one MTP module {per_module:,} parameters (its output head is the main model's, shared); "
      f"one Medusa head {per_head:,} in its residual block, {per_head_with_output:,} with its own output layer")
assert accuracy.depths[0] > medusa.top1[0] + 0.05 and accuracy.depths[1] > medusa.top1[1] + 0.1
assert accuracy.main > max(accuracy.depths)  # one or two blocks fold in the newest tokens less well than four
fig, ax = plt.subplots(figsize=(6, 3))
offsets = np.arange(1, chain.depth + 2)
ax.bar(offsets - 0.2, [accuracy.main, *accuracy.depths], width=0.4, label="main model, then MTP depths")
ax.bar(offsets[1:] + 0.2, medusa.top1[: chain.depth], width=0.4, label="Medusa heads")
ax.set(xticks=offsets, xlabel="offset predicted (tokens ahead)", ylabel="top-1 accuracy", ylim=(0, 1))
ax.legend(fontsize=9, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
plt.show()

# %% [markdown]
# **Accuracy is not acceptance.** Greedy verification accepts a draft when it equals the *main
# model's own* greedy token, not the true text's token. So two different numbers matter
# (`course_lib.mtp.experiment.draft_agreement`, teacher-forced on the same held-out windows):
#
# * *accuracy* — the draft equals the true $t_{i+2}$;
# * *agreement* — the draft equals the main model's argmax for $t_{i+2}$ (given the true
#   $t_{i+1}$): what greedy verification would accept on this text.
#
# A draft is accepted-but-wrong when both models make the same mistake, and rejected-but-right
# when the main model is the one that is wrong. And during decoding, the context is the main
# model's *own* greedy text — more repetitive than real code — so the acceptance measured in
# section 4 is a third number.

# %%
agree = experiment.draft_agreement(model, chain, windows)
print(agree)
assert abs(agree.accuracy - accuracy.depths[0]) < 1e-6  # the same teacher-forced accuracy
assert agree.agreement > agree.accuracy  # the main model is easier to agree with than the text
assert agree.both_wrong_but_agree > 0.05  # many accepted drafts are not the text's token

# %% [markdown]
# ## 4 · Decoding with the MTP module as a draft model
#
# One step of `course_lib.mtp.mtp_generate`: the main model has just chosen $t_{n+1}$; module 1
# drafts $d \approx t_{n+2}$ from $h^0_n$ and $t_{n+1}$; one main-model pass over
# $[t_{n+1}, d]$ checks it. If the main model's own $t_{n+2}$ equals $d$, both are kept and the
# logits at $d$ give $t_{n+3}$ for free: two tokens for one pass. If not, the main model's token
# is kept and $d$'s cache entry dropped: one token, as plain decoding would have given.

# %%
show_source(mtp.verify_pass, mtp.draft_next, mtp.mtp_generate)

# %% [markdown]
# **Lossless, and timed.** Greedy verification can only commit tokens the main model itself
# chose, so the output is exactly plain greedy decoding's (`course_lib.lm.generate`).
# `course_lib.mtp.experiment.compare_mtp_decoding` asserts it on held-out code while timing both
# decoders in one interleaved run (warm-up, 5 repeats, median and IQR; `tests/test_mtp.py`
# checks losslessness in float64 over many prompts and lengths).

# %%
prompts = lm.code_prompts(lm.load_corpus().val, 8, 64)
n_new = 96
stats = experiment.compare_mtp_decoding(model, chain, prompts, n_new, repeats=5)
acceptance = stats.acceptance
per_pass = stats.tokens_per_pass
runs = stats.results
print(f"{len(prompts)} held-out prompts x {n_new} bytes: draft accepted {acceptance:.0%} of the time on the "
      f"model's own greedy text (vs agreement {agree.agreement:.0%} and accuracy {agree.accuracy:.0%} on real code), "
      f"{per_pass:.2f} tokens per main-model pass")
print(f"plain {stats.plain}\nMTP   {stats.mtp}\nwall-clock speed-up {stats.speedup:.2f}x (ratio of medians)")
print("sample:", repr(lm.decode(runs[0].tokens[-n_new:])))
assert per_pass > 1.5 and abs(per_pass - (1 + acceptance)) < 1e-9  # a pass commits 1 + (draft accepted)

# %% [markdown]
# Each pass commits $1 + a$ tokens on average, $a$ the acceptance rate: DeepSeek-V3 reports
# $a \approx 0.85\text{–}0.9$ and 1.8× the tokens per second on GPUs, where a pass over two tokens
# costs about as much as a pass over one and the draft module is one block against the main
# model's 61. Here the module is one block against the main model's *four*, it runs as a pass of
# its own after every verification, and on a CPU a pass over two tokens is not free — the
# breakdown below says how much each costs, and the cost model of chapter 10 turns that into a
# predicted speed-up to set against the measured one.

# %%
breakdown = experiment.pass_breakdown(model, chain, lm.code_prompts(lm.load_corpus().val, 1, 64 + n_new // 2)[0])
predicted = breakdown.predicted_speedup(per_pass, n_new)
for name, t in breakdown.phases.items():
    print(f"{name:13s} {1e3 * t.median:6.3f} ms  ({t.median / breakdown.step.median:4.0%} of a step)")
print(f"{'other':13s} {1e3 * breakdown.other:6.3f} ms  ({breakdown.other / breakdown.step.median:4.0%}: Python, "
      f"allocation)\nwhole step {1e3 * breakdown.step.median:.3f} ms, plain step c(1) "
      f"{1e3 * breakdown.plain.median:.3f} ms: c(2)/c(1) = {breakdown.forward_ratio:.2f}, overhead "
      f"{breakdown.overhead:.2f} c(1)")
print(f"cost model: predicted speed-up {predicted:.2f}x, measured {stats.speedup:.2f}x "
      f"({predicted / stats.speedup - 1:+.0%})")
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8.4, 3))
ax1.bar(range(len(runs)), [r.tokens_per_pass for r in runs], color="tab:green")
ax1.axhline(1.0, color="0.5", ls="--", label="plain decoding")
ax1.set(xlabel="held-out prompt", ylabel="tokens per pass", ylim=(0, 2.1), xticks=range(len(runs)))
ax1.legend(fontsize=9, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
parts = list(breakdown.phases) + ["other"]
ms = [1e3 * breakdown.phases[k].median for k in breakdown.phases] + [1e3 * breakdown.other]
ax2.barh(parts, ms, color="tab:blue")
ax2.axvline(1e3 * breakdown.plain.median, color="k", ls="--", label="plain step c(1)")
ax2.set(xlabel="ms per MTP step (medians)")
ax2.legend(fontsize=9, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
fig.tight_layout()
plt.show()

# %% [markdown]
# **Sampling.** `course_lib.mtp.MTPDrafter` makes module 1 the drafter of chapter 10's lossless
# speculative sampling (`speculative.speculative_sample`): the draft is sampled from the module's
# distribution $q$, kept with probability $\min(1, p/q)$, else replaced from $\max(0, p - q)$.
# The output is exactly the main model's sampling distribution (`tests/test_mtp.py` checks it by
# chi-square); the module's extra input should make it a better drafter than Medusa's head.

# %%
gen = torch.Generator().manual_seed(0)
mtp_runs = [speculative.speculative_sample(model, mtp.MTPDrafter(model, chain), p, 96, 0.8, gen) for p in prompts[:6]]
head_runs = [speculative.speculative_sample(model, speculative.MedusaDrafter(medusa_heads), p, 96, 0.8, gen)
             for p in prompts[:6]]
mtp_rate = sum(sum(r.accepted) for r in mtp_runs) / sum(len(r.accepted) for r in mtp_runs)
head_rate = sum(sum(r.accepted) for r in head_runs) / sum(len(r.accepted) for r in head_runs)
print(f"sampling at tau = 0.8: drafts accepted {mtp_rate:.0%} with the MTP module, {head_rate:.0%} with Medusa's "
      f"head 0 ({1 + mtp_rate:.2f} vs {1 + head_rate:.2f} tokens per pass)")
assert mtp_rate > head_rate

# %% [markdown]
# Deterministic numbers for the record (compared on every CI run): the drafts and verdicts of
# the first steps on a fixed prompt.

# %% tags=["nbval-check-output"]
fixed = mtp.mtp_generate(model, chain, lm.encode("    def __init__(self, name):\n        self."), 12)
for s in fixed.steps[:6]:
    print(f"fed {lm.token_label(s.fed)!r:6} draft {lm.token_label(s.draft)!r:6} "
          f"{'accepted' if s.accepted else 'rejected'} -> {''.join(map(lm.token_label, s.committed))!r}")
print(repr(lm.decode(fixed.tokens[-12:])))

# %% [markdown]
# ## 5 · What buys the acceptance? A capacity-controlled ablation
#
# Section 3 set a whole transformer block against a Medusa head's one residual layer, so it could
# not say how much of the gap is the extra *input* (the next token) and how much is *size*. Here
# three depth-1 drafters of (nearly) the same size are trained identically — main model frozen,
# same steps, batch (16 windows), learning rate (3·10⁻³, cosine-decayed), seed — each removing one
# source of information from the one before (`MultiTokenPredictor(model, 1, variant)`):
#
# * `mtp` — the module of section 1: $h^0$ through a causal block, *and* $\text{Emb}(t_{i+1})$;
# * `hidden_only` — the same module with its token input removed: $h^0_{0:i}$ only, still
#   through a causal block. `mtp` against `hidden_only` is the value of being told the next token;
# * `medusa_block` — also blind to earlier positions: the same block applied to $h^0_i$ alone,
#   which is what a Medusa head sees — a Medusa head with a transformer block's capacity.
#
# Training ran offline (`python -m course_lib.mtp.train --ablation`, command and seconds recorded
# in each checkpoint), with snapshots of one run at several budgets: the cosine schedule spans
# the whole run, so an early snapshot was taken at a higher learning rate than a run of that
# length would end with. Every snapshot is measured live here: teacher-forced accuracy and
# agreement (section 3) on the held-out windows, and the acceptance while greedy-decoding four
# of section 4's prompts (`course_lib.mtp.experiment.ablation_rows`). The *trained* column is
# the wall-clock time to each snapshot as recorded, on a shared machine whose load changed
# during the runs: it does not compare the variants' costs (per step they differ only by the
# width of the input projection and by `medusa_block`'s one-key attention).

# %%
ablation = experiment.ablation_rows(model, windows, prompts[:4], n_new)
budgets = sorted({r.steps for r in ablation})
variants = list(dict.fromkeys(r.variant for r in ablation))
row = {(r.variant, r.steps): r for r in ablation}
head0_agreement = speculative.rank_agreement(model, medusa_heads, windows, k=1)[0, 0].item()
print(f"{'variant':13s} {'params':>8s} {'steps':>5s} {'trained':>8s} {'accuracy':>8s} {'agreement':>9s} "
      f"{'acceptance':>10s}")
for r in ablation:
    print(f"{r.variant:13s} {r.params:8,d} {r.steps:5d} {r.seconds:7.0f}s {r.accuracy:8.3f} {r.agreement:9.3f} "
          f"{r.acceptance:10.3f}")
print(f"for comparison, Medusa head 0 of chapter 10 ({per_head_with_output:,} parameters, "
      f"{speculative.load_heads(model)[1]['steps']} steps): agreement {head0_agreement:.3f}")
last = budgets[-1]
token_gain = row["mtp", last].agreement - row["hidden_only", last].agreement
context_gain = row["hidden_only", last].agreement - row["medusa_block", last].agreement
budget_gain = {v: row[v, last].agreement - row[v, budgets[0]].agreement for v in variants}
print(f"agreement at {last} steps: the next token's embedding adds {token_gain:+.3f}, attention over earlier "
      f"positions {context_gain:+.3f}; from {budgets[0]} to {last} steps each variant gains "
      + ", ".join(f"{v} {g:+.3f}" for v, g in budget_gain.items()))
first = budgets[0]
# told the next token, the module beats the same block without it at every budget (teacher-forced),
# by far more than attention over earlier positions adds
assert all(row["mtp", b].accuracy > row["hidden_only", b].accuracy + 0.03 for b in budgets)
assert all(row["mtp", b].agreement > row["hidden_only", b].agreement + 0.03 for b in budgets)
assert token_gain > abs(context_gain) + 0.05
# attention over earlier positions: no measurable difference in agreement at any budget
assert all(abs(row["hidden_only", b].agreement - row["medusa_block", b].agreement) < 0.03 for b in budgets)
assert all(row[v, last].agreement > row[v, first].agreement + 0.05 for v in variants)  # budget helps each
assert max(r.agreement for r in ablation) < 0.85  # every one below DeepSeek-V3's reported 85–90 %
assert abs(row["medusa_block", last].agreement - head0_agreement) < 0.05  # block-sized head ≈ ch. 10's head

# %%
fig, ax = plt.subplots(figsize=(8, 3.4))
colors = {"mtp": "tab:green", "hidden_only": "tab:blue", "medusa_block": "tab:orange"}
for v in variants:
    ax.plot(budgets, [row[v, b].acceptance for b in budgets], marker="o", c=colors[v], label=f"{v}: acceptance")
    ax.plot(budgets, [row[v, b].agreement for b in budgets], marker="s", ls="--", c=colors[v], alpha=0.6,
            label=f"{v}: agreement")
ax.axhspan(0.85, 0.90, color="0.85", label="DeepSeek-V3: 2nd token accepted 85–90 %")
ax.axhline(head0_agreement, c="k", ls=":", lw=1, label="Medusa head 0 (ch. 10): agreement")
ax.set(xscale="log", xticks=budgets, xticklabels=[str(b) for b in budgets], ylim=(0, 1),
       xlabel="training budget (optimizer steps, batch 16)", ylabel="fraction of drafts")
ax.minorticks_off()  # the log axis's minor labels would crowd the three budgets
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
fig.tight_layout()
plt.show()

# %% [markdown]
# What the ablation says about this model:
#
# * **The next token is what matters.** At equal size, equal training and every budget, the
#   module told $t_{i+1}$ is right more often, and agrees with the main model more often, than the
#   same block without it (asserted, teacher-forced). Attention over earlier positions, on the
#   other hand, buys nothing measurable: `hidden_only` and `medusa_block` agree with the main
#   model equally often (asserted). The main model's $h^0_i$
#   already summarises the context; what a drafter lacks is the token the main model is about to
#   commit — exactly the input DeepSeek-V3 (and EAGLE) feed it. Section 3's gap between MTP and
#   Medusa is this input, not size: the block-sized Medusa head agrees with the main model about
#   as often as chapter 10's much smaller head (trained longer, and started from the base head).
# * **Budget buys agreement.** Every variant agrees with the main model more often at the largest
#   budget than at the smallest (asserted). An early snapshot is not a shorter run (its learning
#   rate had not decayed), so read the curve as "how far this one run had got".
# * **Acceptance while decoding is the noisier column.** It is measured on four greedy decodes,
#   and a greedy decode that falls into repetitive text drafts easily: which text it falls into
#   depends on the last bits of the logits, so this column can move between torch builds and
#   machines by much more than the teacher-forced ones. No claim here rests on it.
# * **Agreement stays below 85–90 %.** DeepSeek-V3 reports 85–90 % second-token acceptance (technical
#   report, §5.4.3) for an MTP module trained *jointly* with a 671 B-parameter main model on
#   14.8 T tokens. Here a few hundred CPU steps on a four-layer byte-level model raise the
#   teacher-forced agreement by the points printed above, all of it below 85 % (asserted) —
#   closing the rest would take training at a scale, and a main model, this chapter does not
#   have.

# %% [markdown]
# ## 6 · Watch the drafts
#
# `course_lib.mtp.mtp_decoding_widget` decodes a prompt once; the slider steps through the
# verification passes. Each generated byte is coloured by how it was committed: a draft the main
# model accepted (green) and the bonus token that came with it (light green), or the main model's
# own token after a rejected draft (orange); the current pass is outlined. In the middle, the
# pass itself: the module's inputs ($h^0$ at the position before the fed token, and the fed
# token's embedding), its draft, the main model's own token there, and the verdict. Below: tokens
# per pass so far. Each picture is `mtp_decoding_view(result, step)`, which draws the pure
# `mtp_decoding_state(result, step)`.

# %%
widget = mtp.mtp_decoding_widget(model, chain, lm.decode(prompts[3]), max_new_tokens=64)
widget

# %%
before = widget.caption.value
widget.controls["step"].value = 5
assert widget.caption.value != before and "pass 6 of" in widget.caption.value
widget.controls["step"].value = 0
st = mtp.mtp_decoding_state(mtp.mtp_generate(model, chain, prompts[3], 64), 5)
assert (st.draft == st.main) == st.accepted  # accepted exactly when the draft is the main model's token

# %% [markdown]
# ## 7 · On a GPU
#
# Everything above ran on the CPU. With CUDA present, this cell times plain greedy decoding,
# Medusa (chapter 10, "medium" tree) and MTP decoding on the GPU with the same harness
# (`course_lib.timing.compare`, which synchronises the device before each clock read). A model
# this small leaves a GPU idle — launches, not memory traffic, dominate — so read the ratios as
# a measurement of per-step overheads, not of what a 7B model would gain.

# %%
if torch.cuda.is_available():
    from course_lib.timing import compare

    gpu_model = lm.load_checkpoint(device="cuda")[0]
    gpu_heads = speculative.load_heads(gpu_model)[0].cuda()
    gpu_chain = mtp.load_mtp(gpu_model)[0].cuda()
    gpu_prompts = [p.cuda() for p in prompts[:4]]
    gpu = compare({
        "plain": lambda: [lm.generate(gpu_model, p, n_new) for p in gpu_prompts],
        "medusa": lambda: [speculative.medusa_generate(gpu_model, gpu_heads, p, n_new, tree="medium")
                           for p in gpu_prompts],
        "mtp": lambda: [mtp.mtp_generate(gpu_model, gpu_chain, p, n_new) for p in gpu_prompts],
    }, repeats=5, warmup=1, number=1)
    for t in gpu.values():
        print(f"{t}  -> speed-up {gpu['plain'].median / t.median:.2f}x")
else:
    print("No CUDA device here: the GPU timing is skipped (run this notebook on a GPU runtime to see it).")

# %% [markdown]
# ## 8 · Exercises
#
# Replace each `raise NotImplementedError` with your code and run the cell; the check compares
# your function with the reference on edge cases and random inputs. `depth_targets.hint()` gives
# a hint (call it again for the next), `depth_targets.solution()` shows the answer — likewise for
# the other two.

# %%
from course_lib.mtp.exercises import depth_targets, module_input, verify_draft

depth_targets.show();

# %%
def my_depth_targets(window, k):
    raise NotImplementedError  # your code here


depth_targets.check(my_depth_targets);

# %%
verify_draft.show();

# %%
def my_verify_draft(draft, main_at_fed, main_at_draft):
    raise NotImplementedError  # your code here


verify_draft.check(my_verify_draft);

# %%
module_input.show();

# %%
def my_module_input(hidden, embedded, w_hidden, w_embed, proj):
    raise NotImplementedError  # your code here


module_input.check(my_module_input);

# %% [markdown]
# ## Summary
#
# * An MTP module predicts $k + 1$ tokens ahead from the previous depth's state *and* the
#   embedding of the token $k$ ahead — a causal chain (asserted in section 1), one transformer
#   block per depth, sharing the main model's embedding and output head.
# * Told the token in between, depth 1 predicts the token after next better than a Medusa head
#   that sees only $h_i$, and depth 2 far better than Medusa's next head (section 3): each depth
#   is limited by the few blocks it has to fold in the newest tokens, not by the distance.
# * Accuracy (against the text) and acceptance (against the main model's own token) are
#   different numbers; both were measured (section 3), and decoding acceptance on the model's own
#   greedy text is a third.
# * Kept at inference, depth 1 is a draft model: one main-model pass verifies its guess, each
#   pass commits $1 + a$ tokens, and greedy verification writes exactly what greedy decoding
#   writes (section 4). The wall-clock gain is set by $c(2)/c(1)$ and the draft module's own
#   cost, measured and fed to chapter 10's cost model. As a drafter for lossless speculative
#   sampling it is accepted more often than Medusa's head.
# * With the main model frozen, this is EAGLE's design. The capacity-controlled ablation
#   (section 5: the same block with and without the next token's embedding, and as a Medusa-style
#   head that sees one position, all trained alike) puts the gain on the token input; attention
#   over earlier positions adds nothing measurable. More training steps raise every variant's
#   agreement with the main model, but on this tiny model none reaches DeepSeek-V3's reported
#   85–90 %.
# * Not shown here: the training-time benefit DeepSeek-V3 reports from the MTP loss itself —
#   it needs joint training at a scale this laptop-sized chapter does not reach.
#
# **References.** DeepSeek-AI, "DeepSeek-V3 Technical Report", arXiv:2412.19437 (2024), §2.2
# and §5.4.3. F. Gloeckle, B. Y. Idrissi, B. Rozière, D. Lopez-Paz, G. Synnaeve, "Better & Faster
# Large Language Models via Multi-token Prediction", ICML 2024. T. Cai et al., "Medusa", ICML 2024.
# Y. Leviathan, M. Kalman, Y. Matias, "Fast Inference from Transformers via Speculative
# Decoding", ICML 2023. Y. Li, F. Wei, C. Zhang, H. Zhang, "EAGLE: Speculative Sampling Requires
# Rethinking Feature Uncertainty", ICML 2024. Tests: `tests/test_mtp.py`; retrain:
# `python -m course_lib.mtp.train`.
