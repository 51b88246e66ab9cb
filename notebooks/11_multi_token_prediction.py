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
# the chain of predictions stays causal, and each guess is better informed.
#
# This chapter: the chain of modules and its causal structure → training the modules on the
# frozen tiny code model of chapter 10 → accuracy per depth, against Medusa's heads at the same
# offsets → self-speculative decoding with the first module, checked lossless → tokens per pass
# and wall-clock → a viewer that steps through the drafts → exercises.

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
import numpy as np
import torch

from course_lib import lm, mtp, speculative

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
print(inspect.getsource(mtp.MTPModule.forward))
print(inspect.getsource(mtp.MultiTokenPredictor.all_logits))

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
fig, axes = plt.subplots(1, chain.depth + 1, figsize=(12, 3.6))
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
# depths and weighted by $\lambda$, to the main loss. Here the main model (chapter 10's, trained
# for 31 minutes) stays frozen — shared embedding and head included — and only the modules learn
# (`course_lib.mtp.train_mtp`, loss `mtp_loss`): cheaper, and the main model the drafts are
# checked against does not change. The committed modules were trained with the command below;
# first, a fresh depth-1 module for a few steps, to watch the loss fall.

# %%
print(inspect.getsource(mtp.mtp_loss))

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
ax.legend()
plt.show()

# %% [markdown]
# ## 3 · How far ahead can it see?
#
# Top-1 accuracy on held-out standard-library code (`course_lib.mtp.depth_accuracy`): the main
# model for the next token, depth 1 for the token after, depth 2 for the one after that — and
# Medusa's heads of chapter 10, which predict the same offsets from $h_i$ alone. Depth 1's
# accuracy is the probability that a drafted token is accepted.
#
# Note what the chain implies: depth $k$ is told *every* token before its target, so each depth
# is a next-token predictor in disguise. What limits it is not distance but capacity: the main
# model folds the newest token in through all four of its layers, depth 1 through one block of
# its own, depth 2 through two. A Medusa head must guess $t_{i+2}$ without ever seeing $t_{i+1}$,
# and loses more with every offset.

# %%
windows = lm.validation_slice(lm.load_corpus().val, 32, model.config.block_size + 1)
accuracy = mtp.depth_accuracy(model, chain, windows)
medusa = speculative.head_accuracy(model, speculative.load_heads(model)[0], windows)
print(accuracy)
print(f"Medusa head 0 (offset 2): top-1 {medusa.top1[0]:.3f};  head 1 (offset 3): top-1 {medusa.top1[1]:.3f}")
assert accuracy.depths[0] > medusa.top1[0] + 0.05 and accuracy.depths[1] > medusa.top1[1] + 0.1
assert accuracy.main > max(accuracy.depths)  # one or two blocks fold in the newest tokens less well than four
fig, ax = plt.subplots(figsize=(6, 3))
offsets = np.arange(1, chain.depth + 2)
ax.bar(offsets - 0.2, [accuracy.main, *accuracy.depths], width=0.4, label="main model, then MTP depths")
ax.bar(offsets[1:] + 0.2, medusa.top1[: chain.depth], width=0.4, label="Medusa heads")
ax.set(xticks=offsets, xlabel="offset predicted (tokens ahead)", ylabel="top-1 accuracy", ylim=(0, 1))
ax.legend()
plt.show()

# %% [markdown]
# ## 4 · Decoding with the MTP module as a draft model
#
# One step of `course_lib.mtp.mtp_generate`: the main model has just chosen $t_{n+1}$; module 1
# drafts $d \approx t_{n+2}$ from $h^0_n$ and $t_{n+1}$; one main-model pass over
# $[t_{n+1}, d]$ checks it. If the main model's own $t_{n+2}$ equals $d$, both are kept and the
# logits at $d$ give $t_{n+3}$ for free: two tokens for one pass. If not, the main model's token
# is kept and $d$'s cache entry dropped: one token, as plain decoding would have given.

# %%
print(inspect.getsource(mtp.mtp_generate))

# %% [markdown]
# **Lossless.** Greedy verification can only commit tokens the main model itself chose, so the
# output is exactly plain greedy decoding's (`course_lib.lm.generate`) — asserted here on
# held-out code (and in `tests/test_mtp.py` in float64, over many prompts and lengths).

# %%
prompts = lm.code_prompts(lm.load_corpus().val, 8, 64)
n_new = 96
runs = []
for prompt in prompts:
    start = time.perf_counter()
    plain = lm.generate(model, prompt, n_new)
    plain_s = time.perf_counter() - start
    start = time.perf_counter()
    result = mtp.mtp_generate(model, chain, prompt, n_new)
    mtp_s = time.perf_counter() - start
    assert torch.equal(result.tokens, plain), "MTP decoding must write what greedy decoding writes"
    runs.append((result, plain_s, mtp_s))
acceptance = np.mean([r.acceptance_rate for r, _, _ in runs])
per_pass = np.mean([r.tokens_per_pass for r, _, _ in runs])
speedup = sum(p for _, p, _ in runs) / sum(m for _, _, m in runs)
print(f"{len(prompts)} held-out prompts x {n_new} bytes: draft accepted {acceptance:.0%} of the time, "
      f"{per_pass:.2f} tokens per main-model pass, wall-clock {speedup:.2f}x plain greedy decoding")
print("sample:", repr(lm.decode(runs[0][0].tokens[-n_new:])))
assert per_pass > 1.5 and abs(per_pass - (1 + acceptance)) < 1e-9  # a pass commits 1 + (draft accepted)

# %% [markdown]
# Each pass commits $1 + a$ tokens on average, $a$ the acceptance rate: DeepSeek-V3 reports
# $a \approx 0.85\text{–}0.9$ and 1.8× the tokens per second on GPUs, where a pass over two tokens
# costs about as much as a pass over one and the draft module is one block against the main
# model's 61. Here the wall-clock ratio printed above is near 1 — no gain, or a small loss:
# the module is one block against the main model's *four*, it runs as a pass of its own after
# every verification, and on a CPU a pass over two tokens is not free. Fewer passes is what MTP
# buys; whether that is faster depends on how memory-bound a pass is (chapter 10, section 1).
# The plot: tokens per pass for each prompt, and the wall-clock ratio.

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3))
ax1.bar(range(len(runs)), [r.tokens_per_pass for r, _, _ in runs], color="tab:green")
ax1.axhline(1.0, color="0.5", ls="--", label="plain decoding")
ax1.set(xlabel="held-out prompt", ylabel="tokens per pass", ylim=(0, 2.1))
ax1.legend(loc="lower right")
ax2.bar(range(len(runs)), [p / m for _, p, m in runs], color="tab:blue")
ax2.axhline(1.0, color="0.5", ls="--")
ax2.set(xlabel="held-out prompt", ylabel="wall-clock speed-up (CPU)")
fig.tight_layout()
plt.show()

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
# ## 5 · Watch the drafts
#
# `course_lib.mtp.mtp_decoding_widget` decodes a prompt once; the slider steps through the
# verification passes. Each generated byte is coloured by how it was committed: a draft the main
# model accepted (green) and the bonus token that came with it (light green), or the main model's
# own token after a rejected draft (orange); the current pass is outlined. Below: tokens per pass
# so far. Each picture is the pure function `mtp_decoding_view(result, step)`.

# %%
widget = mtp.mtp_decoding_widget(model, chain, lm.decode(prompts[3]), max_new_tokens=64)
widget

# %%
before = widget.caption.value
widget.controls["step"].value = 5
assert widget.caption.value != before and "pass 6 of" in widget.caption.value
widget.controls["step"].value = 0

# %% [markdown]
# ## 6 · Exercises
#
# Replace each `raise NotImplementedError` with your code and run the cell; the check compares
# your function with the reference on edge cases and random inputs. `depth_targets.hint()` gives
# a hint (call it again for the next), `depth_targets.solution()` shows the answer — likewise for
# the other two.

# %%
from course_lib.mtp.exercises import depth_targets, tokens_per_pass, verify_draft

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
tokens_per_pass.show();

# %%
def my_tokens_per_pass(p, depth):
    raise NotImplementedError  # your code here


tokens_per_pass.check(my_tokens_per_pass);

# %% [markdown]
# ## Summary
#
# * An MTP module predicts $k + 1$ tokens ahead from the previous depth's state *and* the
#   embedding of the token $k$ ahead — a causal chain (asserted in section 1), one transformer
#   block per depth, sharing the main model's embedding and output head.
# * Told the token in between, depth 1 predicts the token after next better than a Medusa head
#   that sees only $h_i$, and depth 2 far better than Medusa's next head (section 3): each depth
#   is limited by the few blocks it has to fold in the newest tokens, not by the distance.
# * Kept at inference, depth 1 is a draft model: one main-model pass verifies its guess, each
#   pass commits $1 + a$ tokens, and greedy verification writes exactly what greedy decoding
#   writes (section 4).
# * Not shown here: the training-time benefit DeepSeek-V3 reports from the MTP loss itself —
#   it needs joint training at a scale this laptop-sized chapter does not reach.
#
# **References.** DeepSeek-AI, "DeepSeek-V3 Technical Report", arXiv:2412.19437 (2024), §2.2
# and §5.4.3. F. Gloeckle, B. Y. Idrissi, B. Rozière, D. Lopez-Paz, G. Synnaeve, "Better & Faster
# Large Language Models via Multi-token Prediction", ICML 2024. T. Cai et al., "Medusa", ICML 2024.
# Y. Leviathan, M. Kalman, Y. Matias, "Fast Inference from Transformers via Speculative
# Decoding", ICML 2023. Tests: `tests/test_mtp.py`; retrain: `python -m course_lib.mtp.train`.
