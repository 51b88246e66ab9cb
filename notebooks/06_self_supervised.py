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
# 5. **CPC** — predict the future in latent space, and the representation learns the hidden cause;
# 6. **SimCLR on real images** — pretrain on unlabelled digits, evaluate with a linear probe;
# 7. **beyond negatives** — MoCo, BYOL, SimSiam, Barlow Twins, and what *collapse* is.
#
# Everything is in `course_lib.contrastive`; its tests compare it with `F.cross_entropy`,
# `F.binary_cross_entropy_with_logits` and slow per-example loops, forward and backward.
#
# **You will be able to**
# 1. derive NCE's logit $r - \log k$ and show that its optimum is the density ratio;
# 2. write InfoNCE and NT-Xent as softmax cross-entropies, and check them against `F.cross_entropy`;
# 3. explain why $\log N - \mathcal L_{\text{InfoNCE}}$ bounds mutual information, why it
#    saturates at $\log N$, and what NWJ and DV trade for that ceiling (their variance, measured);
# 4. train CPC and read the hidden cause out of its representation with a linear probe;
# 5. pretrain SimCLR (augmentations, encoder, projection head, NT-Xent) on unlabelled digits and
#    judge it with a linear probe against a random encoder, raw pixels and supervised training
#    on the same few labels;
# 6. say what MoCo, BYOL, SimSiam and Barlow Twins use instead of (or besides) negatives, and show
#    collapse in a measured run.
#
# **Prerequisites:** softmax and cross-entropy, PyTorch autograd (chapter 1), basic probability
# (densities, expectations), a convolution (for §6). **Time:** about 2 hours (the notebook runs in a few minutes on a CPU).

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
# ## 6. SimCLR on real images: digits, a linear probe and few labels
#
# Now the full recipe on real data: scikit-learn's 1,797 handwritten digits (8×8 pixels, shipped
# with scikit-learn — no download), split once into a training set, used **without its labels**,
# and a held-out test set (`course_lib.contrastive.experiment.digits_split`). SimCLR
# (Chen et al., 2020, Algorithm 1) needs three pieces:
#
# * **augmentations** that change the pixels but not the digit: `augment_images` shifts each
#   image by up to a pixel, zooms it by ±10 % and adds Gaussian noise — one batched `grid_sample`
#   for the whole batch, every draw from one `torch.Generator`, so a seed gives the same views;
# * an **encoder** $h = f(x)$ (`DigitEncoder`: two 3×3 convolutions and a linear layer, 64
#   features) and a **projection head** $z = g(h)$, a small MLP that only the loss sees;
# * the **NT-Xent** loss of §3 on the $2N$ projections of two views of $N$ images.
#
# ```
# for each batch x:   x1, x2 = aug(x), aug(x);   z1, z2 = g(f(x1)), g(f(x2));   loss = nt_xent(z1, z2, τ)
# ```

# %%
from course_lib.contrastive import SimCLR, SimCLRConfig, augment_images, train_simclr
from course_lib.contrastive.experiment import digits_split, label_efficiency, probe_accuracy

show_source(SimCLR.loss, augment_images)

# %%
split = digits_split(test_fraction=0.3, seed=0)
config = SimCLRConfig()
print(config)
print(f"{len(split.train_images)} training images (labels unused for pretraining), {len(split.test_images)} held out")

views = [augment_images(split.train_images[:8], torch.Generator().manual_seed(s), max_shift=config.max_shift,
                        scale_jitter=config.scale_jitter, noise_std=config.noise_std) for s in (1, 2)]
assert views[0].shape == split.train_images[:8].shape and not torch.equal(views[0], views[1])
fig, axes = plt.subplots(3, 8, figsize=(8.2, 3.3))
for row, (name, batch) in enumerate([("original", split.train_images[:8]), ("view 1", views[0]), ("view 2", views[1])]):
    for col in range(8):
        axes[row, col].imshow(batch[col, 0], cmap="gray_r", vmin=0, vmax=1)
        axes[row, col].set_xticks([])
        axes[row, col].set_yticks([])
    axes[row, 0].set_ylabel(name, fontsize=9)
fig.suptitle("two random views of each digit: the positive pairs")
fig.tight_layout()
plt.show()

# %% [markdown]
# **Pretraining.** 30 epochs over the unlabelled training images, batches of 256 (so each view has
# 510 negatives), $\tau = 0.2$, Adam (the configuration printed above). Before training, the random
# network maps every image to nearly the same direction, so every logit is alike and the loss
# starts at $\log(2N - 1)$, the loss of guessing uniformly.

# %%
run = train_simclr(split.train_images, config, seed=0, progress=True)
final_loss = sum(run.losses[-5:]) / 5
print(f"NT-Xent: first step {run.losses[0]:.3f} (uniform guessing: log(2N-1) = {run.chance:.3f}), "
      f"mean of the last 5 steps {final_loss:.3f}")
assert abs(run.losses[0] - run.chance) < 0.05 and final_loss < run.chance - 2

# %% [markdown]
# **Evaluation: the linear probe.** The encoder is frozen and a logistic regression
# (scikit-learn's `LogisticRegression`, on standardised features) is trained on its features $h$
# with a few labelled images per class, then scored on the held-out set
# (`experiment.probe_accuracy`). Three references for the SimCLR encoder:
#
# * the **same encoder at its random initialisation** (what pretraining added);
# * the **raw pixels** (a linear classifier on 64 pixels is already good on digits);
# * **supervised from scratch**: the same encoder plus a linear head trained end to end on the
#   same few labels, with the same augmentations (`experiment.train_supervised`) — the fair
#   baseline, since augmentation alone is a strong regulariser.
#
# `experiment.label_efficiency` measures all four at 1, 5, 10 and 50 labels per class (the same
# labelled images for every method at a given count).

# %%
show_source(probe_accuracy)
table = label_efficiency(run.model, split, per_class=(1, 5, 10, 50), seed=0, progress=True)
all_labels = {"SimCLR": probe_accuracy(run.model.encoder, split), "pixels": probe_accuracy(None, split)}
print("labels per class:   " + "  ".join(f"{k:6d}" for k in table.per_class) + "     all")
rows = [("SimCLR probe", table.simclr, f"{all_labels['SimCLR']:.3f}"), ("random-encoder probe", table.random, ""),
        ("pixel probe", table.pixels, f"{all_labels['pixels']:.3f}"), ("supervised, same labels", table.supervised, "")]
for name, values, last in rows:
    print(f"{name:24s}" + "  ".join(f"{v:6.3f}" for v in values) + f"   {last}")

# %%
# The orderings that held at every label count for seeds 0, 1 and 2 (python -m course_lib.contrastive.experiment):
# pretraining beats the random initialisation of the same encoder, by a margin...
assert all(s > r + 0.03 for s, r in zip(table.simclr, table.random))
# ...and with one label per class the SimCLR features beat the raw pixels.
assert table.simclr[0] > table.pixels[0] + 0.03
i10 = table.per_class.index(10)
gap_random, gap_supervised = table.simclr[i10] - table.random[i10], table.simclr[i10] - table.supervised[i10]
print(f"at 10 labels per class: SimCLR probe {table.simclr[i10]:.3f}, {gap_random:+.3f} over the random encoder, "
      f"{gap_supervised:+.3f} over supervised training on the same 100 labels")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.0, 3.8))
names = ["pixels", "random\nencoder", "SimCLR\nencoder", "supervised\n(same labels)"]
values = [table.pixels[i10], table.random[i10], table.simclr[i10], table.supervised[i10]]
bars = ax1.bar(names, values, color=["grey", "C1", "C0", "C2"])
ax1.bar_label(bars, fmt="%.3f", fontsize=9)
ax1.set(ylim=(0.5, 1.0), ylabel="held-out accuracy", title="10 labels per class")
ax1.tick_params(axis="x", labelsize=9)
for name, values, style, color in [("SimCLR probe", table.simclr, "o-", "C0"),
                                   ("supervised from scratch", table.supervised, "s-", "C2"),
                                   ("pixel probe", table.pixels, "x--", "grey"),
                                   ("random-encoder probe", table.random, "d:", "C1")]:
    ax2.plot(table.per_class, values, style, color=color, label=name)  # the bars' colours
ax2.set(xscale="log", xlabel="labelled images per class", ylabel="held-out accuracy", title="accuracy vs labels")
ax2.set_xticks(table.per_class, [str(k) for k in table.per_class])
ax2.legend(fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# What this measures, and what it does not. Pretraining on unlabelled images turns the same
# network from a weak feature extractor (its random initialisation) into one whose features a
# linear classifier reads well with few labels, and with a single label per class they beat the
# raw pixels (both asserted above, and both held for three seeds). Against **supervised training
# with the same augmentations** the picture on digits is a draw: over seeds 0–2 SimCLR was ahead at
# some label counts and behind at others, by a few points either way, so no ordering is claimed.
# Digits are easy — 64 pixels and a linear model already reach the accuracy printed under "all" —
# and the classic gap in SimCLR's semi-supervised results (ImageNet with 1 % or 10 % of the labels,
# the paper's Table 7) comes from a ResNet pretrained on a million images.
#
# ## 7. Beyond negatives: MoCo, BYOL, SimSiam, Barlow Twins
#
# NT-Xent needs many negatives (§4: the bound caps at $\log N$), and in SimCLR they come from
# the batch. **MoCo** (He et al., 2020) keeps them but takes them from a **queue** of keys from
# earlier batches, encoded by a **momentum encoder** (an exponential moving average of the online
# one, so the queued keys stay consistent): many negatives with a small batch. **BYOL**
# (Grill et al., 2020) drops negatives: an online network with an extra **predictor** regresses
# the output of a momentum **target** network, with a **stop-gradient** on the target.
# **SimSiam** (Chen & He, 2021) shows the momentum encoder is not needed: predictor plus
# stop-gradient on a shared encoder suffice, with the loss $-\cos(p_1, \operatorname{sg}(z_2))$
# (`negative_cosine`; BYOL's $2 - 2\cos$ is the same up to an affine map). **Barlow Twins**
# (Zbontar et al., 2021) needs none of these: it standardises each embedding dimension over the
# batch and pushes the $D\times D$ cross-correlation of the two views towards the identity
# (`barlow_twins`): diagonal to 1 (invariance), off-diagonal to 0 (redundancy reduction).
#
# | | negatives | momentum encoder | predictor + stop-grad | loss |
# |---|---|---|---|---|
# | SimCLR | the batch | – | – | NT-Xent |
# | MoCo | a queue of past keys | yes (keys) | – | InfoNCE |
# | BYOL | none | yes (target) | yes | $2 - 2\cos$ |
# | SimSiam | none | – | yes | $-\cos$ |
# | Barlow Twins | none | – | – | cross-correlation → $I$ |
#
# The danger without negatives is **collapse**: an encoder that maps every image to the same
# vector makes both views agree perfectly. What each loss says about such a constant output:

# %%
from course_lib.contrastive import barlow_twins, negative_cosine

show_source(barlow_twins)
n_img, dim = 256, config.projection
constant = torch.ones(n_img, dim)
spread_out = F.normalize(torch.randn(n_img, dim, generator=torch.Generator().manual_seed(0)), dim=1)
at_collapse = {"NT-Xent": nt_xent(constant, constant, 0.2).item(), "Barlow Twins": barlow_twins(constant, constant).item(),
               "-cos": negative_cosine(constant, constant).item()}
for name, value in at_collapse.items():
    print(f"{name:12s} at a constant output: {value:8.4f}")
# NT-Xent's collapsed loss is uniform guessing, log(2N - 1); Barlow Twins pays the whole diagonal, D;
assert math.isclose(at_collapse["NT-Xent"], math.log(2 * n_img - 1), rel_tol=1e-5)
assert math.isclose(at_collapse["Barlow Twins"], dim, rel_tol=1e-5)
# the cosine loss reaches its global minimum, -1: nothing in the loss itself forbids collapse.
assert math.isclose(at_collapse["-cos"], -1.0, abs_tol=1e-6)
assert negative_cosine(spread_out, spread_out.roll(1, 0)).item() > -0.5  # non-collapsed outputs score worse

# %% [markdown]
# A loss value is not a training run, so the experiment trains the same network (SimCLR's encoder
# and head, same augmentations, 60 Adam steps of 256 images) with four losses and watches the
# **spread** of the output, $\sqrt D \cdot \operatorname{mean}_d \operatorname{std}_N(z/\lVert z\rVert)$
# (SimSiam's collapse monitor, their Fig. 2, scaled so that vectors spread evenly over the sphere
# give about 1 and a constant output gives 0): NT-Xent; Barlow Twins; SimSiam (predictor +
# stop-gradient); and the plain cosine loss without either (`experiment.collapse_run`).

# %%
from course_lib.contrastive.experiment import COLLAPSE_LOSSES, collapse_run

collapse = {loss: collapse_run(split.train_images, loss, steps=60, seed=0) for loss in COLLAPSE_LOSSES}
for loss, r in collapse.items():
    print(f"{loss:13s} spread: start {r.spread[0]:.4f}, end {r.spread[-1]:.4f}; loss {r.losses[0]:8.3f} -> {r.losses[-1]:8.3f}")
final = {loss: r.spread[-1] for loss, r in collapse.items()}
# The plain cosine loss collapses; the three others end with outputs far more spread than they started.
assert final["cosine"] < 0.01 and final["cosine"] < collapse["cosine"].spread[0]
assert all(final[loss] > 2 * collapse[loss].spread[0] and final[loss] > 10 * final["cosine"]
           for loss in ("nt_xent", "barlow_twins", "simsiam"))
assert final["nt_xent"] > max(final["barlow_twins"], final["simsiam"])

fig, ax = plt.subplots(figsize=(8.2, 3.6))
labels = {"nt_xent": "NT-Xent (negatives)", "barlow_twins": "Barlow Twins", "simsiam": "SimSiam (predictor + stop-grad)",
          "cosine": "-cos, no predictor, no stop-grad"}
for loss, r in collapse.items():
    ax.plot(r.spread, label=labels[loss])
ax.set(yscale="log", xlabel="Adam step", ylabel="spread of z/‖z‖ (1 ≈ even, 0 = collapsed)",
       title="collapse: the same network under four losses")
ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes, off the curves
fig.tight_layout()
plt.show()

# %% [markdown]
# Read the figure with the numbers printed above it. The random network starts nearly collapsed
# (its outputs almost parallel). The plain cosine loss finishes the job: its loss reaches $-1$ and
# the spread falls below 0.01 — every image maps to (nearly) one vector. NT-Xent spreads the outputs
# over the sphere (the uniformity its negatives push for; Wang & Isola, 2020). SimSiam's predictor
# and stop-gradient and Barlow Twins' standardise-and-decorrelate loss both escape collapse without
# a single negative, ending at a lower spread than NT-Xent: Barlow Twins ignores the mean of $z$ —
# it standardises each dimension first — so its outputs may share a large common offset. This is
# 60 steps on digits: it shows that collapse happens without the extra machinery and does not
# happen with it here; it does not rank the methods (MoCo's queue and BYOL's momentum target are
# described, not run).
#
# ## 8. The InfoNCE explorer
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
# 5. **SimCLR** (§6): two augmented views, an encoder, a projection head and NT-Xent, on unlabelled
#    digits; the linear probe on the pretrained encoder beats the same encoder at random
#    initialisation at every label count, and the raw pixels with one label per class; supervised
#    training with the same augmentations and labels is about as good on this easy data set.
# 6. **Beyond negatives** (§7): MoCo (a queue and a momentum encoder), BYOL (momentum target,
#    predictor, stop-gradient), SimSiam (predictor, stop-gradient), Barlow Twins (cross-correlation
#    to the identity); the plain cosine loss collapses, the others did not in 60 steps.
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
# * **SimCLR** is NT-Xent plus augmentations that define what should not matter; the representation
#   is judged by a *linear probe* with few labels, against a random encoder, the raw pixels and a
#   supervised baseline trained with the same augmentations — the comparison that keeps the claim honest.
# * **Collapse** is the trivial solution of "make the views agree". Negatives (SimCLR, MoCo's queue)
#   forbid it in the loss; Barlow Twins forbids it by decorrelating standardised dimensions; BYOL and
#   SimSiam's loss allows it, and their predictor and stop-gradient avoid it in training.
#
# **References.** M. Gutmann, A. Hyvärinen, *Noise-contrastive estimation: A new estimation
# principle for unnormalized statistical models*, AISTATS 2010. A. van den Oord, Y. Li,
# O. Vinyals, *Representation Learning with Contrastive Predictive Coding*, 2018. B. Poole,
# S. Ozair, A. van den Oord, A. Alemi, G. Tucker, *On Variational Bounds of Mutual Information*,
# ICML 2019. T. Chen, S. Kornblith, M. Norouzi, G. Hinton, *A Simple Framework for Contrastive
# Learning of Visual Representations* (SimCLR), ICML 2020. A. Radford et al., *Learning
# Transferable Visual Models From Natural Language Supervision* (CLIP), ICML 2021. K. He, H. Fan,
# Y. Wu, S. Xie, R. Girshick, *Momentum Contrast for Unsupervised Visual Representation Learning*
# (MoCo), CVPR 2020. J.-B. Grill et al., *Bootstrap Your Own Latent* (BYOL), NeurIPS 2020.
# X. Chen, K. He, *Exploring Simple Siamese Representation Learning* (SimSiam), CVPR 2021.
# J. Zbontar, L. Jing, I. Misra, Y. LeCun, S. Deny, *Barlow Twins: Self-Supervised Learning via
# Redundancy Reduction*, ICML 2021. T. Wang, P. Isola, *Understanding Contrastive Representation
# Learning through Alignment and Uniformity on the Hypersphere*, ICML 2020. PyTorch:
# `F.cross_entropy`, `F.binary_cross_entropy_with_logits`. Code: `course_lib/contrastive/`;
# tests: `tests/test_contrastive*.py`.
