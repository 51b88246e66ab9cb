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
# # 0 · Start here: how the course works
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dl-systems-course/dl-systems-course/blob/main/notebooks/00_start_here.ipynb) [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/dl-systems-course/dl-systems-course/main?labpath=notebooks%2F00_start_here.ipynb)
#
# This course opens up the machinery of modern deep-learning systems — autograd, number
# formats, distributed training, fused attention kernels, speculative decoding — one chapter
# at a time. Every chapter is built on a real implementation in the Python package
# `course_lib`, tested against the production reference (PyTorch, torchvision,
# `torch.distributed`, `torch.amp`), and every claim a notebook makes is an `assert`: if a
# result were wrong, the notebook would fail in CI.
#
# **You will be able to**
#
# 1. say what `course_lib`, the notebooks and the tests each do, and find a chapter's code;
# 2. check what your machine runs (`python -m course_lib doctor`) — a GPU is optional;
# 3. explain why a softmax subtracts the maximum logit, and what temperature does to entropy;
# 4. use a widget and an auto-checked exercise, and read the feedback when an answer is wrong.
#
# **Prerequisites**: Python and a first contact with PyTorch tensors. **Time**: about 20 minutes.
#
# The first code cell of every notebook does something only on Google Colab: it installs
# `course_lib` at the version the notebook was written for. Everywhere else it does nothing.

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
# ## How the course works
#
# * **Chapters** are notebooks in `notebooks/`, numbered in the order they build on each other.
#   Each has the same arc: why the thing exists → the idea (math, pseudo-code, a picture) → the
#   implementation, imported from `course_lib` and shown here → a check against the reference →
#   an experiment with a measured result → a widget → exercises → summary.
# * **`course_lib`** holds the code. Notebooks never re-implement it: when a notebook shows code,
#   it prints the library's own source, so the code you read is the code the tests check.
# * **Exercises** are checked automatically: you write a function, `exercise.check(fn)` runs it
#   against the reference on edge cases and random inputs and tells you exactly which input
#   failed. `exercise.hint()` gives one hint at a time; `exercise.solution()` shows the answer.
# * **Widgets** let you move a slider and watch an algorithm. Each is a thin layer over a pure
#   function in `course_lib` that returns a figure and a caption (which the tests read).
# * **The GPU is optional.** Without one, everything runs on the CPU; Triton kernels run in
#   Triton's interpreter (slow but exact). With one (e.g. Colab), the same notebook uses it.
#
# ## What this machine can do
#
# The doctor reports versions, the device, and which sections of which chapters fall back here.
# From a terminal: `python -m course_lib doctor`.

# %%
from course_lib import runtime
from course_lib.doctor import report

doctor = report()
print(doctor)
assert doctor.device == runtime.device().type
assert (doctor.gpu is None) == (runtime.device().type == "cpu")

# %% [markdown]
# ## The chapters
#
# The catalogue below is `course_lib.chapters.CHAPTERS`; the README's table is generated from it.

# %% tags=["nbval-check-output"]
from course_lib.chapters import CHAPTERS

for chapter in CHAPTERS:
    print(f"{chapter.notebook:<26} {chapter.module:<25} GPU {chapter.gpu:<8} {chapter.title}")

# %% [markdown]
# ## A first taste: softmax, temperature, and a number that overflows
#
# A language model's last layer gives *logits* $z$, one per token; a softmax turns them into
# probabilities, and a temperature $T$ sharpens or flattens them:
#
# $$p_i = \frac{e^{z_i/T}}{\sum_j e^{z_j/T}}$$
#
# Written exactly like that, `exp` overflows: $e^{89}$ is already infinite in float32. Here is
# what the naive formula does to perfectly reasonable logits:

# %%
import torch

logits = torch.tensor([1000.0, 1001.0, 1002.0])
naive = logits.exp() / logits.exp().sum()
print("naive:", naive)
assert torch.isnan(naive).all()  # inf / inf

# %% [markdown]
# The fix subtracts the maximum logit first. Nothing changes mathematically — the factor
# $e^{-\max}$ appears in numerator and denominator and cancels — but every exponent is now
# $\le 0$. This is `course_lib.temperature.softmax`, printed from the library:

# %%
from course_lib.source import show_source
from course_lib.temperature import entropy, softmax

show_source(softmax)

# %% [markdown]
# Checked against PyTorch's own softmax, including the logits that broke the naive formula:

# %% tags=["nbval-check-output"]
stable = softmax(logits)
print("stable:", [round(p, 4) for p in stable.tolist()])
assert torch.allclose(stable, torch.softmax(logits, dim=-1))
x = 30 * torch.randn(64, 100, generator=torch.Generator().manual_seed(0))
for t in (0.1, 0.5, 1.0, 2.0, 10.0):
    assert torch.allclose(softmax(x, t), torch.softmax(x / t, dim=-1), atol=1e-6)
print("equal to torch.softmax at every temperature tried")

# %% [markdown]
# Low temperature concentrates the probability on the top token (entropy → 0); high temperature
# spreads it toward uniform (entropy → log V). An experiment over a range of temperatures:

# %%
import matplotlib.pyplot as plt

from course_lib.temperature import EXAMPLE_LOGITS

example = torch.tensor(EXAMPLE_LOGITS, dtype=torch.float64)
temperatures = torch.logspace(-1, 1, 41).tolist()
entropies = [entropy(softmax(example, t)).item() for t in temperatures]
assert all(a < b for a, b in zip(entropies, entropies[1:]))  # entropy rises with temperature
fig, ax = plt.subplots(figsize=(7, 3))
ax.semilogx(temperatures, entropies, marker=".")
ax.axhline(torch.log(torch.tensor(len(EXAMPLE_LOGITS))).item(), ls="--", c="gray", label="uniform: log V")
ax.set_xlabel("temperature T")
ax.set_ylabel("entropy (nats)")
ax.legend()
plt.show()

# %% [markdown]
# ## Widget: move the temperature
#
# Drag the slider. The widget is `course_lib.temperature.temperature_widget()`: a slider wired to
# the pure function `temperature_view(temperature)`, which returns the figure and the caption
# below it. The cell after it moves the slider from code — exactly what the tests do.

# %%
from course_lib.temperature import temperature_widget

widget = temperature_widget()
widget

# %%
before = widget.caption.value
widget.controls["temperature"].value = 5.0
assert widget.caption.value != before and "T = 5.00" in widget.caption.value
widget.controls["temperature"].value = 1.0

# %% [markdown]
# ## Exercise: a softmax that does not overflow
#
# Every chapter ends with exercises like this one. Replace `raise NotImplementedError` with your
# code and run the cell: the check compares your function with the reference on edge cases and
# random inputs. Stuck? `stable_softmax.hint()` (call it again for the next hint);
# `stable_softmax.solution()` shows the answer.

# %%
from course_lib.temperature.exercises import stable_softmax

stable_softmax.show();

# %%
def my_softmax(logits):
    raise NotImplementedError  # your code here


stable_softmax.check(my_softmax);

# %% [markdown]
# What a wrong answer looks like: the naive formula from the top of this notebook, run through
# the same check. It names the first input that fails, what was expected and what came back —
# here the logits near 1000, where `exp` overflows and inf / inf gives nan.

# %% tags=["nbval-check-output"]
def naive_softmax(logits):
    return logits.exp() / logits.exp().sum(dim=-1, keepdim=True)


result = stable_softmax.check(naive_softmax)
assert not result.passed and result.attempted
assert result.failing_case is stable_softmax.edge_cases[1] and "nan" in result.message

# %% [markdown]
# ## Summary
#
# 1. **How the course works**: `course_lib` implements, the tests verify it against PyTorch, the
#    notebooks narrate and `assert` every claim; code shown is printed from the library
#    (`course_lib.source.show_source`).
# 2. **Your machine**: `python -m course_lib doctor` says what runs where; the GPU is optional.
# 3. **Softmax and temperature**: subtracting the maximum keeps every exponent ≤ 0, so `exp` cannot
#    overflow; a low temperature concentrates the probability (entropy → 0), a high one spreads it
#    (entropy → log V). The same trick, kept *running* over blocks, returns in chapter 9
#    (FlashAttention).
# 4. **Widgets and exercises**: a widget is a pure function plus controls; `check` runs your
#    function on edge cases and random inputs and names the first one that fails — as it did for
#    the naive softmax above.
#
# Next: [chapter 1, autograd](01_autograd.ipynb).
