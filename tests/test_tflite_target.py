"""TFLite target on 26m with the checkpoint-compatible fixture weights, run on LiteRT."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mfdeploy.artifact import Manifest
from mfdeploy.export import export_artifact
from mfdeploy.graph_audit import audit
from mfdeploy.metrics import cosine
from mfdeploy.photos import resolve_images
from mfdeploy.preprocessing import load_image, preprocess
from mfdeploy.runtimes import open_runtime
from tests.conftest import WEIGHTS_26M, max_abs

pytest.importorskip("litert_torch")
WEIGHTS = WEIGHTS_26M


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("tflite")
    return {
        p: export_artifact("tflite", "26m", precision=p, weights=WEIGHTS, out=root / p)[0]
        for p in ("fp32", "fp16", "int8-weights")
    }


def test_fp32_matches_pytorch_on_fixture_and_photos(artifacts, reference_26m, fixture_inputs):
    photos = np.stack([preprocess(load_image(p)) for p in resolve_images(None, "evaluation")])
    runtime = open_runtime(artifacts["fp32"], threads=1)
    assert max_abs(runtime.run(fixture_inputs), reference_26m(fixture_inputs)) <= 1e-4
    # On all evaluation photos (logits up to ~26) LiteRT's float32 kernels, XNNPACK or builtin,
    # sit 1.8-2.8e-4 from a float64 run, PyTorch float32 4.4e-5: rounding, not a conversion
    # fault. The bound there is relative to the logit scale (1e-5), still far below fp16 noise.
    ref = reference_26m(photos)
    assert max_abs(runtime.run(photos), ref) <= 1e-5 * max(1.0, float(np.abs(ref).max()))


def test_fp16_keeps_cosine_and_top1(artifacts, reference_26m, fixture_inputs):
    out, ref = open_runtime(artifacts["fp16"]).run(fixture_inputs), reference_26m(fixture_inputs)
    assert cosine(ref, out) >= 0.9995
    assert np.array_equal(out.argmax(1), ref.argmax(1))
    assert (
        artifacts["fp16"].joinpath("model.tflite").stat().st_size
        < 0.6 * artifacts["fp32"].joinpath("model.tflite").stat().st_size
    )


def test_int8_weights_shrinks_the_model_and_still_classifies(
    artifacts, reference_26m, fixture_inputs
):
    size = artifacts["int8-weights"].joinpath("model.tflite").stat().st_size
    assert size < 0.4 * artifacts["fp32"].joinpath("model.tflite").stat().st_size
    out = open_runtime(artifacts["int8-weights"]).run(fixture_inputs)
    assert cosine(reference_26m(fixture_inputs), out) > 0.9


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8-weights"])
def test_builtin_ops_only_and_rank_at_most_4(artifacts, precision):
    report = audit(artifacts[precision])
    assert report.passed, report.violations
    assert report.max_rank <= 4


def test_nhwc_input_by_default_without_input_transpose(artifacts):
    from ai_edge_litert.interpreter import Interpreter

    manifest = Manifest.load(artifacts["fp32"])
    assert manifest.input.layout == "NHWC" and manifest.input.shape == [1, 224, 224, 3]
    interpreter = Interpreter(model_path=str(artifacts["fp32"] / "model.tflite"))
    assert list(interpreter.get_input_details()[0]["shape"]) == [1, 224, 224, 3]
    input_index = interpreter.get_input_details()[0]["index"]
    consumers = [op for op in interpreter._get_ops_details() if input_index in op["inputs"]]
    assert consumers and all(op["op_name"] != "TRANSPOSE" for op in consumers)


def test_nchw_layout_option(tmp_path, fixture_inputs, reference_26m):
    path, manifest = export_artifact(
        "tflite", "26m", weights=WEIGHTS, out=tmp_path / "nchw", layout="nchw"
    )
    assert manifest.input.shape == [1, 3, 224, 224]
    assert max_abs(open_runtime(path).run(fixture_inputs), reference_26m(fixture_inputs)) <= 1e-4


def test_cli_unknown_precision_is_one_line_exit_2(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mfdeploy",
            "export",
            "--target",
            "tflite",
            "--variant",
            "26m",
            "--precision",
            "int4",
            "--out",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
