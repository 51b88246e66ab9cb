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
# # 9 · FlashAttention: online softmax, tiling, Triton
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dl-systems-course/dl-systems-course/blob/main/notebooks/09_flash_attention.ipynb) [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/dl-systems-course/dl-systems-course/main?labpath=notebooks%2F09_flash_attention.ipynb)
#
# Attention, $O = \mathrm{softmax}(QK^\top/\sqrt d)\,V$, is three lines of PyTorch. Written that
# way it writes two $N \times N$ matrices to the GPU's main memory and reads them back — and for
# long sequences *moving those bytes*, not the arithmetic, takes most of the time, while keeping
# $P$ for the backward pass takes most of the memory. FlashAttention (Dao et al., 2022) computes
# exactly the same $O$ one tile at a time, never storing the $N \times N$ matrices, thanks to
# one idea: a softmax that can be computed **online**, block by block.
#
# This chapter builds it up: why attention is memory-bound → the online softmax → the tiled
# algorithm in PyTorch → the same algorithm as a Triton kernel (forward and backward) → what it
# saves, measured and modelled → a widget that steps through the loops → exercises. Everything
# runs on a CPU; the Triton kernels run in Triton's interpreter there (exact, slow). With a GPU,
# the same kernels compile for it and a last section compares their speed with PyTorch's own.
# Without the `triton` package (macOS, Linux on ARM) the Triton cells say so and skip; the rest runs.
#
# **You will be able to**
# 1. explain with an IO model why standard attention is memory-bound and what FlashAttention saves;
# 2. merge two partial softmax states exactly (the online softmax) and tile attention with it;
# 3. derive FlashAttention's backward pass, $dS = P \circ (dP - D)$ with $D = \mathrm{rowsum}(dO \circ O)$,
#    and say why it needs only $O$ and the log-sum-exp;
# 4. read a Triton kernel of the algorithm and explain FlashAttention-2's loop order;
# 5. split a long KV cache for decoding and merge the pieces (flash-decoding).
#
# **Prerequisites:** a stable softmax (chapter 0), autograd (chapter 1), matrix shapes of
# multi-head attention. **Time:** about 90 minutes (the Triton interpreter makes a few cells take
# tens of seconds on a CPU).

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
import torch
import torch.nn.functional as F

from course_lib import runtime
from course_lib.source import show_source
from course_lib.timing import compare, ratio

TRITON = runtime.triton_available()  # False on macOS and Linux on ARM: the Triton cells skip
SKIP = ("(skipped: the triton package is not installed here — Triton ships for Linux x86-64; "
        'flash_attention(..., impl="torch") is the same algorithm in PyTorch)')
print("device:", runtime.device(), "| Triton mode:", runtime.triton_mode())

# %% [markdown]
# ## 1 · Why attention is memory-bound
#
# Standard attention (the paper's Algorithm 0) materialises the scores $S = QK^\top$ and the
# weights $P = \mathrm{softmax}(S)$: it computes $S$ and **writes it to HBM** (the GPU's main
# memory), reads it back for the softmax, writes $P$, reads $P$ again for $PV$.
# `course_lib.attention.attention_ref` is that algorithm, and the spec every faster path must meet:

# %%
from course_lib.attention import attention_ref

show_source(attention_ref)

# %%
q, k, v = torch.randn(3, 2, 4, 257, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64).unbind(0)
for causal in (False, True):
    assert torch.allclose(attention_ref(q, k, v, causal), F.scaled_dot_product_attention(q, k, v, is_causal=causal))
print("attention_ref == torch.nn.functional.scaled_dot_product_attention (float64, causal and not)")

# %% [markdown]
# How big are $S$ and $P$? Per head and per sequence, $N^2$ numbers. The fast on-chip memory
# (SRAM) that a GPU's arithmetic units read from is small. Each streaming multiprocessor (SM) has
# one SRAM array split between L1 cache and *shared memory*, the part a kernel manages itself;
# compare like with like — the most shared memory a kernel can have per SM (NVIDIA's tuning
# guides: A100 164 KiB of its 192 KiB of L1/shared, H100 228 KiB of 256 KiB). Already at
# $N = 1024$ one head's $S$ in fp16 is many times that — it cannot stay on chip, so it goes to HBM.

# %% tags=["nbval-check-output"]
SHARED_PER_SM = {"A100": 164 * 1024, "H100": 228 * 1024}  # max shared memory per SM, bytes (same quantity)
L1_AND_SHARED_PER_SM = {"A100": 192 * 1024, "H100": 256 * 1024}  # the SRAM array it is carved from
for gpu in SHARED_PER_SM:
    print(f"{gpu}: up to {SHARED_PER_SM[gpu] // 1024} KiB shared memory per SM "
          f"(of {L1_AND_SHARED_PER_SM[gpu] // 1024} KiB L1 + shared)")
for n in (256, 1024, 4096, 16384, 65536):
    s_bytes = n * n * 2  # fp16
    print(f"N = {n:>6}: S per head = {s_bytes / 2**20:>9.2f} MiB = {s_bytes / SHARED_PER_SM['A100']:>9.1f} x "
          f"an A100 SM's shared memory, {s_bytes / SHARED_PER_SM['H100']:>8.1f} x an H100's")
assert 1024 * 1024 * 2 > 8 * SHARED_PER_SM["H100"]  # N = 1024: S alone overflows even an H100 SM many times

# %% [markdown]
# Is moving $S$ and $P$ what takes the time? The **arithmetic intensity** of a computation is
# its FLOPs per byte moved to or from HBM. A GPU is *memory-bound* on any computation whose
# intensity is below its **ridge point** = peak FLOP/s ÷ memory bandwidth; for an A100 (40 GB):
# 312 TFLOP/s fp16 ÷ 1.555 TB/s ≈ 200 FLOP/byte. The byte counts below come from
# `course_lib.attention.standard_attention_io` / `flash_attention_io` (the IO model of §4):

# %% tags=["nbval-check-output"]
from course_lib.attention import flash_attention_io, standard_attention_io

RIDGE = 312e12 / 1.555e12  # A100 40 GB: FLOP/byte at which compute and memory take equal time
n, d = 4096, 64
matmul_flops = 2 * 2 * n * n * d  # QK^T and PV
softmax_flops = 5 * n * n  # max, subtract, exp, sum, divide
ops = {
    "S = QK^T (matmul)": (2 * n * n * d, 2 * (2 * n * d + n * n)),
    "P = softmax(S)": (softmax_flops, 2 * (2 * n * n)),
    "O = PV (matmul)": (2 * n * n * d, 2 * (n * n + 2 * n * d)),
    "standard attention (all)": (matmul_flops + softmax_flops, standard_attention_io(n, d).bytes),
    "FlashAttention-2 (all)": (matmul_flops + softmax_flops, flash_attention_io(n, d, 100 * 1024, variant="fa2").bytes),
}
print(f"N = {n}, d = {d}, fp16; ridge point of an A100 = {RIDGE:.0f} FLOP/byte")
for name, (flops, nbytes) in ops.items():
    print(f"{name:<26} {flops / nbytes:>7.1f} FLOP/byte  -> {'memory' if flops / nbytes < RIDGE else 'compute'}-bound")
assert ops["P = softmax(S)"][0] / ops["P = softmax(S)"][1] < 2  # the softmax does ~1 FLOP per byte
intensity = {name: flops / nbytes for name, (flops, nbytes) in ops.items()}
assert intensity["standard attention (all)"] < RIDGE / 4
gain = intensity["FlashAttention-2 (all)"] / intensity["standard attention (all)"]
busy = intensity["P = softmax(S)"] / RIDGE  # fraction of the time the softmax keeps the arithmetic units busy
print(f"the softmax's arithmetic fills {busy:.1%} of its time (it waits on memory for the rest); "
      f"FlashAttention-2 raises the intensity {gain:.1f}x")
assert busy < 0.01 and 5 < gain < 7
assert intensity["FlashAttention-2 (all)"] > 0.9 * RIDGE

# %% [markdown]
# The softmax does about one FLOP per byte: it waits on memory for nearly all of its time (printed
# above), and the whole of standard attention sits far below the ridge. FlashAttention never
# writes $S$ or $P$, which raises the intensity several-fold here (printed above), close to the
# ridge point.
#
# ## 2 · Online softmax
#
# A stable softmax (chapter 0) needs the row's maximum $m$ before it can compute anything:
# $\mathrm{softmax}(s)_j = e^{s_j - m} / \ell$ with $\ell = \sum_j e^{s_j - m}$. That seems to
# need the whole row. It does not. Keep, for the part of the row seen so far, a **state**
#
# $$m = \max_j s_j, \qquad \ell = \sum_j e^{s_j - m}, \qquad \mathrm{acc} = \sum_j e^{s_j - m}\, v_j .$$
#
# For two disjoint parts of the row with states $(m_1, \ell_1, \mathrm{acc}_1)$ and
# $(m_2, \ell_2, \mathrm{acc}_2)$, let $m = \max(m_1, m_2)$. Since
# $e^{s_j - m} = e^{s_j - m_1} e^{m_1 - m}$, each old sum only needs rescaling by a factor
# $e^{m_i - m} \le 1$:
#
# $$\ell = e^{m_1 - m}\,\ell_1 + e^{m_2 - m}\,\ell_2, \qquad
#   \mathrm{acc} = e^{m_1 - m}\,\mathrm{acc}_1 + e^{m_2 - m}\,\mathrm{acc}_2 .$$
#
# After the last block, $\mathrm{acc}/\ell = \mathrm{softmax}(s)\,V$ exactly — no approximation.
# This is `course_lib.attention.merge_states`:

# %%
from course_lib.attention import SoftmaxState, block_state, merge_states, online_softmax

show_source(merge_states)

# %% [markdown]
# Step by step on one row of 8 scores, read in blocks of 3 (`course_lib.attention.online_softmax`
# does exactly this loop). Watch $m$ jump when the large score arrives and $\ell$ shrink with it:

# %% tags=["nbval-check-output"]
scores = torch.tensor([1.0, 3.0, 0.5, 2.0, 9.0, 1.0, 4.0, -1.0], dtype=torch.float64)
state = SoftmaxState(torch.tensor(float("-inf"), dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64))
for start in range(0, len(scores), 3):
    state = merge_states(state, block_state(scores[start:start + 3]))
    print(f"after scores {start}..{min(start + 3, len(scores)) - 1}: m = {state.m.item():.1f}, l = {state.l.item():.6f}")
assert state.m == scores.max() and torch.isclose(state.l, torch.exp(scores - scores.max()).sum())
assert torch.allclose(online_softmax(scores, block_size=3), torch.softmax(scores, -1))
x = 40 * torch.randn(16, 1000, generator=torch.Generator().manual_seed(1))
for block_size in (1, 7, 64, 1000):
    assert torch.allclose(online_softmax(x, block_size), torch.softmax(x, -1), atol=1e-6)
print("online_softmax == torch.softmax for every block size tried")

# %% [markdown]
# ## 3 · Tiling
#
# ### The algorithm (FlashAttention-2 loop order)
#
# Cut $Q$ into blocks of $B_r$ rows and $K, V$ into blocks of $B_c$ rows. Each Q block stays on
# chip while every K/V block streams past it:
#
# ```text
# for each Q block i:                        # in parallel: one GPU program each
#     load Q_i;  m = -inf, l = 0, acc = 0    # on chip
#     for each K/V block j:                  # causal: stop at the diagonal
#         load K_j, V_j
#         S_ij = scale * Q_i K_j^T           # a B_r x B_c tile, never written out
#         m_new = max(m, rowmax(S_ij))
#         P_ij  = exp(S_ij - m_new)
#         alpha = exp(m - m_new)             # rescales what was summed against the old max
#         l   = alpha * l   + rowsum(P_ij)
#         acc = alpha * acc + P_ij V_j
#         m = m_new
#     write O_i = acc / l  and  L_i = m + log l    # L: all backward needs
# ```
#
# ### The PyTorch version
#
# `course_lib.attention.flash_attention_torch` is that pseudo-code, with block sizes as
# arguments: the forward pass folds each tile into the running state with `merge_states`.

# %%
from course_lib.attention import flash_attention_torch
from course_lib.attention.flash_torch import flash_backward_torch, flash_forward_torch

show_source(flash_forward_torch)

# %% [markdown]
# ### The backward pass, derived
#
# Take one query row $i$ (drop the index): scores $s_j = \text{scale}\cdot q \cdot k_j$,
# $P = \mathrm{softmax}(s)$, $o = \sum_j P_j v_j$, and the incoming gradient $dO = \partial L / \partial o$.
#
# * $o$ is linear in $P$ and in $V$: $\;dV_j \mathrel{+}= P_j\, dO$ (so $dV = P^\top dO$) and
#   $dP_j = dO \cdot v_j$ (so $dP = dO\, V^\top$).
# * The softmax Jacobian is $\partial P_j / \partial s_k = P_j(\delta_{jk} - P_k)$, so
#   $$dS_k = \sum_j dP_j\, P_j (\delta_{jk} - P_k) = P_k\Big(dP_k - \sum_j P_j\, dP_j\Big).$$
# * The sum looks like it needs the whole row of $P$. It does not:
#   $\sum_j P_j\, dP_j = \sum_j P_j\,(dO \cdot v_j) = dO \cdot \sum_j P_j v_j = dO \cdot o$.
#   With $D_i = \mathrm{rowsum}(dO \circ O)_i$ — one number per row, from the *output*:
#   $$dS = P \circ (dP - D), \qquad dQ = \text{scale}\cdot dS\,K, \qquad dK = \text{scale}\cdot dS^\top Q.$$
#
# So backward needs $Q, K, V, O, dO$ and, to rebuild each tile $P_{ij} = \exp(S_{ij} - L_i)$, the
# log-sum-exp $L = m + \log \ell$ saved by forward: $O(N)$ extra numbers instead of $P$'s $N^2$.
# Checked on a small example, step by step, against autograd:

# %%
gen = torch.Generator().manual_seed(4)
q4 = torch.randn(5, 3, generator=gen, dtype=torch.float64, requires_grad=True)  # 5 queries, d = 3
k4, v4 = (torch.randn(7, 3, generator=gen, dtype=torch.float64, requires_grad=True) for _ in range(2))  # 7 keys
dO = torch.randn(5, 3, generator=gen, dtype=torch.float64)  # the gradient arriving at O
scale4 = 3 ** -0.5
P = torch.softmax(scale4 * q4 @ k4.T, dim=-1)  # (5, 7)
O = P @ v4  # (5, 3)
dP = dO @ v4.T  # (5, 7)
D = (dO * O).sum(-1, keepdim=True)  # (5, 1): rowsum(dO ∘ O)
assert torch.allclose(D, (P * dP).sum(-1, keepdim=True), atol=1e-12)  # = Σ_j P_ij dP_ij, without P's full row
dS = P * (dP - D)  # (5, 7)
dq_auto, dk_auto, dv_auto = torch.autograd.grad(O, (q4, k4, v4), dO)
for name, ours, auto in (("dQ", scale4 * dS @ k4, dq_auto), ("dK", scale4 * dS.T @ q4, dk_auto), ("dV", P.T @ dO, dv_auto)):
    assert torch.allclose(ours, auto, atol=1e-12), name
print("dS = P ∘ (dP - D) with D = rowsum(dO ∘ O): dQ, dK, dV equal autograd's")

# %% [markdown]
# The tiled backward pass computes exactly these lines, tile by tile, recomputing $P_{ij}$ from
# $L$ — `delta` is $D$:

# %%
show_source(flash_backward_torch)

# %% [markdown]
# Checked against PyTorch's `scaled_dot_product_attention` — output and the gradients of
# $q, k, v$ — at an awkward length (257 is not a multiple of any block size) and odd tiles:

# %%
def check_against_sdpa(attn, dtype=torch.float64, n=257, d=64, atol=1e-10):
    gen = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(1, 2, n, d, generator=gen).to(dtype).requires_grad_() for _ in range(3))
    grad = torch.randn(1, 2, n, d, generator=gen).to(dtype)
    for causal in (False, True):
        ours = attn(q, k, v, causal)
        ours_grads = torch.autograd.grad(ours, (q, k, v), grad)
        ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        ref_grads = torch.autograd.grad(ref, (q, k, v), grad)
        for name, a, b in zip(("O", "dq", "dk", "dv"), (ours, *ours_grads), (ref, *ref_grads)):
            err = (a - b).abs().max().item()
            assert err < atol, f"causal={causal} {name}: max error {err:.2e}"
        print(f"causal={causal!s:<5}: O, dq, dk, dv match SDPA (max error {max((a - b).abs().max().item() for a, b in zip(ours_grads, ref_grads)):.1e})")


check_against_sdpa(lambda q, k, v, c: flash_attention_torch(q, k, v, c, block_m=32, block_n=48))

# %% [markdown]
# ### The Triton kernel
#
# The same algorithm, written for a GPU in Triton (`course_lib/attention/flash_triton.py`;
# `course_lib.attention.flash_attention(impl="triton")` runs it). One
# *program* owns one Q block of one (batch, head); `tl.load` (in `_load_tile`, masked past the
# sequence end and the head dim) brings a tile from HBM into registers/shared memory, `tl.dot`
# multiplies tiles on the tensor cores, `tl.store` writes back.
# The scores are kept in base 2 (`exp2` is the hardware instruction). Note the line
# `acc, l_i = RESCALE(acc, l_i, alpha)`: the rescaling step is passed in as a function, so that
# exercise 3 can plug in yours.

# %%
if TRITON:
    from course_lib.attention import flash_triton

    show_source(flash_triton._load_tile, flash_triton._store_tile, flash_triton.rescale_accumulator,
                flash_triton._flash_attention_fwd_kernel)
else:
    print("The kernel's source:", SKIP)

# %% [markdown]
# The launcher checks the inputs, allocates $O$ and $L$, computes the grid (one program per Q
# block × batch·head) and launches. The backward kernels (`_flash_attention_bwd_dkdv_kernel`,
# `_flash_attention_bwd_dq_kernel`) follow the same pattern: print them the same way.

# %%
if TRITON:
    show_source(flash_triton._launch_flash_attention_fwd)
else:
    print("The launcher's source:", SKIP)

# %% [markdown]
# `course_lib.attention.flash_attention(q, k, v, causal, impl="triton")` runs these kernels
# (forward and backward) — on this machine in Triton's interpreter, which executes the kernel
# with NumPy, program by program. The check against SDPA, in float32 (the interpreter supports
# fp32 and fp16; bf16 only on GPUs):

# %%
from course_lib.attention import flash_attention

dev = runtime.triton_device()
if TRITON:
    check_against_sdpa(lambda q, k, v, c: flash_attention(q.to(dev), k.to(dev), v.to(dev), c).cpu(),
                       dtype=torch.float32, atol=2e-5)
else:
    print("The Triton check:", SKIP)

# %% [markdown]
# On a CPU, time is not the point: the interpreter runs each program's tile operations one by
# one in Python, and the PyTorch tiling loops in Python too, so both are *slower* than plain
# attention here. The algorithm pays off where memory traffic dominates — on a GPU (§5). For
# the record, this machine:

# %%
q, k, v = torch.randn(3, 1, 4, 256, 64, generator=torch.Generator().manual_seed(3)).unbind(0)
qd, kd, vd = q.to(dev), k.to(dev), v.to(dev)  # the Triton path's device
alternatives = {
    "SDPA": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True),
    "attention_ref": lambda: attention_ref(q, k, v, True),
    "flash_attention_torch": lambda: flash_attention_torch(q, k, v, True),
}
if TRITON:
    alternatives[f"flash_attention triton ({runtime.triton_mode()})"] = lambda: flash_attention(qd, kd, vd, True)
timings = compare(alternatives, repeats=5, warmup=1)
for t in timings.values():
    print(f"{t}  -> {ratio(t, timings['SDPA']):7.1f} x SDPA's median  (forward, N = 256, d = 64, 4 heads)")

# %% [markdown]
# ## 4 · What it saves: memory for backward, and HBM traffic
#
# ### Memory kept for the backward pass
#
# Autograd keeps some tensors from the forward pass until backward. For standard attention that
# includes $P$ ($N^2$ per head); for FlashAttention only $Q, K, V, O$ and $L$ ($O(N d)$).
# `course_lib.attention.saved_for_backward_bytes` measures it with
# `torch.autograd.graph.saved_tensors_hooks`, counting every saved storage once:

# %%
from course_lib.attention import saved_for_backward_bytes

ns = [256, 512, 1024, 2048, 4096]
saved = {"attention_ref (standard)": [], "flash_attention_torch": []}
for n in ns:
    x = torch.randn(1, 1, n, 64)
    saved["attention_ref (standard)"].append(saved_for_backward_bytes(attention_ref, x, x.clone(), x.clone()))
    saved["flash_attention_torch"].append(saved_for_backward_bytes(flash_attention_torch, x, x.clone(), x.clone()))
for name, values in saved.items():
    print(f"{name:<26}", "  ".join(f"{b / 2**20:7.2f}" for b in values), "MiB")
flash_growth = [b / a for a, b in zip(saved["flash_attention_torch"], saved["flash_attention_torch"][1:])]
ref_growth = [b / a for a, b in zip(saved["attention_ref (standard)"], saved["attention_ref (standard)"][1:])]
assert all(abs(g - 2) < 0.01 for g in flash_growth)  # O(N): doubling N doubles it
assert ref_growth[-1] > 3.5  # O(N^2): doubling N (nearly) quadruples it

fig, ax = plt.subplots(figsize=(6, 3.5))
for name, values in saved.items():
    ax.loglog(ns, [b / 2**20 for b in values], "o-", label=name, base=2)
ax.set_xlabel("sequence length N (d = 64, one head, fp32)")
ax.set_ylabel("saved for backward (MiB)")
ax.set_title("memory kept for backward: O(N²) vs O(N)")
ax.legend()
plt.show()

# %% [markdown]
# ### The IO model
#
# The paper's Theorem 2 counts HBM accesses: standard attention $\Theta(Nd + N^2)$,
# FlashAttention $\Theta(N^2 d^2 / M)$ for on-chip memory $M$. Since $d^2 \ll M$ (e.g.
# $d^2 = 4096$ elements vs $M \approx 50\,000$ fp16 elements in 100 KiB), FlashAttention moves
# many times fewer bytes. `course_lib.attention.flash_attention_io` counts the elements each
# line of the paper's Algorithm 1 (`variant="fa1"`) or of the FlashAttention-2 loop order (`"fa2"`,
# the order of our kernel) moves; `tests/test_attention_io.py` checks the closed forms against
# loops transcribed from the paper.

# %%
show_source(flash_attention_io)

# %%
M = 100 * 1024  # bytes of shared memory used per block (of the 164 KiB an A100 SM offers)
ns_io = [2**p for p in range(8, 17)]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
std = [standard_attention_io(n, 64).bytes for n in ns_io]
fa1 = [flash_attention_io(n, 64, M).bytes for n in ns_io]
fa2 = [flash_attention_io(n, 64, M, variant="fa2").bytes for n in ns_io]
ax1.loglog(ns_io, std, "o-", label="standard  Θ(Nd + N²)", base=2)
ax1.loglog(ns_io, fa1, "s-", label="FlashAttention (Alg. 1)  Θ(N²d²/M)", base=2)
ax1.loglog(ns_io, fa2, "^-", label="FlashAttention-2 order", base=2)
ax1.set_xlabel("N (d = 64, M = 100 KiB, fp16)")
ax1.set_ylabel("HBM bytes per head")
ax1.legend(fontsize=8)
srams = [2**p * 1024 for p in range(4, 11)]  # 16 KiB .. 1 MiB
ax2.loglog([s / 1024 for s in srams], [standard_attention_io(4096, 64).bytes] * len(srams), "o-", label="standard", base=2)
ax2.loglog([s / 1024 for s in srams], [flash_attention_io(4096, 64, s).bytes for s in srams], "s-",
           label="FlashAttention (Alg. 1)", base=2)
ax2.set_xlabel("on-chip memory M (KiB), N = 4096, d = 64")
ax2.set_ylabel("HBM bytes per head")
ax2.legend(fontsize=8)
fig.tight_layout()
plt.show()
assert all(s > 3 * f for s, f in zip(std[2:], fa1[2:]))  # N >= 1024: at least 3x fewer bytes
halving = flash_attention_io(4096, 64, 64 * 1024).bytes / flash_attention_io(4096, 64, 128 * 1024).bytes
assert 1.8 < halving < 2.2  # doubling M halves the traffic: the 1/M in Θ(N²d²/M)
# (while K/V span many blocks of B_c = M/4d rows; once M approaches the size of K and V, it stops)

# %% tags=["nbval-check-output"]
for n in (1024, 4096, 16384):
    s, f = standard_attention_io(n, 64), flash_attention_io(n, 64, M)
    print(f"N = {n:>5}: standard {s.bytes / 2**20:8.1f} MiB, FlashAttention {f.bytes / 2**20:7.1f} MiB "
          f"-> {s.bytes / f.bytes:.1f}x fewer bytes")

# %% [markdown]
# ### Why FlashAttention-2 puts the Q loop outside
#
# The paper's Algorithm 1 (FlashAttention-1) runs the **K/V loop outside**: it loads $K_j, V_j$ once,
# then sweeps every Q block past them — and since each Q block's running $(m, \ell, O)$ has been
# touched by earlier K/V blocks, it must **read $O_i, \ell_i, m_i$ from HBM and write them back**
# for every one of the $T_c = \lceil N / B_c \rceil$ K/V blocks. FlashAttention-2 (and our kernel)
# swaps the loops: a program loads $Q_i$ once, keeps $m, \ell$ and the accumulator in registers
# while all K/V blocks stream past, and writes $O_i$ and $L_i$ **once**. In the IO model the reads
# are alike — Algorithm 1 re-reads $Q$ and $O$ once per K/V block, FlashAttention-2 re-reads $K$
# and $V$ once per Q block — but the writes drop from $\approx T_c N d$ (O written back after every
# K/V block) to $N d$. Two more wins the model does not count: the Q blocks are independent, so they run in
# parallel across SMs with no synchronisation on $O$ (Algorithm 1 parallelises over batch and heads
# only); and the division by $\ell$ happens once at the end instead of at every step.

# %% tags=["nbval-check-output"]
from course_lib.attention import flash_block_sizes

n, d = 4096, 64
b_r, b_c = flash_block_sizes(d, M)
fa1, fa2 = flash_attention_io(n, d, M, variant="fa1"), flash_attention_io(n, d, M, variant="fa2")
t_c = -(-n // b_c)  # K/V blocks: how often Algorithm 1 reads and writes O back
print(f"N = {n}, d = {d}, M = {M // 1024} KiB: B_r = {b_r}, B_c = {b_c}, T_c = {t_c} K/V blocks")
print(f"Algorithm 1 (K/V outer): reads {fa1.reads / 1e6:6.2f} M, writes {fa1.writes / 1e6:6.2f} M elements")
print(f"FA-2 order  (Q outer):   reads {fa2.reads / 1e6:6.2f} M, writes {fa2.writes / 1e6:6.2f} M elements")
print(f"-> {fa1.writes / fa2.writes:.0f}x fewer writes, {fa1.bytes / fa2.bytes:.2f}x fewer bytes in all")
assert fa2.writes == n * d + n  # O and L, once
assert fa1.writes == n * d + 2 * n + t_c * (n * d + 2 * n)  # O, l, m written back after every K/V block
assert fa1.bytes > 1.4 * fa2.bytes

# %% [markdown]
# ## 5 · On a GPU: TFLOP/s against PyTorch's SDPA
#
# This section runs only when a CUDA GPU is present (e.g. Colab: *Runtime → Change runtime
# type → GPU*); otherwise it prints a message and the rest of the notebook is unaffected. It
# times `flash_attention(impl="triton")` and `torch.nn.functional.scaled_dot_product_attention`
# (which dispatches to PyTorch's own FlashAttention kernels) for N = 1k…16k, d = 64 and 128,
# fp16 and bf16, forward and forward + backward, with the FlashAttention-2 paper's FLOP count
# (`course_lib.attention.benchmark.attention_flops`: $4 N^2 d$ per head forward, 2.5× that backward) and
# batch × N = 16k tokens, and plots the ratio (> 1: the course's kernel is faster).
#
# *Figures:* this notebook's committed outputs were produced on a machine without a GPU; the
# measured TFLOP/s, with the GPU's name, will be recorded here when the section is run on one.
# Expect the course kernel, which is not autotuned, to reach a fraction of SDPA's throughput.

# %%
from course_lib.attention.benchmark import compare_with_sdpa

if runtime.device().type == "cuda" and runtime.triton_mode() == "native":  # not with TRITON_INTERPRET=1
    print("GPU:", torch.cuda.get_device_name())
    rows = compare_with_sdpa(ns=(1024, 2048, 4096, 8192, 16384), ds=(64, 128))
    for r in rows:
        print(f"{r.dtype:<9} d={r.d:<4} N={r.n:<6} {'fwd+bwd' if r.backward else 'fwd':<8}"
              f" triton {r.triton_tflops:6.1f} TFLOP/s   SDPA {r.sdpa_tflops:6.1f} TFLOP/s   ratio {r.ratio:.2f}")
    assert all(r.triton_tflops > 0 and r.sdpa_tflops > 0 for r in rows)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, backward in zip(axes, (False, True)):
        for dtype in sorted({r.dtype for r in rows}):
            for d in (64, 128):
                sel = [r for r in rows if r.backward == backward and r.dtype == dtype and r.d == d]
                ax.semilogx([r.n for r in sel], [r.ratio for r in sel], "o-", base=2, label=f"{dtype}, d = {d}")
        ax.axhline(1.0, color="gray", linestyle=":")
        ax.set_xlabel("sequence length N")
        ax.set_title("forward + backward" if backward else "forward")
    axes[0].set_ylabel("TFLOP/s ratio: triton / SDPA")
    axes[0].legend(fontsize=8)
    fig.suptitle(torch.cuda.get_device_name())
    fig.tight_layout()
    plt.show()
else:
    print(f"No CUDA GPU for Triton here (device {runtime.device()}, Triton mode {runtime.triton_mode()}): "
          "the throughput comparison is skipped. Run this notebook on a GPU (e.g. Colab) to measure it.")

# %% [markdown]
# ## 6 · Decoding: one query against a long KV cache
#
# When a language model generates (chapters 10 and 11), each step brings $T$ new queries — often
# one — against a cache of $S$ keys and values that includes them. The new queries are the *last*
# $T$ positions: query $i$ sits at position $S - T + i$ and may see keys $j \le S - T + i$. That is
# the causal mask aligned to the **bottom-right** corner of the $T \times S$ score matrix
# (FlashAttention ≥ 2.1). SDPA's `is_causal=True` aligns it **top-left** ($j \le i$), as our
# `attention_ref` does — right for training ($T = S$, where the two agree), wrong for decoding:

# %% tags=["nbval-check-output"]
from course_lib.attention import bottom_right_causal_mask, decode_attention, split_kv_states
from course_lib.attention.reference import causal_mask

for name, mask in (("top-left (SDPA is_causal)", causal_mask(3, 6)), ("bottom-right (decoding)", bottom_right_causal_mask(3, 6))):
    print(f"{name}, T = 3 new queries, S = 6 keys:")
    print("\n".join("   " + " ".join("x" if seen else "." for seen in row) for row in mask.tolist()))
q1, kc, vc = torch.randn(1, 4, 1, 64), torch.randn(1, 4, 4096, 64), torch.randn(1, 4, 4096, 64)
assert torch.allclose(attention_ref(q1, kc, vc, causal=True), vc[:, :, :1])  # top-left: the new token sees key 0 only
assert bottom_right_causal_mask(1, 4096).all()  # bottom-right: it sees the whole cache

# %% [markdown]
# With $T = 1$ there is a single Q block per (batch, head), so FlashAttention-2's grid — one
# program per Q block and head — would keep a handful of SMs busy and leave the rest idle while
# one program streams all 4096 keys. **Split-K** (flash-decoding) cuts the *keys* into chunks, lets
# one program per chunk compute a partial state $(m, \ell, \mathrm{acc})$ in parallel, and merges
# the partial states with the rule of §2 — exact, in any order.
# `course_lib.attention.decode_attention` does that with `split_kv_states` and `merge_states`:

# %%
show_source(split_kv_states, decode_attention)

# %%
mask = bottom_right_causal_mask(3, 4096)
q3 = torch.randn(1, 4, 3, 64)
for n_splits in (1, 4, 16, 64):
    for q_new, m in ((q1, None), (q3, mask)):
        ref = F.scaled_dot_product_attention(q_new, kc, vc, attn_mask=m)
        err = (decode_attention(q_new, kc, vc, n_splits=n_splits) - ref).abs().max().item()
        assert err < 1e-5, (n_splits, err)
    print(f"{n_splits:>3} chunks of {-(-4096 // n_splits):>4} keys: equal to SDPA with the bottom-right mask "
          f"(T = 1 and T = 3; max error {err:.1e})")
states = split_kv_states(q1, kc, vc, n_splits=16)
print(f"the 16 partial maxima of head 0: {min(st.m[0, 0, 0].item() for st in states):.2f} .. "
      f"{max(st.m[0, 0, 0].item() for st in states):.2f} — each chunk's sums are rescaled to the largest when merged")

# %% [markdown]
# ## 7 · Widget: step through the loops
#
# `course_lib.attention.tiling_widget()` wires sliders to `course_lib.attention.tiling_view`, which
# draws the pure state `tiling_state(n, block_m, block_n, step, row, causal)`. The `tile step`
# slider counts tiles: 0 (nothing processed) to the number of tiles of the current N and block
# sizes (its end follows them), skipped tiles included. Left: the
# $N \times N$ score matrix in tiles — done (blue), active (orange) with its Q rows (red dashes)
# and K/V columns (green dashes), causal tiles that are never loaded (grey, hatched). Middle: for
# the chosen row (purple line), the running max $m$ and sum $\ell$ after each K/V block. Right:
# that row's partial output next to the exact softmax row ($V = I$, so the output *is* the
# softmax row). Move `step` and watch $m$ jump, $\ell$ shrink by $e^{m_{old} - m_{new}}$, and the
# partial row snap onto the exact one when the last tile lands.

# %%
from course_lib.attention import tiling_widget

widget = tiling_widget()
widget

# %%
from course_lib.attention import tiling_state

before = widget.caption.value
widget.controls["step"].value = 10
assert widget.caption.value != before and "row 20: 2/4 K/V blocks folded in" in widget.caption.value
n_tiles = widget.controls["step"].max
widget.controls["step"].value = n_tiles
print(widget.caption.value.removeprefix("<pre>").removesuffix("</pre>"))
half, done = tiling_state(step=10), tiling_state(step=n_tiles)  # the widget's defaults, as numbers
assert n_tiles == done.n_steps == 12 and half.gap > 1e-3
assert done.gap < 1e-12  # exact once the row's last tile is in: only rounding remains
print(f"row 20 after 10 tiles: max |partial - exact| = {half.gap:.3f}; after all {n_tiles}: {done.gap:.1e}")
widget.controls["step"].value = 0

# %% [markdown]
# ## 8 · Exercises
#
# Replace each `raise NotImplementedError` with your code and run the cell. `exercise.hint()`
# gives one hint at a time; `exercise.solution()` shows a worked solution (the mechanism written
# out, not a call of the library; `tests/test_attention_exercises.py` checks it against the library).
#
# ### Exercise 1: merge two partial softmax states

# %%
from course_lib.attention.exercises import causal_tile_skip, kernel_rescale_line, merge_softmax_states

merge_softmax_states.show();

# %%
def my_merge(m1, l1, acc1, m2, l2, acc2):
    raise NotImplementedError  # your code here


merge_softmax_states.check(my_merge);

# %% [markdown]
# ### Exercise 2: which causal tiles can be skipped

# %%
causal_tile_skip.show();

# %%
def my_skipped(i, j, block_m, block_n):
    raise NotImplementedError  # your code here


causal_tile_skip.check(my_skipped);

# %% [markdown]
# ### Exercise 3: the missing line of the Triton kernel
#
# Your function is passed to `_flash_attention_fwd_kernel` as its `RESCALE` argument and runs
# inside the kernel (in the interpreter here, compiled on a GPU); the checker compares the
# kernel's output with `attention_ref`. It needs the triton package.

# %%
kernel_rescale_line.show();

# %%
def my_rescale(acc, l_i, alpha):
    raise NotImplementedError  # your code here


kernel_rescale_line.check(my_rescale);  # without the triton package it says it is skipped

# %% [markdown]
# ## Summary
#
# Back to the objectives:
#
# 1. **Memory-bound** (§1, §4): standard attention writes $S$ and $P$ ($N^2$ per head) to HBM and
#    reads them back; its softmax does about one FLOP per byte, far below a GPU's ridge point.
#    FlashAttention keeps only $O$ and $L$: $O(N)$ memory for backward instead of $O(N^2)$, and
#    $\Theta(N^2 d^2/M)$ HBM traffic instead of $\Theta(Nd + N^2)$ — measured and modelled in §4.
# 2. **Online softmax** (§2, exercise 1): states $(m, \ell, \mathrm{acc})$ merge exactly by rescaling
#    with $e^{m_i - m}$, so attention is computed tile by tile (`merge_states`,
#    `flash_attention_torch`, equal to SDPA forward and backward).
# 3. **Backward** (§3): $dS = P \circ (dP - D)$, $D = \mathrm{rowsum}(dO \circ O)$ — derived from the
#    softmax Jacobian, checked against autograd, and computed tile by tile from the saved $L$.
# 4. **The kernel and the loop order** (§3, §4, exercises 2–3): the Triton kernel is the same loop
#    with Q blocks outside (FlashAttention-2): $O$ is written once instead of once per K/V block,
#    and Q blocks run in parallel.
# 5. **Decoding** (§6): the new queries are the last positions — bottom-right causal alignment —
#    and split-K spreads a long KV cache over many programs whose partial states merge exactly.
#
# `course_lib.attention`: `attention_ref` (spec) → `online_softmax`, `merge_states` →
# `flash_attention_torch` → `flash_attention(impl="triton")` → `decode_attention`; tests in
# `tests/test_attention*.py` (`test_attention_edges.py`: special values and empty blocks).
#
# ## References
#
# * T. Dao, D. Y. Fu, S. Ermon, A. Rudra, C. Ré. *FlashAttention: Fast and Memory-Efficient
#   Exact Attention with IO-Awareness*, NeurIPS 2022. https://arxiv.org/abs/2205.14135
# * T. Dao. *FlashAttention-2: Faster Attention with Better Parallelism and Work Partitioning*,
#   2023. https://arxiv.org/abs/2307.08691
# * T. Dao, D. Haziza, F. Massa, G. Sizov. *Flash-Decoding for long-context inference*, 2023.
#   https://crfm.stanford.edu/2023/10/12/flashdecoding.html
# * M. Milakov, N. Gimelshein. *Online normalizer calculation for softmax*, 2018.
#   https://arxiv.org/abs/1805.02867
# * Triton tutorial 06, *Fused Attention*: https://triton-lang.org/main/getting-started/tutorials/06-fused-attention.html
