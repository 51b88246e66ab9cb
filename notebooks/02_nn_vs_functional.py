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
# # 2 · nn.Module vs torch.nn.functional
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dl-systems-course/dl-systems-course/blob/main/notebooks/02_nn_vs_functional.ipynb) [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/dl-systems-course/dl-systems-course/main?labpath=notebooks%2F02_nn_vs_functional.ipynb)
#
# PyTorch lets you write the same layer twice: `nn.Conv2d(3, 8, 3)(x)` or
# `F.conv2d(x, weight, bias)`. Are they the same computation? What does the module add, and
# what does it cost? And why do so many bugs come from mixing the two — a model that still drops
# units after `model.eval()`, a batch norm whose statistics never move?
#
# This chapter writes one model both ways, proves they compute bit-identical outputs and
# gradients, takes apart what `nn.Module` contributes, shows the `training=` pitfall, uses the
# functional view to compute per-sample gradients with `torch.func`, and measures the module's
# overhead.
#
# **You will be able to**
#
# 1. write a model as an `nn.Module` and as a pure function of a parameter dict, and show they
#    compute the same bits;
# 2. say what the module's bookkeeping buys — registration, `state_dict`, `train()`/`eval()`,
#    hooks, `.to()` — and spot weights it cannot see;
# 3. avoid the `training=` pitfall of `F.dropout` and `F.batch_norm`;
# 4. compute per-sample gradients with `vmap(grad(...))` over `functional_call`, in one pass;
# 5. measure what a module call costs beyond the function it wraps, and say what was measured.
#
# **Prerequisites**: chapter 1 (autograd), `torch.nn` basics (Linear, BatchNorm, Dropout).
# **Time**: about 60 minutes (plus the exercises).

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
# ## The idea: a module is bookkeeping around a function
#
# A layer computes a *function of its input and its parameters*: $y = f(x; \theta)$. The
# functional API (`torch.nn.functional`, imported as `F`) is exactly that function — you pass
# $\theta$ in. A module stores $\theta$ for you and calls the same function:
#
# ```
# class Linear(nn.Module):                      # simplified from torch/nn/modules/linear.py
#     def __init__(self, d_in, d_out):
#         self.weight = nn.Parameter(...)       # registered: parameters(), state_dict(), .to()
#         self.bias = nn.Parameter(...)
#     def forward(self, x):
#         return F.linear(x, self.weight, self.bias)
# ```
#
# Our model, `course_lib.functional.Net`, is `Linear → BatchNorm1d → ReLU → Dropout → Linear`.
# Two of its layers behave differently in training and evaluation — exactly the ones where the
# two spellings can drift apart:
#
# | op | training | evaluation |
# | --- | --- | --- |
# | dropout | zero each unit with prob. $p$, scale the rest by $1/(1-p)$ | identity |
# | batch norm | normalise with the batch mean/variance; update running stats $r \leftarrow (1-m)\,r + m\,\text{stat}$ | normalise with the running stats |

# %% [markdown]
# ## Two spellings of one model
#
# The module spelling, `course_lib.functional.Net`:

# %%
import torch

from course_lib.functional import FunctionalNet, Net, NetConfig, net_forward, net_forward_naive
from course_lib.source import show_source

show_source(Net.forward)

# %% [markdown]
# The functional spelling, `course_lib.functional.net_forward`: a pure function of a parameter
# dict (keys as in `Net.state_dict()`), the input and the mode. Note `training` is a required
# keyword — the reason is the pitfall further down.

# %%
show_source(net_forward)

# %% [markdown]
# ## Check: bit-identical outputs and gradients
#
# Same weights, same input, same random state for the dropout mask: the outputs must be
# *equal*, not just close (`torch.equal`), in both modes, and so must the gradients and the
# updated running statistics — because both spellings run the very same `F.*` kernels with the
# same arguments in the same order.

# %% tags=["nbval-check-output"]
cfg = NetConfig()
torch.manual_seed(0)
net = Net(cfg)
params = {k: v.detach().clone().requires_grad_(True) for k, v in net.named_parameters()}
buffers = {k: v.detach().clone() for k, v in net.named_buffers()}
x = torch.randn(32, cfg.in_features)

for training in (True, False):
    net.train(training)
    torch.manual_seed(1)
    out_module = net(x)
    torch.manual_seed(1)
    out_function = net_forward(params, buffers, x, cfg, training=training)
    grads_module = torch.autograd.grad(out_module.logsumexp(-1).sum(), list(net.parameters()))
    grads_function = torch.autograd.grad(out_function.logsumexp(-1).sum(), list(params.values()))
    same_out = torch.equal(out_module, out_function)
    same_grad = all(torch.equal(a, b) for a, b in zip(grads_module, grads_function))
    same_stats = all(torch.equal(b, buffers[k]) for k, b in net.named_buffers())
    print(f"training={training}: outputs equal {same_out}, gradients equal {same_grad}, buffers equal {same_stats}")
    assert same_out and same_grad and same_stats

# %% [markdown]
# ## What a Module adds
#
# If the arithmetic is identical, what is `nn.Module` for? Bookkeeping. Assigning an
# `nn.Parameter` or a submodule as an attribute goes through `Module.__setattr__`, which files it
# in a registry; everything below reads that registry.
#
# **Registration and `state_dict`** — every parameter and buffer by dotted name:

# %% tags=["nbval-check-output"]
net = Net(cfg)
for name, p in net.named_parameters():
    print(f"parameter {name:<12} {tuple(p.shape)}")
for name, b in net.named_buffers():
    print(f"buffer    {name:<24} {tuple(b.shape)} {b.dtype}")
restored = Net(cfg)
restored.load_state_dict(net.state_dict())
assert torch.equal(restored.eval()(x), net.eval()(x))

# %% [markdown]
# **`train()` / `eval()`** flip `self.training` on every submodule; `nn.Dropout` and
# `nn.BatchNorm1d` pass it on as `training=self.training`. **`.to()`** converts every registered
# tensor; the functional spelling needs `course_lib.functional.tree_to` for the same.
# **Hooks** run code around any submodule's call — `course_lib.functional.capture_activations`
# records every layer's output without touching `forward`:

# %%
from course_lib.functional import capture_activations, tree_to

show_source(capture_activations)

# %% tags=["nbval-check-output"]
net.train()
assert all(m.training for m in net.modules())
net.eval()
assert not any(m.training for m in net.modules())
activations = capture_activations(net, x)
for name, a in activations.items():
    print(f"{name:<5} -> {tuple(a.shape)}")
assert torch.equal(activations["fc2"], net(x))
assert all(p.dtype == torch.float64 for p in net.to(torch.float64).parameters())
assert tree_to(params, dtype=torch.float64)["fc1.weight"].dtype == torch.float64
net = net.float()

# %% [markdown]
# The registry only sees what goes through `__setattr__` as a `Parameter` or `Module`. Weights
# kept in a Python list — `course_lib.functional.ListHeldNet` — still compute, but are invisible:
# no parameters for an optimizer, nothing in the `state_dict`, left behind by `.to()`. The fix
# is `nn.ParameterList`.

# %% tags=["nbval-check-output"]
from course_lib.functional import ListHeldNet

layer = ListHeldNet(3, 2)
print("output shape:", tuple(layer(torch.randn(4, 3)).shape))
print("parameters():", list(layer.parameters()), " state_dict():", dict(layer.state_dict()))
layer.to(torch.float64)
print("weight dtype after .to(float64):", layer.weights[0].dtype)
assert list(layer.parameters()) == [] and layer.weights[0].dtype == torch.float32

# %% [markdown]
# ## The pitfall: `training=` has two different defaults
#
# Write a module's `forward` with functional calls and forget to pass the mode, and the two ops
# misbehave in *opposite* directions, because their defaults differ:
#
# * `F.dropout(x, p)` defaults to `training=True`: **dropout stays on after `model.eval()`**;
# * `F.batch_norm(x, running_mean, running_var, ...)` defaults to `training=False`: **training
#   normalises with the running statistics, which are never updated.**
#
# `course_lib.functional.net_forward_naive` is that mistake, kept to be shown;
# `FunctionalNet(pass_training=False)` is a module whose `forward` calls it:

# %%
show_source(net_forward_naive)

# %% [markdown]
# `course_lib.functional.record_calls` intercepts every `F.dropout` / `F.batch_norm` call (with a
# `TorchFunctionMode`) and reports the `training=` each received:

# %% tags=["nbval-check-output"]
from course_lib.functional import record_calls

naive = FunctionalNet(cfg, pass_training=False)
right = FunctionalNet(cfg, pass_training=True)
right.load_state_dict(naive.state_dict())
batch = 3 * torch.randn(64, cfg.in_features) + 2

for model in (right, naive):
    for mode in ("train", "eval"):
        model.train(mode == "train")
        _, calls = record_calls(lambda model=model: model(batch))
        seen = ", ".join(f"F.{c.name}(training={c.arguments['training']})" for c in calls)
        print(f"pass_training={model.pass_training!s:<5} model.{mode}(): {seen}")

naive.eval()
assert not torch.equal(naive(batch), naive(batch))  # eval mode, yet two calls differ: dropout is on
right.eval()
assert torch.equal(right(batch), right(batch))
print("naive running_mean after training passes:", naive.bn.running_mean[:4].tolist())
assert torch.equal(naive.bn.running_mean, torch.zeros(cfg.hidden))  # never updated
assert not torch.equal(right.bn.running_mean, torch.zeros(cfg.hidden))

# %% [markdown]
# The fix is one argument: `training=self.training` (what `nn.Dropout` and `nn.BatchNorm1d` do
# internally). `net_forward` makes `training` a required keyword so it cannot be forgotten.
#
# ## Per-sample gradients: where the functional view pays off
#
# A backward pass gives the gradient of the *mean* loss; the per-sample terms
# $\nabla_\theta L_i$ are summed away. Differentially private training (clip each sample's
# gradient) needs them one by one. The obvious way is a loop of $N$ batch-1 backward passes.
# `torch.func` does it in one vectorised pass, but it needs the model as a *pure function of its
# parameters* — which `torch.func.functional_call` makes out of any module:
#
# ```
# loss_i(θ)  = L(functional_call(model, (θ, buffers), x_i[None]), y_i[None])
# grads      = vmap(grad(loss_i), in_dims=(None, 0, 0))(θ, x, y)      # each (N, *θ.shape)
# ```
#
# `vmap` does not trace or compile: it calls the function *once*, with tensors that carry an
# extra batch dimension out of sight, and each torch op dispatches to a *batching rule* that
# processes all samples at once. `course_lib.functional.per_sample_grads_vmap`:

# %%
from course_lib.functional import per_sample_grads_loop, per_sample_grads_vmap
from course_lib.functional.experiment import time_per_sample

show_source(per_sample_grads_vmap)

# %% tags=["nbval-check-output"]
torch.manual_seed(0)
model = Net(cfg).double().eval()
xs = torch.randn(16, cfg.in_features, dtype=torch.float64)
ys = torch.randint(0, cfg.classes, (16,))
looped = per_sample_grads_loop(model, xs, ys)
vmapped = per_sample_grads_vmap(model, xs, ys)
for name in looped:
    torch.testing.assert_close(vmapped[name], looped[name], rtol=1e-10, atol=1e-12)
    print(f"{name:<10} per-sample grads {tuple(vmapped[name].shape)}: vmap == loop")
total = torch.autograd.grad(torch.nn.functional.cross_entropy(model(xs), ys, reduction="sum"),
                            list(model.parameters()))
assert all(torch.allclose(vmapped[n].sum(0), g) for (n, _), g in zip(model.named_parameters(), total))

# %% [markdown]
# That it runs the function once is checkable: a forward pre-hook counts the model's calls.

# %% tags=["nbval-check-output"]
calls = []
handle = model.register_forward_pre_hook(lambda *_: calls.append("vmap"))
per_sample_grads_vmap(model, xs, ys)
handle.remove()
handle = model.register_forward_pre_hook(lambda *_: calls.append("loop"))
per_sample_grads_loop(model, xs, ys)
handle.remove()
print(f"model calls for {len(xs)} samples: vmap {calls.count('vmap')}, loop {calls.count('loop')}")
assert calls.count("vmap") == 1 and calls.count("loop") == len(xs)

# %% [markdown]
# How much faster is the vectorised version? `time_per_sample` times both with
# `course_lib.timing.compare` (warm-up, interleaved repeats, medians; one thread). Timings vary
# with the load on the machine; the loop's cost grows with $N$, vmap's much less.

# %%
timings = [time_per_sample(batch=n, repeats=7) for n in (4, 16, 64)]
for t in timings:
    print(f"N={t.batch:>3}: loop {t.loop_ms:6.2f} ms, vmap {t.vmap_ms:6.2f} ms (medians), loop/vmap = {t.speedup:5.1f}x")
assert timings[-1].speedup > 1.5, "vmap should beat 64 batch-1 passes by a wide margin"
growth = {name: getattr(timings[-1], name) / getattr(timings[0], name) for name in ("loop_ms", "vmap_ms")}
print(f"from N=4 to N=64 the loop's time grew {growth['loop_ms']:.1f}x, vmap's {growth['vmap_ms']:.1f}x")

# %% [markdown]
# `vmap` pays a cost per call that does not depend on $N$ — wrapping the inputs as batched
# tensors and dispatching every op through its batching rule — so with only a handful of samples
# its advantage is small, and on some runs the loop wins (compare the $N = 4$ row above); the
# loop's time grows with every sample.

# %% [markdown]
# ## Experiment: is the module slower?
#
# `conv(x)` runs `Module.__call__` (hook checks, dispatch to `forward`, attribute look-ups)
# before reaching the same `F.conv2d`, while the convolution costs
# $2 \cdot N \cdot C_\text{out} \cdot C_\text{in} \cdot K^2 \cdot H \cdot W$ FLOPs in C++.
# Two separate questions: how much *work* does the module add, and how much *time* do we see?
#
# The work is countable, and does not depend on the machine's load: `python_calls` counts the
# Python function calls a call makes (via `sys.setprofile`).

# %%
from torch import nn

from course_lib.functional.experiment import plot_conv_overhead, python_calls, time_conv_overhead

sizes = [(1, 2, 4), (1, 8, 8), (1, 16, 16), (2, 32, 32), (4, 32, 32)]
extra_calls = set()
for n, c, h in sizes:
    conv, x_conv = nn.Conv2d(c, c, 3, padding=1), torch.randn(n, c, h, h)
    with torch.no_grad():
        module_calls = python_calls(lambda conv=conv, x=x_conv: conv(x))
        functional_calls = python_calls(
            lambda conv=conv, x=x_conv: torch.nn.functional.conv2d(x, conv.weight, conv.bias, padding=1))
    extra_calls.add(module_calls - functional_calls)
    print(f"N×C×H² = {n}×{c}×{h}²: Python calls: module {module_calls}, functional {functional_calls}")
assert len(extra_calls) == 1  # the same extra Python frames at every size: fixed work
print(f"the module adds {extra_calls.pop()} Python calls per call, at every size")

# %% [markdown]
# The time is measured with `course_lib.functional.experiment.time_conv_overhead`:
# `course_lib.timing.compare` runs module and function interleaved (warm-up, calibrated calls
# per sample, repeats), and we report the medians, their ratio, their difference, and the
# larger interquartile range as the noise. Small sizes here; the larger sweep is
# `benchmarks/bench_functional.py`.

# %%
import matplotlib.pyplot as plt

rows = time_conv_overhead(sizes, repeats=11)
for r in rows:
    print(f"N×C×H² = {r.batch}×{r.channels}×{r.size}²  {r.flops:9.2e} FLOPs  module {r.module_us:8.1f} µs  "
          f"functional {r.functional_us:8.1f} µs  ratio {r.ratio:.3f}  difference {r.overhead_us:+7.1f} µs "
          f"(noise ±{r.noise_us:.1f} µs)")
resolved = [r for r in rows if abs(r.overhead_us) > r.noise_us]
print(f"differences larger than their noise: {len(resolved)} of {len(rows)} sizes")
plot_conv_overhead(rows)
plt.show()

# %% [markdown]
# Read the two together. The module's extra work is a fixed handful of Python calls (counted
# above): for the tiniest convolution that is a visible fraction of its time. The *measured*
# difference, though, is a difference of two medians: as the convolution grows, the timings'
# spread grows with it, and a difference of tens of µs on a layer that takes a millisecond or
# more sits within that noise (compare each difference with its ± above) — it is not the
# module's bookkeeping growing with size, since the call count does not. So for layers big
# enough to matter, module and function cost the same within what this machine can resolve;
# for thousands of tiny calls (a per-sample loop) the fixed cost adds up — one more reason
# `vmap` wins above.
#
# ## Widget: train/eval × module/functional
#
# `course_lib.functional.dropout_bn_widget()` wires three toggles to the pure function
# `dropout_bn_view(mode, form, seed)`: the dropout mask of one forward pass (black = dropped) and
# batch norm's running mean before/after next to the batch mean, with the `training=` each op
# received (the picture is drawn from the pure `dropout_bn_state(mode, form, seed)`). Switch to
# *functional, mode not passed* — hover over a spelling for what it means — and watch the mode
# toggle stop mattering.

# %%
from course_lib.functional import dropout_bn_widget

widget = dropout_bn_widget()
widget

# %% tags=["nbval-check-output"]
for form in ("module", "functional, mode not passed"):
    widget.controls["form"].value = form
    for mode in ("train", "eval"):
        widget.controls["mode"].value = mode
        print(widget.caption.value.split("\n")[1])
assert "F.dropout received training=True" in widget.caption.value  # eval mode, naive form: still dropping
widget.controls["mode"].value = "train"  # leave the widget as it started, so every control still acts
widget.controls["form"].value = "module"
assert widget.caption.value.startswith("<pre>mode=train  form=module")

# %% [markdown]
# ## Exercises
#
# Four exercises, checked automatically on edge cases and random inputs. Replace
# `raise NotImplementedError` with your code and run the cell. Each exercise has `.hint()` (call
# again for the next hint) and `.solution()`. The last one is the chapter's mechanism: per-sample
# gradients of a real module with `vmap(grad(...))` over `functional_call`. Its check runs your
# function on a `Net`, compares with the loop, and counts the model's calls and the autograd
# passes — a Python loop over the samples is rejected, as the cell after it shows.

# %%
from course_lib.functional.exercises import (
    batch_norm_train,
    inverted_dropout,
    per_sample_grads_ex,
    per_sample_linear_grads,
)

inverted_dropout.show();

# %%
def my_inverted_dropout(x, keep, p):
    raise NotImplementedError  # your code here


inverted_dropout.check(my_inverted_dropout);

# %%
batch_norm_train.show();

# %%
def my_batch_norm_train(x, running_mean, running_var, weight, bias, momentum, eps):
    raise NotImplementedError  # your code here


batch_norm_train.check(my_batch_norm_train);

# %%
per_sample_linear_grads.show();

# %%
def my_per_sample_linear_grads(w, x, y):
    raise NotImplementedError  # your code here


per_sample_linear_grads.check(my_per_sample_linear_grads);

# %%
per_sample_grads_ex.show();

# %%
def my_per_sample_grads(model, x, y):
    raise NotImplementedError  # your code here


per_sample_grads_ex.check(my_per_sample_grads);

# %% [markdown]
# The library's own loop gives the right numbers — and is rejected, because it is a loop:

# %%
loop_result = per_sample_grads_ex.check(per_sample_grads_loop, quiet=True)
assert not loop_result.passed and "that is a Python loop" in loop_result.message
print(loop_result.message.splitlines()[0])
print(loop_result.message.splitlines()[-1])

# %% [markdown]
# ## Summary
#
# 1. **Two spellings, one computation**: `Net` and `net_forward` run the same `F.*` kernels and
#    agree bit for bit — outputs, gradients and running statistics.
# 2. **What the module buys**: registration → `parameters()`, `state_dict()`, `train()/eval()`,
#    hooks, `.to()`. Tensors kept outside the registry (a list) silently miss all of it.
# 3. **The pitfall**: `F.dropout` defaults to `training=True`, `F.batch_norm` to `training=False`;
#    a functional `forward` must pass `training=self.training`.
# 4. **Per-sample gradients**: `functional_call` turns a module into a pure function of its
#    parameters, and `vmap(grad(...))` computes all per-sample gradients with *one* call of the
#    model — several times faster than a loop once the batch has more than a few samples.
# 5. **The module's cost**: a fixed number of extra Python calls per call (counted above); its
#    time is visible for tiny layers and lost in the timing noise for real ones — measured as
#    medians with their spread, not assumed.
#
# References: PyTorch source `torch/nn/modules/{module,batchnorm,dropout}.py`; the `torch.func`
# tutorial "Per-sample-gradients"; Ioffe & Szegedy, *Batch Normalization* (2015); Srivastava et
# al., *Dropout* (2014). Library: `course_lib/functional/`; tests: `tests/test_functional.py`.
#
# Next: [chapter 3, floating-point formats](03_floating_point.ipynb).
