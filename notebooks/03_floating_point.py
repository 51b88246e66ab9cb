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
# bit by bit, then builds the two tricks that make 16-bit training work — **loss scaling** and
# **FP32 master weights** — and compares them with `torch.autocast` in an experiment.
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
import inspect
import math

import matplotlib.pyplot as plt
import torch

from course_lib import runtime

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

print(inspect.getsource(formats._decode_fields))

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

print(inspect.getsource(codec.encode))

# %% [markdown]
# Between 2048 and 4096 FP16 values are 2 apart, so 2049 and 2051 are both ties: 2049 goes down to
# 2048, 2051 up to 2052 (the even mantissas). Overflow differs by format, as in torch: FP16 and
# E5M2 round to infinity, while torch's `float8_e4m3fn` cast **saturates** — everything beyond 448,
# even infinity, becomes 448. (Older torch versions returned NaN there instead, the OCP spec's
# non-saturating conversion; `course_lib` follows the torch installed here, and the cell below
# would fail if they disagreed.)

# %% tags=["nbval-check-output"]
from course_lib.numerics import round_to

cases = [(2049.0, "fp16"), (2051.0, "fp16"), (65519.0, "fp16"), (65520.0, "fp16"), (1e-8, "fp16"),
         (3e-8, "fp16"), (0.1, "bf16"), (500.0, "fp8_e4m3"), (math.inf, "fp8_e4m3"), (61440.0, "fp8_e5m2")]
lines = []
for value, name in cases:
    ours = round_to(value, name)
    theirs = torch.tensor(value, dtype=torch.float32).to(FORMATS[name].dtype()).item()
    assert ours == theirs, (value, name)
    lines.append(f"{value!r:>10} → {name:<9} {ours!r}")
print("\n".join(lines))

# %% [markdown]
# ## The spacing of representable values
#
# Within one binade $[2^e, 2^{e+1})$ a format has $2^M$ evenly spaced values, so the gap is
# $2^{e-M}$: it doubles with every power of two. Near 1000 FP16 values are 0.5 apart; BF16 values
# are 4 apart; FP8 E5M2 values 64 apart (`course_lib.numerics.neighbours` lists them). The number
# line below is `course_lib.numerics.number_line_view`.

# %% tags=["nbval-check-output"]
from course_lib.numerics import neighbours, number_line_view

print("\n".join(f"{name:<9} {neighbours(1000.0, name, 2)}" for name in ("fp16", "bf16", "fp8_e5m2")))
assert neighbours(1000.0, "fp16", 1) == [999.5, 1000.0, 1000.5]

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
# ## Loss scaling
#
# The dynamic rule (`course_lib.numerics.update_scale`, the rule of `torch.amp.GradScaler`) backs
# off when a gradient overflows and skips that step, and grows the scale again after
# `growth_interval` good steps:

# %%
from course_lib.numerics import DynamicLossScaler, update_scale

print(inspect.getsource(update_scale))

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
# ## Master weights, and autocast
#
# The recipe of Micikevicius et al. (2018): keep the model in FP16 for the forward and backward
# passes, but let the optimizer update an **FP32 copy** of the weights, which is rounded into the
# FP16 model after every step. Updates too small for FP16 accumulate in the FP32 master until they
# matter. `course_lib.numerics.MasterWeights`:

# %%
from course_lib.numerics import MasterWeights, autocast_dtype

print(inspect.getsource(MasterWeights))

# %% [markdown]
# The other path is `torch.autocast`: weights stay FP32, and inside the context matrix multiplies
# run in a 16-bit type while reductions and the loss stay in FP32. `autocast_dtype` picks
# **bfloat16 on the CPU** and **float16 on CUDA** (which then also needs the loss scaler). BF16
# has FP32's exponent, so it needs no loss scaling at all.

# %%
print("autocast here uses", autocast_dtype())
assert autocast_dtype() == (torch.bfloat16 if runtime.device().type == "cpu" else torch.float16)

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
from course_lib.numerics.exercises import bf16_rounding, decode_e5m2, fp16_spacing, loss_scale_rule

decode_e5m2.show();


# %%
def my_decode_e5m2(bits):
    raise NotImplementedError  # your code here


decode_e5m2.check(my_decode_e5m2);

# %% [markdown]
# ### 2. The spacing of FP16 values near x

# %%
fp16_spacing.show();


# %%
def my_fp16_spacing(x):
    raise NotImplementedError  # your code here


fp16_spacing.check(my_fp16_spacing);

# %% [markdown]
# ### 3. Round FP32 to BF16 with integer arithmetic

# %%
bf16_rounding.show();


# %%
def my_to_bf16(bits):
    raise NotImplementedError  # your code here


bf16_rounding.check(my_to_bf16);

# %% [markdown]
# ### 4. The dynamic loss-scale rule

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
# * A float is sign, exponent and mantissa; range comes from the exponent bits, precision from the
#   mantissa bits. `course_lib.numerics.constants` derives both from the bits and equals `torch.finfo`.
# * Rounding is to nearest, ties to even. Overflow gives ±∞, except torch's `float8_e4m3fn` cast,
#   which saturates at ±448.
# * FP16 loses small gradients (below $2^{-25}$ they become 0) and small weight updates (below
#   half an ulp). Loss scaling shifts gradients into range; FP32 master weights keep the updates.
#   The dynamic scaler (`DynamicLossScaler`, GradScaler's rule) finds the scale on its own.
# * BF16 has FP32's range and needs neither trick for range — the CPU autocast dtype here.
#
# **References.** IEEE 754-2019. P. Micikevicius et al., *Mixed Precision Training*, ICLR 2018.
# P. Micikevicius et al., *FP8 Formats for Deep Learning*, 2022. D. Kalamkar et al., *A Study of
# BFLOAT16 for Deep Learning Training*, 2019. PyTorch: `torch.amp.GradScaler`, `torch.autocast`,
# `torch.finfo`. Code: `course_lib/numerics/`; tests: `tests/test_numerics*.py`.
#
# Next: [chapter 4, distributed data parallel](04_ddp.ipynb).
