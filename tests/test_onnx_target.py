"""ONNX target on 26m with the checkpoint-compatible fixture weights, run on ONNX Runtime."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest

from mfdeploy.artifact import Manifest
from mfdeploy.errors import MfdeployError
from mfdeploy.export import export_artifact
from mfdeploy.graph_audit import audit
from mfdeploy.metrics import cosine, sqnr_db
from mfdeploy.photos import resolve_images
from mfdeploy.preprocessing import load_image, preprocess
from mfdeploy.runtimes import open_runtime
from tests.conftest import WEIGHTS_26M, max_abs

pytest.importorskip("onnxruntime")
WEIGHTS = WEIGHTS_26M


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx")
    return {
        p: export_artifact("onnx", "26m", precision=p, weights=WEIGHTS, out=root / p)[0]
        for p in ("fp32", "fp16", "int8")
    }


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    return np.stack([preprocess(load_image(p)) for p in resolve_images(None, "evaluation")])


def test_fp32_matches_pytorch(artifacts, reference_26m, fixture_inputs, photos):
    runtime = open_runtime(artifacts["fp32"], threads=1)
    assert max_abs(runtime.run(fixture_inputs), reference_26m(fixture_inputs)) <= 1e-4
    assert max_abs(runtime.run(photos), reference_26m(photos)) <= 1e-4


def test_fp16_keeps_cosine_and_top1(artifacts, reference_26m, fixture_inputs):
    runtime = open_runtime(artifacts["fp16"])
    out, ref = runtime.run(fixture_inputs), reference_26m(fixture_inputs)
    assert cosine(ref, out) >= 0.9995
    assert np.array_equal(out.argmax(1), ref.argmax(1))
    model = onnx.load(str(artifacts["fp16"] / "model.onnx"))
    floats = {t.data_type for t in model.graph.initializer}
    assert onnx.TensorProto.FLOAT16 in floats


@pytest.mark.xfail(
    strict=True,
    reason="open: full int8 of the random-weight fixture reaches ~10-17 dB SQNR, not 20 dB",
)
def test_int8_sqnr_and_cosine_against_fp32(artifacts, photos):
    fp32 = open_runtime(artifacts["fp32"]).run(photos)
    int8 = open_runtime(artifacts["int8"]).run(photos)
    assert sqnr_db(fp32, int8) >= 20.0
    assert cosine(fp32, int8) >= 0.99


def test_int8_is_really_quantized_and_calibrated_on_calibration_photos(artifacts, photos):
    manifest = Manifest.load(artifacts["int8"])
    assert manifest.extra["calibration_images"] == len(resolve_images(None, "calibration"))
    ops = {n.op_type for n in onnx.load(str(artifacts["int8"] / "model.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # Still a classifier of the same function: far from noise.
    fp32 = open_runtime(artifacts["fp32"]).run(photos)
    int8 = open_runtime(artifacts["int8"]).run(photos)
    assert cosine(fp32, int8) > 0.9


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_deploy_graph_passes_the_audit(artifacts, precision):
    report = audit(artifacts[precision])
    assert report.passed, report.violations
    assert report.max_rank <= 4


def test_reference_form_fails_the_audit(tmp_path):
    path, _ = export_artifact(
        "onnx", "26m", form="reference", out=tmp_path / "ref", ort_format=False
    )
    report = audit(path)
    assert not report.passed
    assert report.max_rank == 5 or "Gather" in report.ops


def test_manifest_metadata_and_ort_format(artifacts):
    path = artifacts["fp32"]
    manifest = Manifest.load(path)
    assert manifest.target == "onnx" and manifest.form == "deploy"
    assert manifest.input.shape == [1, 3, 224, 224]
    assert (path / manifest.extra["ort_file"]).stat().st_size > 100_000
    props = {p.key: p.value for p in onnx.load(str(path / "model.onnx")).metadata_props}
    assert props["variant"] == "26m"
    assert props["source_checkpoint_sha256"] == manifest.source_checkpoint_sha256
    assert props["input_layout"] == "NCHW" and props["labels_file"] == "labels.txt"
    eps = manifest.extra["mobile_execution_providers"]
    assert eps["nnapi"]["nodes"] > 0 and eps["coreml_mlprogram"]["supported_nodes"] > 0


def test_ort_mobile_file_runs(artifacts, fixture_inputs):
    import onnxruntime as ort

    session = ort.InferenceSession(str(artifacts["fp32"] / "model.ort"))
    out = session.run(None, {"input": fixture_inputs[:1]})[0]
    expected = open_runtime(artifacts["fp32"]).run(fixture_inputs[:1])
    assert max_abs(out, expected) <= 1e-4


def test_dynamic_batch(tmp_path, fixture_inputs):
    path, manifest = export_artifact(
        "onnx", "26m", weights=WEIGHTS, out=tmp_path / "dyn", dynamic_batch=True, ort_format=False
    )
    assert manifest.input.shape[0] == "batch"
    out = open_runtime(path).run(np.concatenate([fixture_inputs, fixture_inputs]))
    assert out.shape == (4, 1000)


def test_bad_calibration_dir_leaves_nothing(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    out = tmp_path / "never"
    with pytest.raises(MfdeployError, match="no images"):
        export_artifact("onnx", "26m", precision="int8", calib=str(empty), out=out)
    assert not out.exists()


def test_unreadable_calibration_image_is_clear(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.jpg").write_text("garbage")
    with pytest.raises(MfdeployError, match="not a readable image"):
        export_artifact("onnx", "26m", precision="int8", calib=str(bad), out=tmp_path / "o")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--precision", "int4"], "no precision"),
        (["--target", "onnx2"], "invalid choice"),
        (["--precision", "int8", "--calib", "/nonexistent/photos"], "no such image directory"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path, args, message):
    argv = ["export", "--variant", "26m", "--out", str(tmp_path / "x")]
    if "--target" not in args:
        argv += ["--target", "onnx"]
    proc = subprocess.run(
        [sys.executable, "-m", "mfdeploy", *argv, *args], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_inspect_cli(artifacts):
    proc = subprocess.run(
        [sys.executable, "-m", "mfdeploy", "inspect", str(artifacts["fp32"]), "--json"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert '"passed": true' in proc.stdout
