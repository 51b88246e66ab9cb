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
# # 3 · Floating-point formats and mixed precision
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dl-systems-course/dl-systems-course/blob/main/notebooks/03_floating_point.ipynb) [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/dl-systems-course/dl-systems-course/main?labpath=notebooks%2F03_floating_point.ipynb)
#
# Every large model today trains in 16 bits and increasingly runs in 8. Halving the bits halves
# the memory and the memory traffic, and GPUs multiply FP16/BF16 matrices many times faster than
# FP32 ones. The price is range and precision: FP16 cannot hold a number above 65504 or a
# gradient below 6·10⁻⁸, and it cannot tell 1000 from 1000.2. This chapter opens the formats up
# bit by bit, then builds the three techniques of *Mixed Precision Training* (Micikevicius et al.,
# 2018) that make 16-bit training work — **FP32 master weights**, **loss scaling** and **FP32
# accumulation** — and compares them with `torch.autocast` in an experiment.
#
# **You will be able to**
# 1. decode and encode a float from its sign, exponent and mantissa bits, by hand and in code;
# 2. predict a format's range, precision and the spacing of its values near any number;
# 3. explain why FP16 gradients underflow and weight updates vanish, and measure both;
# 4. use dynamic loss scaling (with several optimizers and gradient clipping), FP32 master weights
#    and FP32 accumulation, and say which of them BF16 and FP8 still need.
# 5. measure how much of a network's activation gradients FP16 loses, as in the paper's Figure 3,
#    and choose a loss scale from the gradients' largest magnitude;
# 6. explain delayed FP8 scaling (Transformer Engine's amax history) and what it clips when a
#    tensor's magnitude spikes.
#
# **Prerequisites:** chapter 1 (gradients, SGD), binary numbers. **Time:** about 90 minutes.
#
# Everything here is in `course_lib.numerics`; its tests compare it with PyTorch on every 16-bit
# and 8-bit pattern and with `torch.amp.GradScaler`.

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

from course_lib import runtime
from course_lib.source import show_source

# The models here are tiny: one thread is faster than several fighting over small matrices.
torch.set_num_threads(1)
print("device:", runtime.device())

# %% [markdown]
# ## Bit layouts
#
# A binary float is three fields: a **sign** bit $s$, an **exponent** field $e$ of $E$ bits and a
# **mantissa** (fraction) field $m$ of $M$ bits. With the bias $b = 2^{E-1}-1$:
#
# $$x = (-1)^s \cdot 2^{\,e-b} \cdot \left(1 + \frac{m}{2^M}\right) \qquad (0 < e < 2^E-1,\ \text{normal})$$
#
# $$x = (-1)^s \cdot 2^{\,1-b} \cdot \frac{m}{2^M} \qquad (e = 0,\ \text{subnormal; } m = 0 \text{ is } \pm 0)$$
#
# and an all-ones exponent means ±∞ ($m = 0$) or NaN. The exponent buys **range**, the mantissa
# buys **precision**. The six formats of `course_lib.numerics.FORMATS`, drawn for the number
# −6.5 (`course_lib.numerics.bits_figure`; sign red, exponent blue, mantissa green):

# %%
from course_lib.numerics import FORMATS, bits_figure, decode, encode

x = -6.5
bits_figure([(name, encode(x, name)) for name in FORMATS],
            labels=[f"{name} (1+{f.exponent_bits}+{f.mantissa_bits})" for name, f in FORMATS.items()],
            title="-6.5 = -1.625 · 2^2 in every format")
plt.show()

# %% [markdown]
# BF16 is FP32 with the last 16 mantissa bits cut off: the same 8-bit exponent, so the same
# range, with 8 bits of precision. FP16 spends its bits the other way: 5 exponent bits, 10
# mantissa bits. FP8 comes in two flavours (Micikevicius et al., 2022): **E4M3** for weights and
# activations and **E5M2** for gradients. PyTorch's E4M3 is `float8_e4m3fn` — "fn" for *finite*:
# it has no infinities, and its all-ones exponent holds ordinary numbers, so only `S.1111.111` is
# NaN and the largest value is $1.75 \cdot 2^8 = 448$.
#
# ## Decoding by hand
#
# `course_lib.numerics.decode(bits, fmt)` applies the formulas above with integer shifts and masks
# — no torch. The rules live in `formats._decode_fields`:

# %%
from course_lib.numerics import formats

show_source(formats._decode_fields)

# %% [markdown]
# The check against PyTorch: decode **every** FP16 and BF16 bit pattern (65,536 each) and every FP8
# pattern, and compare with torch's own reading of the same bits (`tensor.view(dtype)`).

# %%
for name in ("fp16", "bf16", "fp8_e4m3", "fp8_e5m2"):
    f = FORMATS[name]
    n = 1 << f.bits
    ours = torch.tensor([decode(b, name) for b in range(n)], dtype=torch.float64)
    patterns = torch.arange(n)
    raw = patterns.to(torch.uint8) if f.bits == 8 else torch.where(patterns >= 1 << 15, patterns - (1 << 16), patterns).to(torch.int16)
    theirs = raw.view(f.dtype()).double()
    assert ((ours == theirs) | (ours.isnan() & theirs.isnan())).all(), name
    assert ((torch.signbit(ours) == torch.signbit(theirs)) | ours.isnan()).all(), name  # -0.0 too
    print(f"{name:<9} all {n:>6} patterns decode exactly as torch.{f.torch_dtype}")

# %% [markdown]
# ## Range and precision, computed from the bits
#
# `course_lib.numerics.constants(fmt)` derives each number by decoding a bit pattern: machine
# epsilon is the gap after 1.0 (`decode(one + 1) - 1`), the max is the largest finite pattern, the
# smallest normal is `0 00…01 00…0`, the smallest subnormal `0 00…0 00…01`. The asserts compare
# them with `torch.finfo`.

# %% tags=["nbval-check-output"]
from course_lib.numerics import constants

table = [f"{'format':<9} {'bits':>4} {'max':>12} {'smallest normal':>16} {'smallest subnormal':>19} {'eps':>10} {'digits':>6}"]
for name, f in FORMATS.items():
    c = constants(name)
    fi = torch.finfo(f.dtype())
    assert (c.max, c.smallest_normal, c.eps, c.resolution) == (fi.max, fi.smallest_normal, fi.eps, fi.resolution)
    table.append(f"{name:<9} {c.bits:>4} {c.max:>12.6g} {c.smallest_normal:>16.4g} {c.smallest_subnormal:>19.4g} "
                 f"{c.eps:>10.3g} {c.decimal_digits:>6.1f}")
print("\n".join(table))  # one print: one output stream for nbval to compare
fp16 = constants("fp16")
assert fp16.max == 65504 and fp16.smallest_subnormal == 2.0**-24 and fp16.eps == 2.0**-10
assert constants("bf16").max > 3e38 and constants("fp8_e4m3").max == 448

# %% [markdown]
# Read the table as a design space. FP16 has 3 decimal digits but a range of only about
# $6\cdot10^{-8}$ to $6.5\cdot10^{4}$; BF16 has FP32's range but barely 2 digits; FP8 E4M3 has
# under one digit. Deep learning tolerates low precision surprisingly well — but not values that
# fall *outside the range*, which is where mixed-precision training needs care.
#
# ## Rounding: nearest, ties to even
#
# `encode(value, fmt)` finds the nearest representable value; on an exact tie it picks the one
# whose last mantissa bit is 0. It writes $|x| = M\cdot 2^k$ exactly, picks the quantum of
# $|x|$'s binade (clamped at the smallest normal's, which produces subnormals), rounds
# $|x|/\text{quantum}$ with integer shifts, and handles the carry into the next binade and overflow:

# %%
from course_lib.numerics import codec

show_source(codec.encode)

# %% [markdown]
# Between 2048 and 4096 FP16 values are 2 apart, so 2049 and 2051 are both ties: 2049 goes down to
# 2048, 2051 up to 2052 (the even mantissas). FP16 and E5M2 round an overflow to infinity. The
# cell compares `round_to` with torch's cast on every case that does not overflow E4M3.

# %% tags=["nbval-check-output"]
from course_lib.numerics import round_to

cases = [(2049.0, "fp16"), (2051.0, "fp16"), (65519.0, "fp16"), (65520.0, "fp16"), (1e-8, "fp16"),
         (3e-8, "fp16"), (0.1, "bf16"), (448.0, "fp8_e4m3"), (61440.0, "fp8_e5m2")]
lines = []
for value, name in cases:
    ours = round_to(value, name)
    theirs = torch.tensor(value, dtype=torch.float32).to(FORMATS[name].dtype()).item()
    assert ours == theirs, (value, name)
    lines.append(f"{value!r:>10} → {name:<9} {ours!r}")
print("\n".join(lines))

# %% [markdown]
# **E4M3 has no infinity, so what does an overflow become?** That is a *convention*, and PyTorch
# changed it: torch 2.11 (Colab's runtime) rounds to nearest and lets an overflow land on the NaN
# pattern — every value above 464 (448 plus half a gap), and ±∞, becomes NaN, as the OCP FP8
# spec's non-saturating conversion does. torch 2.14 **saturates**: everything beyond 448, ±∞
# included, becomes ±448. `course_lib` states one convention — saturation, whatever torch is
# installed — and `encode(..., overflow="nan")` applies the other.
# `course_lib.numerics.torch_cast_overflow` asks the installed torch which one it uses:

# %% tags=["nbval-check-output"]
from course_lib.numerics import torch_cast_overflow

probe = [448.0, 464.0, 465.0, 500.0, math.inf]
print(f"{'value':>7} {'saturate (course_lib)':>22} {'nan (torch <= 2.11)':>20}")
for value in probe:
    print(f"{value:>7} {round_to(value, 'fp8_e4m3')!r:>22} {round_to(value, 'fp8_e4m3', overflow='nan')!r:>20}")
assert round_to(500.0, "fp8_e4m3") == 448.0 and math.isnan(round_to(500.0, "fp8_e4m3", overflow="nan"))
assert round_to(464.0, "fp8_e4m3", overflow="nan") == 448.0  # the tie goes to the even mantissa, 448

# %%
installed = torch_cast_overflow("fp8_e4m3")  # this cell's output depends on the torch installed
theirs = torch.tensor(probe).to(torch.float8_e4m3fn).float().tolist()
print(f"torch {torch.__version__}: float8_e4m3fn overflow convention = {installed!r}; casts {probe} to {theirs}")
for value, t in zip(probe, theirs):  # the library under torch's own convention agrees with torch
    ours = round_to(value, "fp8_e4m3", overflow=installed)
    assert ours == t or (math.isnan(ours) and math.isnan(t)), value

# %% [markdown]
# ## The spacing of representable values
#
# Within one binade $[2^e, 2^{e+1})$ a format has $2^M$ evenly spaced values, so the gap is
# $2^{e-M}$: it doubles with every power of two. `course_lib.numerics.neighbours` lists the values
# around 1000; the gaps below and above 1024 (where E5M2's gap doubles) are computed from them.

# %% tags=["nbval-check-output"]
from course_lib.numerics import neighbours, number_line_view


def gap(x: float, name: str) -> float:
    """The distance between the two representable values of ``name`` that bracket ``x``."""
    values = neighbours(x, name, 2)
    return min(v for v in values if v > x) - max(v for v in values if v <= x)


print("\n".join(f"{name:<9} {neighbours(1000.0, name, 2)}" for name in ("fp16", "bf16", "fp8_e5m2")))
gaps = {name: (gap(1000.0, name), gap(1100.0, name)) for name in ("fp16", "bf16", "fp8_e5m2")}
print("\n".join(f"{name:<9} gap below 1024: {lo:g}, above 1024: {hi:g}" for name, (lo, hi) in gaps.items()))
assert gaps["fp16"] == (0.5, 1.0) and gaps["bf16"] == (4.0, 8.0) and gaps["fp8_e5m2"] == (128.0, 256.0)

# %% [markdown]
# Near 1000, FP16 values are 0.5 apart (1 above 1024), BF16 values 4 apart (8 above), and FP8
# E5M2 values 128 apart below 1024 and 256 above — the gaps printed and asserted above. The
# number line is `course_lib.numerics.number_line_view`; it draws a format whose values are too
# dense to show one by one as a band, which stops at the format's largest value.

# %%
view = number_line_view(1000.0, 3)  # a View: the figure and a caption with the numbers
print(view.caption)
plt.show()

# %% [markdown]
# This spacing is why **weights** need more than 16 bits during training. An SGD update
# $\Delta w = \eta\, g$ that is smaller than half the gap around $w$ is rounded away entirely. At
# $w = 1$ FP16's gap is $2^{-10}$, so every update below $2^{-11} \approx 4.9\cdot10^{-4}$ vanishes:

# %%
w16, w32 = torch.tensor(1.0, dtype=torch.float16), torch.tensor(1.0)
update = 1e-4
for _ in range(1000):
    w16 += update
    w32 += update
print(f"after 1000 updates of {update}: FP16 weight {w16.item()}, FP32 weight {w32.item():.4f}")
assert w16.item() == 1.0 and abs(w32.item() - 1.1) < 1e-3

# %% [markdown]
# BF16 has FP32's range but only 8 bits of precision, so its gaps are **8 times wider** than
# FP16's: at $w = 1$ the gap is $2^{-7}$ and every update below $2^{-8} \approx 3.9\cdot10^{-3}$
# vanishes. An update of $10^{-3}$, which FP16 still applies (rounded to one FP16 gap), does
# nothing to a BF16 weight. BF16 therefore needs FP32 master weights *more* than FP16 does:

# %% tags=["nbval-check-output"]
update = 1e-3
weights = {dtype: torch.tensor(1.0, dtype=dtype) for dtype in (torch.bfloat16, torch.float16, torch.float32)}
for _ in range(1000):
    for w in weights.values():
        w += update
final = {str(dtype).removeprefix("torch."): w.item() for dtype, w in weights.items()}
print(f"1.0 + 1000 updates of {update}: " + ", ".join(f"{k} {v:.4f}" for k, v in final.items()))
assert final["bfloat16"] == 1.0  # every update rounded away
assert 1.97 < final["float16"] < 1.99  # each update rounded to one FP16 gap, 2^-10 ≈ 0.000977
assert abs(final["float32"] - 2.0) < 1e-3

# %% [markdown]
# The same rounding hits **sums**. A matrix multiply adds thousands of products; if the running
# sum is kept in FP16, each addend is rounded to the sum's gap, and once the sum is large the
# small addends vanish — the sum *stagnates*. Micikevicius et al.'s third technique is to
# accumulate FP16 products into an **FP32** sum and round once at the end (what tensor cores do,
# and what torch's FP16 `sum` and `matmul` do on the CPU). Measured: 10 000 FP16 values of 0.1,
# added one at a time into an FP16 and into an FP32 accumulator:

# %% tags=["nbval-check-output"]
addends = torch.full((10_000,), 0.1, dtype=torch.float16)  # each is 0.0999755859375 in FP16
acc16, acc32 = torch.tensor(0.0, dtype=torch.float16), torch.tensor(0.0)
for a in addends:
    acc16 += a  # the sum rounded to FP16 after every addition
    acc32 += a.float()  # FP32 accumulation
exact = 10_000 * addends[0].double().item()
print(f"exact {exact:.3f}; FP16 accumulator {acc16.item():.3f}; FP32 accumulator {acc32.item():.3f}; "
      f"torch's FP16 sum {addends.sum().item():.3f}")
assert acc16.item() == 256.0  # at 256 the gap is 0.25 and 0.1 < half of it: every later addition is lost
assert abs(acc32.item() - exact) / exact < 1e-4
assert abs(addends.sum().item() - exact) <= 0.5  # torch's sum: FP32 inside, one rounding to FP16 (gap 0.5)
# %% [markdown]
# ## Why FP16 gradients underflow
#
# Gradients are small, and they shrink as the loss falls. We train a small classifier on the
# scikit-learn digits (8×8 images, bundled with scikit-learn, no download) in FP32 and look at
# the magnitudes of all its parameter gradients on a log₂ scale, against FP16's range.

# %%
from sklearn.datasets import load_digits

from course_lib.numerics.experiment import TrainConfig, flushed_fraction, gradients, make_model, train

digits = load_digits()
X = torch.tensor(digits.data, dtype=torch.float32) / 16  # (1797, 64) pixel intensities in [0, 1]
Y = torch.tensor(digits.target)  # (1797,)
x_train, y_train, x_eval, y_eval = X[:1400], Y[:1400], X[1400:], Y[1400:]
config = TrainConfig(init_scale=2.0**24)  # GradScaler starts at 2^16; higher shows the back-off
print(config)

start = make_model(64, 10, config)
grads_start = gradients(start, x_train[:512], y_train[:512])
fp32_run = train("fp32", x_train, y_train, x_eval, y_eval, config)
grads_end = gradients(fp32_run.model.cpu(), x_train[:512], y_train[:512])

# %%
fig, ax = plt.subplots(figsize=(8, 3.5))
for g, label in ((grads_start, "at initialisation"), (grads_end, f"after {config.steps} FP32 steps")):
    ax.hist(g[g != 0].abs().log2().numpy(), bins=80, alpha=0.5, label=label)
for value, text in ((2.0**-25, "FP16 flushes to 0 below 2^-25"), (fp16.smallest_normal, "subnormal below 2^-14"),
                    (fp16.max, "FP16 max 65504")):
    ax.axvline(math.log2(value), color="k", ls="--", lw=1)
    ax.text(math.log2(value) + 0.3, ax.get_ylim()[1] * 0.9, text, fontsize=8, rotation=90, va="top")
ax.axvspan(-60, -25, color="tab:red", alpha=0.08)
ax.set_xlim(-60, 18)
ax.set_xlabel("log2 |gradient|")
ax.set_ylabel("count")
ax.legend(loc="upper left")
plt.show()

# %% [markdown]
# `course_lib.numerics.flushed_fraction(grads, loss_scale)` measures the fraction of non-zero FP32
# gradient values that become exactly 0 when `grads * loss_scale` is cast to FP16:

# %%
print(f"{'':<22}{'scale 1':>10}{'scale 2^8':>11}{'scale 2^16':>12}")
flushed = {}
for g, label in ((grads_start, "at initialisation"), (grads_end, "after training")):
    flushed[label] = [flushed_fraction(g, s) for s in (1.0, 2.0**8, 2.0**16)]
    print(f"{label:<22}" + "".join(f"{f:>11.3%}" for f in flushed[label]))
late = flushed["after training"]
assert late[0] > flushed["at initialisation"][0]  # gradients shrink as the loss falls
assert late[0] > 0.01 and late[2] < late[0] / 10  # scaling by 2^16 rescues most of them

# %% [markdown]
# A few percent of this small network's gradients are lost without scaling, and more as training
# goes on; in large models, with many more layers and the loss averaged over millions of tokens,
# the fraction is far larger. Multiplying the loss by $S$ multiplies every gradient by $S$
# (backpropagation is linear in the loss), shifting the whole histogram right by $\log_2 S$ —
# until the largest gradients overflow past 65504.
#
# ## Activation gradients, as in the paper's Figure 3
#
# Micikevicius et al. (2018, Figure 3) histogram a different quantity: the gradients with respect
# to the **activations** — every layer's output — which FP16 training computes in FP16 at every
# layer, not only for the parameters at the end. In their Multibox SSD run most of FP16's range went
# unused while many values fell below $2^{-24}$ and became zeros. The same measurement on the
# trained classifier: `course_lib.numerics.experiment.activation_gradients` hooks the output of
# every layer (`register_forward_hook`) and differentiates the loss with respect to those outputs
# (`torch.autograd.grad`); `underflow_histogram` bins the magnitudes by power of two and counts,
# for each loss scale, what an FP16 cast would flush to zero (at or below $2^{-25}$, half the smallest
# subnormal), leave subnormal (below $2^{-14}$) or overflow (at or above 65520).
#
# The scale is chosen as the paper suggests (Section 3.2): the largest power of two whose product
# with the largest gradient stays at or below 65504 (`max_safe_scale`); and $2^8$ times that, to
# show what too large a scale does.

# %%
from course_lib.numerics.experiment import activation_gradients, underflow_histogram

act_grads = activation_gradients(fp32_run.model, x_train[:512], y_train[:512])  # {layer: Tensor[numel]}
g_act = torch.cat(list(act_grads.values()))  # (values,) every layer's output gradients
safe = underflow_histogram(g_act).max_safe_scale
k_safe = int(math.log2(safe))
act = underflow_histogram(g_act, (1.0, safe, safe * 2.0**8))
print(f"{len(act_grads)} layer outputs, {act.total} activation gradients, {1 - act.nonzero / act.total:.1%} exactly 0 "
      f"(ReLU passes no gradient to inactive units); largest |g| = {act.amax:.3g}, so the scale is 2^{k_safe}")
print(f"{'loss scale':<12}{'flushed to 0':>14}{'subnormal':>11}{'overflow':>10}")
for s, fl, sub, ov in zip(act.loss_scales, act.flushed, act.subnormal, act.overflowed):
    print(f"{'2^' + str(int(math.log2(s))):<12}{fl:>14.2%}{sub:>11.2%}{ov:>10.2%}")

# %%
for s, fl in zip(act.loss_scales, act.flushed):  # the fractions are what the histogram shows
    shift = int(math.log2(s))  # a power-of-two scale moves every value by exactly `shift` bins
    left_of_2_25 = int(act.counts[act.log2_edges[1:] + shift <= -25].sum())
    ties = int((g_act.abs().double() * s == 2.0**-25).sum())  # exactly 2^-25 rounds to 0 too (tie to even)
    assert fl == (left_of_2_25 + ties) / act.nonzero, s
assert act.flushed[0] > 0.2  # without scaling FP16 loses a large share of the activation gradients
assert act.flushed[1] < act.flushed[0] / 10 and act.overflowed[1] == 0  # the paper's scale: few lost, none overflow
assert act.overflowed[2] > 0  # 2^8 times more: the largest gradients overflow

# %%
fig, ax = plt.subplots(figsize=(10, 4))
left, right = -64, math.log2(65520) + 8  # the axis; a few values lie further left
styles = [("tab:blue", "-"), ("tab:green", "-"), ("tab:red", "--")]
for (s, fl, ov), (colour, ls) in zip(zip(act.loss_scales, act.flushed, act.overflowed), styles):
    shift = math.log2(s)
    ax.stairs(act.counts.numpy(), (act.log2_edges + shift).numpy(), color=colour, ls=ls, lw=1.5,
              label=f"scale 2^{shift:.0f}: {fl:.1%} flush to 0, {ov:.1%} overflow")
ax.axvspan(left, -25, color="tab:red", alpha=0.08)
ax.axvspan(math.log2(65520), right, color="tab:red", alpha=0.08)
for value, text in ((2.0**-24, "smallest subnormal 2^-24"), (fp16.smallest_normal, "smallest normal 2^-14"),
                    (fp16.max, "max 65504")):
    ax.axvline(math.log2(value), color="k", ls=":", lw=1)
    ax.text(math.log2(value) + 0.4, ax.get_ylim()[1] * 0.97, text, fontsize=8, rotation=90, va="top")
ax.text(-45, ax.get_ylim()[1] * 0.4, "becomes 0 in FP16\n(at or below 2^-25)", fontsize=9, ha="center", color="tab:red")
hidden = int(act.counts[act.log2_edges[1:] <= left].sum())
ax.set_xlim(left, right)
ax.set_xlabel(f"log2 |activation gradient · loss scale|   (unscaled: {hidden} values below 2^{left} not shown)")
ax.set_ylabel("values per power of two")
ax.set_title("activation gradients of the trained classifier (all layers), against FP16's range")
ax.legend(loc="upper left", fontsize=8)
plt.show()

# %% [markdown]
# The histogram and the table are the same measurement (the cell before the figure asserts that
# each flushed fraction is the histogram's mass left of $2^{-25}$). Unscaled, the activation
# gradients sit far left of FP16's range and a large share of the non-zero ones flush to zero; the
# paper's scale shifts the whole histogram right by $\log_2 S$ bins, into the range, without
# overflow; $2^8$ times more pushes the largest values past 65504. Losing a value is not always
# losing something that matters: pure FP16 still trains this small model in the experiment below.
# Micikevicius et al. found for SSD that values below $2^{-27}$ did not matter but those between
# $2^{-27}$ and $2^{-24}$ did — and without scaling, the network diverged.
#
# ## Loss scaling
#
# The dynamic rule (`course_lib.numerics.update_scale`, the rule of `torch.amp.GradScaler`) backs
# off when a gradient overflows and skips that step, and grows the scale again after
# `growth_interval` good steps:

# %%
from course_lib.numerics import DynamicLossScaler, update_scale

show_source(update_scale)

# %% [markdown]
# `DynamicLossScaler` wraps the rule in GradScaler's interface (`scale`, `step`, `update`). The
# check: the same scripted gradients — finite, then an overflow, then NaNs — through both, with
# identical scale histories and identical skipped steps.

# %% tags=["nbval-check-output"]
from torch import nn


def scripted_run(scaler, script):
    param = nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([param], lr=0.1)
    scales, skipped = [], []
    for kind in script:
        before = param.detach().clone()
        scaler.scale(param.sum())  # GradScaler creates its scale on first use
        param.grad = torch.tensor([1e-3, 2.0, -0.5]) * float(scaler.get_scale())
        if kind != "ok":
            param.grad[1] = math.inf if kind == "inf" else math.nan
        scaler.step(optimizer)
        scaler.update()
        scales.append(float(scaler.get_scale()))
        skipped.append(torch.equal(param.detach(), before))
    return scales, skipped


script = ["ok", "ok", "inf", "ok", "ok", "ok", "nan", "ok", "ok", "ok", "ok"]
settings = dict(init_scale=1024.0, growth_factor=2.0, backoff_factor=0.5, growth_interval=3)
ours = scripted_run(DynamicLossScaler(**settings), script)
reference = scripted_run(torch.amp.GradScaler("cpu", **settings), script)
assert ours == reference
print(f"scales:  {ours[0]}\nskipped: {ours[1]}")

# %% [markdown]
# **Several optimizers, and clipping.** One scale serves the whole model, but the bookkeeping is
# *per optimizer*, as in GradScaler: `unscale_(opt)` divides one optimizer's gradients by the
# scale (once per iteration) so you can clip them at their true size; `step(opt)` unscales it if
# you did not, and skips *that* optimizer's step if its gradients hold an inf/NaN; `update()`
# backs off if any optimizer found one. Below, two parameters with their own SGD (lr 1) and a
# scale of 4: the gradient of `p0 + p1` is 1 for each. In the second iteration `p1`'s gradient
# overflows. Both scalers, step by step:

# %% tags=["nbval-check-output"]
def two_optimizers(scaler):
    p0, p1 = nn.Parameter(torch.tensor(1.0)), nn.Parameter(torch.tensor(1.0))
    o0, o1 = torch.optim.SGD([p0], lr=1.0), torch.optim.SGD([p1], lr=1.0)
    history = []
    for overflow in (False, True):
        o0.zero_grad()
        o1.zero_grad()
        scaler.scale(p0 + p1).backward()  # both gradients are 4 = scale x 1
        if overflow:
            p1.grad.fill_(math.inf)
        scaler.unscale_(o0)  # o0's gradients at their true size: clip them
        nn.utils.clip_grad_norm_([p0], max_norm=0.5)
        scaler.step(o0)
        scaler.step(o1)  # unscales o1 itself; skips it if its gradient is inf/NaN
        scaler.update()
        history.append((p0.item(), p1.item(), scaler.get_scale()))
    return history


ours = two_optimizers(DynamicLossScaler(init_scale=4.0))
reference = two_optimizers(torch.amp.GradScaler("cpu", init_scale=4.0))
assert ours == reference  # bit for bit, iteration by iteration
rounded = [tuple(round(v, 4) for v in row) for row in ours]  # clip_grad_norm_ divides by norm + 1e-6
assert rounded == [(0.5, 0.0, 4.0), (0.0, 0.0, 2.0)]  # p1 kept its value in the overflow iteration
print("(p0, p1, scale) after each iteration:", rounded)

# %% [markdown]
# ## Master weights, and autocast
#
# The recipe of Micikevicius et al. (2018): keep the model in FP16 for the forward and backward
# passes, but let the optimizer update an **FP32 copy** of the weights, which is rounded into the
# FP16 model after every step. Updates too small for FP16 accumulate in the FP32 master until they
# matter. `course_lib.numerics.MasterWeights`:

# %%
from course_lib.numerics import MasterWeights, autocast_dtype

show_source(MasterWeights)

# %% [markdown]
# The other path is `torch.autocast`: weights stay FP32, and inside the context ops on autocast's
# lower-precision list (matrix multiplies, convolutions) run in a 16-bit type, ops on its FP32 list
# are promoted, and every other op runs in the dtype of its inputs. `autocast_dtype` picks
# **bfloat16 on the CPU** and **float16 on CUDA** (which then also needs the loss scaler). BF16
# has FP32's exponent, so it needs no loss scaling. Which dtype does each op of a classifier's
# loss come out in? The lists differ between CPU and CUDA autocast, so the cell asks this torch:

# %%
print("autocast here uses", autocast_dtype())
assert autocast_dtype() == (torch.bfloat16 if runtime.device().type == "cpu" else torch.float16)
device = runtime.device()
x, w = torch.randn(8, 16, device=device), torch.randn(16, 10, device=device)
target = torch.zeros(8, dtype=torch.long, device=device)
with torch.autocast(device.type, dtype=autocast_dtype()):
    logits = x @ w
    outputs = {"matmul": logits, "sum": logits.sum(), "log_softmax": torch.log_softmax(logits, -1),
               "softmax": torch.softmax(logits, -1), "cross_entropy": nn.functional.cross_entropy(logits, target)}
print("\n".join(f"{op:<14} {str(out.dtype).removeprefix('torch.')}" for op, out in outputs.items()))
assert outputs["matmul"].dtype == autocast_dtype()  # the op autocast exists for

# %% [markdown]
# On the CPU autocast of the torch installed here, the table shows which reductions stay in
# BF16: a `sum` or `log_softmax` of a BF16 tensor is *not* promoted unless the op is on the FP32
# list. So "autocast keeps reductions in FP32" is not a rule to rely on: if a loss or statistic
# needs FP32, cast to it (`logits.float()`) before reducing.

# %% [markdown]
# ## The experiment: one model, four precisions
#
# `course_lib.numerics.train` trains the same MLP (same initial weights, same batches) four ways:
# FP32; **pure FP16** (FP16 weights and gradients, SGD on the FP16 weights, no scaling); **FP16 with
# dynamic loss scaling and FP32 master weights**; and **autocast**. The loss scaler starts at
# 2²⁴ (GradScaler's default is 2¹⁶; starting higher shows it backing off) and, for this short run,
# tries to grow after 50 good steps instead of 2000.

# %%
import time

results = {"fp32": fp32_run}
cpu_start = time.process_time()
for mode in ("fp16", "fp16_master", "autocast"):
    results[mode] = train(mode, x_train, y_train, x_eval, y_eval, config)
print(f"three more runs: {time.process_time() - cpu_start:.1f} s CPU time")

print(f"\n{'mode':<13}{'final train loss':>17}{'eval loss':>11}{'eval accuracy':>15}{'skipped steps':>15}{'seconds':>9}")
for mode, r in results.items():
    tail = sum(r.losses[-50:]) / 50  # mean training loss over the last 50 steps
    skipped = sum(r.skipped) if r.skipped else "-"
    print(f"{mode:<13}{tail:>17.4f}{r.final_loss:>11.4f}{r.accuracy:>15.3f}{skipped!s:>15}{r.seconds:>9.2f}")

# %%
fig, (ax_loss, ax_scale) = plt.subplots(1, 2, figsize=(11, 3.5))
for mode, r in results.items():
    smooth = torch.tensor(r.losses).unfold(0, 20, 1).mean(1)  # running mean over 20 steps
    ax_loss.plot(smooth.numpy(), label=mode)
ax_loss.set_yscale("log")
ax_loss.set_xlabel("step")
ax_loss.set_ylabel("training loss (20-step mean)")
ax_loss.legend()
scales = results["fp16_master"].scales
ax_scale.plot([math.log2(s) for s in scales], drawstyle="steps-post", marker=".", markersize=3)
skips = [i for i, s in enumerate(results["fp16_master"].skipped) if s]
ax_scale.plot(skips, [math.log2(scales[i]) for i in skips], "rx", label="skipped step (inf/NaN gradient)")
ax_scale.set_xlabel("step")
ax_scale.set_ylabel("log2 loss scale")
ax_scale.set_title("dynamic loss scale, FP16 + master weights")
ax_scale.legend()
plt.show()

# %%
master_run = results["fp16_master"]
assert master_run.skipped[0] and master_run.scales[1] == master_run.scales[0] / 2  # 2^24 overflows at once
assert max(master_run.scales[10:]) > min(master_run.scales[10:])  # it grows and backs off again
assert sum(master_run.skipped) < len(master_run.skipped) // 10  # but few steps are lost
for mode in ("fp16_master", "autocast"):
    assert results[mode].accuracy > 0.8, mode  # the mixed-precision recipes train as FP32 does

# %% [markdown]
# What the numbers say. On this small network all four runs learn: its gradients mostly sit
# inside FP16's range, so pure FP16 only loses the few percent measured above. The scale
# trajectory is the dynamic rule at work: 2²⁴ overflows at once, and the scaler halves it on each
# skipped step until the gradients fit; then every 50 good steps it tries to double the scale and
# backs off when a gradient overflows — a sawtooth just under the largest safe scale, costing one
# skipped step each time. (The evaluation numbers vary by
# a few points between runs; with ~400 evaluation images, one image is 0.25 %.) At scale, pure
# FP16 is not an option: with deeper networks and losses averaged over many tokens, most
# gradients fall below $2^{-24}$ and weight updates below half an ulp, which is why
# `torch.amp` pairs FP16 with a GradScaler — and why BF16, with FP32's range, became the default
# on hardware that supports it.

# %% [markdown]
# ## FP8 scaling
#
# FP8 E4M3 covers magnitudes from $2^{-9}$ to 448 with 3 mantissa bits, so FP8 training stores
# $q = \mathrm{fp8}(x \cdot s)$ with a scale $s = 448 / \max|x|$ and computes with $q / s$.
# One scale per tensor is what *FP8 Formats for Deep Learning* (2022) describes (Transformer
# Engine's "delayed" variant takes the amax from past steps). One outlier then shrinks every other
# value toward the subnormals. **Block scaling** gives each block its own scale: DeepSeek-V3 uses
# 1×128 tiles for activations, the OCP MX formats 32-element blocks.
# `course_lib.numerics.fp8_quantize(x, block=...)` does both; below, activations with one outlier
# of $10^4$ in every eighth row:

# %% tags=["nbval-check-output"]
from course_lib.numerics import fp8_dequantize, fp8_quantize

gen = torch.Generator().manual_seed(0)
acts = torch.randn(64, 1024, generator=gen)  # (rows, features)
outlier = torch.zeros_like(acts, dtype=torch.bool)
outlier[::8, 5] = True
acts[outlier] = 1e4
fp8_errors = {}
for block in (None, 128, 32):
    q, scale = fp8_quantize(acts, block=block)
    back = fp8_dequantize(q, scale)[~outlier]
    fp8_errors[block] = ((back - acts[~outlier]).abs() / acts[~outlier].abs()).mean().item()
    flushed_to_zero = (back == 0).float().mean().item()
    label = "per tensor" if block is None else f"blocks of {block}"
    print(f"{label:<15} mean relative error of the other values {fp8_errors[block]:.2%}, "
          f"flushed to 0: {flushed_to_zero:.2%}")
assert fp8_errors[128] < fp8_errors[None] / 2 and fp8_errors[32] <= fp8_errors[128]

# %% [markdown]
# With one scale per tensor the ordinary values land near E4M3's smallest normal ($2^{-6}$), where
# they keep fewer bits, and some flush to zero; with a scale per 128 or 32 values only the
# outlier's own block pays.
#
# ## Delayed scaling
#
# Computing $s = 448 / \max|x|$ *just in time* costs a pass over the tensor before the cast.
# NVIDIA's Transformer Engine (`recipe.DelayedScaling`) instead takes the scale of step $t$ from
# the amaxes of **earlier** steps, kept in a history of `amax_history_len` steps:
#
# $$\text{amax}_t = \max(\text{amax}_{t-L}, \dots, \text{amax}_{t-1}) \ (\texttt{"max"}) \ \text{ or } \ \text{amax}_{t-1} \ (\texttt{"most\_recent"}), \qquad s_t = \frac{448}{\text{amax}_t \cdot 2^{\text{margin}}}$$
#
# A tensor larger than its history predicts is **clipped** to ±448; a spike in the history keeps
# the scale small for $L$ steps. `course_lib.numerics.DelayedScaler` does per step what TE does
# in and after `fp8_autocast`: `quantize(x)` casts with the current scale and records $\max|x|$,
# `update()` applies `delayed_scale_update`, transcribed from TE's CUDA kernel (an amax of 0, inf
# or NaN keeps the previous scale, so an all-zero tensor does not give an infinite one):

# %%
from course_lib.numerics import DelayedScaler, DelayedScaling, delayed_scale_update

show_source(delayed_scale_update)

# %% [markdown]
# The check, computed by hand: tensors whose amax runs 1, 2, 8, 1, 1, 1 with a 3-step history.
# Step 0 has no history and uses TE's initial scale 1; then $448/1$, $448/2$, and $448/8 = 56$
# for the three steps the 8 stays in the window; `"most_recent"` forgets it after one step.

# %% tags=["nbval-check-output"]
def delayed_scales(amaxes, recipe):
    scaler = DelayedScaler(recipe)
    used = []
    for a in amaxes:
        _, scale = scaler.quantize(torch.tensor([a, -a / 2]))
        scaler.update()
        used.append(scale.item())
    return used


by_hand = {"max": [1.0, 448.0, 224.0, 56.0, 56.0, 56.0], "most_recent": [1.0, 448.0, 224.0, 56.0, 448.0, 448.0]}
for algo, want in by_hand.items():
    got = delayed_scales([1.0, 2.0, 8.0, 1.0, 1.0, 1.0], DelayedScaling(amax_history_len=3, amax_compute_algo=algo))
    assert got == want, algo
    print(f"{algo:<12} scales used: {got}")

# %% [markdown]
# **A spike.** Sixty steps of a 4096-value activation with standard-normal entries, except that
# at steps 20 and 36 the whole tensor is 16 times larger.
# `course_lib.numerics.experiment.fp8_scaling_trace` quantizes each step with a `DelayedScaler`
# and, for comparison, just in time with `fp8_quantize`; it counts the values the clamp changed
# (those whose $|x \cdot s|$ would round beyond 448) and records each scale against the ideal
# one, $448 / \max|x_t|$.

# %%
from course_lib.numerics.experiment import fp8_scaling_trace

gen = torch.Generator().manual_seed(0)
spikes = {20: 16.0, 36: 16.0}
steps = [torch.randn(4096, generator=gen) * spikes.get(t, 1.0) for t in range(60)]
traces = {L: fp8_scaling_trace(steps, DelayedScaling(amax_history_len=L)) for L in (1, 8, 32)}
traces["1, margin 1"] = fp8_scaling_trace(steps, DelayedScaling(amax_history_len=1, margin=1))
jit = traces[1]  # the just-in-time numbers are the same in every trace
print(f"{'history':<13}{'clipped at 20':>14}{'at 36':>8}{'elsewhere':>11}{'steps 1-59 with scale <= ideal/8':>34}")
low_steps = {}
for L, tr in traces.items():
    low_steps[L] = sum(s <= i / 8 for s, i in zip(tr.scale[1:], tr.ideal_scale[1:]))  # step 0: scale 1, no history
    elsewhere = sum(c for t, c in enumerate(tr.clipped) if t not in spikes)
    print(f"{L!s:<13}{tr.clipped[20]:>14}{tr.clipped[36]:>8}{elsewhere:>11}{low_steps[L]:>34}")
print(f"{'just in time':<13}{jit.jit_clipped[20]:>14}{jit.jit_clipped[36]:>8}{sum(jit.jit_clipped):>11}{0:>34}")

# %%
assert all(max(tr.jit_clipped) == 0 for tr in traces.values())  # just in time never clips
assert all(tr.clipped[20] > len(steps[20]) // 4 for tr in traces.values())  # every delayed scale clips the spike
assert traces[1].clipped[36] > 1000 and traces[8].clipped[36] > 1000  # the first spike left their window
assert traces[32].clipped[36] < 10  # still in a 32-step window: the second spike fits
assert low_steps[1] == 2 and low_steps[8] == 16 and low_steps[32] > 32  # the price: L steps at a too-small scale
assert sum(c for t, c in enumerate(traces["1, margin 1"].clipped) if t not in spikes) == 0  # 2x headroom
assert traces[1].error[20] > 10 * jit.jit_error[20]  # clipping dominates the round-trip error at the spike

# %%
fig, (ax_s, ax_c) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
ax_s.plot([math.log2(v) for v in jit.ideal_scale], "k--", lw=1.5, label="ideal (just in time): 448 / amax")
for L, colour, marker, size in zip((1, 8, 32), ("tab:blue", "tab:orange", "tab:green"), "os^", (9, 6, 4)):
    ax_s.plot([math.log2(v) for v in traces[L].scale], color=colour, drawstyle="steps-mid", label=f"delayed, history {L}")
    hit = [t for t, c in enumerate(traces[L].clipped) if c]  # steps without clipping are not drawn
    ax_c.plot(hit, [traces[L].clipped[t] for t in hit], color=colour, marker=marker, ms=size, ls="none",
              label=f"history {L}")
ax_s.set_ylabel("log2 scale")
ax_s.set_title("delayed FP8 (E4M3) scaling over steps; ×16 spikes at steps 20 and 36")
ax_s.legend(fontsize=8, loc="lower left")
ax_c.set_yscale("log")
ax_c.set_title("values clipped per step (steps with none are not drawn; just in time clips none)", fontsize=10)
ax_c.set_xlabel("step")
ax_c.set_ylabel("values clipped to ±448")
ax_c.legend(fontsize=8)
plt.show()

# %% [markdown]
# The delayed scale lags by construction: at the step of a spike it is still the one of the quiet
# steps before, so every history length clips a quarter or more of the spiked tensor, while just
# in time clips nothing (table above). History length is the trade-off. A 1-step history recovers
# at once but clips every spike; a 32-step history barely clips the second spike, which falls
# within its window, but then keeps the scale at or below an eighth of the ideal for more than 32
# steps (last column) — the values use at least 3 binades less of E4M3's range, and small ones
# move toward the subnormals. (Step 0 has no history and uses TE's initial scale 1, far below the
# ideal in the plot.) With margin 0 a short history also clips a few values whenever a step's amax
# merely fluctuates above the last one ("elsewhere"); `margin=1` (2× headroom) removes that. TE's
# defaults are `amax_history_len=1024`, `"max"` and margin 0: a long memory, which suits tensors
# whose range drifts slowly and pays for every spike for 1024 steps.
#
# ## Widgets
#
# **Bit editor** (`course_lib.numerics.bit_editor_widget`): click a bit to flip it, type a pattern
# (`0x…`, `0b…`), or switch the format — the value is kept and shown in the new format's bits.
# Text that is not a pattern of the format gets the reason in the caption.

# %%
from course_lib.numerics import bit_editor_widget, number_line_widget, value_widget

editor = bit_editor_widget("fp16", 1.0)
editor

# %%
editor.bit_buttons[15].value = True  # what clicking the sign bit does
assert "value = -1.0" in editor.caption.value
editor.controls["fmt"].value = "fp8_e4m3"
assert editor.controls["bits"].value == "0xb8" and editor.value() == -1.0
editor.controls["fmt"].value = "fp16"
editor.bit_buttons[15].value = False
editor.controls["bits"].value = "0x1zz"  # a typo: the caption says why, the bits stay on the last valid pattern
assert "bits must be an integer like 0x3c00" in editor.caption.value
assert [b.value for b in editor.bit_buttons] == [bool(0x3C00 >> i & 1) for i in range(16)]
editor.controls["bits"].value = "0x3c00"

# %% [markdown]
# **A value in every format** (`course_lib.numerics.value_widget`): type a number and see its bits,
# the stored value and the rounding error in each format.

# %%
values = value_widget(0.1)
values

# %% [markdown]
# **The number line** (`course_lib.numerics.number_line_widget`): where FP16, BF16 and the FP8
# formats have values around a number. Try 0.001, 300 and 50000.

# %%
line = number_line_widget(1000.0, 4)
line

# %%
before = line.caption.value
line.controls["value"].value = 300.0
assert line.caption.value != before and "value = 300.0" in line.caption.value
line.controls["value"].value = 1000.0

# %% [markdown]
# ## Exercises
#
# Each exercise is checked against the reference on edge cases and random inputs. `ex.hint()`
# gives one hint at a time; `ex.solution()` shows the answer.
#
# ### 1. Decode FP8 E5M2 by hand

# %%
from course_lib.numerics.exercises import bf16_rounding, decode_e5m2, encode_format, fp16_spacing, loss_scale_rule

decode_e5m2.show();


# %%
def my_decode_e5m2(bits):
    raise NotImplementedError  # your code here


decode_e5m2.check(my_decode_e5m2);

# %% [markdown]
# ### 2. Encode a value into any IEEE format, from the bits
#
# The chapter's central mechanism: write the encoder yourself. The check compares your patterns
# with the reference on the formats of `course_lib.numerics.FORMATS`; the cell after it plugs your
# encoder into the library's `decode` to round a few values through it.

# %%
encode_format.show();


# %%
def my_encode(value, fmt):
    raise NotImplementedError  # your code here


result = encode_format.check(my_encode)

# %%
if result.passed:  # your encoder inside the library's machinery: decode(my_encode(x)) is round_to(x)
    for value, name in [(0.1, "fp16"), (1000.0, "fp8_e5m2"), (1e-7, "fp16"), (70000.0, "fp16")]:
        mine = decode(my_encode(value, FORMATS[name]), name)
        assert mine == round_to(value, name)
        print(f"{value!r:>8} → {name:<9} {mine!r}")

# %% [markdown]
# ### 3. The spacing of FP16 values near x

# %%
fp16_spacing.show();


# %%
def my_fp16_spacing(x):
    raise NotImplementedError  # your code here


fp16_spacing.check(my_fp16_spacing);

# %% [markdown]
# ### 4. Round FP32 to BF16 with integer arithmetic

# %%
bf16_rounding.show();


# %%
def my_to_bf16(bits):
    raise NotImplementedError  # your code here


bf16_rounding.check(my_to_bf16);

# %% [markdown]
# ### 5. The dynamic loss-scale rule

# %%
loss_scale_rule.show();


# %%
def my_next_scale(scale, growth_tracker, found_inf, growth_factor, backoff_factor, growth_interval):
    raise NotImplementedError  # your code here


loss_scale_rule.check(my_next_scale);

# %% [markdown]
# Stuck? `decode_e5m2.hint()`, `fp16_spacing.hint()`, … reveal hints one at a time, and
# `….solution()` prints the reference.
#
# ## Summary
#
# Back to the objectives:
#
# 1. **Decode and encode** ("Bit layouts", "Decoding by hand", "Rounding", exercises 1, 2, 4):
#    every FP16, BF16 and FP8 pattern decodes as torch reads it; `encode` rounds as torch casts.
# 2. **Range, precision, spacing** ("Range and precision", "The spacing", exercise 3): derived from
#    the bits, equal to `torch.finfo`; gaps double every power of two.
# 3. **Underflow and vanishing updates** ("Why FP16 gradients underflow", the weight-update cells):
#    measured as flushed fractions and as 1000 updates that leave an FP16 or BF16 weight unchanged.
# 4. **Loss scaling, master weights, FP32 accumulation** ("Loss scaling", "Master weights", "The
#    experiment", exercise 5): the scaler equals GradScaler step for step; the recipes train.
# 5. **Activation gradients and the choice of scale** ("Activation gradients, as in the paper's
#    Figure 3"): the flushed, subnormal and overflowing fractions per scale, printed and asserted
#    against the histogram.
# 6. **Delayed FP8 scaling** ("Delayed scaling"): checked by hand; at a spike every history
#    length clips and just in time does not; a long history then keeps the scale too small.
#
# * A float is sign, exponent and mantissa; range comes from the exponent bits, precision from the
#   mantissa bits. `course_lib.numerics.constants` derives both from the bits and equals `torch.finfo`.
# * Rounding is to nearest, ties to even. Overflow gives ±∞ in IEEE formats; E4M3 has no ∞ and
#   its overflow is a convention that changed between torch versions (NaN in 2.11, saturation at
#   ±448 in 2.14); `course_lib` saturates and `torch_cast_overflow` tells what torch does.
# * The gap between values doubles every power of two (E5M2 near 1000: 128, then 256 above 1024).
# * FP16 loses small gradients (below $2^{-25}$ they become 0) and small weight updates (below
#   half a gap). The three techniques of Micikevicius et al.: loss scaling shifts gradients into
#   range; FP32 master weights keep the updates; FP32 accumulation keeps long sums from
#   stagnating (an FP16 running sum of 0.1s stops at 256). The dynamic scaler
#   (`DynamicLossScaler`, GradScaler's per-optimizer protocol) finds the scale on its own.
# * BF16 has FP32's range, so it needs no loss scaling — but with 8 bits of precision it needs
#   FP32 master weights and FP32 accumulation even more than FP16 (1.0 + 1000 × 10⁻³ stays 1.0).
# * CPU autocast runs matmuls in BF16 and leaves many reductions in BF16: cast before reducing
#   when a result needs FP32.
# * FP8 needs scales: one per tensor lets a single outlier cost every other value its precision;
#   block scales (1×128, or MX's 32) more than halve the error in the measurement above.
# * Activation gradients (the paper's Figure 3) sit far below FP16's range: a large share of the
#   non-zero ones flush to zero without scaling; the paper's scale — the largest power of two that
#   keeps the largest gradient ≤ 65504 — shifts the histogram into range, and a scale 2⁸ larger
#   overflows (`underflow_histogram`, measured on the trained classifier).
# * Delayed scaling (Transformer Engine) takes the FP8 scale from past amaxes: no extra pass, but a
#   spike is clipped at the step it happens, and a long history then keeps the scale too small for
#   its length; just-in-time scaling clips nothing (`DelayedScaler`, `fp8_scaling_trace`).
#
# **References.** IEEE 754-2019. P. Micikevicius et al., *Mixed Precision Training*, ICLR 2018.
# P. Micikevicius et al., *FP8 Formats for Deep Learning*, 2022. D. Kalamkar et al., *A Study of
# BFLOAT16 for Deep Learning Training*, 2019. NVIDIA Transformer Engine, `recipe.DelayedScaling`
# (`transformer_engine/common/recipe/delayed_scaling.cu`). PyTorch: `torch.amp.GradScaler`, `torch.autocast`,
# `torch.finfo`. Code: `course_lib/numerics/`; tests: `tests/test_numerics*.py`.
#
# Next: [chapter 4, distributed data parallel](04_ddp.ipynb).
