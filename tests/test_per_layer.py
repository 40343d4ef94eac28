"""`verify --per-layer` on ONNX Runtime, LiteRT and Core ML (MIL executor), 26m fixture weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mfdeploy.artifact import Manifest, seal
from mfdeploy.errors import MfdeployError
from mfdeploy.export import export_artifact
from mfdeploy.export import scopes as A
from mfdeploy.harness.per_layer import block_report, capture, runtime_anchors
from mfdeploy.harness.verify import verify_artifact
from mfdeploy.models import create_model, get_family
from mfdeploy.models.mobile_former_layers import anchor_layouts, module_anchors
from mfdeploy.runtimes import open_runtime, runtime_class
from tests.conftest import WEIGHTS_26M
from tests.harness_helpers import run_cli

TARGETS = ("onnx", "tflite", "coreml")
FP32_MIN_SQNR_DB = 60.0


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("per_layer")


def _require_runtime(target: str) -> None:
    try:
        runtime_class(target)
    except MfdeployError as exc:
        pytest.skip(f"{target}: {exc}")


def _fp32(target: str, exported) -> Path:
    """The session's shared fp32 export (26m fixture weights) of an installed target."""
    _require_runtime(target)
    return exported(target, "fp32")


@pytest.fixture(scope="module")
def reference():
    return create_model("26m", weights=WEIGHTS_26M)


@pytest.fixture(scope="module")
def sample(fixture_inputs) -> np.ndarray:
    return np.ascontiguousarray(fixture_inputs[:1], dtype=np.float32)


def _export(target: str, out: Path, precision: str = "fp32", **options) -> Path:
    _require_runtime(target)
    out_dir = out / f"{target}-{precision}"
    if not out_dir.exists():
        export_artifact(
            target, "26m", precision=precision, weights=WEIGHTS_26M, out=out_dir, **options
        )
    return out_dir


@pytest.mark.parametrize("target", TARGETS)
def test_fp32_every_anchor_at_fp32_parity(target, exported, reference, sample):
    runtime = open_runtime(_fp32(target, exported))
    expected = capture(reference, sample, get_family("mobile_former"))
    found = runtime_anchors(runtime, sample)
    assert set(found) == set(expected)  # stem, every block's anchors, final_bridge, head
    for anchor, value in found.items():  # reference layout: NCHW maps, (B, M, d) tokens
        assert value.shape == expected[anchor].shape and value.dtype == np.float32, anchor
    rows = block_report(expected, found)
    low = {r["block"]: r["sqnr_db"] for r in rows if r["sqnr_db"] < FP32_MIN_SQNR_DB}
    assert not low, low


def test_coreml_names_rederived_for_artifacts_without_them(artifacts, exported):
    """Artifacts exported before the manifest recorded MIL names get the same mapping."""
    artifact = _fp32("coreml", exported)
    recorded = Manifest.load(artifact).extra["coreml"]["anchors"]
    old = artifacts / "coreml-old"
    shutil.copytree(artifact, old)
    manifest = Manifest.load(old)
    del manifest.extra["coreml"]["anchors"]
    seal(old, manifest)  # an older artifact's manifest, sealed as exported
    rederived = open_runtime(old)
    assert rederived.recorded_anchors() is None
    reference = create_model("26m", weights=WEIGHTS_26M)
    sample = np.zeros((1, 3, 224, 224), np.float32)
    found = runtime_anchors(rederived, sample)
    assert set(found) >= set(recorded)
    assert len(recorded) == len(module_anchors(reference.variant))


@pytest.fixture(scope="module")
def int8_artifact(artifacts) -> Path:
    return _export("onnx", artifacts, "int8", calib_count=4)


def test_int8_rows_worst_first_and_drift_localised(int8_artifact):
    result = verify_artifact(int8_artifact, weights=WEIGHTS_26M, per_layer=True, num_images=2)
    rows = result.per_layer
    assert {r["block"] for r in rows} >= {"stem", "block1.former", "final_bridge", "head"}
    sqnr = [r["sqnr_db"] for r in rows]
    assert None not in sqnr and sqnr == sorted(sqnr)
    assert sqnr[0] < sqnr[-1] - 10.0  # the worst block is clearly worse than the best


def test_cli_per_layer_json_and_table(int8_artifact, capsys):
    argv = ["verify", str(int8_artifact), "--weights", str(WEIGHTS_26M), "--num-images", "1"]
    code, out, _ = run_cli([*argv, "--per-layer", "--json"], capsys)
    rows = json.loads(out)["per_layer"]
    assert code in (0, 1) and rows and {"block", "sqnr_db", "max_abs", "note"} <= set(rows[0])
    code, out, _ = run_cli([*argv, "--per-layer"], capsys)
    assert "per block, worst first" in out and "block1.bridge_out" in out


def test_layout_conversion_keeps_only_unambiguous_matches():
    nhwc = A.with_nhwc(anchor_layouts("deploy"))
    x = np.arange(2 * 5 * 6 * 3, dtype=np.float32).reshape(2, 5, 6, 3)
    assert A.to_reference(x, (2, 3, 5, 6), nhwc).shape == (2, 3, 5, 6)
    assert A.to_reference(x, (2, 3, 5, 7), nhwc) is None  # no layout gives the shape
    assert A.to_reference(np.zeros((1, 4, 4, 4)), (1, 4, 4, 4), nhwc) is None  # ambiguous
    tokens = np.zeros((3, 2, 8))  # reference form: sequence-first
    assert A.to_reference(tokens, (2, 3, 8), anchor_layouts("reference")).shape == (2, 3, 8)
    assert A.to_reference(tokens, (2, 3, 8), anchor_layouts("deploy")) is None
    found = A.pick({"stem": ["a", "b"]}, {"a": np.zeros((1, 2)), "b": x}.get, {"stem": x.shape}, {})
    assert found["stem"].shape == x.shape  # the wrongly shaped candidate is skipped


def test_module_scopes_find_inputs_and_outputs():
    # x -> [m.a] -> t1 -> [unscoped] -> t2 -> [n] -> t3 ; t1 also read by [m.b] -> t4 -> [n]
    graph = A.Graph(
        [
            A.Node(frozenset(["m.a"]), ("x",), ("t1",)),
            A.Node(frozenset(), ("t1",), ("t2",)),
            A.Node(frozenset(["m.b"]), ("t1",), ("t4",)),
            A.Node(frozenset(["n"]), ("t2", "t4"), ("t3",)),
        ],
        inputs={"x"},
        outputs={"t3"},
    )
    assert graph.candidates("m", "in") == ["x"]
    assert graph.candidates("m", "out") == ["t4", "t1"]  # last produced first
    assert graph.candidates("n", "in") == ["t2", "t4"]


def test_litert_location_below_an_unknown_module_belongs_to_its_known_ancestor():
    """The TFLite exporter's rewrites add modules the structure model does not have (the
    depthwise split's `repeat`): their tensors belong to the deepest module it knows."""
    table = {"Lite_0": "lite.0", "Lite_0/Conv2d_dw": "lite.0.dw"}
    known = "Net_model/Lite_0/Conv2d_dw"
    split = "Net_model/Lite_0/DepthwiseWithMultiplier_dw/Conv2d_repeat"
    assert A.litert_scopes(known, table, "Net") == {"lite.0.dw"}
    assert A.litert_scopes(split, table, "Net") == {"lite.0"}
    assert A.litert_scopes(f"{split};{known}", table, "Net") == {"lite.0", "lite.0.dw"}
    assert A.litert_scopes("Net_model/Other_x", table, "Net") == frozenset()
