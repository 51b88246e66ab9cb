"""The Triton kernels of course_lib.attention.flash_triton against SDPA: outputs and q, k, v grads.

Without a GPU they run in Triton's interpreter (~1 ms per program per loop step), so the cases
are few and the grids small (B·H <= 6), chosen to cover: lengths 1, 17, 100, 257; head dims 16,
48 (padded), 64, 128; ragged last tiles; causal tiles skipped and masked; T != S; batch and
heads; non-contiguous inputs; fp32 and fp16. On a GPU the same cases run natively.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from course_lib.runtime import triton_available

if not triton_available():  # asked without importing triton: course_lib must set TRITON_INTERPRET first
    pytest.skip("the kernels need the triton package; tests/test_attention_no_triton.py covers its absence",
                allow_module_level=True)

import torch  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from test_attention_helpers import assert_matches_sdpa, qkv  # noqa: E402

from course_lib.attention import (  # noqa: E402
    KernelConfig,
    flash_attention,
    flash_attention_ref,
    flash_attention_triton,
)
from course_lib.attention.flash_triton import supported_dtypes  # noqa: E402
from course_lib.runtime import triton_device, triton_mode  # noqa: E402

DEV = triton_device()


def kernels(fwd: tuple[int, int] | None = None, bwd: tuple[int, int] | None = None):
    fwd_cfg = KernelConfig(*fwd) if fwd else None
    bwd_cfg = KernelConfig(*bwd) if bwd else None
    return lambda q, k, v, causal: flash_attention_triton(q, k, v, causal, fwd_config=fwd_cfg, bwd_config=bwd_cfg)


def on_device(*tensors):
    return [t.detach().to(DEV).requires_grad_() for t in tensors]


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("t, d, fwd, bwd", [
    (1, 16, (16, 16), (16, 16)),  # a single row: one program, one (padded) tile
    (17, 32, (16, 16), (16, 32)),  # one row past a tile; dK/dV tile wider than the dQ tile
    (100, 48, (32, 16), (16, 32)),  # head dim padded 48 -> 64; many ragged tiles
    (257, 64, None, None),  # default tiles
])
def test_fp32_matches_sdpa(t, d, fwd, bwd, causal):
    q, k, v = on_device(*qkv(1, 2, t, d))
    assert_matches_sdpa(kernels(fwd, bwd), q, k, v, causal)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("t, d", [(17, 16), (100, 64)])
def test_fp16_matches_sdpa(t, d, causal):
    q, k, v = on_device(*qkv(1, 2, t, d, torch.float16))
    assert_matches_sdpa(kernels((32, 32), (32, 16)), q, k, v, causal)


def test_head_dim_128_batch_heads_and_non_contiguous():
    q, k, v = on_device(*qkv(2, 3, 20, 16, layout="bthd"))
    assert not q.is_contiguous()  # .to() preserves the (B, T, H, D) strides
    assert_matches_sdpa(kernels((16, 16), (16, 16)), q, k, v, True)
    q, k, v = on_device(*qkv(1, 1, 33, 128))
    assert_matches_sdpa(kernels((16, 16), (16, 16)), q, k, v, False)


@pytest.mark.parametrize("causal", [False, True])
def test_cross_attention_lengths(causal):
    q, k, v = on_device(*qkv(1, 1, 20, 16, s=45))  # T < S: causal rows see keys 0..i (top-left)
    assert_matches_sdpa(kernels((16, 16), (16, 16)), q, k, v, causal)
    q, k, v = on_device(*qkv(1, 1, 45, 16, s=20))  # T > S
    assert_matches_sdpa(kernels((16, 32), (32, 16)), q, k, v, causal)


@settings(max_examples=6, deadline=None)
@given(st.integers(1, 70), st.integers(1, 70), st.sampled_from([16, 24, 40]), st.sampled_from([16, 32]),
       st.sampled_from([16, 32]), st.booleans())
def test_random_shapes_and_tiles(t, s, d, block_m, block_n, causal):
    q, k, v = on_device(*qkv(1, 1, t, d, s=s, seed=t * 100 + s))
    assert_matches_sdpa(kernels((block_m, block_n), (block_n, block_m)), q, k, v, causal)


def test_forward_kernel_log_sum_exp_matches_spec():
    q, k, v = on_device(*qkv(1, 2, 37, 16))
    o = flash_attention_triton(q, k, v, True, fwd_config=KernelConfig(16, 16))
    o_ref, lse_ref = flash_attention_ref(q, k, v, True)
    lse = o.grad_fn.saved_tensors[4]
    assert torch.allclose(o, o_ref, atol=2e-6) and torch.allclose(lse, lse_ref, atol=1e-5)


def test_unsupported_head_dims_and_dtypes_name_the_fallback():
    q, k, v = on_device(*qkv(1, 1, 8, 8))
    with pytest.raises(ValueError, match=r"head dims D in \[16, 128\]; got D=8. Use impl=\"torch\""):
        flash_attention(q, k, v)
    assert flash_attention(q, k, v, impl="torch").shape == q.shape
    big = torch.zeros(1, 1, 4, 256, device=DEV)
    with pytest.raises(ValueError, match="got D=256"):
        flash_attention(big, big, big)
    q, k, v = on_device(*qkv(1, 1, 8, 16, torch.float64))
    with pytest.raises(TypeError, match=r"supports dtypes torch.float32, torch.float16.*got torch.float64\. "
                                        r"Use impl=\"torch\""):
        flash_attention(q, k, v)
    with pytest.raises(ValueError, match=r"config.block_m must be a power of two in \[16, 256\]; got 24"):
        flash_attention_triton(q.float(), k.float(), v.float(), fwd_config=KernelConfig(24, 16))
    many = torch.zeros(65_536, 1, 1, 16, device=DEV)  # B·H indexes a grid axis capped at 65535
    with pytest.raises(ValueError, match=r"supports B·H <= 65535 \(one grid axis\); got B=65536, H=1 .*"
                                         r"Split the batch or use impl=\"torch\""):
        flash_attention(many, many, many)


@pytest.mark.skipif(triton_mode() != "interpreter", reason="the interpreter's limits")
def test_interpreter_refuses_bf16_and_other_devices():
    assert torch.bfloat16 not in supported_dtypes()
    q, k, v = qkv(1, 1, 8, 16, torch.bfloat16)
    with pytest.raises(TypeError, match="bfloat16 needs a GPU of compute capability >= 8.0.*Use impl=\"torch\""):
        flash_attention(q, k, v)
    meta = torch.zeros(1, 1, 8, 16, device="meta")
    with pytest.raises(ValueError,
                       match=r"must be on cpu for the Triton path here \(triton mode: interpreter\); got meta"):
        flash_attention(meta, meta, meta)


def test_bf16_only_from_compute_capability_8(monkeypatch):
    """torch.cuda.is_bf16_supported() says yes on a T4 (emulation); the Triton path does not take it."""
    from course_lib.attention import flash_triton
    from course_lib.runtime import GpuInfo

    monkeypatch.setattr(flash_triton, "triton_mode", lambda: "native")
    monkeypatch.setattr(flash_triton, "bf16_supported", lambda: True)
    monkeypatch.setattr(flash_triton, "gpu_info", lambda: GpuInfo("Tesla T4", (7, 5), 15.0))
    assert torch.bfloat16 not in supported_dtypes() and torch.float16 in supported_dtypes()
    monkeypatch.setattr(flash_triton, "gpu_info", lambda: GpuInfo("NVIDIA A100", (8, 0), 40.0))
    assert torch.bfloat16 in supported_dtypes()


@pytest.mark.skipif(torch.bfloat16 not in supported_dtypes(), reason="needs a GPU with bf16")
@pytest.mark.parametrize("causal", [False, True])
def test_bf16_on_gpu(causal):
    q, k, v = on_device(*qkv(2, 2, 257, 64, torch.bfloat16))
    assert_matches_sdpa(kernels(), q, k, v, causal)


# The interpreter accepts code the GPU compiler rejects (a plain float global read inside a
# kernel, for one), so the kernels are also compiled ahead of time for three GPU generations —
# no GPU needed, Triton ships ptxas — and their shared memory is checked against each one's limit.
AOT_SCRIPT = """
import torch, triton
from triton.compiler import ASTSource
from triton.backends.compiler import GPUTarget
from course_lib.attention import flash_triton as ft

LIMITS = {75: 64 * 1024, 80: 163 * 1024, 90: 227 * 1024}  # shared memory per block (T4, A100, H100)
for arch, dtype, d, causal in ((90, torch.float16, 64, True), (80, torch.bfloat16, 128, False),
                               (75, torch.float32, 128, True)):
    name = str(dtype).removeprefix("torch.").replace("float", "fp").replace("bfp16", "bf16")
    for fn, backward in ((ft._flash_attention_fwd_kernel, False), (ft._flash_attention_bwd_dkdv_kernel, True),
                         (ft._flash_attention_bwd_dq_kernel, True)):
        cfg = ft.default_config(dtype, d, backward, capability=(arch // 10, arch % 10))
        const = {"CAUSAL": causal, "BLOCK_M": cfg.block_m, "BLOCK_N": cfg.block_n,
                 "BLOCK_D": triton.next_power_of_2(d), "PRECISION": ft._precision(dtype)}
        if not backward:
            const["RESCALE"] = ft.rescale_accumulator
        sig = {a: "constexpr" if a in const else
               ("*fp32" if a in ("lse_ptr", "delta_ptr") else f"*{name}") if a.endswith("_ptr") else
               "fp32" if a in ("scale", "qk_scale") else "i32" for a in fn.arg_names}
        kernel = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=const), target=GPUTarget("cuda", arch, 32),
                                options={"num_warps": cfg.num_warps, "num_stages": cfg.num_stages})
        assert kernel.metadata.shared <= LIMITS[arch], (arch, name, d, fn.__name__, kernel.metadata.shared)
        print(arch, name, d, fn.__name__, kernel.metadata.shared)
"""


@pytest.mark.skipif(triton_mode() == "unavailable" or not sys.platform.startswith("linux"),
                    reason="needs triton's bundled CUDA compiler (Linux)")
def test_kernels_compile_for_gpus():
    env = {**os.environ, "TRITON_INTERPRET": "0"}
    done = subprocess.run([sys.executable, "-c", AOT_SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("\n") == 9
