"""`mfdeploy bench`: every field, every installed backend, cached exports."""

from __future__ import annotations

import shutil

import pytest

from mfdeploy.harness.bench import BACKEND_TARGETS, backend_installed, cache_key, weights_hash
from tests.conftest import WEIGHTS_26M
from tests.harness_helpers import json_lines, run_cli

ROW_KEYS = {
    "backend",
    "precision",
    "variant",
    "threads",
    "init_ms",
    "first_ms",
    "latency_ms",
    "peak_rss_mb",
    "model_bytes",
    "executor",
}
LATENCY_KEYS = {"median", "p90", "mean", "std", "min"}


def test_bench_all_covers_installed_backends_and_caches(tmp_path, monkeypatch, capsys, exported):
    """Every installed backend gets a row; the cache is primed with the session's fp32
    exports of the same weights for every target but PyTorch, whose miss is exported (the
    export-on-miss path, at the cost of the cheapest export)."""
    monkeypatch.setenv("MFDEPLOY_BENCH_CACHE", str(tmp_path))
    model, whash = "mobile_former_26m", weights_hash("mobile_former_26m", str(WEIGHTS_26M))
    for backend, target in BACKEND_TARGETS.items():
        if backend != "torch" and backend_installed(backend):
            key = cache_key(model, target, "fp32", "deploy", whash)
            shutil.copytree(exported(target, "fp32"), tmp_path / f"{model}-{target}-fp32-{key}")
    common = ["bench", "--variant", "26m", "--weights", str(WEIGHTS_26M), "--warmup", "1"]
    argv = [*common, "--backend", "all", "--runs", "3", "--threads", "1", "--json"]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    rows = json_lines(out)
    installed = {b for b in BACKEND_TARGETS if backend_installed(b)}
    assert "torch" in installed
    assert {r["backend"] for r in rows} == installed
    for row in rows:
        assert set(row) >= ROW_KEYS and row["threads"] == 1
        assert set(row["latency_ms"]) == LATENCY_KEYS
        lat = row["latency_ms"]
        assert 0 < lat["min"] <= lat["median"] <= lat["p90"]
        assert row["model_bytes"] > 0 and row["peak_rss_mb"] > 0 and row["init_ms"] > 0
    assert err.count(" fp32: exported ") == 1, err  # torch's; the others from the cache
    assert err.count(" fp32: cached ") == len(installed) - 1, err
    # a thread list, table output, the export from the cache (one backend: each row is a
    # worker process loading its runtime)
    argv = [*common, "--backend", "torch", "--runs", "1", "--threads", "1,2"]
    code, out, err = run_cli(argv, capsys)
    assert code == 0 and "cached" in err and "exported" not in err
    assert len([line for line in out.splitlines() if "torch" in line]) == 2, out


def test_bench_artifact_dir(tmp_path, capsys):
    from tests.harness_helpers import export_fp32

    artifact = export_fp32("pytorch", tmp_path)
    code, out, _ = run_cli(["bench", "--artifact", str(artifact), "--runs", "2", "--json"], capsys)
    (row,) = json_lines(out)
    assert code == 0 and row["backend"] == "torch" and row["variant"] == "26m"


def test_bench_bad_input(capsys):
    code, _, err = run_cli(["bench", "--backend", "torch", "--threads", "x"], capsys)
    assert code == 2 and "Traceback" not in err
    code, _, err = run_cli(["bench", "--backend", "torch", "--precision", "int3"], capsys)
    assert code == 2 and "int3" in err


def test_an_emulated_executor_is_timed_in_process_without_a_peak_rss(exported):
    """Core ML off macOS runs on the MIL executor: timed here (no fresh process), and no
    peak RSS, which would be this process's, not the backend's."""
    pytest.importorskip("coremltools")
    from mfdeploy.harness.bench import EMULATED_EXECUTORS, measure_here

    measured = measure_here(exported("coreml", "fp32"), threads=1, runs=2, warmup=0)
    assert measured["executor"] in (*EMULATED_EXECUTORS, "coreml-runtime")
    assert measured["peak_rss_mb"] is None
    assert measured["runs"] == 2 and measured["latency_ms"]["median"] > 0


def test_worker_peak_rss_is_its_own_not_its_parents(tmp_path):
    """A worker spawned from a process holding 1 GB reports its own high-water mark
    (ru_maxrss would carry the parent's across fork + exec)."""
    import numpy as np

    from mfdeploy.harness.bench import run_worker
    from tests.harness_helpers import export_fp32

    artifact = export_fp32("pytorch", tmp_path)
    ballast = np.ones(1024**3 // 8)  # 1 GiB, every page touched
    measured = run_worker(artifact, threads=1, runs=2, warmup=0)
    assert ballast.sum() == len(ballast)
    assert 0 < measured["peak_rss_mb"] < 800, measured["peak_rss_mb"]


def test_time_budget_cuts_runs_of_a_slow_backend_not_below_the_floor():
    import time

    from mfdeploy.harness.timing import MIN_RUNS, time_runtime

    class Slow:
        init_ms = 0.0

        def run(self, batch):
            time.sleep(0.02)

    timed = time_runtime(Slow(), None, runs=50, warmup=10, budget_s=0.1)
    assert timed["runs"] == MIN_RUNS and timed["warmup"] >= 1
    assert time_runtime(Slow(), None, runs=3, warmup=0)["runs"] == 3


def test_init_time_leaves_out_the_runtime_packages_import(tmp_path, monkeypatch):
    """init_ms is loading the model: importing a runtime's Python packages (ExecuTorch's
    bindings import its exporter, seconds) is no part of an app's start-up."""
    from mfdeploy.runtimes import base

    clock = [0.0]
    monkeypatch.setattr(base.time, "perf_counter", lambda: clock[0])

    class Slow(base.Runtime):
        def _import(self) -> None:
            clock[0] += 6.0  # package import

        def _open(self) -> None:
            clock[0] += 0.05  # model load

        def run(self, batch):
            return batch

        def info(self):
            raise NotImplementedError

    assert Slow(tmp_path, manifest=None).init_ms == pytest.approx(50.0)


@pytest.mark.parametrize(
    ("target", "unwanted"),
    [("onnx", "torch"), ("tflite", "torch"), ("executorch", "executorch.exir")],
)
def test_a_bench_worker_imports_no_exporter(exported, target, unwanted):
    """A worker's start is in every bench row of the main job: opening an artifact loads its
    runtime, not torch (ONNX Runtime, LiteRT) nor ExecuTorch's exporter (~6 s here)."""
    import subprocess
    import sys

    code = (
        "import sys; from mfdeploy.runtimes import open_runtime; "
        f"open_runtime(sys.argv[1], threads=1); print({unwanted!r} in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(exported(target, "fp32"))],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert proc.stdout.strip().splitlines()[-1] == "False", proc.stdout
