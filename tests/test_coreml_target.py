"""Core ML target on 26m: the converted programs are executed (MIL executor on Linux).

Exports happen once per module (fixture weights, deploy form); each precision is compared
with the PyTorch reference on the fixture inputs and the evaluation photos.
"""

from __future__ import annotations

import json
import platform

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("coremltools")

from mfdeploy.artifact import Manifest  # noqa: E402
from mfdeploy.cli import main  # noqa: E402
from mfdeploy.export import export_artifact  # noqa: E402
from mfdeploy.export.common import calibration_inputs, export_module  # noqa: E402
from mfdeploy.export.coreml import COMPRESSED_OP, WEIGHT_THRESHOLD, on_int8_grid  # noqa: E402
from mfdeploy.export.coreml_mil import tensor_rank  # noqa: E402
from mfdeploy.export.int8_bias import int8_grid  # noqa: E402
from mfdeploy.export.weight_only import compressed_layers, weight_plan  # noqa: E402
from mfdeploy.harness.inspect import audit  # noqa: E402
from mfdeploy.metrics import sqnr_db  # noqa: E402
from mfdeploy.models import load_source  # noqa: E402
from mfdeploy.photos import resolve_images  # noqa: E402
from mfdeploy.preprocessing import preprocess_batch  # noqa: E402
from mfdeploy.runtimes import open_runtime  # noqa: E402
from mfdeploy.runtimes.mil_executor import MilExecutor  # noqa: E402
from tests.conftest import FIXTURES, max_abs  # noqa: E402
from tests.test_mil_executor import OP_CASES  # noqa: E402

WEIGHTS = FIXTURES / "mobile_former_26m.safetensors"


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def source():
    return load_source("26m", WEIGHTS)


# Evaluation photos the programs run on: the MIL executor takes 0.1-0.5 s per image and
# program, so a spread-out 48 of the ~230 (the verify matrix runs 32 per artifact); with the
# two fixture inputs, fp16's 98 % top-1 agreement allows one flip, as it did with 64.
NUM_PHOTOS = 48


@pytest.fixture(scope="module")
def inputs(fixture_inputs, source) -> np.ndarray:
    paths = resolve_images(None, "evaluation", NUM_PHOTOS)
    photos = preprocess_batch(paths, source.preprocessing)
    return np.concatenate([fixture_inputs, photos]).astype(np.float32)


@pytest.fixture(scope="module")
def reference(source, inputs) -> np.ndarray:
    with torch.no_grad():
        return source.model(torch.from_numpy(inputs)).numpy()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, source, exported):
    """One export per precision / input kind, shared by the tests below."""
    made = {p: exported("coreml", p) for p in ("fp32", "fp16", "int8-weights", "int8")}
    made["image-classifier"], _ = export_artifact(
        "coreml",
        "26m",
        precision="fp32",
        out=tmp_path_factory.mktemp("coreml") / "image-classifier",
        source=source,
        image_input=True,
        classifier=True,
    )
    return made


@pytest.fixture(scope="module")
def outputs(artifacts, inputs):
    results = {}
    for key, path in artifacts.items():
        runtime = open_runtime(path)
        results[key] = (runtime.run(inputs), runtime.info())
    return results


def test_artifact_layout_and_manifest(artifacts):
    path = artifacts["fp16"]
    assert (path / "model.mlpackage").is_dir()
    assert (path / "model.mlpackage" / "Manifest.json").is_file()
    manifest = Manifest.load(path)
    assert manifest.target == "coreml" and manifest.form == "deploy"
    extra = manifest.extra["coreml"]
    assert extra["format"] == "mlprogram" and extra["minimum_ios"] == 16
    assert extra["max_tensor_rank"] <= 4
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_w8a8_manifest_says_ios17(artifacts, source):
    manifest = Manifest.load(artifacts["int8"])
    extra = manifest.extra["coreml"]
    assert extra["minimum_ios"] == 17
    assert extra["w8a8"]["calibration_images"] >= 1
    # where every int8 target records its float set, and the runtime check looks for it
    plan = manifest.extra["int8_plan"]
    assert plan["chosen_by"] == "measured"
    # every int8 convolution / linear, and none inside a float module, is bias-corrected
    deploy = export_module(source, "deploy")
    layers = [n for n, m in deploy.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    floats = plan["float_modules"]
    inside = [n for n in layers if any(n == f or n.startswith(f + ".") for f in floats)]
    assert plan["bias_corrected_layers"] == len(layers) - len(inside) > 0


def test_metadata_is_set(artifacts, source):
    import coremltools as ct

    model = ct.models.MLModel(str(artifacts["fp32"] / "model.mlpackage"), skip_model_load=True)
    meta = model.user_defined_metadata
    assert meta["variant"] == "26m"
    assert meta["source_checkpoint_sha256"] == source.checkpoint_sha256
    assert meta["mfdeploy_version"]
    assert model.author and model.license and model.short_description and model.version


def test_programs_have_rank_at_most_4_and_only_executor_ops(artifacts):
    """Every tensor rank <= 4, and every op type in the exported programs is tested op by op."""
    seen = set()
    for path in artifacts.values():
        executor = MilExecutor.from_mlpackage(path / "model.mlpackage")
        for op in executor.operations:
            seen.add(op.op_type)
            for var in op.outputs:
                assert tensor_rank(var) <= 4, (op.op_type, var.name)
    untested = seen - OP_CASES - {"classify"}  # classify: checked by the classifier test below
    assert not untested, f"op types without an op-by-op executor test: {untested}"


def test_inspect_audits_the_saved_package(artifacts, capsys):
    """`mfdeploy inspect` reads the .mlpackage itself (not the manifest's record of it)."""
    report = audit(artifacts["fp32"])
    assert report.format == "coreml" and report.passed, report.violations
    assert report.max_rank <= 4 and report.ops.get("conv", 0) > 0
    assert report.model_bytes > 1_000_000
    assert main(["inspect", str(artifacts["fp32"])]) == 0
    assert "coreml" in capsys.readouterr().out


def test_executor_is_what_ran(outputs):
    expected = "coreml-runtime" if platform.system() == "Darwin" else "mil-executor"
    assert {info.executor for _, info in outputs.values()} == {expected}


def test_fp32_matches_pytorch(outputs, reference):
    out, _ = outputs["fp32"]
    assert max_abs(out, reference) <= 1e-4


def test_fp16_cosine_and_top1(outputs, reference):
    out, _ = outputs["fp16"]
    assert cosine(out, reference).min() >= 0.999
    # Same top-1 on the fixture inputs; among the photos a near-tie may flip under fp16.
    fixture = slice(0, 2)  # `inputs` starts with the two fixture images
    assert (out[fixture].argmax(1) == reference[fixture].argmax(1)).all()
    assert (out.argmax(1) == reference.argmax(1)).mean() >= 0.98


def test_int8_weights_cosine(outputs, reference):
    """verify's bound on the photos; the two fixture inputs are Gaussian noise, which the
    biases corrected on photos fit less well (0.993 / 0.995 measured), as verify judges
    calibrated precisions on photos only."""
    out, _ = outputs["int8-weights"]
    photos = slice(2, None)  # `inputs` starts with the two fixture inputs
    assert cosine(out[photos], reference[photos]).min() >= 0.995
    assert cosine(out, reference).min() >= 0.99


def _int8_weights_module(source, float_modules: list[str]) -> nn.Module:
    """The deploy form with the weights-only plan of `float_modules` applied in PyTorch."""
    module = export_module(source, "deploy").eval()
    photos = calibration_inputs(None, None, source.preprocessing)
    spec = ",".join(float_modules) or "none"
    return weight_plan(module, photos, spec=spec, min_elements=WEIGHT_THRESHOLD).int8_module(module)


def test_int8_weights_runs_the_plans_corrected_weights(artifacts, source, inputs, outputs):
    """The program computes the plan's int8 weights and corrected biases, as simulated in
    PyTorch: closer to that than to float32 by more than float16's own noise."""
    extra = Manifest.load(artifacts["int8-weights"]).extra
    plan = extra["int8_plan"]
    assert plan["chosen_by"] == "measured" and plan["measured_on"].startswith("int8 weights")
    layers = compressed_layers(export_module(source, "deploy"), WEIGHT_THRESHOLD)
    assert plan["bias_corrected_layers"] == len(layers) - sum(
        1 for p in layers if any(p == f or p.startswith(f + ".") for f in plan["float_modules"])
    )
    assert extra["coreml"]["op_histogram"][COMPRESSED_OP] >= plan["bias_corrected_layers"]
    with torch.no_grad():
        simulated = _int8_weights_module(source, plan["float_modules"])(torch.from_numpy(inputs))
    out, _ = outputs["int8-weights"]
    fp32, _ = outputs["fp32"]
    assert sqnr_db(simulated.numpy(), out) >= sqnr_db(fp32, out) + 4.0


def test_int8_weights_float_modules_keep_float16_weights(tmp_path, source, artifacts):
    every = Manifest.load(artifacts["int8-weights"]).extra
    path, manifest = export_artifact(
        "coreml",
        "26m",
        precision="int8-weights",
        out=tmp_path / "w8",
        source=source,
        int8_float="blocks.0",
    )
    plan = manifest.extra["int8_plan"]
    assert plan["chosen_by"] == "given" and plan["float_modules"] == ["blocks.0"]
    inside = [
        p
        for p in compressed_layers(export_module(source, "deploy"), WEIGHT_THRESHOLD)
        if p.startswith("blocks.0.")
    ]
    assert inside and plan["bias_corrected_layers"] == (
        every["int8_plan"]["bias_corrected_layers"] - len(inside)
    )
    histogram = manifest.extra["coreml"]["op_histogram"]
    assert histogram[COMPRESSED_OP] == every["coreml"]["op_histogram"][COMPRESSED_OP] - len(inside)
    assert manifest.extra["coreml"]["weights"].endswith("; float16 in blocks.0 (given)")
    assert "float16 in" not in every["coreml"]["weights"]  # none kept float16 by default here


def test_weights_on_their_int8_grid_are_found_after_a_channel_scaling():
    rng = np.random.default_rng(0)
    weight = torch.from_numpy(rng.normal(size=(64, 32, 3, 3)).astype(np.float32))
    on_grid = int8_grid(weight).numpy() * rng.uniform(-3, 3, size=(64, 1, 1, 1))
    on_grid[5] *= 1e-6  # a channel float16 keeps in subnormals
    assert on_int8_grid(on_grid.astype(np.float16))
    assert not on_int8_grid(weight.numpy().astype(np.float16))
    nearly = int8_grid(weight).numpy()
    nearly[3, 0, 0, 0] += 0.4 * np.abs(nearly[3]).max() / 127  # one weight off its grid
    assert not on_int8_grid(nearly)


def test_w8a8_sqnr_against_fp32(outputs):
    fp32, _ = outputs["fp32"]
    out, _ = outputs["int8"]
    assert sqnr_db(fp32, out) >= 18.0


def test_image_input_classifier_equals_tensor_model(outputs, artifacts):
    """ImageType + in-model normalisation + softmax == the tensor-input fp32 model."""
    tensor_logits, _ = outputs["fp32"]
    log_probs, _ = outputs["image-classifier"]
    # Probabilities within 1e-4 (measured 5.8e-5 over the photos). Log-probabilities of the
    # ~1e-4 tail classes magnify float32 rounding of the program's softmax, so not those.
    probs = torch.softmax(torch.from_numpy(tensor_logits), dim=1).numpy()
    assert max_abs(np.exp(log_probs), probs) <= 1e-4
    assert (log_probs.argmax(1) == tensor_logits.argmax(1)).all()
    manifest = Manifest.load(artifacts["image-classifier"])
    assert manifest.input.dtype == "uint8" and manifest.extra["coreml"]["classifier"]


def test_classifier_labels_in_program(artifacts):
    import coremltools as ct

    spec = ct.models.MLModel(
        str(artifacts["image-classifier"] / "model.mlpackage"), skip_model_load=True
    ).get_spec()
    assert spec.description.predictedFeatureName == "classLabel"
    assert spec.description.input[0].type.WhichOneof("Type") == "imageType"


# ----------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "args",
    [
        ["--precision", "int9"],
        ["--precision", "int8", "--min-ios", "16"],
        ["--precision", "int8", "--calib", "{empty}"],
        ["--precision", "int8-weights", "--calib", "{empty}"],
        ["--precision", "int8-weights", "--calib-count", "1"],  # none left to hold out
        ["--precision", "int8-weights", "--int8-float", "blocks.99"],
    ],
)
def test_bad_input_is_one_line_exit_2(args, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    argv = ["export", "--target", "coreml", "--variant", "26m", "--out", str(out)]
    argv += [a.replace("{empty}", str(empty)) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("mfdeploy: error:")
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # no staging dir left


def test_manifest_is_valid_json(artifacts):
    for path in artifacts.values():
        json.loads((path / "manifest.json").read_text())
