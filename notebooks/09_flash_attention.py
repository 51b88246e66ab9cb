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
import torch
import torch.nn.functional as F

from course_lib import runtime

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

print(inspect.getsource(attention_ref).split('"""')[0] + "...")
print(inspect.getsource(attention_ref).split('"""')[2])

# %%
q, k, v = torch.randn(3, 2, 4, 257, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64).unbind(0)
for causal in (False, True):
    assert torch.allclose(attention_ref(q, k, v, causal), F.scaled_dot_product_attention(q, k, v, is_causal=causal))
print("attention_ref == torch.nn.functional.scaled_dot_product_attention (float64, causal and not)")

# %% [markdown]
# How big are $S$ and $P$? Per head and per sequence, $N^2$ numbers. The fast on-chip memory
# (SRAM, shared memory) that a GPU's arithmetic units read from is small: 192 KiB per streaming
# multiprocessor on an A100, 228 KiB on an H100. Already at $N = 1024$ one head's $S$ in fp16 is
# 2 MiB — it cannot stay on chip, so it goes to HBM.

# %% tags=["nbval-check-output"]
SRAM_BYTES = 192 * 1024  # one A100 SM's shared memory + L1
for n in (256, 1024, 4096, 16384, 65536):
    s_bytes = n * n * 2  # fp16
    print(f"N = {n:>6}: S per head = {s_bytes / 2**20:>9.2f} MiB = {s_bytes / SRAM_BYTES:>9.1f} x one SM's SRAM")

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
assert intensity["FlashAttention-2 (all)"] > 4 * intensity["standard attention (all)"]

# %% [markdown]
# The softmax does about one FLOP per byte: it waits on memory for ~99 % of its time, and the
# whole of standard attention sits far below the ridge. FlashAttention never writes $S$ or $P$,
# which raises the intensity about six-fold here, close to the ridge point.
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

print(inspect.getsource(merge_states).split('"""')[0] + "...")
print(inspect.getsource(merge_states).split('"""')[2])

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
# The backward pass recomputes each $P_{ij} = \exp(S_{ij} - L_i)$ from the saved log-sum-exp
# instead of storing $P$, with $D_i = \mathrm{rowsum}(dO_i \circ O_i)$:
# $dV_j \mathrel{+}= P_{ij}^\top dO_i$, $dS_{ij} = P_{ij} \circ (dO_i V_j^\top - D_i)$,
# $dQ_i \mathrel{+}= \text{scale}\cdot dS_{ij} K_j$, $dK_j \mathrel{+}= \text{scale}\cdot dS_{ij}^\top Q_i$.
#
# ### The PyTorch version
#
# `course_lib.attention.flash_attention_torch` is that pseudo-code, with block sizes as
# arguments: the forward pass folds each tile into the running state with `merge_states`; the
# backward pass (a `torch.autograd.Function`) recomputes $P$ tile by tile.

# %%
from course_lib.attention import flash_attention_torch
from course_lib.attention.flash_torch import flash_backward_torch, flash_forward_torch

print(inspect.getsource(flash_forward_torch))
print(inspect.getsource(flash_backward_torch))

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
# The same algorithm, written for a GPU in Triton (`course_lib/attention/flash_triton.py`). One
# *program* owns one Q block of one (batch, head); `tl.load` (in `_load_tile`, masked past the
# sequence end and the head dim) brings a tile from HBM into registers/shared memory, `tl.dot`
# multiplies tiles on the tensor cores, `tl.store` writes back.
# The scores are kept in base 2 (`exp2` is the hardware instruction). Note the line
# `acc, l_i = RESCALE(acc, l_i, alpha)`: the rescaling step is passed in as a function, so that
# exercise 3 can plug in yours.

# %%
from course_lib.attention import flash_triton

for helper in (flash_triton._load_tile, flash_triton._store_tile, flash_triton.rescale_accumulator):
    print(inspect.getsource(helper.fn))
print(inspect.getsource(flash_triton._flash_attention_fwd_kernel.fn))

# %% [markdown]
# The launcher checks the inputs, allocates $O$ and $L$, computes the grid (one program per Q
# block × batch·head) and launches. The backward kernels (`_flash_attention_bwd_dkdv_kernel`,
# `_flash_attention_bwd_dq_kernel`) follow the same pattern: print them the same way.

# %%
print(inspect.getsource(flash_triton._launch_flash_attention_fwd))

# %% [markdown]
# `course_lib.attention.flash_attention(q, k, v, causal, impl="triton")` runs these kernels
# (forward and backward) — on this machine in Triton's interpreter, which executes the kernel
# with NumPy, program by program. The check against SDPA, in float32 (the interpreter supports
# fp32 and fp16; bf16 only on GPUs):

# %%
from course_lib.attention import flash_attention

dev = runtime.triton_device()
check_against_sdpa(lambda q, k, v, c: flash_attention(q.to(dev), k.to(dev), v.to(dev), c).cpu(),
                   dtype=torch.float32, atol=2e-5)

# %% [markdown]
# On a CPU, time is not the point: the interpreter runs each program's tile operations one by
# one in Python, and the PyTorch tiling loops in Python too, so both are *slower* than plain
# attention here. The algorithm pays off where memory traffic dominates — on a GPU (§5). For
# the record, this machine:

# %%
def seconds(fn, reps=3):
    fn()  # warm-up (on a GPU: compiles the kernel)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / reps


q, k, v = torch.randn(3, 1, 4, 512, 64, generator=torch.Generator().manual_seed(3)).unbind(0)
qd, kd, vd = q.to(dev), k.to(dev), v.to(dev)  # the Triton path's device
timings = {
    "SDPA": seconds(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)),
    "attention_ref": seconds(lambda: attention_ref(q, k, v, True)),
    "flash_attention_torch": seconds(lambda: flash_attention_torch(q, k, v, True), reps=1),
    f"flash_attention triton ({runtime.triton_mode()})": seconds(lambda: flash_attention(qd, kd, vd, True), reps=1),
}
for name, s in timings.items():
    print(f"{name:<36} {s * 1e3:8.1f} ms  (forward, N = 512, d = 64, 4 heads)")

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
print(inspect.getsource(flash_attention_io))

# %%
M = 100 * 1024  # bytes of SRAM used per block (of an A100 SM's 192 KiB)
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
# ## 6 · Widget: step through the loops
#
# `course_lib.attention.tiling_widget()` wires sliders to the pure function
# `course_lib.attention.tiling_view(n, block_m, block_n, step, row, causal)`. Left: the
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
before = widget.caption.value
widget.controls["step"].value = 9
assert widget.caption.value != before and "row 20: 2/4 K/V blocks folded in" in widget.caption.value
widget.controls["step"].value = 11
assert "max |partial - exact| = 2.22e-16" in widget.caption.value  # exact once the last tile is in
print(widget.caption.value.removeprefix("<pre>").removesuffix("</pre>"))
widget.controls["step"].value = 0

# %% [markdown]
# ## 7 · Exercises
#
# Replace each `raise NotImplementedError` with your code and run the cell. `exercise.hint()`
# gives one hint at a time; `exercise.solution()` shows the answer.
#
# ### Exercise 1: merge two partial softmax states

# %%
from course_lib.attention.exercises import causal_tile_skip, kernel_rescale_line, merge_softmax_states

merge_softmax_states.show();

# %%
def merge(m1, l1, acc1, m2, l2, acc2):
    raise NotImplementedError  # your code here


merge_softmax_states.check(merge);

# %% [markdown]
# ### Exercise 2: which causal tiles can be skipped

# %%
causal_tile_skip.show();

# %%
def skipped(i, j, block_m, block_n):
    raise NotImplementedError  # your code here


causal_tile_skip.check(skipped);

# %% [markdown]
# ### Exercise 3: the missing line of the Triton kernel
#
# Your function is passed to `_flash_attention_fwd_kernel` as its `RESCALE` argument and runs
# inside the kernel (in the interpreter here, compiled on a GPU); the checker compares the
# kernel's output with `attention_ref`.

# %%
kernel_rescale_line.show();

# %%
def rescale(acc, l_i, alpha):
    raise NotImplementedError  # your code here


kernel_rescale_line.check(rescale);

# %% [markdown]
# ## Summary
#
# * Standard attention is memory-bound: $S$ and $P$ ($N^2$ per head) go to HBM and back, and
#   its softmax does about one FLOP per byte.
# * The online softmax keeps $(m, \ell, \mathrm{acc})$ per row; two states merge exactly by
#   rescaling with $e^{m_i - m}$ — so attention can be computed tile by tile.
# * FlashAttention keeps $O$ and the log-sum-exp $L$ only; backward recomputes $P$ from $L$:
#   $O(N)$ memory instead of $O(N^2)$, and $\Theta(N^2 d^2/M)$ HBM traffic instead of
#   $\Theta(Nd + N^2)$.
# * `course_lib.attention`: `attention_ref` (spec) → `online_softmax`, `merge_states` →
#   `flash_attention_torch` (tiles in PyTorch) → `flash_attention(impl="triton")` (the kernels),
#   all tested against `scaled_dot_product_attention` in `tests/test_attention*.py`.
#
# ## References
#
# * T. Dao, D. Y. Fu, S. Ermon, A. Rudra, C. Ré. *FlashAttention: Fast and Memory-Efficient
#   Exact Attention with IO-Awareness*, NeurIPS 2022. https://arxiv.org/abs/2205.14135
# * T. Dao. *FlashAttention-2: Faster Attention with Better Parallelism and Work Partitioning*,
#   2023. https://arxiv.org/abs/2307.08691
# * M. Milakov, N. Gimelshein. *Online normalizer calculation for softmax*, 2018.
#   https://arxiv.org/abs/1805.02867
# * Triton tutorial 06, *Fused Attention*: https://triton-lang.org/main/getting-started/tutorials/06-fused-attention.html
