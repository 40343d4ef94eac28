"""`mfdeploy report`: markdown, JSON and real PNG plots."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mfdeploy.harness.plots import DPI, WIDTH_IN
from mfdeploy.photos import labelled_in_cache
from tests.harness_helpers import run_cli


def test_report_writes_md_json_and_real_plots(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MFDEPLOY_BENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "rep"
    argv = [
        "report",
        "--variant",
        "26m",
        "--out",
        str(out),
        "--precisions",
        "fp32",
        "--targets",  # Core ML's rows (slow on the MIL executor) are covered with made-up rows
        "pytorch,onnx,tflite",
        "--runs",
        "2",
        "--warmup",
        "1",
    ]
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["synthetic_weights"] is True
    rows = report["rows"]
    assert any(r["target"] == "pytorch" for r in rows)
    for row in rows:
        assert row["error"] is None, row["error"]
        assert row["verify"]["passed"] is True
        assert row["bench"]["latency_ms"]["median"] > 0
    for row in rows:  # accuracy only where it means something: trained weights
        if row["model"] == "mobile_former_26m":  # synthetic weights
            assert row["top1_accuracy"] is None
        elif labelled_in_cache():
            assert row["top1_accuracy"] >= 0.5, row
    md = (out / "report.md").read_text()
    assert "SYNTHETIC" in md and "| pytorch | fp32 |" in md
    assert "## Summary" in md and "ship:" in md
    assert "batch 1, 1 thread, up to" in md and "thread(s)" not in md + err
    summary = report["summary"]
    assert summary["failed"] == [] and summary["ship"]  # every fp32 row passed
    assert report["machine"]["cpu_count"] >= 1 and report["machine"]["cpu"]
    for row in rows:  # converter output went to the row's log, not the console
        assert row["bench"]["runs"] == 2 and row["log"].startswith(str(out / "logs"))
        assert set(row["seconds"]) == {"export", "verify", "bench"}
    assert "1/2 export + verify" in err and "one at a time, 1 thread" in err
    # what to ship, on the console too: one line per model and platform, fp32 here
    assert "ship mobile_former_26m on Android (LiteRT): fp32 (fastest passing; " in err
    assert err.count("\nship ") == sum(len(p) for p in summary["ship"].values())
    # no live progress display off a terminal: phase 1 prints a line per verified row
    assert err.count(": exported, verify pass") == len(rows), err
    # each such line whole (not wrapped at 80 columns in a log file): it ends with its timings
    lines = [line for line in err.splitlines() if "exported, verify" in line]
    assert all(line.rstrip().endswith(" s)") for line in lines), lines
    for name in ("latency.png", "parity_vs_latency.png", "size_vs_latency.png"):
        image = Image.open(out / name)
        assert image.size[0] == WIDTH_IN * DPI and image.size[1] >= 300
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
        assert pixels.var() > 0  # something was drawn
        assert (pixels < 128).mean() > 0.001  # dark pixels: axes, text, bars or points


def test_report_unwritable_out(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run_cli(["report", "--variant", "26m", "--out", str(blocker / "r")], capsys)
    assert code == 2 and "Traceback" not in err


def test_summary_ships_the_fastest_passing_and_lists_failures():
    from mfdeploy.harness.report import summary

    def row(target, precision, ms, passed=True, comparison=False, executor="cpu"):
        return {
            "model": "m",
            "target": target,
            "precision": precision,
            "comparison": comparison,
            "error": None,
            "verify": {"passed": passed, "failed": [] if passed else ["sqnr_db 9 < 18"],
                       "metrics": {"sqnr_db": 30.0}},
            "bench": {"latency_ms": {"median": ms}, "model_bytes": int(ms * 1e6),
                      "executor": executor},
        }  # fmt: skip

    rows = [
        row("tflite", "fp32", 10.0),
        row("tflite", "int8", 4.0),
        row("tflite", "fp16", 3.0, passed=False),  # fastest but fails: not shipped
        row("onnx", "int8-dynamic", 1.0, comparison=True),  # comparison: never shipped
        row("onnx", "fp32", 8.0),
        row("coreml", "fp16", 90.0, executor="mil-executor"),
        row("coreml", "fp32", 60.0, executor="mil-executor"),  # emulated: by size
    ]
    s = summary(rows)
    ship = s["ship"]["m"]
    assert ship["Android (LiteRT)"]["precision"] == "int8"
    assert ship["ONNX Runtime (Android, iOS, web, desktop)"]["precision"] == "fp32"
    assert ship["iOS / macOS (Core ML)"]["precision"] == "fp32"
    assert ship["iOS / macOS (Core ML)"]["by"].startswith("size")
    assert [f["row"] for f in s["failed"]] == ["m tflite fp16"]


def test_summary_says_what_a_pick_gains_over_fp32():
    """The summary line of a quantised pick gives fp32's median and size beside its own and
    the ratios (what int8 buys, the reason to ship it); on an emulated runtime the size only."""
    from mfdeploy.harness.report import _summary_lines, summary

    def row(target, precision, ms, mb, executor="cpu"):
        return {
            "model": "m", "target": target, "precision": precision, "comparison": False,
            "error": None, "verify": {"passed": True, "failed": [], "metrics": {"sqnr_db": 25.0}},
            "bench": {"latency_ms": {"median": ms}, "model_bytes": int(mb * 1e6),
                      "executor": executor},
        }  # fmt: skip

    rows = [
        row("tflite", "fp32", 6.0, 46.0),
        row("tflite", "int8", 4.0, 13.8),
        row("onnx", "fp32", 8.0, 45.8),  # fp32 ships: nothing to compare
        row("onnx", "int8", 9.0, 12.9),
        row("coreml", "fp32", 60.0, 46.0, "mil-executor"),
        row("coreml", "int8", 200.0, 11.5, "mil-executor"),  # emulated: by size
        row("executorch", "int8", 5.0, 12.6),  # no fp32 row: no comparison
    ]
    ship = summary(rows)["ship"]["m"]
    litert = ship["Android (LiteRT)"]["vs_fp32"]
    assert litert["speedup"] == pytest.approx(1.5) and litert["size_ratio"] == pytest.approx(0.3)
    assert ship["ONNX Runtime (Android, iOS, web, desktop)"]["vs_fp32"] is None
    coreml = ship["iOS / macOS (Core ML)"]
    assert coreml["precision"] == "int8" and coreml["vs_fp32"]["speedup"] is None
    assert coreml["vs_fp32"]["size_ratio"] == pytest.approx(0.25)
    assert ship["Android / iOS (ExecuTorch)"]["vs_fp32"] is None
    line = _summary_lines({"summary": summary(rows)})[2]
    assert "4.00 ms, 1.50x as fast as fp32's 6.00; 13.8 MB, 0.30x fp32's 46.0;" in line
    assert "200.00 ms; 11.5 MB, 0.25x fp32's 46.0;" in line  # no speed-up on the emulator
    assert "8.00 ms; 45.8 MB; 25.0 dB" in line


def test_summary_ships_the_smallest_of_a_latency_tie():
    """Rows timed one at a time tie within LATENCY_TIE: the smallest of those ships; a row
    clearly slower does not, however small."""
    from mfdeploy.harness.report import LATENCY_TIE, summary

    def row(target, precision, ms, mb):
        return {
            "model": "m", "target": target, "precision": precision, "comparison": False,
            "error": None, "verify": {"passed": True, "failed": [], "metrics": {"sqnr_db": 30.0}},
            "bench": {"latency_ms": {"median": ms}, "model_bytes": int(mb * 1e6),
                      "executor": "cpu"},
        }  # fmt: skip

    tie = 8.15 * (1 + LATENCY_TIE * 0.9)
    rows = [
        row("onnx", "fp32", 8.15, 45.8),
        row("onnx", "int8", tie, 14.8),  # as fast within the tie, a third of the size
        row("tflite", "fp32", 8.15, 45.8),
        row("tflite", "int8", 8.15 * (1 + LATENCY_TIE * 1.5), 14.8),  # slower: not a tie
    ]
    ship = summary(rows)["ship"]["m"]
    onnx, litert = ship["ONNX Runtime (Android, iOS, web, desktop)"], ship["Android (LiteRT)"]
    assert onnx["precision"] == "int8" and onnx["by"] == "latency tie, then size"
    assert litert["precision"] == "fp32" and litert["by"] == "latency"


def test_export_pool_reports_each_row_once_and_fails_only_the_broken_row(tmp_path, monkeypatch):
    """Two rows at once in spawned workers, each exported and verified: every row comes back
    once with its index, a bad cell is that row's error (one line, no traceback), the others
    go on; while no row finishes, the idle callback is called (the log file's heartbeat)."""
    from mfdeploy.harness import bench
    from mfdeploy.harness.export_pool import ExportJob, ExportPool

    monkeypatch.setenv("MFDEPLOY_BENCH_CACHE", str(tmp_path / "cache"))
    whash = bench.weights_hash("mobile_former_26m", None)

    def job(target: str, precision: str) -> ExportJob:
        log = tmp_path / "logs" / f"{target}-{precision}.log"
        return ExportJob("mobile_former_26m", None, target, precision, "deploy", whash, log)

    jobs = [job("pytorch", "int3"), job("pytorch", "fp32"), job("onnx", "fp32")]
    idle: list[int] = []
    with ExportPool(jobs, workers=2) as pool:
        assert pool.workers == 2
        finished = list(pool.results(lambda: idle.append(1), every_s=0.2))
    assert idle  # spawning a worker and importing torch alone takes longer than 0.2 s
    assert sorted(i for i, _, _ in finished) == [0, 1, 2]
    assert all(jobs[i] is j for i, j, _ in finished)
    bad, torch_fp32, onnx_fp32 = (d for _, _, d in sorted(finished, key=lambda f: f[0]))
    assert bad.artifact is None and "int3" in bad.error and "Traceback" not in bad.error
    for result, target in ((torch_fp32, "pytorch"), (onnx_fp32, "onnx")):
        assert result.error is None and result.artifact.parent == tmp_path / "cache"
        assert json.loads((result.artifact / "manifest.json").read_text())["target"] == target
        assert result.verify["passed"] and result.verify["target"] == target
        assert set(result.seconds) == {"export", "verify"}
    # the report's verify and bench find these in the cache: no second export
    again, cached = bench.cached_artifact("mobile_former_26m", "onnx", "fp32", whash=whash)
    assert cached and again == onnx_fp32.artifact


@pytest.mark.parametrize("executor", ["mil-executor", "cpu"])
def test_only_emulated_rows_are_benched_in_the_export_pool(tmp_path, monkeypatch, executor):
    """An emulated executor's timing is no device latency: its bench runs right after its
    verify, beside the other exports; every real runtime's waits for the quiet phase."""
    from types import SimpleNamespace

    from mfdeploy.harness import bench, verify
    from mfdeploy.harness.export_pool import ExportJob, export_one

    artifact = tmp_path / "art"
    monkeypatch.setattr(bench, "cached_artifact", lambda *a, **k: (artifact, False))
    result = SimpleNamespace(
        executor=executor, synthetic_weights=True, failed=[], to_json=lambda: {"passed": True}
    )
    monkeypatch.setattr(verify, "verify_artifact", lambda *a, **k: result)
    calls = []

    def measure_here(path, **kwargs):
        calls.append((path, kwargs))
        return {"runs": 3, "warmup": 1}

    monkeypatch.setattr(bench, "measure_here", measure_here)
    args = {"threads": 1, "runs": 50, "warmup": 1, "budget_s": 2.0}
    job = ExportJob("m", None, "coreml", "fp32", "deploy", "h", tmp_path / "l.log", False, args)
    done = export_one(job)
    assert done.error is None
    if executor == "mil-executor":
        assert calls == [(artifact, args)] and done.bench == {"runs": 3, "warmup": 1}
        assert set(done.seconds) == {"export", "verify", "bench"}
    else:
        assert not calls and done.bench is None


def test_a_failed_emulated_bench_fails_its_row_and_keeps_its_verify(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from mfdeploy.errors import MfdeployError
    from mfdeploy.harness import bench, verify
    from mfdeploy.harness.export_pool import ExportJob, export_one

    monkeypatch.setattr(bench, "cached_artifact", lambda *a, **k: (tmp_path, False))
    result = SimpleNamespace(
        executor="mil-executor", synthetic_weights=True, failed=[], to_json=lambda: {"x": 1}
    )
    monkeypatch.setattr(verify, "verify_artifact", lambda *a, **k: result)

    def measure_here(path, **kwargs):
        raise MfdeployError("benchmark of art failed: boom")

    monkeypatch.setattr(bench, "measure_here", measure_here)
    args = {"threads": 1, "runs": 5, "warmup": 1, "budget_s": 2.0}
    job = ExportJob("m", None, "coreml", "fp32", "deploy", "h", tmp_path / "l.log", False, args)
    done = export_one(job)
    assert done.error == "benchmark of art failed: boom"
    assert done.verify == {"x": 1, "failed": []} and done.bench is None


def test_export_pool_starts_int8_rows_first_then_fp32():
    """The long rows (static int8) start first, so none of them runs alone at the end; then
    fp32, whose conversions fp16 and int8-weights start from; the others keep their order."""
    from mfdeploy.harness.export_pool import ExportJob, start_order

    cells = [("onnx", "fp16"), ("onnx", "int8"), ("tflite", "fp16"), ("tflite", "int8"),
             ("onnx", "int8-dynamic"), ("tflite", "fp32"), ("onnx", "fp32")]  # fmt: skip
    jobs = [ExportJob("m", None, t, p, "deploy", "h", Path(f"{t}-{p}.log")) for t, p in cells]
    assert start_order(jobs) == [1, 3, 5, 6, 0, 2, 4]


@pytest.mark.parametrize("stream", ["in-memory", "file"])
def test_job_console_keeps_a_long_line_whole(stream, tmp_path, monkeypatch):
    """Off a terminal (a log file, CI, a test's capture) a row's line longer than 80 columns
    stays one line: a wrapped line splits a path or a figure from its label."""
    import io

    from mfdeploy.harness import steplog

    path = tmp_path / "err.log"
    target = io.StringIO() if stream == "in-memory" else path.open("w")
    monkeypatch.setattr(sys, "stderr", target)
    line = "[1/2] mobile_former_294m executorch int8: " + "x" * 120 + " (export 391 s)"
    console = steplog.job_console()
    console.print(line, highlight=False)
    console.file.flush()
    text = target.getvalue() if stream == "in-memory" else path.read_text()
    assert text.splitlines() == [line]


@pytest.mark.parametrize(
    ("cpuinfo", "cpu", "features"),
    [
        (  # x86: several CPUs, the first one's model name and flags
            "processor\t: 0\nmodel name\t: Some Xeon\nflags\t\t: fpu sse avx2 avx512f "
            "avx512_vnni\n\nprocessor\t: 1\nmodel name\t: Other\nflags\t\t: fpu\n",
            "Some Xeon",
            ["avx2", "avx512f", "avx512_vnni"],
        ),
        ("processor\t: 0\nFeatures\t: fp asimd asimddp i8mm\n", None, ["asimddp", "i8mm"]),
        ("processor\t: 0\nflags\t\t: fpu sse2\n", None, []),
    ],
)
def test_machine_names_the_cpu_features_int8_speed_depends_on(tmp_path, cpuinfo, cpu, features):
    from mfdeploy.harness.report import machine

    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo)
    found = machine(path)
    assert found["int8_features"] == features
    assert found["cpu"] == cpu if cpu else found["cpu"]


def test_default_precisions_leave_comparison_ones_out(monkeypatch):
    """The main job runs what a target recommends; a precision the target offers for
    comparison only (none does today; ONNX int8-dynamic did until session 29) runs only when
    asked for."""
    pytest.importorskip("onnxruntime")
    from mfdeploy.export import onnx as onnx_target
    from mfdeploy.harness.report import plan_cells

    assert ("onnx", "int8-dynamic") in plan_cells(["onnx"], None)
    monkeypatch.setattr(onnx_target, "COMPARISON_PRECISIONS", ("int8-dynamic",), raising=False)
    default = plan_cells(["onnx"], None)
    assert ("onnx", "int8") in default and ("onnx", "fp32") in default
    assert ("onnx", "int8-dynamic") not in default
    assert ("onnx", "int8-dynamic") in plan_cells(["onnx"], ["all"])
    assert plan_cells(["onnx"], ["int8-dynamic"]) == [("onnx", "int8-dynamic")]
