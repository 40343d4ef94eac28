"""int8 exports checked on their own runtime (harness/int8_check.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mfdeploy.artifact import Manifest
from mfdeploy.export import export_artifact
from mfdeploy.export.int8_sensitivity import held_out_split
from mfdeploy.harness.int8_check import checked, export_checked
from mfdeploy.harness.verify import reference_model
from mfdeploy.metrics import sqnr_db
from mfdeploy.photos import resolve_images
from mfdeploy.preprocessing import Preprocessing, preprocess_batch
from mfdeploy.runtimes import open_runtime
from tests.conftest import WEIGHTS_26M
from tests.harness_helpers import run_cli


def test_only_measured_int8_is_checked():
    assert checked("onnx", "int8", {})
    assert checked("tflite", "int8", {"int8_float": "auto"})
    assert not checked("onnx", "int8", {"int8_float": "none"})  # the user chose the set
    assert not checked("onnx", "int8", {"int8_float": "blocks.0"})
    assert not checked("onnx", "int8-dynamic", {})  # no calibration, no float set
    assert not checked("onnx", "fp16", {})


@pytest.mark.slow
def test_int8_below_bound_is_exported_again_with_more_float(tmp_path):
    """An unreachable bound: the first artifact misses it, the second keeps every candidate
    float (nothing more to raise) and is kept, both checks recorded; the figure recorded is
    the artifact's own SQNR on the held-out calibration photos, computed here apart."""
    out = tmp_path / "artifact"
    out_dir, manifest = export_checked(
        "onnx", "26m", precision="int8", weights=str(WEIGHTS_26M), out=out, bound_db=150.0
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact"]  # no staging left
    check = manifest.extra["int8_plan"]["runtime_check"]
    exports = check["exports"]
    assert len(exports) == 2 and check["passed"] is False and check["bound_db"] == 150.0
    assert exports[1]["simulated_target_db"] > exports[0]["simulated_target_db"]
    candidates = manifest.extra["int8_plan"]["candidates"]
    assert exports[0]["float_modules"] < exports[1]["float_modules"] == len(candidates)
    # the sealed manifest on disk is the one returned (re-sealed after the check)
    assert Manifest.load(out_dir).extra["int8_plan"]["runtime_check"] == check

    runtime = open_runtime(out_dir)
    prep = Preprocessing.from_dict(runtime.manifest.preprocessing)
    photos = preprocess_batch(resolve_images(None, "calibration", 32), prep).astype(np.float32)
    held_out = held_out_split(photos)[1]
    assert len(held_out) == check["held_out_photos"]
    with torch.no_grad():
        expected = reference_model(runtime.manifest, out_dir, WEIGHTS_26M)(
            torch.from_numpy(held_out)
        ).numpy()
    got = sqnr_db(expected, runtime.run(held_out))
    assert abs(got - exports[1]["sqnr_db"]) < 0.01


def test_int8_check_result_is_in_the_cli_export(tmp_path, capsys):
    out = tmp_path / "a"
    code, _, err = run_cli(
        ["export", "--target", "onnx", "--variant", "26m", "--weights", str(WEIGHTS_26M),
         "--precision", "int8", "--out", str(out)],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    check = Manifest.load(Path(out)).extra["int8_plan"]["runtime_check"]
    assert check["runtime"] == "onnxruntime" and check["held_out_photos"] == 8
    assert check["bound_db"] == 20.5 and len(check["exports"]) >= 1  # verify 18 + 2.5
    assert "int8 check:" in err


def test_the_next_target_starts_from_what_the_short_artifact_was_simulated_at():
    from mfdeploy.harness.int8_check import STEP_DB, raised_target

    # searched for 22.0 dB, planned at 22.8, measured 0.4 dB short on the runtime
    assert raised_target(22.0, 22.8, 0.4) == pytest.approx(22.8 + 0.4 + STEP_DB)
    # a plan that missed its target (every candidate tried) still raises the target
    assert raised_target(22.0, 21.0, 0.4) == pytest.approx(22.0 + 0.4 + STEP_DB)
    assert raised_target(22.0, None, 1.0) == pytest.approx(22.0 + 1.0 + STEP_DB)


def _judge(bound: float, *, last: bool = False):
    from mfdeploy.harness.int8_check import _Judge

    expected = np.linspace(-5, 5, 40, dtype=np.float32).reshape(4, 10)
    checks: list[dict] = []
    judge = _Judge(lambda: (np.zeros((4, 3, 2, 2), np.float32), expected), bound, 22.0, checks,
                   last=last)  # fmt: skip
    return judge, expected, checks


PLAN = {"chosen_by": "measured", "float_modules": ["stem"], "planned_sqnr_db": 22.5,
        "candidates": [{"float": True}, {"float": False}]}  # fmt: skip


def test_a_graph_below_the_bound_is_refused_before_its_conversion():
    from mfdeploy.harness.int8_check import _Short

    judge, expected, checks = _judge(30.0)
    noisy = expected + 0.1 * np.abs(expected).max()  # 20 dB
    with pytest.raises(_Short) as short:
        judge.graph(lambda photos: noisy, PLAN)
    assert short.value.got_db == pytest.approx(sqnr_db(expected, noisy))
    assert short.value.planned_db == 22.5 and short.value.photos == 4
    assert checks == [{"checked_on": judge.GRAPH, "simulated_target_db": 22.0,
                       "float_modules": 1, "sqnr_db": round(short.value.got_db, 2)}]  # fmt: skip
    judge.graph(lambda photos: expected + 1e-4, PLAN)  # well above: no raise, recorded
    assert len(checks) == 2 and checks[1]["sqnr_db"] > 30.0
    last, _, kept = _judge(30.0, last=True)
    last.graph(lambda photos: noisy, PLAN)  # the last attempt converts whatever it has
    assert len(kept) == 1
    all_float, _, kept = _judge(30.0)
    all_float.graph(lambda photos: noisy, {**PLAN, "candidates": [{"float": True}]})
    assert len(kept) == 1
    given, _, kept = _judge(30.0)
    given.graph(lambda photos: noisy, {**PLAN, "chosen_by": "given"})  # not measured: no check
    assert kept == []


@pytest.mark.parametrize(
    "target", ["tflite", pytest.param("executorch", marks=pytest.mark.slow)]
)  # fmt: skip
def test_the_exporters_graph_check_sees_what_the_artifact_computes(tmp_path, target):
    """The function an exporter hands the graph check maps NCHW photos to the quantised
    graph's logits (TFLite's graph takes NHWC): on the held-out photos its SQNR is within
    3 dB of the artifact's own on its runtime."""
    from mfdeploy.export import source_model
    from mfdeploy.harness.int8_check import held_out_photos, reference_logits

    source = source_model(None, "26m", str(WEIGHTS_26M), None)
    photos = held_out_photos(source, None, None)
    expected = reference_logits(source, photos)
    seen: list[np.ndarray] = []

    def check(run, plan):
        assert plan["chosen_by"] == "measured"
        seen.append(run(photos))

    out_dir, _ = export_artifact(
        target, precision="int8", source=source, out=tmp_path / "a", int8_graph_check=check
    )
    (graph,) = seen
    assert graph.shape == expected.shape
    graph_db = sqnr_db(expected, graph)
    artifact_db = sqnr_db(expected, open_runtime(out_dir).run(photos).astype(np.float32))
    assert graph_db > 15.0 and abs(graph_db - artifact_db) < 3.0, (graph_db, artifact_db)


@pytest.mark.slow
def test_an_unreachable_bound_converts_once(tmp_path, monkeypatch):
    """TFLite: the graph check refuses the first float set before its conversion; only the
    set with every candidate float is converted and checked on LiteRT."""
    import litert_torch

    conversions = []
    convert = litert_torch.convert
    monkeypatch.setattr(
        litert_torch, "convert", lambda *a, **k: conversions.append(1) or convert(*a, **k)
    )
    _, manifest = export_checked(
        "tflite", "26m", precision="int8", weights=str(WEIGHTS_26M), out=tmp_path / "a",
        bound_db=150.0,
    )  # fmt: skip
    exports = manifest.extra["int8_plan"]["runtime_check"]["exports"]
    assert [e["checked_on"] for e in exports] == [
        "the PT2E graph in PyTorch", "the PT2E graph in PyTorch", "litert (the artifact)"
    ]  # fmt: skip
    assert exports[0]["float_modules"] < exports[1]["float_modules"] == exports[2]["float_modules"]
    assert len(conversions) == 1
