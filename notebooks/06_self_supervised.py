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
# # 6 · Self-supervised learning: NCE, InfoNCE, CPC and mutual information
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dl-systems-course/dl-systems-course/blob/main/notebooks/06_self_supervised.ipynb) [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/dl-systems-course/dl-systems-course/main?labpath=notebooks%2F06_self_supervised.ipynb)
#
# Labels are expensive; pairs are free. Two crops of one photo, an image and its caption, the
# past and the future of one audio clip: each pair was drawn *together*, and a model that can
# pick a pair's partner out of a crowd of strangers has to have learnt what the two share.
# That is **contrastive learning**, the engine behind SimCLR, CLIP, wav2vec and CPC.
#
# This chapter follows the idea from its root to a working model:
#
# 1. **NCE** — tell data from noise, and a classifier learns a density ratio;
# 2. **InfoNCE** — tell the positive from the batch's negatives: a softmax cross-entropy;
# 3. **NT-Xent** — SimCLR's two-views version;
# 4. **mutual information** — InfoNCE is a lower bound on it, and can never exceed $\log N$;
# 5. **CPC** — predict the future in latent space, and the representation learns the hidden cause.
#
# Everything is in `course_lib.contrastive`; its tests compare it with `F.cross_entropy`,
# `F.binary_cross_entropy_with_logits` and slow per-example loops, forward and backward.
#
# **You will be able to**
# 1. derive NCE's logit $r - \log k$ and show that its optimum is the density ratio;
# 2. write InfoNCE and NT-Xent as softmax cross-entropies, and check them against `F.cross_entropy`;
# 3. explain why $\log N - \mathcal L_{\text{InfoNCE}}$ bounds mutual information, why it
#    saturates at $\log N$, and what NWJ and DV trade for that ceiling (their variance, measured);
# 4. train CPC and read the hidden cause out of its representation with a linear probe.
#
# **Prerequisites:** softmax and cross-entropy, PyTorch autograd (chapter 1), basic probability
# (densities, expectations). **Time:** about 90 minutes (the notebook runs in a few minutes on a CPU).

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
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from course_lib import runtime
from course_lib.source import show_source

# The models here are tiny: one thread is faster than several fighting over small matrices.
torch.set_num_threads(1)
torch.manual_seed(0)
print("device:", runtime.device())

# %% [markdown]
# ## 1. From density ratios to noise-contrastive estimation
#
# Suppose a model gives an *unnormalised* log-density $\log \tilde p_m(u)$: computing its
# normaliser $\int \tilde p_m$ is hopeless in high dimensions, so maximum likelihood is out.
# Gutmann and Hyvärinen (2010) replace it by a classification problem: mix each data point $x_i$
# with $k$ noise points $y_{ij} \sim p_n$ from a distribution we can sample *and evaluate*, and
# train a logistic classifier on the **log-ratio** $r(u) = \log \tilde p_m(u) - \log p_n(u)$ —
# the quantity `nce_loss` takes, model minus noise log-density — with logit
#
# $$G(u) = r(u) - \log k \qquad\text{(the prior odds of data : noise are } 1 : k)$$
#
# $$J = \frac1N \sum_i \Big[\operatorname{softplus}(-G(x_i)) + \sum_{j=1}^k \operatorname{softplus}(G(y_{ij}))\Big].$$
#
# The best possible classifier is Bayes': $G^* = \log p_d - \log(k\,p_n)$, so at the optimum
# $r^* = \log p_d/p_n$ — **the classifier's logit is a density ratio**, normaliser included, and
# $\log \tilde p_m = r + \log p_n$ is then the normalised data log-density. (Passing an
# unnormalised log-*density* as $r$, without subtracting $\log p_n$, would make the logit wrong.)
# `course_lib.contrastive.nce_loss`, whose arguments are $r$ at the data and at the noise:

# %%
from course_lib.contrastive import GaussianToy, fit_log_ratio, nce_loss

show_source(nce_loss)

# %% [markdown]
# It is binary cross-entropy with $N$ positives and $Nk$ negatives, summed and divided by $N$.
# Checked against `F.binary_cross_entropy_with_logits`:

# %%
n, k = 17, 5
data_r = torch.randn(n, dtype=torch.float64)
noise_r = torch.randn(n, k, dtype=torch.float64)
logits = torch.cat([data_r, noise_r.flatten()]) - math.log(k)
labels = torch.cat([torch.ones(n), torch.zeros(n * k)]).double()
reference = F.binary_cross_entropy_with_logits(logits, labels, reduction="sum") / n
assert torch.allclose(nce_loss(data_r, noise_r), reference)
print(f"nce_loss = {nce_loss(data_r, noise_r).item():.6f}, BCE formulation = {reference.item():.6f}")

# %% [markdown]
# **The experiment.** Data $\mathcal N(1, 0.5^2)$, noise $\mathcal N(0, 2^2)$
# (`GaussianToy`). The true log-ratio of two Gaussians is a quadratic, so a quadratic model
# $r(u) = au^2 + bu + c$ (`QuadraticLogRatio`) can match it — *including the constant $c$,
# the log-normaliser that nobody told the model*. `fit_log_ratio` minimises $J$ with L-BFGS on
# 4000 data points and 10 noise points each.

# %%
toy = GaussianToy()
model = fit_log_ratio(toy, n=4000, k=10, seed=0)
u = torch.linspace(-2.0, 4.0, 200, dtype=torch.float64)
inside = (u - toy.data_mean).abs() <= 2 * toy.data_std  # where the data actually are
with torch.no_grad():
    learned, true = model(u), toy.log_ratio(u)
nce_error = (learned - true)[inside].abs().max().item()
print(f"learned (a, b, c) = {[round(v, 3) for v in model.coef.tolist()]}")
print(f"max |learned - true| log-ratio within ±2σ of the data: {nce_error:.3f}")
assert nce_error < 0.25  # tests/test_contrastive.py measured 0.05 (median) to 0.15 (worst) over 20 seeds

fig, ax = plt.subplots(figsize=(8.2, 3.2))
ax.plot(u, true, label="true log p_data/p_noise", lw=3, alpha=0.5)
ax.plot(u, learned, "--", label="learned by NCE")
ax.axvspan(toy.data_mean - 2 * toy.data_std, toy.data_mean + 2 * toy.data_std, color="grey", alpha=0.15,
           label="data ±2σ")
ax.set(xlabel="u", ylabel="log-ratio", ylim=(-12, 4), title="NCE recovers the density ratio")
ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes, off the data
fig.tight_layout()
plt.show()

# %% [markdown]
# Outside the data's range the fit is extrapolation: there are few data points there to learn from,
# which is why NCE wants noise that covers the data well.
#
# ## 2. InfoNCE: the positive against the batch
#
# NCE asks *"data or noise?"* of one point. InfoNCE (van den Oord et al., 2018) asks *"which
# of these $N$ is my partner?"*. For queries $q_i$ and keys $k_i$ drawn in pairs, every other
# key in the batch serves as a negative:
#
# $$s_{ij} = \frac{\cos(q_i, k_j)}{\tau}, \qquad
#   \ell_i = -\log\frac{e^{s_{ii}}}{\sum_j e^{s_{ij}}} = \operatorname{logsumexp}_j s_{ij} - s_{ii}.$$
#
# That is a softmax cross-entropy whose target is the diagonal of the $N\times N$ score matrix:
#
# ```
#              key 1   key 2   key 3   key 4
#   query 1  [  POS     neg     neg     neg  ]   -> softmax, -log p[1, 1]
#   query 2  [  neg     POS     neg     neg  ]   -> softmax, -log p[2, 2]
#   ...
# ```
#
# `course_lib.contrastive.info_nce` (with `symmetric=True` the columns are scored too and the
# two averaged, as in CLIP):

# %%
from course_lib.contrastive import info_nce, info_nce_from_logits, nt_xent

show_source(info_nce_from_logits, info_nce)

# %% [markdown]
# The production way to write this is `F.cross_entropy(logits, arange(N))`; they must agree, in
# value and in gradient, on any batch size — here 17, with a transposed (non-contiguous) input:

# %%
q = torch.randn(5, 17, dtype=torch.float64).T.requires_grad_()  # (17, 5), non-contiguous
k = (q.detach() + 0.5 * torch.randn(17, 5, dtype=torch.float64)).requires_grad_()
tau = 0.1
ours = info_nce(q, k, tau, symmetric=True)
logits = F.normalize(q, dim=1) @ F.normalize(k, dim=1).T / tau
target = torch.arange(17)
theirs = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
grads_ours = torch.autograd.grad(ours, (q, k))
grads_theirs = torch.autograd.grad(theirs, (q, k))
assert torch.allclose(ours, theirs)
assert all(torch.allclose(a, b) for a, b in zip(grads_ours, grads_theirs))
print(f"symmetric InfoNCE: ours {ours.item():.6f}, F.cross_entropy {theirs.item():.6f}; gradients agree")

# %% [markdown]
# ## 3. NT-Xent: SimCLR's two views in one batch
#
# SimCLR (Chen et al., 2020) augments each of $N$ images twice and puts all $2N$ projections
# $z$ in one batch. The positive of row $i$ is its other view, row $(i+N) \bmod 2N$; every other
# row is a negative — including the *same* view of other images — and row $i$ itself is removed
# (its similarity with itself is always 1, the largest logit, and says nothing):
#
# $$\ell_i = \operatorname{logsumexp}_{j\ne i}\, s_{ij} - s_{i,(i+N) \bmod 2N}.$$
#
# The temperature matters: the SimCLR paper's ImageNet study (its Table 5) found $\tau = 0.1$
# best, and the official code's `run.py` defaults to 0.1; its README trains CIFAR-10 with 0.5.
# `nt_xent` defaults to 0.5, the small-data setting this chapter's toys are closer to.

# %%
show_source(nt_xent)

# %%
z1, z2 = torch.randn(2, 6, 8, dtype=torch.float64)
z = F.normalize(torch.cat([z1, z2]), dim=1)
masked = (z @ z.T / 0.5).fill_diagonal_(float("-inf"))  # (12, 12), self-similarity removed
reference = F.cross_entropy(masked, (torch.arange(12) + 6) % 12)
assert torch.allclose(nt_xent(z1, z2, 0.5), reference)
print(f"NT-Xent = {nt_xent(z1, z2, 0.5).item():.6f} = F.cross_entropy with the diagonal masked")

# %% [markdown]
# ## 4. Why InfoNCE bounds mutual information — and why it saturates at log N
#
# Take pairs $(x_i, y_i) \sim p(x, y)$ and a *critic* $f(x, y)$ scoring every pair in the batch:
# $S_{ij} = f(x_i, y_j)$. The InfoNCE loss on $S$ is the cross-entropy of guessing which of the $N$
# candidates was drawn with $x_i$. The best possible guesser knows the truth: its posterior is
# $\propto p(y_j | x_i)/p(y_j)$, and its loss is at least $\log N - I(X;Y)$ (van den Oord et al.,
# 2018; Poole et al., 2019, eq. 12). So for every critic
#
# $$I(X; Y) \;\ge\; \log N - \mathcal L_{\text{InfoNCE}} \qquad\text{(the InfoNCE bound)}.$$
#
# But the loss is a cross-entropy, never negative — $\operatorname{logsumexp}_j S_{ij} \ge S_{ii}$
# — so the bound can **never exceed $\log N$**. A batch of 64 certifies at most
# $\log 64 = 4.16$ nats, however much information there is. Other bounds trade this ceiling
# for variance: NWJ, $\mathbb E_p[f] - e^{-1}\mathbb E_{p(x)p(y)}[e^f]$, has no ceiling but its
# variance grows like $e^{I}$.
#
# **Ground truth.** For $d$ independent coordinate pairs with correlation $\rho$,
# $I = -\tfrac d2 \log(1-\rho^2)$ (`gaussian_mi`), and the optimal critic
# $\log p(y|x)/p(y)$ is known in closed form (`gaussian_log_density_ratio`).

# %% tags=["nbval-check-output"]
from course_lib.contrastive import gaussian_mi

DIM, BATCH = 4, 64
RHOS = [0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99]
print(f"log N for N = {BATCH}: {math.log(BATCH):.4f} nats")
for rho in RHOS:
    print(f"rho = {rho:4.2f}   I(X;Y) = {gaussian_mi(rho, DIM):.4f} nats   (d = {DIM})")

# %% [markdown]
# **The experiment.** For each $\rho$: the three bounds with the *optimal* critic (no learning,
# so any gap — and any noise — is the bound's own), on 20 independent batches of $N = 64$ and 2 of
# $N = 1024$, keeping every batch's value so the spread shows; and, at four of the $\rho$, the
# InfoNCE bound of a small separable critic $f(x,y) = g(x)\cdot h(y)$ (two MLPs,
# `train_critic`, 200 Adam steps on fresh batches), evaluated on 20 held-out batches. The
# harness is `course_lib.contrastive.experiment`:

# %%
from course_lib.contrastive.experiment import optimal_bounds, trained_bound

show_source(optimal_bounds)
true_mi = [gaussian_mi(r, DIM) for r in RHOS]
opt64 = [optimal_bounds(r, 64, DIM, batches=20) for r in RHOS]
opt1024 = [optimal_bounds(r, 1024, DIM, batches=2) for r in RHOS]
RHOS_TRAINED = [0.3, 0.7, 0.9, 0.99]
trained = [trained_bound(r, DIM, batch=BATCH, steps=200).mean().item() for r in RHOS_TRAINED]
for r, i, o, o2 in zip(RHOS, true_mi, opt64, opt1024):
    t = f"{trained[RHOS_TRAINED.index(r)]:5.2f}" if r in RHOS_TRAINED else "    -"
    print(f"rho {r:4.2f}: true {i:5.2f} | N=64: InfoNCE {o.mean('infonce'):5.2f} ± {o.std('infonce'):4.2f}, "
          f"NWJ {o.mean('nwj'):5.2f} ± {o.std('nwj'):4.2f}, DV {o.mean('dv'):5.2f} ± {o.std('dv'):4.2f}"
          f" | InfoNCE N=1024 {o2.mean('infonce'):5.2f} | trained N=64 {t}")

# %%
log64, log1024 = math.log(64), math.log(1024)
mean64 = [o.mean("infonce") for o in opt64]
# Every InfoNCE estimate respects its ceiling...
assert all(m <= log64 for m in mean64) and all(t <= log64 for t in trained)
assert all(o.mean("infonce") <= log1024 for o in opt1024)
# ...tracks the truth while the truth is far below log N...
low = [j for j, i in enumerate(true_mi) if i < 1.0]
assert all(abs(mean64[j] - true_mi[j]) < 0.15 for j in low)
# ...and saturates just under log N once the truth is above it (rho = 0.99: I = 7.8 nats).
assert true_mi[-1] > log64 + 3 and log64 - 0.5 < mean64[-1] <= log64
# A bigger batch raises the ceiling: same critic, more nats certified.
assert opt1024[-1].mean("infonce") > mean64[-1] + 2
# The trained critic learns a useful bound: over half of the true MI at moderate rho.
assert trained[RHOS_TRAINED.index(0.7)] > 0.5 * gaussian_mi(0.7, DIM)
# The price of no ceiling: from rho = 0.9 on, NWJ and DV spread far more than InfoNCE over batches.
high = [o for o in opt64 if o.rho >= 0.9]
assert all(o.std("infonce") < min(o.std("nwj"), o.std("dv")) for o in high)
top = opt64[-1]
assert top.std("infonce") < 0.1 and min(top.std("nwj"), top.std("dv")) > 10 * top.std("infonce")
print(f"at rho = 0.99 over 20 batches: InfoNCE ± {top.std('infonce'):.2f}, NWJ ± {top.std('nwj'):.2f}, "
      f"DV ± {top.std('dv'):.2f} nats (one standard deviation)")

fig, ax = plt.subplots(figsize=(8.2, 4.2))
ax.plot(RHOS, true_mi, "k-", lw=2, label="true I(X;Y)")
for name, marker, shift in [("infonce", "o", 0.0), ("nwj", "x", -0.006), ("dv", "d", 0.006)]:
    ax.errorbar([r + shift for r in RHOS], [o.mean(name) for o in opt64], yerr=[o.std(name) for o in opt64],
                fmt=marker + "-", capsize=3, markersize=4, label=f"{name.upper() if name != 'infonce' else 'InfoNCE'}, "
                "optimal critic, N=64 (±1 sd)")
ax.plot(RHOS, [o.mean("infonce") for o in opt1024], "s-", markersize=4, label="InfoNCE, optimal critic, N=1024")
ax.plot(RHOS_TRAINED, trained, "^--", label="InfoNCE, trained critic, N=64")
ax.axhline(log64, color="C0", ls=":", alpha=0.7)
ax.axhline(log1024, color="C3", ls=":", alpha=0.7)
ax.text(0.01, log64 + 0.15, "log 64", color="C0", fontsize=9)
ax.text(0.01, log1024 + 0.15, "log 1024", color="C3", fontsize=9)
ax.set(xlabel="correlation ρ", ylabel="nats", title=f"MI estimates vs the truth (d = {DIM}), mean ± 1 sd over batches")
ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes, off the data
fig.tight_layout()
plt.show()

# %% [markdown]
# The famous limitation, measured: with $N = 64$ the InfoNCE curve bends flat at
# $\log 64 = 4.16$ while the truth climbs to 7.8 nats. Certifying $I$ nats with InfoNCE needs
# $N \gtrsim e^{I}$ negatives — one reason SimCLR and CLIP use batches of thousands. NWJ and DV
# (MINE's bound, `dv_bound`) follow the truth further *on average*, even with the optimal
# critic — but the error bars show the price: both average $e^{f}$ over the negatives, whose
# variance grows like $e^{I}$, so at $\rho = 0.99$ one batch's estimate is off by nats (printed
# above), while InfoNCE's spread stays a few hundredths of a nat. With a *learnt* critic that
# noise also drives the training signal (Poole et al., 2019; McAllester & Stratos, 2020).
#
# ## 5. Contrastive Predictive Coding
#
# CPC (van den Oord et al., 2018) turns InfoNCE on sequences. An encoder maps each frame to
# $z_t$; a GRU summarises the past into a context $c_t$; a linear map $W_k$ per step ahead
# predicts the future, and the prediction is scored against the true $z_{t+k}$ and against the
# other sequences' $z_{t+k}$ (the negatives):
#
# $$f_k(z, c_t) = z^\top W_k\, c_t, \qquad \mathcal L = \sum_{k=1}^{K}\ \text{InfoNCE}_k .$$
#
# ```
#  frames  x1 ─ x2 ─ x3 ─ x4 ─ x5 ─ x6 ...
#  encoder z1   z2   z3   z4   z5   z6
#  GRU     c1 → c2 → c3 ──W1──▶ z4?  ──W2──▶ z5?  ──W3──▶ z6?   (each against the batch's z_{t+k})
# ```
#
# The data (`oscillator_batch`): sines whose **frequency** is drawn per sequence — the hidden
# variable — and whose phase drifts by a random walk, plus observation noise. The further ahead,
# the more the phase has drifted, so the harder the future is to pick out. `CPC.step_logits`:

# %%
from course_lib.contrastive import CPC, CPCConfig, linear_probe_r2, oscillator_batch, train_cpc

show_source(CPC.step_logits)
config = CPCConfig()
print(config)

# %%
result = train_cpc(config, seed=0, progress=True)
acc = result.accuracy.tolist()
probe_trained = linear_probe_r2(result.model)
torch.manual_seed(0)
probe_untrained = linear_probe_r2(CPC(config))
print("accuracy of the positive among", config.batch, "per k:", [f"{a:.3f}" for a in acc],
      f"(chance {result.chance:.3f})")
print(f"linear probe R² for the frequency from c_T: trained {probe_trained:.3f}, untrained {probe_untrained:.3f}")

# Measured: accuracy falls with k and stays above chance; the probe reads the hidden frequency.
assert acc[0] > 5 * result.chance and acc[-1] > result.chance
assert all(a > b for a, b in zip(acc[:3], acc[1:4]))
assert probe_trained > 0.9 and probe_trained > probe_untrained + 0.2

fig, axes = plt.subplot_mosaic([["seq", "seq"], ["loss", "acc"]], figsize=(8.4, 5.6))
ax1, ax2, ax3 = axes["seq"], axes["loss"], axes["acc"]
frames, omega = oscillator_batch(3, config, torch.Generator().manual_seed(7))
for signal, w in zip(frames.flatten(1), omega):
    ax1.plot(signal, lw=0.8, label=f"ω = {w:.2f}")
ax1.set(title="three training sequences", xlabel="sample")
ax1.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes, off the data
ax2.plot(result.losses)
ax2.set(title="CPC loss (sum over k)", xlabel="step")
ax3.bar(range(1, config.max_k + 1), acc)
ax3.axhline(result.chance, color="red", ls="--", label="chance 1/B")
ax3.set(title="picking the positive, k steps ahead", xlabel="k (frames ahead)", ylabel="accuracy")
ax3.set_xticks(range(1, config.max_k + 1))  # whole steps
ax3.legend(fontsize=9)
plt.tight_layout()
plt.show()

# %% [markdown]
# CPC was never told the frequency, yet a linear read-out of the context recovers it (the $R^2$
# printed above, asserted above 0.9 and well above the untrained network's): predicting the future *requires* knowing the slow hidden cause, so the
# representation encodes it. (The untrained network's $R^2$ is not zero — a random GRU on a
# sine already carries some frequency information — which is why the probe is compared with it.)
#
# ## 6. The InfoNCE explorer
#
# `course_lib.contrastive.info_nce_widget` wires controls to the pure state function
# `info_nce_state` and its drawing `info_nce_view`: a batch of $N$ correlated Gaussian pairs,
# their cosine-similarity matrix, and the softmax of each row at temperature $\tau$, the positive
# outlined (green when it wins). The caption gives the loss and the bound $\log N - \text{loss}$;
# the temperature slider steps through 0.01, 0.02, 0.05, 0.1, 0.2, … 10, so the value shown is the
# value used. Try: $\rho \to 0.99$ (the diagonal lights up, the bound climbs to $\log N$ and
# stops); a tiny $\tau$ (rows become one-hot: a confident loss, huge when wrong); a large $\tau$
# (every row flat: loss $\to \log N$, bound $\to 0$).

# %%
from course_lib.contrastive import info_nce_state, info_nce_widget

widget = info_nce_widget(temperature=0.2, rho=0.8, n=8)
widget

# %% tags=["nbval-check-output"]
state = info_nce_state(**widget.values())  # the numbers behind the picture above
assert widget.values()["temperature"] == 0.2 and f"InfoNCE loss = {state.loss:.4f}" in widget.caption.value
print(f"τ = {state.temperature:g}, ρ = {state.rho:.2f}, N = {state.n}: loss {state.loss:.4f}, "
      f"bound {state.bound:.4f} ≤ log N = {state.log_n:.4f}; {state.hits}/{state.n} rows pick their positive")
assert state.bound <= state.log_n

# %% [markdown]
# ## Exercises
#
# Each exercise is checked against the reference on edge cases and random inputs. `ex.hint()`
# gives one hint at a time; `ex.solution()` shows the answer.
#
# ### 1. InfoNCE from a similarity matrix

# %%
from course_lib.contrastive.exercises import gaussian_mi_formula, info_nce_from_similarity, nt_xent_positives
from course_lib.contrastive.exercises import infonce_bound as bound_ex

info_nce_from_similarity.show();


# %%
def my_info_nce(similarity, temperature):
    raise NotImplementedError  # your code here


info_nce_from_similarity.check(my_info_nce);

# %% [markdown]
# ### 2. The NT-Xent positives

# %%
nt_xent_positives.show();


# %%
def my_positives(n):
    raise NotImplementedError  # your code here


nt_xent_positives.check(my_positives);

# %% [markdown]
# ### 3. The mutual information of correlated Gaussians

# %%
gaussian_mi_formula.show();


# %%
def my_gaussian_mi(rho, dim):
    raise NotImplementedError  # your code here


gaussian_mi_formula.check(my_gaussian_mi);

# %% [markdown]
# ### 4. The InfoNCE bound

# %%
bound_ex.show();


# %%
def my_infonce_bound(scores):
    raise NotImplementedError  # your code here


bound_ex.check(my_infonce_bound);

# %% [markdown]
# Stuck? `info_nce_from_similarity.hint()`, `nt_xent_positives.hint()`, … reveal hints one at a
# time, and `….solution()` prints the reference.
#
# ## Summary
#
# Back to the objectives:
#
# 1. **NCE** (§1): the logit is the log-ratio $r$ minus $\log k$; its optimum is $\log p_d/p_n$,
#    normaliser included.
# 2. **InfoNCE / NT-Xent** (§2–3): softmax cross-entropies, equal to `F.cross_entropy` in value
#    and gradient.
# 3. **MI bounds** (§4): InfoNCE is tight and low-variance but capped at $\log N$; NWJ and DV pass
#    the cap on average at the price of a spread of nats per batch.
# 4. **CPC** (§5): predicting the future in latent space makes the representation encode the
#    hidden frequency, read out by a linear probe.
#
# * **NCE** turns density estimation into classification against noise; with the $\log k$ prior
#   offset, the optimal logit is $\log p_d/p_n$, normaliser included (measured: within 0.25 nats
#   of the truth where the data are).
# * **InfoNCE** is a softmax cross-entropy over an $N\times N$ similarity matrix with the positives
#   on the diagonal (`info_nce`, equal to `F.cross_entropy` in value and gradient); **NT-Xent** is
#   its two-view form with self-similarity masked (`nt_xent`).
# * $\log N - \mathcal L_{\text{InfoNCE}}$ is a **lower bound on mutual information** that can
#   never exceed $\log N$: with $N = 64$ it saturates at 4.16 nats while the truth is 7.8; NWJ
#   and DV have no ceiling but spread by nats from batch to batch.
# * **CPC** predicts future latents with InfoNCE; accuracy falls with the horizon $k$, and the
#   context linearly encodes the hidden frequency it was never shown.
#
# **References.** M. Gutmann, A. Hyvärinen, *Noise-contrastive estimation: A new estimation
# principle for unnormalized statistical models*, AISTATS 2010. A. van den Oord, Y. Li,
# O. Vinyals, *Representation Learning with Contrastive Predictive Coding*, 2018. B. Poole,
# S. Ozair, A. van den Oord, A. Alemi, G. Tucker, *On Variational Bounds of Mutual Information*,
# ICML 2019. T. Chen, S. Kornblith, M. Norouzi, G. Hinton, *A Simple Framework for Contrastive
# Learning of Visual Representations* (SimCLR), ICML 2020. A. Radford et al., *Learning
# Transferable Visual Models From Natural Language Supervision* (CLIP), ICML 2021. PyTorch:
# `F.cross_entropy`, `F.binary_cross_entropy_with_logits`. Code: `course_lib/contrastive/`;
# tests: `tests/test_contrastive*.py`.
