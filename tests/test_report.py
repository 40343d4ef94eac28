"""`mfdeploy report`: markdown, JSON and real PNG plots."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from mfdeploy.harness.plots import DPI, FIGSIZE
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
        if row["model"] == "26m":
            assert row["top1_accuracy"] is None
        elif labelled_in_cache():
            assert row["top1_accuracy"] >= 0.5, row
    md = (out / "report.md").read_text()
    assert "SYNTHETIC" in md and "| pytorch | fp32 |" in md
    for name in ("latency.png", "parity_vs_latency.png"):
        image = Image.open(out / name)
        assert image.size == (FIGSIZE[0] * DPI, FIGSIZE[1] * DPI)
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
        assert pixels.var() > 0  # something was drawn
        assert (pixels < 128).mean() > 0.001  # dark pixels: axes, text, bars or points


def test_report_unwritable_out(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run_cli(["report", "--variant", "26m", "--out", str(blocker / "r")], capsys)
    assert code == 2 and "Traceback" not in err
