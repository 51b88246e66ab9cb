"""``python -m course_lib.gpu_report``: the GPU half of the course, checked and measured in one run.

GPU time is rare and short, so everything the course claims about CUDA runs from one command
that writes one report:

1. **Checks** — each chapter's CUDA path once, against its reference on the same GPU: FP16,
   BF16 and FP8 casts against the course's bit-exact codec; loss scaling against
   ``torch.amp.GradScaler``; InfoNCE on the GPU against the CPU; NMS, RoI Align and deformable
   convolution against torchvision's CUDA kernels (forward and backward); FlashAttention (torch
   path and native Triton kernels) against SDPA with the relative rule (error vs an FP32
   reference ≤ 2× SDPA's own error in the same dtype); Medusa and MTP greedy decoding equal to
   plain greedy decoding. The autograd engine of chapter 1 is NumPy: it has no CUDA path.
   DDP over NCCL needs two GPUs; on one it is skipped with that reason.
2. **Measurements** (CUDA only) — chapter 9's Triton forward and forward+backward against SDPA
   (N = 1k–16k, d = 64 and 128, fp16 and bf16, causal and not: TFLOP/s and the ratio), and plain
   vs Medusa vs MTP decoding wall-clock with :func:`course_lib.timing.compare`.
3. **Notebooks** (CUDA only, ``--notebooks``) — every notebook executed under nbval, timed.

The report goes to ``results/gpu/<gpu name>.md`` (and ``.json``) with the torch, Triton and driver
versions and the date. Without CUDA the command says so, runs the checks on the CPU at small sizes
(a dry run that proves the code paths work, and what ``tests/test_gpu_report.py`` runs), writes
nothing and exits 0.

Issue: "The GPU half of the course, verified on a real GPU in one command". Tests:
``tests/test_gpu_report.py``.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from course_lib import runtime

RESULTS = Path(__file__).resolve().parent.parent / "results" / "gpu"


@dataclass
class Check:
    """One chapter's path on the device, compared with its reference."""

    name: str  # "chapter: what"
    status: str  # "pass", "fail", "skip" or "error"
    detail: str  # the measured difference, or why it was skipped / what raised
    seconds: float = 0.0  # wall-clock of the check


@dataclass
class Report:
    """Everything one run found; :meth:`markdown` is the committed form."""

    device: str  # "NVIDIA H200" or "cpu (dry run)"
    versions: dict[str, str]  # package -> version, driver included
    date: str  # ISO date of the run
    checks: list[Check] = field(default_factory=list)
    attention: list[dict] = field(default_factory=list)  # attention.benchmark.BenchRow as dicts
    decoding: dict[str, float] = field(default_factory=dict)  # method -> median ms per token
    notebooks: dict[str, str] = field(default_factory=dict)  # notebook -> "passed in 12 s" / "failed"

    def markdown(self) -> str:
        lines = [f"# GPU report: {self.device}", "", f"Run on {self.date} by `python -m course_lib.gpu_report`.", ""]
        lines += [f"- {k}: {v}" for k, v in self.versions.items()]
        lines += ["", "## Checks", "", "| check | result | detail | s |", "| --- | --- | --- | --- |"]
        lines += [f"| {c.name} | {c.status} | {c.detail} | {c.seconds:.1f} |" for c in self.checks]
        if self.attention:
            lines += ["", "## FlashAttention (Triton) vs SDPA", "",
                      "| N | d | dtype | causal | pass | Triton ms | SDPA ms | Triton TFLOP/s | SDPA TFLOP/s | ratio |",
                      "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
            for r in self.attention:
                passes = "fwd+bwd" if r["backward"] else "fwd"
                lines.append(f"| {r['n']} | {r['d']} | {r['dtype']} | {r['causal']} | {passes} | "
                             f"{r['triton_ms']:.3f} | {r['sdpa_ms']:.3f} | {r['triton_tflops']:.0f} | "
                             f"{r['sdpa_tflops']:.0f} | {r['sdpa_ms'] / r['triton_ms']:.2f} |")
        if self.decoding:
            lines += ["", "## Decoding wall-clock (median ms per generated token)", ""]
            lines += [f"- {k}: {v:.3f}" for k, v in self.decoding.items()]
        if self.notebooks:
            lines += ["", "## Notebooks (nbval)", ""] + [f"- {k}: {v}" for k, v in self.notebooks.items()]
        return "\n".join(lines) + "\n"


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for package in ("torch", "torchvision", "triton"):
        try:
            out[package] = md.version(package)
        except md.PackageNotFoundError:
            out[package] = "not installed"
    if torch.cuda.is_available():
        out["cuda (torch built with)"] = str(torch.version.cuda)
        try:
            out["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                           capture_output=True, text=True, timeout=20).stdout.strip() or "unknown"
        except (OSError, subprocess.TimeoutExpired):
            out["driver"] = "unknown (no nvidia-smi)"
    return out


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double().cpu() - b.double().cpu()).abs().max().item() if a.numel() else 0.0


# --- the checks: each takes (device, quick) and returns (passed, detail) -------------------------

def _check_casts(device: torch.device, quick: bool) -> tuple[bool, str]:
    from course_lib.numerics import encode, get_format

    gen = torch.Generator().manual_seed(0)
    bad = []
    for name in ("fp16", "bf16", "fp8_e4m3", "fp8_e5m2"):
        fmt = get_format(name)
        # Values inside the finite range: overflow is where torch versions differ (see chapter 3).
        top = 240.0 if name == "fp8_e4m3" else 30000.0
        x = (torch.rand(64 if quick else 4096, generator=gen, dtype=torch.float64) * 2 - 1) * top
        x = x.float()  # torch casts from float32 on the GPU
        raw = x.to(device).to(fmt.dtype()).view(torch.uint8 if fmt.bits == 8 else torch.int16).cpu()
        got = [int(v) & ((1 << fmt.bits) - 1) for v in raw.tolist()]
        want = [encode(float(v), name) for v in x.tolist()]
        bad += [f"{name} {v}" for v, g, w in zip(x.tolist(), got, want) if g != w][:3]
    return not bad, "every value's bits equal course_lib's encode" if not bad else f"differ: {bad}"


def _check_loss_scaling(device: torch.device, quick: bool) -> tuple[bool, str]:
    from course_lib.numerics import DynamicLossScaler

    ours_p, ref_p = (torch.nn.Parameter(torch.tensor([1.0, 2.0], device=device)) for _ in range(2))
    ours_opt, ref_opt = torch.optim.SGD([ours_p], lr=0.1), torch.optim.SGD([ref_p], lr=0.1)
    ours, ref = DynamicLossScaler(init_scale=4.0, growth_interval=2), torch.amp.GradScaler(device.type, init_scale=4.0,
                                                                                        growth_interval=2)
    for step in range(6):
        factor = float("inf") if step == 3 else 1.0  # one overflowing step: skipped and backed off
        for p, opt, scaler in ((ours_p, ours_opt, ours), (ref_p, ref_opt, ref)):
            opt.zero_grad()
            scaler.scale((p * factor).sum()).backward()
            scaler.step(opt)
            scaler.update()
    same = torch.equal(ours_p.detach().cpu(), ref_p.detach().cpu()) and ours.get_scale() == ref.get_scale()
    return same, f"params {ours_p.tolist()} vs {ref_p.tolist()}, scale {ours.get_scale()} vs {ref.get_scale()}"


def _check_info_nce(device: torch.device, quick: bool) -> tuple[bool, str]:
    from course_lib.contrastive import info_nce

    a, b = torch.randn(2, 33, 16, generator=torch.Generator().manual_seed(0))
    here, cpu = info_nce(a.to(device), b.to(device), 0.1), info_nce(a, b, 0.1)
    diff = _max_diff(here, cpu)
    return diff < 1e-5, f"max abs difference, device vs CPU: {diff:.1e}"


def _check_detection(device: torch.device, quick: bool) -> tuple[bool, str]:
    import torchvision.ops as tv

    from course_lib.detection import nms, roi_align

    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(97, 2, generator=gen) * 50
    boxes = torch.cat([xy, xy + 1 + torch.rand(97, 2, generator=gen) * 30], 1).to(device)
    scores = torch.rand(97, generator=gen).to(device)
    keep_same = torch.equal(nms(boxes, scores, 0.5).cpu(), tv.nms(boxes, scores, 0.5).cpu())
    feats = torch.randn(2, 3, 17, 19, generator=gen, dtype=torch.float64).to(device).requires_grad_()
    rois = torch.tensor([[0, 1.5, 2.0, 12.0, 9.5], [1, 0.0, 0.0, 18.0, 16.0]], dtype=torch.float64, device=device)
    ours = roi_align(feats, rois, (5, 4), 1.0, 2, True)
    ref = tv.roi_align(feats, rois, (5, 4), 1.0, 2, True)
    g_ours, = torch.autograd.grad(ours.sum(), feats)
    g_ref, = torch.autograd.grad(ref.sum(), feats)
    diff = max(_max_diff(ours, ref), _max_diff(g_ours, g_ref))
    return keep_same and diff < 1e-9, f"NMS keep equal: {keep_same}; RoI Align fwd/bwd max diff {diff:.1e} (float64)"


def _check_deform(device: torch.device, quick: bool) -> tuple[bool, str]:
    import torchvision.ops as tv

    from course_lib.deform import deform_conv2d

    gen = torch.Generator().manual_seed(0)

    def t(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float64).to(device).requires_grad_()

    x, offset, weight, mask = t(2, 3, 9, 11), t(2, 18, 9, 11), t(4, 3, 3, 3), t(2, 9, 9, 11)
    ours = deform_conv2d(x, offset, weight, padding=1, mask=mask)
    ref = tv.deform_conv2d(x, offset, weight, padding=(1, 1), mask=mask)
    grads = [torch.autograd.grad(o.sum(), (x, offset, weight, mask)) for o in (ours, ref)]
    diff = max([_max_diff(ours, ref)] + [_max_diff(a, b) for a, b in zip(*grads)])
    return diff < 1e-8, f"forward and 4 gradients, max diff {diff:.1e} (float64)"


def _check_attention(device: torch.device, quick: bool) -> tuple[bool, str]:
    import torch.nn.functional as F

    from course_lib.attention import attention_ref, flash_attention

    # Triton natively on a GPU; on the CPU (the dry run) in its interpreter, which runs the same launcher.
    triton_here = {"cuda": "native", "cpu": "interpreter"}.get(device.type) == runtime.triton_mode()
    impls = ["torch"] + (["triton"] if triton_here else [])
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 65 if quick else 1031, 64, generator=gen) for _ in range(3))
    ref = attention_ref(q.double(), k.double(), v.double(), causal=True)
    ql, kl, vl = (t.to(device, dtype) for t in (q, k, v))
    sdpa_err = _max_diff(F.scaled_dot_product_attention(ql, kl, vl, is_causal=True), ref)
    details, ok = [f"SDPA {dtype} error {sdpa_err:.1e}"], True
    for impl in impls:
        err = _max_diff(flash_attention(ql, kl, vl, causal=True, impl=impl), ref)
        ok &= err <= 2 * sdpa_err + 1e-6
        details.append(f"{impl} {err:.1e}")
    if not triton_here:
        details.append(f"Triton not run: {runtime.triton_mode()} here")
    return ok, "; ".join(details) + " (≤ 2× SDPA's error passes)"


def _decoders(device: torch.device) -> dict[str, Callable[[torch.Tensor, int], torch.Tensor]]:
    from course_lib.lm import generate, load_checkpoint
    from course_lib.mtp import load_mtp, mtp_generate
    from course_lib.speculative import load_heads, medusa_generate

    model, _ = load_checkpoint(device=device)
    heads, _ = load_heads(model)
    mtp, _ = load_mtp(model)
    for m in (model, heads, mtp):
        m.to(device).eval()
    return {
        "plain greedy": lambda p, n: generate(model, p, n),
        "Medusa (small tree)": lambda p, n: medusa_generate(model, heads, p, n).tokens,
        "MTP (depth 1 draft)": lambda p, n: mtp_generate(model, mtp, p, n).tokens,
    }


def _check_decoding(device: torch.device, quick: bool) -> tuple[bool, str]:
    from course_lib.lm import encode

    prompt = encode("    def __init__(self, ").to(device)
    n = 16 if quick else 96
    with torch.no_grad():
        outs = {name: fn(prompt, n).cpu() for name, fn in _decoders(device).items()}
    plain = outs.pop("plain greedy")
    same = {name: torch.equal(out, plain) for name, out in outs.items()}
    return all(same.values()), f"{n} tokens equal to plain greedy: {same}"


def _check_ddp(device: torch.device, quick: bool) -> tuple[bool | None, str]:
    if device.type != "cuda" or torch.cuda.device_count() < 2:
        return None, "NCCL needs two GPUs (one rank per GPU); gloo on the CPU is in the test suite"
    from course_lib.distributed import TrainConfig, launch, run_training

    result = launch(run_training, torch.cuda.device_count(), (TrainConfig(steps=3),), backend="nccl",
                    show_output=False)
    return True, f"trained on {torch.cuda.device_count()} GPUs: {result.results[0]}"


CHECKS: dict[str, Callable[[torch.device, bool], tuple[bool | None, str]]] = {
    "3 numerics: FP16/BF16/FP8 casts": _check_casts,
    "3 numerics: loss scaling vs GradScaler": _check_loss_scaling,
    "4 DDP over NCCL": _check_ddp,
    "6 contrastive: InfoNCE": _check_info_nce,
    "7 detection: NMS, RoI Align vs torchvision": _check_detection,
    "8 deform: deform_conv2d vs torchvision": _check_deform,
    "9 attention: torch and Triton paths vs SDPA": _check_attention,
    "10–11 decoding: Medusa and MTP lossless": _check_decoding,
}


def run_checks(device: torch.device | str, quick: bool = False) -> list[Check]:
    """Run every check of :data:`CHECKS` on ``device``; a check that raises is an ``error`` row."""
    device = torch.device(device)
    rows = []
    for name, check in CHECKS.items():
        start = time.perf_counter()
        try:
            passed, detail = check(device, quick)
            status = "skip" if passed is None else "pass" if passed else "fail"
        except Exception as err:  # noqa: BLE001 — one broken check must not lose the whole report
            status, detail = "error", f"{type(err).__name__}: {err}"
        rows.append(Check(name, status, detail.replace("|", "/"), time.perf_counter() - start))
    return rows


def _measure_decoding(device: torch.device) -> dict[str, float]:
    from course_lib.lm import encode
    from course_lib.timing import compare

    prompt, n = encode("    def __init__(self, ").to(device), 128
    decoders = _decoders(device)
    with torch.no_grad():
        timings = compare({name: functools.partial(fn, prompt, n) for name, fn in decoders.items()},
                          repeats=5, warmup=1, number=1)
    return {name: t.median * 1e3 / n for name, t in timings.items()}


def _run_notebooks() -> dict[str, str]:
    from course_lib import _notebooks

    out = {}
    for path in sorted(_notebooks.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", str(path)], cwd=_notebooks.ROOT,
                              capture_output=True, text=True)
        verdict = "passed" if done.returncode == 0 else "FAILED: " + done.stdout.strip().splitlines()[-1]
        out[path.stem] = f"{verdict} in {time.perf_counter() - start:.0f} s"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.gpu_report", description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", action="store_true", help="also execute every notebook under nbval")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the report (default results/gpu)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("No CUDA GPU here: nothing is measured and no report is written.\n"
              "Dry run of the checks on the CPU (small sizes):")
        for row in run_checks("cpu", quick=True):
            print(f"  {row.status:5} {row.name}: {row.detail}")
        return 0
    name = torch.cuda.get_device_name()
    report = Report(name, _versions(), datetime.date.today().isoformat())
    report.checks = run_checks("cuda")
    print(report.markdown(), flush=True)
    if runtime.triton_mode() == "native":
        from course_lib.attention.benchmark import compare_with_sdpa

        for causal in (False, True):
            report.attention += [asdict(r) for r in compare_with_sdpa(causal=causal)]
    report.decoding = _measure_decoding(torch.device("cuda"))
    if args.notebooks:
        report.notebooks = _run_notebooks()
    args.out.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")
    (args.out / f"{stem}.md").write_text(report.markdown())
    (args.out / f"{stem}.json").write_text(json.dumps(asdict(report), indent=1))
    print(report.markdown())
    print(f"written: {args.out / stem}.md and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
