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
# # 1 · Reverse-mode autograd from scratch
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dl-systems-course/dl-systems-course/blob/main/notebooks/01_autograd.ipynb) [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/dl-systems-course/dl-systems-course/main?labpath=notebooks%2F01_autograd.ipynb)
#
# Every model in this course is trained by one line, `loss.backward()`. This chapter opens it up.
# We build a small reverse-mode automatic-differentiation engine over n-d arrays,
# `course_lib.autograd`, check it against `torch.autograd` on the same programs, learn the rules
# PyTorch's autograd follows (why `.grad` accumulates, what `detach` and `no_grad` do, what
# `gradient=` means), write custom `torch.autograd.Function`s, train a digits classifier on both
# engines side by side, and measure why the gradient is "cheap".

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
# ## Why: a million derivatives for the price of a few forward passes
#
# Training needs $\partial L / \partial \theta$ for every parameter $\theta$ — millions of them —
# at every step. Finite differences would cost one forward pass *per parameter*. Writing the
# derivatives by hand does not survive the next change to the model. Automatic differentiation
# gets all of them exactly, for a small constant times the cost of one forward pass, from the
# program that computes the loss.
#
# ## The idea: the chain rule, applied backwards over a recorded graph
#
# While the forward code runs, each op records its inputs and how to push a gradient back through
# itself — its **vector-Jacobian product** (vjp). For $y = f(x)$ and an upstream gradient
# $g = \partial L/\partial y$:
#
# $$\frac{\partial L}{\partial x} = g \cdot \frac{\partial y}{\partial x}
# \qquad\text{e.g.}\quad y = a \odot b:\ \ \bar a = g \odot b,\ \ \bar b = g \odot a
# \qquad y = a b:\ \ \bar a = g\, b^\top,\ \ \bar b = a^\top g$$
#
# Backward visits the nodes so that each is handled after **all** of its consumers (a reverse
# topological order) and *sums* what each consumer sends (the multivariate chain rule):
#
# ```
# grads = {loss: 1}
# for node in reversed(topological_order(loss)):      # consumers before producers
#     g = grads.pop(node)                             # complete now
#     if node is a leaf: node.grad += g                # += : accumulates across calls
#     else: for parent, gp in zip(node.parents, node.vjp(g)): grads[parent] += gp
# ```
#
# The picture: a tanh neuron with a squared error and a weight penalty,
# $L = (\tanh(w x + b) - t)^2 + 0.1\,w^2$, after the backward pass (green: gradient complete).
# `w` is used twice, so its gradient is the sum of two paths. The widget further down steps
# through this node by node.

# %%
import matplotlib.pyplot as plt

from course_lib.autograd import backward_view, example_graph, trace_backward

trace = trace_backward(example_graph())
view = backward_view(trace.n_steps, trace)
print(view.caption)
plt.show()

# %% [markdown]
# ## PyTorch's autograd, and ours, side by side
#
# `course_lib.autograd.Tensor` mirrors the parts of `torch.Tensor` that matter here, so each
# rule below runs the *same code* on both engines and asserts they agree.
#
# **`requires_grad` and `.backward()`.** Leaves you create with `requires_grad=True` get a `.grad`
# after `backward()`; intermediate results do not keep one.

# %% tags=["nbval-check-output"]
import numpy as np
import torch

from course_lib.autograd import Tensor


def f(x, w):
    return ((x @ w).tanh() * 2 - 1).sum()


x_np = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]])
w_np = np.array([[0.1, -0.2], [0.3, 0.4], [-0.5, 0.6]])
x, w = Tensor(x_np), Tensor(w_np, requires_grad=True)
xt, wt = torch.tensor(x_np), torch.tensor(w_np, requires_grad=True)
out, out_t = f(x, w), f(xt, wt)
out.backward()
out_t.backward()
print("loss   ours", round(out.item(), 6), " torch", round(out_t.item(), 6))
print("w.grad ours", w.grad.data.round(6).tolist())
print("       torch", wt.grad.numpy().round(6).tolist())
assert np.allclose(w.grad.data, wt.grad.numpy(), rtol=1e-12) and x.grad is None and xt.grad is None

# %% [markdown]
# **`.grad` accumulates.** `backward()` *adds* into `.grad` — which is what lets gradient
# accumulation over micro-batches work — so an optimiser must clear it every step
# (`p.grad = None`, what `optimizer.zero_grad()` does). Forget it and each step uses the sum of
# all previous gradients.

# %% tags=["nbval-check-output"]
first = w.grad.data.copy()
f(x, w).backward()
f(xt, wt).backward()
assert np.allclose(w.grad.data, 2 * first) and np.allclose(wt.grad.numpy(), 2 * first)
print("after a second backward, grad / first grad =", np.unique((w.grad.data / first).round(12)).tolist())
w.grad, wt.grad = None, None  # zero before the next step

# %% [markdown]
# **`detach()` and `no_grad()`.** `detach()` returns the same values cut from the graph: no
# gradient flows through it (a *stop-gradient*: targets in RL and self-distillation, the
# straight-through trick below). Inside `no_grad()` no graph is recorded at all — for evaluation
# and for optimiser updates; results have `requires_grad=False`.

# %% tags=["nbval-check-output"]
from course_lib.autograd import no_grad

a, at = Tensor([2.0, 3.0], requires_grad=True), torch.tensor([2.0, 3.0], dtype=torch.float64, requires_grad=True)
(a * a.detach()).sum().backward()  # d/da of a·stop(a) = stop(a): half of d(a²)/da
(at * at.detach()).sum().backward()
print("grad through a·a.detach():", a.grad.data.tolist(), at.grad.tolist())
assert a.grad.data.tolist() == at.grad.tolist() == [2.0, 3.0]

with no_grad():
    y = (a * 10).exp()
with torch.no_grad():
    yt = (at * 10).exp()
print("under no_grad: requires_grad =", y.requires_grad, yt.requires_grad)
assert not y.requires_grad and not yt.requires_grad

# %% [markdown]
# **Non-scalar outputs need `gradient=`.** For a vector output $y$ there is no single
# "derivative" to seed: `y.backward(gradient=v)` computes the vector-Jacobian product
# $v^\top \partial y/\partial x$ — exactly what one vjp does. `backward()` with no argument is
# the special case of a one-element output and $v = 1$.

# %% tags=["nbval-check-output"]
v = np.array([1.0, 0.0, -2.0])
z, zt = Tensor([0.5, 1.0, 1.5], requires_grad=True), torch.tensor([0.5, 1.0, 1.5], dtype=torch.float64, requires_grad=True)
(z**3).backward(gradient=v)
(zt**3).backward(gradient=torch.from_numpy(v))
print("v · J =", z.grad.data.tolist(), "  (v_i · 3 z_i²)")
assert np.allclose(z.grad.data, zt.grad.numpy()) and np.allclose(z.grad.data, v * 3 * z.data**2)
try:
    (z**3).backward()
except ValueError as err:
    print("without gradient=:", err)

# %% [markdown]
# **Define-by-run.** The graph is whatever the Python code did *this time*: loops and `if`s on
# data give a different graph on each call, and backward follows it (PyTorch's eager mode;
# TensorFlow 1 instead built one static graph up front).

# %% tags=["nbval-check-output"]
def collatz_like(t, steps):
    for _ in range(steps):
        t = t * 0.5 if t.sum().item() > 1 else t * 3 + 1  # the branch depends on the values
    return t.sum()


for start in (0.3, 7.0):
    for steps in (3, 6):
        s, st_ = Tensor([start], requires_grad=True), torch.tensor([start], dtype=torch.float64, requires_grad=True)
        collatz_like(s, steps).backward()
        collatz_like(st_, steps).backward()
        assert np.allclose(s.grad.data, st_.grad.numpy())
        print(f"start {start}, {steps} steps: d out / d start = {s.grad.item():g}")

# %% [markdown]
# ## The implementation
#
# Each op is a method of `Tensor` that computes its value with NumPy and hands
# `Tensor.from_op` its parents and its vjp. Here is multiplication — note `unbroadcast`: when
# `b` of shape `(3,)` was broadcast against `a` of shape `(2, 3)`, each row used the same `b`,
# so `b`'s gradient is the sum over rows.

# %%
import inspect

from course_lib.autograd import unbroadcast
from course_lib.autograd.engine import run_backward, topological_order

print(inspect.getsource(Tensor.__mul__))
print(inspect.getsource(unbroadcast))

# %% [markdown]
# The engine (`course_lib.autograd.engine`): an iterative depth-first search for the
# topological order (a recursive one would overflow Python's stack on a deep graph), then the
# loop from the pseudo-code above.

# %%
print(inspect.getsource(topological_order))
print(inspect.getsource(run_backward))

# %% [markdown]
# ## Checking against PyTorch, and checking a backward numerically
#
# The tests (`tests/test_autograd.py`) generate random expression graphs with hypothesis and
# require values and gradients to agree with `torch.autograd` to float64 precision. One such
# program here, with broadcasting, a matmul, indexing with a repeated row and a log-softmax:

# %%
rng = np.random.default_rng(0)
arrays = [rng.standard_normal(s) for s in [(4, 5), (5,), (5, 3)]]


def program(p, q, r):
    h = (p * q).sigmoid() @ r  # (4, 3)
    return (h[[0, 2, 2]].log_softmax(dim=1) + h.mean(dim=0)).exp().sum()


ours = [Tensor(arr, requires_grad=True) for arr in arrays]
theirs = [torch.tensor(arr, requires_grad=True) for arr in arrays]
program(*ours).backward()
program(*theirs).backward()
for o, t in zip(ours, theirs):
    assert np.allclose(o.grad.data, t.grad.numpy(), rtol=1e-12, atol=1e-14)
print("all three gradients equal to torch's, max |difference| =",
      max(float(np.abs(o.grad.data - t.grad.numpy()).max()) for o, t in zip(ours, theirs)))

# %% [markdown]
# Without a reference engine, the forward pass alone defines the right gradient: the central
# difference $\big(f(x + \varepsilon e_i) - f(x - \varepsilon e_i)\big) / 2\varepsilon$ has error
# $O(\varepsilon^2)$. `course_lib.autograd.gradcheck` compares it with backward for every input
# element. A correct op passes; a sigmoid whose vjp forgot the factor $(1 - s)$ is caught, and the
# message names the op, the input and the element, with both numbers.

# %%
from course_lib.autograd import GradcheckError, gradcheck

logits = Tensor([0.5, -1.0, 2.0], requires_grad=True, name="logits")
assert gradcheck(lambda t: t.sigmoid(), [logits])


def buggy_sigmoid(t):
    s = 1 / (1 + np.exp(-t.data))
    return Tensor.from_op("sigmoid", s, (t,), lambda g: (g * s,))  # should be g * s * (1 - s)


try:
    gradcheck(buggy_sigmoid, [logits])
    raise AssertionError("gradcheck missed the bug")
except GradcheckError as err:
    print(err)

# %% [markdown]
# ## Custom `torch.autograd.Function`s
#
# In PyTorch you write a vjp yourself by subclassing `torch.autograd.Function`: `forward` saves
# what backward needs, `backward` returns one gradient per input. Two reasons to:
#
# **Numerics.** $\mathrm{lse}(x) = \log\sum_j e^{x_j}$ overflows as written for $x_j \gtrsim 710$.
# The stable forward subtracts the max; the backward is $\partial\,\mathrm{lse}/\partial x_j =
# e^{x_j - \mathrm{lse}} = \mathrm{softmax}(x)_j$, computed from the saved output.

# %%
from course_lib.autograd import logsumexp
from course_lib.autograd.functions import _LogSumExp

print(inspect.getsource(_LogSumExp))

# %% tags=["nbval-check-output"]
big = torch.tensor([[1000.0, 1001.0, 1002.0], [-1.0, 0.0, 1.0]], dtype=torch.float64, requires_grad=True)
print("naive:  ", big.exp().sum(dim=1).log().tolist())
print("stable: ", [round(v, 6) for v in logsumexp(big, dim=1).tolist()])
assert torch.allclose(logsumexp(big, dim=1), torch.logsumexp(big, dim=1))
assert torch.autograd.gradcheck(lambda t: logsumexp(t, dim=1), (torch.randn(4, 6, dtype=torch.float64, requires_grad=True),))
assert torch.autograd.gradgradcheck(lambda t: logsumexp(t, dim=1), (torch.randn(3, 5, dtype=torch.float64, requires_grad=True),))
print("torch.autograd.gradcheck and gradgradcheck pass in float64")

# %% [markdown]
# **A deliberate surrogate: the straight-through estimator.** `sign(x)` binarises weights, but its
# derivative is 0 almost everywhere, so nothing before it would learn. The STE keeps `sign` in the
# forward and passes the gradient straight through where $|x| \le 1$ — the derivative of
# `hardtanh` (Bengio et al. 2013; Hubara et al. 2016). `gradcheck` rightly *rejects* it against
# `sign`; it accepts it against `hardtanh`, checked by giving the function hardtanh's values while
# keeping the STE's backward:

# %% tags=["nbval-check-output"]
from torch.autograd.gradcheck import GradcheckError as TorchGradcheckError

from course_lib.autograd import straight_through_sign

x_ste = torch.tensor([-1.7, -0.6, -0.2, 0.4, 0.9, 1.3], dtype=torch.float64, requires_grad=True)
straight_through_sign(x_ste).sum().backward()
print("sign:", torch.sign(x_ste).tolist(), " STE gradient:", x_ste.grad.tolist())
try:
    torch.autograd.gradcheck(straight_through_sign, (x_ste,))
    raise AssertionError("gradcheck should reject the STE against sign")
except TorchGradcheckError:
    print("gradcheck vs sign: rejected, as it should be (sign's derivative is 0)")


def ste_with_hardtanh_values(t):
    return straight_through_sign(t) + (torch.nn.functional.hardtanh(t) - torch.sign(t)).detach()


assert torch.autograd.gradcheck(ste_with_hardtanh_values, (x_ste,))
print("gradcheck vs hardtanh: passes")

# %% [markdown]
# ## Experiment: one MLP, two engines, same numbers
#
# scikit-learn's handwritten digits (1797 images of 8×8 pixels, shipped with the package) and
# an MLP 64 → 32 → 10 trained by minibatch SGD. `course_lib.autograd.mlp_forward` and
# `cross_entropy` are written once and run on both engines; `train_digits` starts both from the
# same parameters (`init_params`, `nn.Linear`'s uniform init) and feeds the same batches.

# %%
from course_lib.autograd import cross_entropy, mlp_forward

print(inspect.getsource(mlp_forward))
print(inspect.getsource(cross_entropy))

# %%
import time

from course_lib.autograd import DigitsConfig, load_digits_split, train_digits

config = DigitsConfig(hidden=(32,), lr=0.5, batch=64, steps=150)
load_digits_split()  # load scikit-learn's data once, so the timings below are training only
runs, seconds = {}, {}
for engine in ("ours", "torch"):
    start = time.perf_counter()
    runs[engine] = train_digits(engine, config)
    seconds[engine] = time.perf_counter() - start
diff = np.abs(np.array(runs["ours"].losses) - np.array(runs["torch"].losses))
assert diff[:20].max() < 1e-6, "the first steps must agree"
assert runs["ours"].test_accuracy > 0.85
print(f"max |loss difference| over the first 20 steps: {diff[:20].max():.1e}; over all {config.steps}: {diff.max():.1e}")
print(f"test accuracy: ours {runs['ours'].test_accuracy:.3f}, torch {runs['torch'].test_accuracy:.3f}")
print(f"training time (one thread): ours {seconds['ours']:.2f} s, torch {seconds['torch']:.2f} s")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3))
ax1.plot(runs["ours"].losses, label="ours", lw=3, alpha=0.5)
ax1.plot(runs["torch"].losses, label="torch", ls="--")
ax1.set_xlabel("SGD step")
ax1.set_ylabel("training loss")
ax1.legend()
ax2.semilogy(np.maximum(diff, 1e-18), ".")
ax2.set_xlabel("SGD step")
ax2.set_ylabel("|loss ours - loss torch|")
ax2.set_title("differences: float64 summation order only (0 drawn at 1e-18)", fontsize=9)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Experiment: how cheap is the gradient?
#
# Reverse mode promises all the gradients for a small constant times the forward cost (the
# *cheap gradient principle*; Griewank & Walther 2008). For a layer $Y = XW$ the forward costs
# $2Bnm$ FLOPs and backward needs $\bar W = X^\top \bar Y$ and $\bar X = \bar Y W^\top$: $4Bnm$ more,
# so (forward + backward) / forward → 3 as the matmuls dominate. `gradient_cost` times a
# 64 → width → width → 10 MLP with cross-entropy on each engine (one thread, best of several
# interleaved runs).

# %%
from course_lib.autograd import gradient_cost

widths = [16, 32, 64, 128, 256, 512, 1024]
costs = {engine: [gradient_cost(w, engine, repeats=7) for w in widths] for engine in ("ours", "torch")}
for engine, rows in costs.items():
    print(engine.ljust(6), "  ".join(f"{c.width}: {c.ratio:.2f}" for c in rows))
for rows in costs.values():  # timings on a shared machine are noisy: bound the median, not every point
    ratios = [c.ratio for c in rows]
    assert min(ratios) > 1.0 and 1.5 < float(np.median(ratios)) < 6.0, "backward costs a few forward passes"

fig, ax = plt.subplots(figsize=(6, 3.2))
for engine, rows in costs.items():
    ax.semilogx(widths, [c.ratio for c in rows], marker="o", label=engine)
ax.semilogx(widths, [c.flop_ratio for c in costs["ours"]], "k--", label="matmul FLOP ratio")
ax.set_xscale("log", base=2)
ax.set_xlabel("hidden width")
ax.set_ylabel("(forward + backward) / forward time")
ax.set_ylim(0, None)
ax.legend()
plt.show()

# %% [markdown]
# At small widths per-op overhead dominates (Python for our engine, dispatch for torch), and the
# ratio says how heavy each backward node is compared with its forward; as the width grows the
# matmuls take over and the ratio approaches the FLOP ratio of about 3. FLOPs are not the whole
# story: backward *writes* the weight gradients $\bar W$, width² numbers each, while at batch 64
# the forward only writes batch × width activations. Our engine puts every $\bar W$ in freshly
# allocated memory on every pass; where the curve of our engine bumps above 3 at mid widths, a
# profile shows the time going to the ∂W matmul writing into that fresh memory. Either way: *one*
# backward pass gives every gradient, for a few forward passes' worth of time.
#
# ## Widget: watch the backward pass
#
# `course_lib.autograd.backward_widget()` wires a step slider to the pure function
# `backward_view(step, trace)`. At each step one node is processed: it is complete (green), and
# its vjp sends contributions to its parents (yellow while they are still partial sums). Watch
# `w`: it turns yellow first and gets its second contribution later. The cell after it moves the
# slider from code, as the tests do. Pass your own one-element Tensor to draw its graph.

# %%
from course_lib.autograd import backward_widget

widget = backward_widget()
widget

# %%
before = widget.caption.value
widget.controls["step"].value = 4
assert widget.caption.value != before and "step 4 of 10" in widget.caption.value
widget.controls["step"].value = 0

# %% [markdown]
# ## Exercises
#
# Write the backward of three ops. Replace `raise NotImplementedError` with your code and run the
# cell: the check compares your function with the reference on edge cases and random inputs and
# names the first input that fails. Stuck? `unbroadcast_grad.hint()` (call again for the next
# hint); `unbroadcast_grad.solution()` shows the answer — likewise for the other two.

# %%
from course_lib.autograd.exercises import log_softmax_backward, matmul_backward, unbroadcast_grad

unbroadcast_grad.show();

# %%
def my_unbroadcast(grad, shape):
    raise NotImplementedError  # your code here


unbroadcast_grad.check(my_unbroadcast);

# %%
matmul_backward.show();

# %%
def my_matmul_backward(a, b, grad_out):
    raise NotImplementedError  # your code here


matmul_backward.check(my_matmul_backward);

# %%
log_softmax_backward.show();

# %%
def my_log_softmax_backward(out, grad_out):
    raise NotImplementedError  # your code here


log_softmax_backward.check(my_log_softmax_backward);

# %% [markdown]
# ## Summary
#
# * Reverse mode = record the graph while the code runs, then apply each op's vjp in reverse
#   topological order, summing contributions. `course_lib.autograd` does it in a few hundred lines and
#   matches `torch.autograd` to float64 precision on random graphs.
# * `.grad` accumulates (zero it each step); `detach()` stops gradients; `no_grad()` records
#   nothing; a non-scalar output needs `gradient=v` and gives $v^\top J$; the graph is rebuilt on
#   every run, so Python control flow just works.
# * Check a hand-written backward with central differences in float64 — unless the backward is
#   a deliberate surrogate like the straight-through estimator, which you check against its surrogate.
# * The gradient costs a few forward passes — about 3× for matmul-bound models.
#
# **References.** A. Griewank & A. Walther, *Evaluating Derivatives*, SIAM 2008 ·
# A. G. Baydin et al., *Automatic Differentiation in Machine Learning: a Survey*, JMLR 2018 ·
# A. Paszke et al., *Automatic differentiation in PyTorch*, 2017 · A. Karpathy, *micrograd* ·
# Y. Bengio, N. Léonard & A. Courville, *Estimating or Propagating Gradients Through Stochastic
# Neurons*, 2013 · I. Hubara et al., *Binarized Neural Networks*, NeurIPS 2016 · PyTorch docs,
# *Extending torch.autograd*.
#
# Next: [chapter 2, nn.Module vs functional](02_nn_vs_functional.ipynb).
