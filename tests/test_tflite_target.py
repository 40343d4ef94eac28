"""TFLite target on 26m with the checkpoint-compatible fixture weights, run on LiteRT."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from mfdeploy.artifact import Manifest, path_sha256
from mfdeploy.errors import MfdeployError
from mfdeploy.export import export_artifact
from mfdeploy.export.common import DEFAULT_CALIB_COUNT
from mfdeploy.export.depthwise_split import split_channel_multipliers
from mfdeploy.harness.inspect import audit
from mfdeploy.metrics import cosine, sqnr_db
from mfdeploy.models.source import export_module, load_source
from mfdeploy.photos import resolve_images
from mfdeploy.preprocessing import load_image, preprocess
from mfdeploy.runtimes import open_runtime
from tests.conftest import WEIGHTS_26M, max_abs

pytest.importorskip("litert_torch")
WEIGHTS = WEIGHTS_26M


@pytest.fixture(scope="module")
def artifacts(exported):
    return {p: exported("tflite", p) for p in ("fp32", "fp16", "int8-weights")}


def test_fp32_matches_pytorch_on_fixture_and_photos(artifacts, reference_26m, fixture_inputs):
    photos = np.stack([preprocess(load_image(p)) for p in resolve_images(None, "evaluation")])
    runtime = open_runtime(artifacts["fp32"], threads=1)
    assert max_abs(runtime.run(fixture_inputs), reference_26m(fixture_inputs)) <= 1e-4
    # Every evaluation photo (logits up to ~26). With one flat 3136-term sum in the first
    # Mobile->Former bridges (pixel_sum=flat) this was 2.1e-4: see deploy.LONG_SUM.
    assert max_abs(runtime.run(photos), reference_26m(photos)) <= 1e-4


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
    # the wide GEMMs' measurement is in the manifest, at the documented default target
    wide = Manifest.load(artifacts["int8-weights"]).extra["int8_weights_wide_gemms"]
    assert wide["target_db"] == 22.0 and 0 <= wide["kept"] <= wide["candidates"]
    assert wide["sqnr_db"] is None or wide["sqnr_db"] >= wide["target_db"]


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8-weights"])
def test_builtin_ops_only_and_rank_at_most_4(artifacts, precision):
    report = audit(artifacts[precision])
    assert report.passed, report.violations
    assert report.max_rank <= 4
    # every op delegated, no hand-overs (int8-weights: qd8 FULLY_CONNECTED / CONV_2D only,
    # the depthwise convolutions, which have no hybrid XNNPACK kernel, stay float)
    assert report.xnnpack_partitions == 1


def test_depthwise_multipliers_split_where_the_repeat_is_cheap(artifacts):
    """Each depthwise convolution with a channel multiplier k > 1 (a grouped IGEMM in XNNPACK)
    whose 1x1 channel repeat is cheap enough arrives in the .tflite as a repeat CONV_2D and a
    multiplier-1 DEPTHWISE_CONV_2D; the others keep their multiplier. Counted on the graph
    against the 26m deploy module's convolutions."""
    from ai_edge_litert.interpreter import Interpreter

    from mfdeploy.export.depthwise_split import MAX_REPEAT_MACS

    deploy = export_module(load_source("26m", WEIGHTS), "deploy")
    multiplier = [
        m.in_channels * m.stride[0] * m.stride[1]
        for m in deploy.modules()
        if isinstance(m, nn.Conv2d) and m.groups == m.in_channels < m.out_channels
    ]
    cheap = sum(macs <= MAX_REPEAT_MACS for macs in multiplier)
    assert cheap >= 1 and len(multiplier) > cheap  # 26m has both kinds
    interpreter = Interpreter(model_path=str(artifacts["fp32"] / "model.tflite"))
    shapes = {t["index"]: t["shape"] for t in interpreter.get_tensor_details()}
    kept = [
        op
        for op in interpreter._get_ops_details()
        if op["op_name"] == "DEPTHWISE_CONV_2D"
        and shapes[op["inputs"][1]][-1] > shapes[op["inputs"][0]][-1]  # filter 1 x kh x kw x out
    ]
    assert len(kept) == len(multiplier) - cheap
    manifest = Manifest.load(artifacts["fp32"])
    assert manifest.extra["depthwise_multiplier_splits"] == cheap


def test_nhwc_input_by_default_without_input_transpose(artifacts):
    from ai_edge_litert.interpreter import Interpreter

    manifest = Manifest.load(artifacts["fp32"])
    assert manifest.input.layout == "NHWC" and manifest.input.shape == [1, 224, 224, 3]
    interpreter = Interpreter(model_path=str(artifacts["fp32"] / "model.tflite"))
    assert list(interpreter.get_input_details()[0]["shape"]) == [1, 224, 224, 3]
    input_index = interpreter.get_input_details()[0]["index"]
    consumers = [op for op in interpreter._get_ops_details() if input_index in op["inputs"]]
    assert consumers and all(op["op_name"] != "TRANSPOSE" for op in consumers)


# an export of its own for one option (~1 min): `make test-all`
@pytest.mark.slow
def test_nchw_layout_option(tmp_path, fixture_inputs, reference_26m):
    path, manifest = export_artifact(
        "tflite", "26m", weights=WEIGHTS, out=tmp_path / "nchw", layout="nchw"
    )
    assert manifest.input.shape == [1, 3, 224, 224]
    assert max_abs(open_runtime(path).run(fixture_inputs), reference_26m(fixture_inputs)) <= 1e-4


def test_cli_export_console_holds_only_its_own_lines(tmp_path):
    """The converters' load-time and native chatter (torchao's CUDA kernels, absl's banner,
    the flatbuffer op count) stays off the console: what remains is mfdeploy's two lines.
    EfficientNet-Lite0: the same converter and chatter at half 26m's conversion time."""
    argv = [
        "export",
        "--target",
        "tflite",
        "--model",
        "efficientnet_lite0",
        "--out",
        str(tmp_path / "a"),
    ]
    # an empty cache directory: the converter really runs (no conversion of an earlier export)
    env = os.environ | {"MFDEPLOY_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "mfdeploy", *argv], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["converting", "wrote"], lines


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


# ---- int8 full integer (PT2E) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def photos():
    """Evaluation photos: never used for calibration (mfdeploy.photos splits them)."""
    return np.stack([preprocess(load_image(p)) for p in resolve_images(None, "evaluation")])


@pytest.fixture(scope="module")
def int8(exported):
    return exported("tflite", "int8")


def test_int8_sqnr_and_cosine_against_fp32_on_evaluation_photos(
    int8, artifacts, reference_26m, photos
):
    out = open_runtime(int8, threads=1).run(photos)
    fp32 = open_runtime(artifacts["fp32"], threads=1).run(photos)
    for reference in (reference_26m(photos), fp32):
        assert sqnr_db(reference, out) >= 18.0
        assert cosine(reference, out) >= 0.98


def test_int8_has_int8_io_with_params_in_manifest_and_runtime_gives_float_logits(int8, photos):
    from ai_edge_litert.interpreter import Interpreter

    manifest = Manifest.load(int8)
    interpreter = Interpreter(model_path=str(int8 / "model.tflite"))
    for spec, details in (
        (manifest.input, interpreter.get_input_details()[0]),
        (manifest.output, interpreter.get_output_details()[0]),
    ):
        assert spec.dtype == "int8" and details["dtype"] == np.int8
        assert (spec.scale, spec.zero_point) == pytest.approx(details["quantization"])
    assert manifest.input.layout == "NHWC" and manifest.input.shape == [1, 224, 224, 3]
    available = len(resolve_images(None, "calibration"))
    assert manifest.extra["calibration_images"] == min(available, DEFAULT_CALIB_COUNT)
    out = open_runtime(int8).run(photos[:2])
    assert out.dtype == np.float32 and out.shape == (2, 1000)


def test_int8_is_really_integer_and_builtin_only(int8, artifacts):
    from ai_edge_litert.interpreter import Interpreter

    report = audit(int8)
    assert report.passed, report.violations
    assert report.max_rank <= 4
    interpreter = Interpreter(model_path=str(int8 / "model.tflite"))
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    convs = [
        op
        for op in interpreter._get_ops_details()
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")
    ]
    int8_convs = [
        op
        for op in convs
        if tensors[op["inputs"][0]]["dtype"] == tensors[op["inputs"][1]]["dtype"] == np.int8
    ]
    # every convolution is int8 except those inside the measured float modules
    plan = Manifest.load(int8).extra["int8_plan"]
    assert plan["chosen_by"] == "measured" and plan["reached_target"]
    deploy, _ = split_channel_multipliers(export_module(load_source("26m", WEIGHTS), "deploy"))
    float_convs = sum(
        isinstance(m, nn.Conv2d)
        for name in plan["float_modules"]
        for m in deploy.get_submodule(name).modules()
    )
    assert len(convs) - len(int8_convs) <= float_convs
    # every int8 convolution / linear, and none inside a float module, is bias-corrected
    layers = [n for n, m in deploy.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    floats = plan["float_modules"]
    inside = [n for n in layers if any(n == f or n.startswith(f + ".") for f in floats)]
    assert plan["bias_corrected_layers"] == len(layers) - len(inside) > 0
    assert set(plan["float_modules"]) <= {c["module"] for c in plan["candidates"]}
    size = (int8 / "model.tflite").stat().st_size
    assert size < (artifacts["fp32"] / "model.tflite").stat().st_size


class _ConvsAndLinears(nn.Module):
    """conv -> conv -> linear -> linear, to keep one conv and one linear float."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 1)
        self.fc1, self.fc2 = nn.Linear(8, 16), nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv2(torch.relu(self.conv1(x.permute(0, 3, 1, 2)))))
        return self.fc2(torch.relu(self.fc1(x.mean(dim=(2, 3)))))


def test_int8_float_modules_get_int8_weights_where_they_outweigh_the_input(tmp_path):
    """The float modules' CONV_2D / FULLY_CONNECTED keep float input and output; those whose
    weights are >= 1/4 of their input carry int8 weights (qd8: fc1, 128 weights for 8
    inputs), the others stay float32 (conv2, 64 weights on an 8x8x8 map: quantising its input
    at run time would cost more than the int8 GEMM saves); the rest is static int8; the graph
    stays one XNNPACK partition."""
    from ai_edge_litert.interpreter import Interpreter

    from mfdeploy.export.tflite import full_integer_int8
    from mfdeploy.harness.inspect import xnnpack_partitions

    torch.manual_seed(0)
    module, example = _ConvsAndLinears().eval(), torch.zeros(1, 8, 8, 3)
    calibration = np.random.default_rng(0).standard_normal((16, 8, 8, 3)).astype(np.float32)
    path = tmp_path / "model.tflite"
    _, _, extra = full_integer_int8(
        module, example, calibration, path, float_modules=r"^(?:conv2|fc1)(?:\.|$)", float_io=True
    )
    interpreter = Interpreter(model_path=str(path), num_threads=1)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    ops = [
        (tensors[o["inputs"][0]]["dtype"], tensors[o["inputs"][1]]["dtype"])
        for o in interpreter._get_ops_details()
        if o["op_name"] in ("CONV_2D", "FULLY_CONNECTED")
    ]
    assert sorted((i.__name__, w.__name__) for i, w in ops) == [
        ("float32", "float32"), ("float32", "int8"), ("int8", "int8"), ("int8", "int8")
    ]  # fmt: skip
    assert "qd8) in 1 convs" in extra["float_module_weights"]
    assert xnnpack_partitions(Interpreter(model_path=str(path))) == 1


def test_int8_runs_in_one_xnnpack_partition(int8):
    # GELU / MAXIMUM the converter made int8 are float islands inside the delegate
    report = audit(int8)
    assert report.xnnpack_partitions == 1
    assert "GELU" in report.ops and "MAXIMUM" in report.ops


@pytest.mark.slow  # an EfficientNet-Lite0 int8 export (~2 min)
def test_efficientnet_lite0_int8_runs_in_one_xnnpack_partition(exported):
    assert audit(exported("tflite", "int8", "efficientnet_lite0")).xnnpack_partitions == 1


class _FloatOnlyOps(nn.Module):
    """linear -> GELU -> linear, MAXIMUM of two linears, linear: the shapes of the Former's
    MLP and the dynamic ReLU, small."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(16, 32), nn.Linear(32, 16)
        self.a, self.b, self.out = nn.Linear(16, 16), nn.Linear(16, 16), nn.Linear(16, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc2(nn.functional.gelu(self.fc1(x)))
        return self.out(torch.maximum(self.a(x), self.b(x)))


def test_float_islands_keep_int8_results_and_make_one_partition(tmp_path):
    import litert_torch
    from ai_edge_litert.interpreter import Interpreter
    from litert_torch.quantize.quant_config import QuantConfig

    from mfdeploy.export import tflite_int8 as q8
    from mfdeploy.harness.inspect import xnnpack_partitions

    torch.manual_seed(0)
    module, example = _FloatOnlyOps().eval(), torch.zeros(4, 16)
    calibration = np.random.default_rng(0).standard_normal((64, 16)).astype(np.float32)
    graph, quantizer = q8.quantize_pt2e(module, example, calibration, "")
    plain, islands = tmp_path / "plain.tflite", tmp_path / "islands.tflite"
    converted = litert_torch.convert(graph, (example,), quant_config=QuantConfig(quantizer))
    converted.export(str(plain))
    q8.set_io_types(plain, "float32", None, None)
    islands.write_bytes(plain.read_bytes())
    assert q8.float_islands(islands) == 2  # the int8 GELU and the int8 MAXIMUM
    assert q8.float_islands(islands) == 0  # nothing int8 of those types is left

    def run(path):
        interpreter = Interpreter(model_path=str(path), num_threads=1)
        partitions = xnnpack_partitions(interpreter)
        (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
        interpreter.set_tensor(inp["index"], calibration[:4])
        interpreter.invoke()
        return partitions, interpreter.get_tensor(out["index"])

    (before, want), (after, got) = run(plain), run(islands)
    assert before > 1 and after == 1
    scale = np.abs(want).max() / 127  # within a step or so of the int8 output
    assert np.abs(got - want).max() <= 2 * scale


def _float_set(artifact) -> str:
    """--int8-float for the float set an artifact's export settled on ("none": every module)."""
    return ",".join(Manifest.load(artifact).extra["int8_plan"]["float_modules"]) or "none"


@pytest.mark.slow  # a second int8 export (~70 s)
def test_int8_float_io_option(tmp_path, int8, photos):
    path, manifest = export_artifact(
        "tflite", "26m", precision="int8", weights=WEIGHTS, out=tmp_path / "fio", float_io=True,
        int8_float=_float_set(int8),
    )  # fmt: skip
    assert manifest.input.dtype == manifest.output.dtype == "float32"
    assert manifest.input.scale is None and manifest.output.scale is None
    out, ref = open_runtime(path).run(photos), open_runtime(int8).run(photos)
    assert sqnr_db(out, ref) >= 25.0  # same quantised core: only the I/O rounding differs


@pytest.mark.slow
def test_int8_export_is_deterministic(tmp_path, int8):
    """The same options twice give the same bytes (the session's `int8` artifact went through
    the runtime check, which may have exported it again with another float set)."""
    options = {"precision": "int8", "weights": WEIGHTS, "int8_float": _float_set(int8)}
    first, _ = export_artifact("tflite", "26m", out=tmp_path / "a", **options)
    second, _ = export_artifact("tflite", "26m", out=tmp_path / "b", **options)
    assert path_sha256(first / "model.tflite") == path_sha256(second / "model.tflite")


@pytest.mark.parametrize("kind", ["missing", "empty"])
def test_int8_bad_calibration_dir_is_one_clear_error(tmp_path, kind):
    calib = tmp_path / "photos"
    if kind == "empty":
        calib.mkdir()
    with pytest.raises(MfdeployError) as exc:
        export_artifact("tflite", "26m", precision="int8", calib=str(calib), out=tmp_path / "o")
    assert len(str(exc.value).splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_cli_int8_missing_calibration_dir_is_one_line_exit_2(tmp_path):
    argv = ["export", "--target", "tflite", "--variant", "26m", "--precision", "int8"]
    argv += ["--calib", str(tmp_path / "none"), "--out", str(tmp_path / "x")]
    proc = subprocess.run([sys.executable, "-m", "mfdeploy", *argv], capture_output=True, text=True)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "no such image directory" in proc.stderr
    assert not (tmp_path / "x").exists()


def test_a_conversion_is_reused_only_for_the_same_module_weights_and_shape(tmp_path, monkeypatch):
    import litert_torch

    from mfdeploy.export import tflite

    monkeypatch.setenv("MFDEPLOY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(tflite, "CONVERSIONS_KEPT", 3)
    calls = []
    convert = litert_torch.convert
    monkeypatch.setattr(
        litert_torch, "convert", lambda *a, **k: calls.append(1) or convert(*a, **k)
    )
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).eval()
    example = torch.zeros(1, 3, 8, 8)
    tflite.torch_to_tflite(module, example, tmp_path / "a.tflite")
    tflite.torch_to_tflite(module, example, tmp_path / "b.tflite")
    assert len(calls) == 1
    assert (tmp_path / "a.tflite").read_bytes() == (tmp_path / "b.tflite").read_bytes()
    tflite.torch_to_tflite(module, torch.zeros(1, 3, 9, 9), tmp_path / "c.tflite")
    with torch.no_grad():
        module[0].weight.mul_(2.0)
    tflite.torch_to_tflite(module, example, tmp_path / "d.tflite")
    tflite.torch_to_tflite(nn.Sequential(module[0], nn.ReLU6()), example, tmp_path / "e.tflite")
    assert len(calls) == 4  # another shape, other weights, another module tree
    store = tmp_path / "cache" / tflite.CONVERSION_STORE
    assert len(list(store.glob("*.tflite"))) == 3  # the newest CONVERSIONS_KEPT
    assert not list(store.glob("*.tmp"))


class _TwoWideConvs(nn.Module):
    """Two wide 1x1 convolutions (K 32, N 64) on a 32x32 map, weights 1/16 of their input, so
    only the arithmetic rule would give them qd8: `calm` reads a map of like-sized channels,
    `spiky` one whose channel 0 is 1000x the others and has zero weights (a run-time int8
    scale set by channel 0 rounds away the 31 channels its output is made of)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, padding=1)
        self.calm = nn.Conv2d(32, 64, 1)
        self.spiky = nn.Conv2d(32, 64, 1)
        self.head = nn.Linear(128, 10)
        gain = torch.ones(1, 32, 1, 1)
        gain[0, 0] = 1000.0
        self.register_buffer("gain", gain)
        with torch.no_grad():
            self.spiky.weight[:, 0] = 0.0  # its output is the other 31 channels' alone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x))
        a = self.calm(h).mean(dim=(2, 3))
        b = self.spiky(h * self.gain).mean(dim=(2, 3))
        return self.head(torch.cat([a, b], dim=1))


def test_int8_weights_gives_qd8_to_the_wide_gemms_that_keep_the_target(tmp_path):
    """LiteRT int8-weights measures the wide GEMMs the bytes rule leaves float: both in qd8
    miss the target, so each is measured alone and only `calm` joins; the chosen file holds
    the target against fp32 on the photos."""
    from ai_edge_litert.interpreter import Interpreter

    from mfdeploy.export.tflite import qd8_builder, torch_to_tflite
    from mfdeploy.export.tflite_qd8 import float_ops, qd8_scopes, wide_ops
    from mfdeploy.export.tflite_wide_qd8 import choose_wide, litert_logits

    torch.manual_seed(0)
    fp32 = tmp_path / "fp32.tflite"
    torch_to_tflite(_TwoWideConvs().eval(), torch.zeros(1, 3, 32, 32), fp32)
    wide = wide_ops(fp32)
    assert len(wide) == 2 and not set(qd8_scopes(fp32)[0]) & {op.scope for op in wide}
    photos = np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)
    chosen = tmp_path / "chosen.tflite"
    choice = choose_wide(fp32, photos, 30.0, qd8_builder(fp32), tmp_path, chosen)
    calm = [op.scope for op in wide if op.input_shape[-1] == 32 and "calm" in op.scope]
    assert choice.candidates == 2 and choice.kept == 1
    assert calm and calm[0] in choice.scopes
    assert choice.float_ops == len(list(float_ops(fp32)))
    interpreter = Interpreter(model_path=str(chosen))
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    int8_weights = {
        tensors[op["outputs"][0]]["name"] + ";"
        for op in interpreter._get_ops_details()
        if op["op_name"] in ("CONV_2D", "FULLY_CONNECTED")
        and tensors[op["inputs"][1]]["dtype"] == np.int8
    }
    assert int8_weights == set(choice.scopes)  # the file written is the one chosen
    held = sqnr_db(litert_logits(fp32, photos), litert_logits(chosen, photos))
    assert held >= 30.0 and abs(held - choice.sqnr_db) < 1e-6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chosen.tflite", "fp32.tflite"]
