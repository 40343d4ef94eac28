"""The `mfdeploy` command line as a user types it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from mfdeploy.export import TARGETS, target_module
from mfdeploy.models import get_variant, variant_names


def mfdeploy(
    *args: str, timeout: int = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mfdeploy", *args], capture_output=True, text=True,
        timeout=timeout, env=None if env is None else {**os.environ, **env},
    )  # fmt: skip


def test_variants_json_counts_from_the_built_model():
    proc = mfdeploy("variants", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    rows = {r["variant"]: r for r in data["variants"]}
    assert list(rows) == variant_names()
    for name, row in rows.items():
        spec = get_variant(name)
        assert row["params"] == spec.official_param_count
        assert abs(row["macs"] / 1e6 - spec.official_macs_m) < 0.01
        assert row["published_flops_m"] == spec.paper_flops_m
        assert row["published_top1"] == spec.paper_top1
    assert "matmul" in data["macs_counted"]


def test_variants_table_lists_all_seven():
    proc = mfdeploy("variants")
    assert proc.returncode == 0
    for name in variant_names():
        assert name in proc.stdout
    assert "77.9%" in proc.stdout


def test_help_explains_commands():
    proc = mfdeploy("--help")
    assert proc.returncode == 0
    for command in ("variants", "predict", "export"):
        assert command in proc.stdout


def test_export_help_says_which_target_exports_which_precision():
    proc = mfdeploy("export", "--help", env={"COLUMNS": "2000"})  # no wrapped names
    assert proc.returncode == 0, proc.stderr
    start = proc.stdout.index("\n  --precision PRECISION")  # the option, not the usage line
    line = " ".join(proc.stdout[start : proc.stdout.index("\n  --out OUT", start)].split())
    listed = {p: set(ts.split(", ")) for p, ts in re.findall(r"([\w-]+) \(([^)]*)\)", line)}
    for target in TARGETS:
        for precision in target_module(target).PRECISIONS:
            assert target in listed.get(precision, set()), (target, precision, line)
    exported = {(t, p) for t in TARGETS for p in target_module(t).PRECISIONS}
    assert {(t, p) for p, ts in listed.items() for t in ts} == exported


def test_predict_on_an_image(tmp_path):
    from PIL import Image

    img = tmp_path / "x.jpg"
    Image.new("RGB", (320, 240), (10, 200, 30)).save(img)
    proc = mfdeploy("predict", "--variant", "26m", "--json", str(img))
    assert proc.returncode == 0, proc.stderr
    top = json.loads(proc.stdout)[0]["top"]
    assert len(top) == 5
    assert all(a["probability"] >= b["probability"] for a, b in zip(top, top[1:]))


def test_unreadable_image_is_exit_2(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    proc = mfdeploy("predict", "--variant", "26m", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "not a readable image" in proc.stderr


def test_no_command_prints_help_and_exits_2():
    proc = mfdeploy()
    assert proc.returncode == 2 and "usage" in proc.stdout


def test_export_refuses_options_of_another_target(tmp_path):
    out = tmp_path / "a"
    proc = mfdeploy("export", "--target", "pytorch", "--variant", "26m", "--layout", "nchw",
                    "--out", str(out))  # fmt: skip
    assert proc.returncode == 2 and "--layout" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()


def test_variants_of_another_family():
    proc = mfdeploy("variants", "--model", "efficientnet_lite", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["model"] == "efficientnet_lite"
    assert [r["variant"] for r in data["variants"]] == ["efficientnet_lite0"]
    assert data["variants"][0]["params"] > 4_000_000  # EfficientNet-Lite0: 4.65M
