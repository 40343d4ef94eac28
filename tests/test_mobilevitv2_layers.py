"""MobileViTv2's per-layer anchors: declared shapes and module paths, and `verify --per-layer`
finding every anchor at fp32 parity on ONNX Runtime, LiteRT and Core ML (MIL executor)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mfdeploy.errors import MfdeployError
from mfdeploy.export import scopes
from mfdeploy.harness.per_layer import block_report, capture, runtime_anchors
from mfdeploy.models import create_model, get_family
from mfdeploy.runtimes import open_runtime, runtime_class

VARIANT = "mobilevitv2_050"
FP32_MIN_SQNR_DB = 60.0
# stem, 9 blocks (6 inverted residuals, 3 attention blocks with a local anchor each), head
EXPECTED_ANCHORS = (
    {"stem", "head"} | {f"block{i}" for i in range(9)} | {f"block{i}.local" for i in (4, 6, 8)}
)


@pytest.fixture(scope="module")
def entry():
    return get_family("mobilevitv2")


@pytest.fixture(scope="module")
def synthetic():
    return create_model(VARIANT, weights="synthetic")


def _photo_like(resolution: int) -> np.ndarray:
    return np.random.default_rng(0).random((1, 3, resolution, resolution), dtype=np.float32)


@pytest.mark.parametrize("resolution", [256, 200])
def test_declared_shapes_are_the_reference_tensors(entry, synthetic, resolution):
    """200 is not a multiple of 32: the attention blocks resize their input first."""
    seen = capture(synthetic, _photo_like(resolution), entry)
    shapes = entry.anchor_shapes(VARIANT, resolution, 1, 1000)
    assert set(seen) == set(shapes) == EXPECTED_ANCHORS
    assert {k: v.shape for k, v in seen.items()} == shapes


@pytest.mark.parametrize("form", ["deploy", "deploy:features=nchw", "reference"])
def test_every_anchor_names_a_module_of_its_form(entry, synthetic, form):
    from mfdeploy.models.source import module_in_form

    module = module_in_form(synthetic, entry, 256, form)
    modules = dict(module.named_modules())
    anchors = entry.module_anchors(VARIANT, form)
    assert {a.anchor for a in anchors} | {"head"} == EXPECTED_ANCHORS
    assert [a.module for a in anchors if a.module not in modules] == []


def test_layouts_follow_the_form(entry):
    """The default deploy form keeps maps channels-last: a 64-channel 64x64 map is read
    through NHWC -> NCHW only (both readings would fit its shape), also on LiteRT, which
    adds that permutation for every family."""
    nhwc = scopes.with_nhwc(entry.anchor_layouts("deploy"))
    value = np.arange(64**3, dtype=np.float32).reshape(1, 64, 64, 64)
    out = scopes.to_reference(value, (1, 64, 64, 64), nhwc)
    assert out is not None and np.array_equal(out, value.transpose(0, 3, 1, 2))
    nchw = entry.anchor_layouts("deploy:features=nchw")
    assert np.array_equal(scopes.to_reference(value, (1, 64, 64, 64), nchw), value)
    nchw_map = np.zeros((1, 64, 8, 16), np.float32)  # an NCHW tensor is not read as NHWC
    assert scopes.to_reference(nchw_map, (1, 64, 8, 16), nhwc) is None


def test_core_ml_names_are_found_in_the_exported_program(entry, synthetic):
    """What the Core ML exporter records: a torch.export node for every anchor."""
    deploy = entry.to_deploy(synthetic, 256, "")
    program = torch.export.export(deploy, (torch.zeros(1, 3, 256, 256),))
    names = scopes.fx_anchor_names(
        program,
        type(deploy).__name__,
        entry.module_anchors(VARIANT, "deploy"),
        entry.anchor_shapes(VARIANT, 256, 1, 0),
        entry.anchor_layouts("deploy"),
    )
    assert set(names) | {"head"} == EXPECTED_ANCHORS


@pytest.mark.slow
@pytest.mark.parametrize("target", ["onnx", "tflite", "coreml"])
def test_fp32_per_layer_finds_every_anchor_at_parity(exported, entry, synthetic, target):
    try:
        runtime_class(target)
    except MfdeployError as exc:
        pytest.skip(f"{target}: {exc}")
    sample = _photo_like(256)
    runtime = open_runtime(exported(target, "fp32", VARIANT))
    expected = capture(synthetic, sample, entry)
    found = runtime_anchors(runtime, sample)
    assert set(found) == EXPECTED_ANCHORS
    rows = block_report(expected, found)
    low = {r["block"]: r["sqnr_db"] for r in rows if r["sqnr_db"] < FP32_MIN_SQNR_DB}
    assert not low, low
