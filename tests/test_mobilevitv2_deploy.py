"""The MobileViTv2 deploy form computes the reference function with export-friendly ops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mfdeploy.models.mobilevitv2 import create_mobilevitv2
from mfdeploy.models.mobilevitv2_deploy import (
    LAYOUT_CHOICES,
    MobileViTv2Layout,
    to_deploy_mobilevitv2,
)
from mfdeploy.models.registry import get_family
from tests.conftest import FIXTURES, max_abs

LAYOUTS = ["", "features=nchw"]


def _inputs(batch: int, resolution: int, dtype=torch.float32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(batch * 1000 + resolution)
    return torch.rand(batch, 3, resolution, resolution, generator=gen).to(dtype)


@pytest.fixture(scope="module")
def synthetic_050() -> nn.Module:
    return create_mobilevitv2("050", weights="synthetic")


@pytest.mark.parametrize("width", ["050", pytest.param("100", marks=pytest.mark.slow)])
@pytest.mark.parametrize("resolution", [256, 320])
def test_same_function_in_float64(width, resolution):
    """In float64 the rewrite is exact: this proves it is the same function."""
    model = create_mobilevitv2(width, weights="synthetic").double()
    deploy = to_deploy_mobilevitv2(model, resolution)
    for batch in (1, 3):
        x = _inputs(batch, resolution, torch.float64)
        with torch.no_grad():
            assert max_abs(deploy(x).numpy(), model(x).numpy()) <= 1e-9


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layout_alternatives_are_the_same_function(synthetic_050, layout):
    """Both layouts kept (docs/mobilevitv2.md) are exact in float64, also at a size the
    blocks resize inside (200: 25x25 maps at stage 3)."""
    model = create_mobilevitv2("050", weights="synthetic").double()
    for resolution in (256, 200):
        deploy = to_deploy_mobilevitv2(model, resolution, MobileViTv2Layout.parse(layout))
        x = _inputs(3, resolution, torch.float64)
        with torch.no_grad():
            assert max_abs(deploy(x).numpy(), model(x).numpy()) <= 1e-9


@pytest.mark.parametrize("layout", ["", "features=nchw"])
def test_a_softmax_over_the_wrong_axis_is_caught(layout):
    """The float64 check can fail: a softmax over the patch positions P instead of the
    patches N (one attention unit) is far off."""
    model = create_mobilevitv2("050", weights="synthetic").double()
    deploy = to_deploy_mobilevitv2(model, 256, MobileViTv2Layout.parse(layout))
    block = next(b for b in deploy.blocks if hasattr(b, "units"))
    block.units[0].attn.axis = 2
    x = _inputs(1, 256, torch.float64)
    with torch.no_grad():
        assert max_abs(deploy(x).numpy(), model(x).numpy()) > 1e-4


def _rms(error: torch.Tensor) -> float:
    return float(error.pow(2).mean().sqrt())


@pytest.mark.parametrize("weights", ["synthetic", "fixture"])
@pytest.mark.parametrize("resolution", [256, 320])
def test_float32_deploy_is_as_accurate_as_the_reference(weights, resolution):
    """Against exact (float64) arithmetic, the float32 deploy form errs no more than the
    float32 reference does (RMS), and the two agree to 1e-5 (logits ~1)."""
    path = "synthetic" if weights == "synthetic" else FIXTURES / "mobilevitv2_050.safetensors"
    model = create_mobilevitv2("050", weights=path)
    exact_model = create_mobilevitv2("050", weights=path).double()
    deploy = to_deploy_mobilevitv2(model, resolution)
    inputs = [_inputs(1, resolution), _inputs(3, resolution)]
    if resolution == 256:
        inputs.append(torch.from_numpy(np.load(FIXTURES / "mvit_inputs_2x3x256x256.npy")))
    with torch.no_grad():
        for x in inputs:
            ref32, dep32, exact = model(x).double(), deploy(x).double(), exact_model(x.double())
            assert _rms(dep32 - exact) <= 1.5 * _rms(ref32 - exact)
            assert max_abs(dep32.numpy(), ref32.numpy()) <= 1e-5


def test_fixture_logits_through_the_deploy_form():
    """timm's logits (tests/fixtures/README.md) from the deploy form directly."""
    model = create_mobilevitv2("050", weights=FIXTURES / "mobilevitv2_050.safetensors")
    x = torch.from_numpy(np.load(FIXTURES / "mvit_inputs_2x3x256x256.npy"))
    expected = np.load(FIXTURES / "mobilevitv2_050_logits.npy")
    with torch.no_grad():
        assert max_abs(to_deploy_mobilevitv2(model, 256)(x).numpy(), expected) <= 1e-4


def test_export_graph_is_static_rank_4_and_free_of_norm_and_gather_ops(synthetic_050):
    deploy = to_deploy_mobilevitv2(synthetic_050, 256)
    assert not any(
        isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)) for m in deploy.modules()
    )
    program = torch.export.export(deploy, (_inputs(1, 256),))
    ranks, targets = [], set()
    for node in program.graph.nodes:
        value = node.meta.get("val")
        if isinstance(value, torch.Tensor):
            ranks.append(value.dim())
            assert all(isinstance(s, int) for s in value.shape), node
        if node.op == "call_function":
            targets.add(str(node.target))
    assert max(ranks) <= 4
    banned = ("group_norm", "batch_norm", "im2col", "col2im", "split", "gather", "select")
    assert not [t for t in targets if any(b in t for b in banned)], targets
    # The reference needs rank 6 (its unfold / fold) and GroupNorm: the checks can fail.
    ref_program = torch.export.export(synthetic_050, (_inputs(1, 256),))
    ref_nodes = [n for n in ref_program.graph.nodes if isinstance(n.meta.get("val"), torch.Tensor)]
    assert max(n.meta["val"].dim() for n in ref_nodes) == 6
    assert any("group_norm" in str(n.target) for n in ref_nodes)


def test_deploy_constants_do_not_depend_on_the_thread_count(synthetic_050):
    """Folded constants are float64 arithmetic rounded once: exports must not change with the
    exporting machine's thread count."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = to_deploy_mobilevitv2(synthetic_050).state_dict()
        torch.set_num_threads(2)
        two = to_deploy_mobilevitv2(synthetic_050).state_dict()
    finally:
        torch.set_num_threads(before)
    assert [name for name in one if not torch.equal(one[name], two[name])] == []


def test_layout_parse_and_rejects_nonsense():
    assert MobileViTv2Layout.parse("") == MobileViTv2Layout()
    assert MobileViTv2Layout().nhwc and not MobileViTv2Layout.parse("features=nchw").nhwc
    family = get_family("mobilevitv2")
    assert family.form_for_target("deploy", "onnx") == "deploy:features=nchw"
    assert family.form_for_target("deploy", "tflite") == "deploy:features=nhwc"
    assert family.form_for_target("deploy", "coreml") == "deploy"
    for explicit in ("deploy:features=nhwc", "reference"):  # the user's choice is kept
        assert family.form_for_target(explicit, "onnx") == explicit
    assert get_family("mobile_former").form_for_target("deploy", "onnx") == "deploy"
    assert set(LAYOUT_CHOICES) == {"features"}
    for bad in ("features=nhcw", "colour=red", "features", "softmax=exp"):
        with pytest.raises(ValueError):
            MobileViTv2Layout.parse(bad)


def test_rejects_non_reference_models():
    with pytest.raises(TypeError):
        to_deploy_mobilevitv2(nn.Linear(2, 2))


@pytest.mark.slow
def test_litert_export_is_rank_4_one_xnnpack_partition_and_matches(synthetic_050, tmp_path):
    """Through litert-torch as the product's TFLite exporter calls it (NHWC input): rank <= 4,
    the whole graph in one XNNPACK partition, one transpose per unfold / fold only, and the
    logits within 1e-4 of PyTorch."""
    from ai_edge_litert.interpreter import Interpreter

    from mfdeploy.export.tflite import NHWCInput, torch_to_tflite
    from mfdeploy.harness.inspect import audit

    deploy = to_deploy_mobilevitv2(synthetic_050, 256)
    path = tmp_path / "model.tflite"
    torch_to_tflite(NHWCInput(deploy), torch.zeros(1, 256, 256, 3), path)
    report = audit(path)
    assert report.passed and report.max_rank <= 4 and report.xnnpack_partitions == 1
    assert report.ops.get("TRANSPOSE", 0) == 2 * len(synthetic_050.attention_blocks)
    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    x = _inputs(1, 256)
    interpreter.set_tensor(
        interpreter.get_input_details()[0]["index"], x.permute(0, 2, 3, 1).numpy()
    )
    interpreter.invoke()
    logits = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    with torch.no_grad():
        assert max_abs(logits, synthetic_050(x).numpy()) <= 1e-4


@pytest.mark.slow
def test_onnx_export_is_rank_4_transpose_free_and_matches(synthetic_050, tmp_path):
    """`mfdeploy export --target onnx` takes ONNX's layout by itself (features=nchw, one-hot
    conv unfold): rank <= 4 and no Transpose."""
    import onnxruntime as ort

    from mfdeploy.export import export_artifact
    from mfdeploy.harness.inspect import audit

    out, manifest = export_artifact("onnx", model="mobilevitv2_050", out=tmp_path / "a")
    assert manifest.form == "deploy:features=nchw"
    path = out / "model.onnx"
    report = audit(path)
    assert report.passed and report.max_rank <= 4, report.violations
    assert "Transpose" not in report.ops
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = _inputs(1, 256)
    logits = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        assert max_abs(logits, synthetic_050(x).numpy()) <= 1e-4
