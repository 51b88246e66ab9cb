"""The GPU report's CPU side: every check's code path runs (dry run), the report's format, the exit."""

import torch

from course_lib import gpu_report
from course_lib.gpu_report import Check, Report, run_checks


def test_dry_run_on_the_cpu_passes_or_says_why_not():
    rows = run_checks("cpu", quick=True)
    assert [r.name for r in rows] == list(gpu_report.CHECKS)
    bad = [r for r in rows if r.status not in ("pass", "skip")]
    assert not bad, bad
    skipped = {r.name: r.detail for r in rows if r.status == "skip"}
    assert set(skipped) == {"4 DDP over NCCL"} and "two GPUs" in skipped["4 DDP over NCCL"]


def test_a_raising_check_becomes_an_error_row(monkeypatch):
    def broken(device, quick):
        raise RuntimeError("boom")

    monkeypatch.setattr(gpu_report, "CHECKS", {"x": broken, "y": lambda d, q: (False, "off by one")})
    rows = run_checks("cpu", quick=True)
    assert [(r.status, r.detail) for r in rows] == [("error", "RuntimeError: boom"), ("fail", "off by one")]


def test_markdown_report():
    report = Report("NVIDIA Test", {"torch": "2.14.1"}, "2026-11-30", [Check("9 attention", "pass", "ok", 1.25)],
                    attention=[dict(n=4096, d=128, dtype="bfloat16", causal=True, backward=True, triton_ms=2.0,
                                    sdpa_ms=1.0, triton_tflops=300.0, sdpa_tflops=600.0)],
                    decoding={"plain greedy": 1.5}, notebooks={"00_start_here": "passed in 3 s"})
    text = report.markdown()
    assert text.startswith("# GPU report: NVIDIA Test\n")
    assert "| 9 attention | pass | ok | 1.2 |" in text or "| 9 attention | pass | ok | 1.3 |" in text
    assert "| 4096 | 128 | bfloat16 | True | fwd+bwd | 2.000 | 1.000 | 300 | 600 | 0.50 |" in text
    assert "- plain greedy: 1.500" in text and "- 00_start_here: passed in 3 s" in text


def test_without_cuda_it_writes_nothing_and_exits_0(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(gpu_report, "run_checks", lambda device, quick: [Check("c", "pass", "fine")])
    assert gpu_report.main(["--out", str(tmp_path / "out")]) == 0
    assert "No CUDA GPU here" in capsys.readouterr().out and not (tmp_path / "out").exists()
