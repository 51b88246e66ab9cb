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
# PyTorch's autograd follows, write custom `torch.autograd.Function`s, train a digits classifier
# on both engines side by side, and measure what the gradient costs in time and in memory.
#
# **You will be able to**
#
# 1. explain reverse mode — a graph recorded while the code runs, one vector-Jacobian product
#    per op, a reverse topological order, contributions summed — and **write the topological order
#    and the backward loop yourself** (the exercises plug yours into the engine);
# 2. predict what `torch.autograd` does with `.grad` accumulation, leaves and `retain_grad`,
#    `detach` / `no_grad` / `inference_mode`, `gradient=`, `retain_graph`, hooks, in-place
#    changes and `create_graph=True`;
# 3. check a backward against a reference and by central differences, and write a custom
#    `torch.autograd.Function` (for numerics, or as a deliberate surrogate);
# 4. measure what the gradient costs: time (a few forward passes) and memory (the saved
#    activations, and what activation checkpointing trades for them).
#
# **Prerequisites**: chapter 0; the chain rule; matrix products; NumPy and PyTorch tensors.
# **Time**: about 90 minutes (plus the exercises).

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

trace = trace_backward(example_graph())  # step 10 of 10: every gradient complete
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
    raise AssertionError("a vector output without gradient= must be refused")
except ValueError as err:
    print("without gradient=:", err)
try:
    (zt**3).backward()
    raise AssertionError("torch refuses it too")
except RuntimeError as err:
    print("torch says:       ", err)

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
# ## More of torch.autograd's rules
#
# Our engine stops at the rules above. `torch.autograd` has more, and each one below is shown by
# a cell that fails if the rule does not hold (on the torch version this notebook runs).
#
# **Leaves and non-leaves; `retain_grad`.** Only *leaves* — tensors you created, not results of
# recorded ops — keep `.grad` after `backward()`: an intermediate's gradient is freed as soon
# as it has been passed on. `h.retain_grad()` asks torch to keep one. Our engine has `is_leaf`
# too, and keeps no intermediate gradients either.

# %% tags=["nbval-check-output"]
import warnings

leaf = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
h = leaf * 3  # not a leaf: made by an op
kept = leaf * 3
kept.retain_grad()
((h**2).sum() + (kept**2).sum()).backward()
with warnings.catch_warnings(record=True) as caught:  # torch warns when a non-leaf's .grad is read
    warnings.simplefilter("always")
    assert h.grad is None
assert leaf.is_leaf and not h.is_leaf and caught
assert torch.equal(kept.grad, 2 * kept.detach())  # dL/dkept = 2·kept, kept on request
print("leaf.grad =", leaf.grad.tolist(), " h.grad = None (warned:", type(caught[0].message).__name__ + ")",
      " kept.grad =", kept.grad.tolist())

ours_leaf = Tensor([1.0, -2.0], requires_grad=True)
ours_h = ours_leaf * 3
(ours_h * ours_h).sum().backward()
assert ours_leaf.is_leaf and not ours_h.is_leaf and ours_h.grad is None
assert np.array_equal(ours_leaf.grad.data, 0.5 * leaf.grad.numpy())  # torch's leaf got two terms, ours one

# %% [markdown]
# **Hooks.** A *tensor hook* sees the gradient flowing into a tensor during backward, and may
# return a replacement (gradient clipping per tensor, debugging, gradient reversal). A *module
# hook* runs around a module's forward or backward: `register_full_backward_hook` receives the
# module's `grad_input` and `grad_output`. Our engine has no hooks.

# %% tags=["nbval-check-output"]
seen = []
x_hook = torch.tensor([0.5, 2.0], dtype=torch.float64, requires_grad=True)
mid = x_hook.exp()
mid.register_hook(lambda g: seen.append(g.clone()))  # observe the gradient into `mid`
x_hook.register_hook(lambda g: 0.5 * g)  # replace the gradient arriving at the leaf
(mid * mid).sum().backward()
assert torch.allclose(seen[0], 2 * mid.detach())
assert torch.allclose(x_hook.grad, 0.5 * seen[0] * mid.detach())  # the leaf got the halved gradient
print("into mid:", [round(v, 4) for v in seen[0].tolist()], " leaf .grad after the halving hook:",
      [round(v, 4) for v in x_hook.grad.tolist()])

layer = torch.nn.Linear(3, 2, bias=False).double()
records = {}
layer.register_forward_hook(lambda m, inp, out: records.update(out_shape=tuple(out.shape)))
layer.register_full_backward_hook(lambda m, g_in, g_out: records.update(g_in=g_in[0], g_out=g_out[0]))
inp = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
layer(inp).sum().backward()
assert records["out_shape"] == (4, 2)
assert torch.allclose(records["g_in"], records["g_out"] @ layer.weight)  # grad_input = grad_output · W
print("module hooks saw output", records["out_shape"], "and grad_input = grad_output @ weight")

# %% [markdown]
# **`retain_graph`.** torch frees the graph's saved tensors during `backward()`, so a second
# backward through the same graph fails unless the first passed `retain_graph=True`. Our engine
# keeps the graph (its vjps hold on to their arrays until the graph is garbage-collected): a
# second backward simply works — and accumulates.

# %% tags=["nbval-check-output"]
xr = torch.tensor([1.5], dtype=torch.float64, requires_grad=True)
yr = xr.exp() * xr
yr.backward(retain_graph=True)
yr.backward()  # fine: the graph was retained
try:
    yr.backward()  # the second call freed it
    raise AssertionError("torch should refuse a third backward through a freed graph")
except RuntimeError as err:
    print("torch:", str(err).split(".")[0])
    assert "second time" in str(err)
ours_x = Tensor([1.5], requires_grad=True)
ours_y = ours_x.exp() * ours_x
for _ in range(3):
    ours_y.backward()  # the course engine keeps the graph
assert np.allclose(ours_x.grad.data, 1.5 * xr.grad.numpy())  # three backward passes vs torch's two
print("ours: three backward passes on one graph, .grad =", ours_x.grad.data.round(6).tolist())

# %% [markdown]
# **`no_grad` vs `inference_mode`.** Both stop recording. `inference_mode` goes further: its
# results are *inference tensors*, which carry no version counter (below) and can never enter a
# recorded graph later — the price of its lower overhead. Use `no_grad` for optimiser updates and
# evaluation inside training code, `inference_mode` for serving.

# %% tags=["nbval-check-output"]
w_inf = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
with torch.no_grad():
    under_no_grad = w_inf * 2
with torch.inference_mode():
    under_inference = w_inf * 2
assert not under_no_grad.requires_grad and not under_inference.requires_grad
assert under_inference.is_inference() and not under_no_grad.is_inference()
(under_no_grad * w_inf).sum().backward()  # a no_grad result can be used in a later graph
try:
    (under_inference * w_inf).sum().backward()
    raise AssertionError("an inference tensor must not be saved for backward")
except RuntimeError as err:
    print("inference tensor in a graph:", str(err).split(".")[0])
    assert "Inference tensors cannot be saved for backward" in str(err)

# %% [markdown]
# **In-place changes and the version counter.** `sigmoid` saves its *output* for backward
# ($\sigma' = \sigma(1-\sigma)$). Every tensor carries a version counter that each in-place op
# increments; backward compares it with the version it saved and refuses to use a tensor that
# changed underneath it. (Our engine has no in-place ops at all.)

# %% tags=["nbval-check-output"]
a_ip = torch.tensor([0.5, -1.0], dtype=torch.float64, requires_grad=True)
s_ip = a_ip.sigmoid()
version_before = s_ip._version
s_ip.mul_(2)  # in place: overwrites what sigmoid's backward needs
assert s_ip._version == version_before + 1
try:
    s_ip.sum().backward()
    raise AssertionError("backward must refuse a saved tensor modified in place")
except RuntimeError as err:
    # The message names the backward node, and torch versions name it differently (Sigmoid,
    # SigmoidBackward0): print the part every version shares.
    assert "modified by an inplace operation" in str(err)
    print("version", version_before, "->", s_ip._version, ": RuntimeError: ... modified by an inplace operation")

# %% [markdown]
# **Higher order: `create_graph=True`.** With it, backward records its own ops, so a gradient
# can be differentiated again. A Hessian-vector product $Hv = \nabla_x (\nabla_x f \cdot v)$ costs two
# backward passes and never forms $H$ (Pearlmutter, 1994). Our engine cannot: its vjps work on
# NumPy arrays, outside any graph.

# %% tags=["nbval-check-output"]
def f_hv(t):
    return (t**3).sum() + t[0] * t[1]


x_hv = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
(g_hv,) = torch.autograd.grad(f_hv(x_hv), x_hv, create_graph=True)  # a graph for the gradient itself
v_hv = torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64)
(hvp,) = torch.autograd.grad(g_hv @ v_hv, x_hv)
hessian = torch.autograd.functional.hessian(f_hv, x_hv.detach())
assert torch.allclose(hvp, hessian @ v_hv)
print("Hv =", hvp.tolist(), "= H @ v with H =", hessian.tolist())

# %% [markdown]
# ## The implementation
#
# Each op is a method of `Tensor` that computes its value with NumPy and hands
# `Tensor.from_op` its parents and its vjp. Here is multiplication — note `unbroadcast`: when
# `b` of shape `(3,)` was broadcast against `a` of shape `(2, 3)`, each row used the same `b`,
# so `b`'s gradient is the sum over rows.

# %%
from course_lib.autograd import unbroadcast
from course_lib.autograd.engine import run_backward, topological_order
from course_lib.source import show_source

show_source(Tensor.__mul__, unbroadcast)

# %% [markdown]
# The engine (`course_lib.autograd.engine`): an iterative depth-first search for the
# topological order (a recursive one would overflow Python's stack on a deep graph), then the
# loop from the pseudo-code above. The engine never imports `Tensor`: it walks any object with
# `_parents`, `_vjp`, `requires_grad` and `accumulate_grad` (a *protocol*, as minitorch's
# `Variable`), and its `order=` argument is where the exercises plug in your topological order.

# %%
show_source(topological_order, run_backward)

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

show_source(_LogSumExp)

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

show_source(mlp_forward, cross_entropy)

# %%
from course_lib.autograd import DigitsConfig, train_digits

config = DigitsConfig(hidden=(32,), lr=0.5, batch=64, steps=150)
runs = {engine: train_digits(engine, config) for engine in ("ours", "torch")}
diff = np.abs(np.array(runs["ours"].losses) - np.array(runs["torch"].losses))
assert diff[:20].max() < 1e-6, "the first steps must agree"
assert runs["ours"].test_accuracy > 0.85
print(f"max |loss difference| over the first 20 steps: {diff[:20].max():.1e}; over all {config.steps}: {diff.max():.1e}")
print(f"test accuracy: ours {runs['ours'].test_accuracy:.3f}, torch {runs['torch'].test_accuracy:.3f}")

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
# 64 → width → width → 10 MLP with cross-entropy on each engine (`course_lib.timing.compare`:
# warm-up, forward and forward+backward interleaved, the ratio of their medians; one thread).

# %%
from course_lib.autograd.experiment import gradient_cost

widths = [16, 32, 64, 128, 256, 512, 1024]
costs = {engine: [gradient_cost(w, engine, repeats=9) for w in widths] for engine in ("ours", "torch")}
for engine, rows in costs.items():
    print(engine.ljust(6), "  ".join(f"{c.width}: {c.ratio:.2f}" for c in rows))
for rows in costs.values():  # timings on a shared machine are noisy: bound the median, not every point
    ratios = [c.ratio for c in rows]
    # a few forward passes, not one per parameter as finite differences would need;
    # loose bounds on the median, since single timings on a shared machine can be far off
    assert 1.0 < float(np.median(ratios)) < 10.0, "backward costs a few forward passes"

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
# story: backward also *writes* the weight gradients $\bar W$, width² numbers each, while at
# batch 64 the forward writes only batch × width activations — so at large widths the measured
# ratio can sit above the FLOP ratio. Either way: *one* backward pass gives every gradient, for a
# few forward passes' worth of time.
#
# ## Experiment: what the gradient costs in memory
#
# Time is cheap; memory is not. Reverse mode runs backward *after* the forward, so every tensor
# a vjp needs — the input of each linear layer, the output of each tanh — must be kept from the
# forward until backward reaches it: memory grows with depth. `torch.autograd.graph.saved_tensors_hooks`
# lets us count exactly what is saved for backward (distinct tensors, parameters left out).
# *Activation checkpointing* (Chen et al., 2016) keeps only the input of each of $k$ segments
# (`torch.utils.checkpoint`, non-reentrant: it discards what a segment saves and recomputes the
# segment's forward when backward needs it): $k$ segment inputs plus one segment's activations,
# smallest near $k \approx \sqrt{L}$ — for one extra forward.

# %% tags=["nbval-check-output"]
from torch.utils.checkpoint import checkpoint_sequential

from course_lib.timing import compare

depth, width, batch = 32, 256, 64
torch.manual_seed(0)
deep = torch.nn.Sequential(*[m for _ in range(depth) for m in (torch.nn.Linear(width, width), torch.nn.Tanh())]).double()
x_deep = torch.randn(batch, width, dtype=torch.float64)
param_storage = {p.untyped_storage().data_ptr() for p in deep.parameters()}
one_activation = batch * width * 8  # bytes of one (batch, width) float64 tensor


def saved_activation_bytes(loss_fn):
    """Bytes of the distinct non-parameter tensors saved for backward while loss_fn runs."""
    saved = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in param_storage:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn()
    return sum(saved.values()), loss


def plain():
    return deep(x_deep).square().sum()


def checkpointed(segments):
    return lambda: checkpoint_sequential(deep, segments, x_deep, use_reentrant=False).square().sum()


kept = {"none": saved_activation_bytes(plain)[0]}
for segments in (2, 4, 8, 16):
    kept[f"{segments} segments"] = saved_activation_bytes(checkpointed(segments))[0]
for name, nbytes in kept.items():
    print(f"checkpointing {name:<12}: {nbytes / 2**20:5.2f} MiB saved = {nbytes // one_activation:2d} activations of {batch}×{width}")
assert kept["none"] >= depth * one_activation  # at least one saved activation per layer: grows with depth
assert min(kept.values()) < kept["none"] / 2
assert kept["4 segments"] < kept["2 segments"] and kept["4 segments"] < kept["16 segments"]  # a minimum near √L

grads_plain = torch.autograd.grad(plain(), list(deep.parameters()))
grads_ckpt = torch.autograd.grad(checkpointed(4)(), list(deep.parameters()))
assert all(torch.allclose(a, b, rtol=1e-12, atol=1e-14) for a, b in zip(grads_plain, grads_ckpt))
print("gradients with and without checkpointing agree")

# %% [markdown]
# The memory saved is paid for in time: a checkpointed segment runs its forward twice. Measured
# with `compare` (forward + backward, medians of interleaved repeats; not asserted — timings vary):

# %%
timings = compare({"plain": lambda: plain().backward(), "4 segments": lambda: checkpointed(4)().backward()},
                  repeats=7)
extra = timings["4 segments"].median / timings["plain"].median
print(timings["plain"], timings["4 segments"], sep="\n")
print(f"checkpointing (4 segments) takes {extra:.2f}× the time of the plain forward + backward, "
      f"and keeps {kept['4 segments'] / kept['none']:.0%} of its saved activations")
deep.zero_grad(set_to_none=True)

# %% [markdown]
# ## Widget: watch the backward pass
#
# `course_lib.autograd.backward_widget()` wires a step slider to the pure function
# `backward_view(step, trace)`, which draws the pure state `backward_state(step, trace)`. At
# each step one node is processed: it is complete (green), and
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
# **Build the engine.** The first two exercises are the engine's two pieces. Your function is
# not compared with ours: it is *plugged into* the library — your topological order into
# `run_backward(..., order=my_topological_order)`, your loop onto graphs recorded by the library's
# `Tensor` ops — and the gradients it produces on hand-picked and random graphs are compared
# with `torch.autograd`'s. A failure prints the graph as a little program.
#
# Replace `raise NotImplementedError` with your code and run the cell. Stuck?
# `topological_order_ex.hint()` (call again for the next hint); `topological_order_ex.solution()`
# shows the answer — likewise for every exercise.

# %%
from course_lib.autograd.exercises import (
    backward_loop_ex,
    log_softmax_backward,
    matmul_backward,
    topological_order_ex,
    unbroadcast_grad,
)

topological_order_ex.show();

# %%
def my_topological_order(root):
    raise NotImplementedError  # your code here


topological_order_ex.check(my_topological_order);

# %%
backward_loop_ex.show();

# %%
def my_backward(root):
    raise NotImplementedError  # your code here


backward_loop_ex.check(my_backward);

# %% [markdown]
# What the check does with a wrong order: reversing the engine's own order (children first)
# gets the first graph wrong, and the message shows the graph and both gradients.

# %% tags=["nbval-check-output"]
def children_first(root):
    return list(reversed(topological_order(root)))


wrong = topological_order_ex.check(children_first)
assert not wrong.passed and "Program(" in wrong.message

# %% [markdown]
# **The backward of three ops.** Each takes and returns torch tensors and is compared with the
# reference on edge cases and random inputs.

# %%
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
# 1. **Reverse mode** records the graph while the code runs, then applies each op's vjp in
#    reverse topological order, *summing* what each node receives. `course_lib.autograd` does it
#    in a few hundred lines and matches `torch.autograd` to float64 precision on random graphs —
#    including 0, ±inf, NaN and empty tensors (`tests/test_autograd_edges.py`). The exercises had
#    you write the order and the loop, checked inside the engine against torch.
# 2. **torch.autograd's rules**: `.grad` accumulates (zero it each step); only leaves keep `.grad`
#    unless `retain_grad()`; `detach()` stops gradients, `no_grad()` records nothing and
#    `inference_mode()` also makes tensors that can never join a graph; a vector output needs
#    `gradient=v` and gives $v^\top J$; graphs are freed after backward unless
#    `retain_graph=True` (ours keeps them); hooks observe or replace gradients; the version
#    counter refuses tensors changed in place; `create_graph=True` gives higher derivatives such
#    as a Hessian-vector product.
# 3. **Checking a backward**: against a reference engine, or by central differences in float64 —
#    unless the backward is a deliberate surrogate like the straight-through estimator, which is
#    checked against its surrogate. Custom `torch.autograd.Function`s give stable numerics
#    (logsumexp) or surrogate gradients.
# 4. **The cost**: in time, a few forward passes (about 3× for matmul-bound models, measured
#    above); in memory, every saved activation until backward reaches it — growing with depth —
#    which activation checkpointing trades for one extra forward per segment.
#
# **References.** A. Griewank & A. Walther, *Evaluating Derivatives*, SIAM 2008 ·
# A. G. Baydin et al., *Automatic Differentiation in Machine Learning: a Survey*, JMLR 2018 ·
# A. Paszke et al., *Automatic differentiation in PyTorch*, 2017 · A. Karpathy, *micrograd* ·
# Y. Bengio, N. Léonard & A. Courville, *Estimating or Propagating Gradients Through Stochastic
# Neurons*, 2013 · I. Hubara et al., *Binarized Neural Networks*, NeurIPS 2016 · B. Pearlmutter,
# *Fast Exact Multiplication by the Hessian*, Neural Computation 1994 · T. Chen et al., *Training
# Deep Nets with Sublinear Memory Cost*, 2016 · PyTorch docs, *Autograd mechanics* and
# *Extending torch.autograd*.
#
# Next: [chapter 2, nn.Module vs functional](02_nn_vs_functional.ipynb).
