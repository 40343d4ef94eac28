"""MobileViTv2 reference: timm-layout checkpoints load strictly and reproduce timm's logits."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from mfdeploy.errors import CheckpointError, UnknownVariantError
from mfdeploy.models.checkpoint import read_state_dict
from mfdeploy.models.counting import count_parameters
from mfdeploy.models.mobilevitv2 import (
    PREPROCESSING,
    VARIANT_NAMES,
    create_mobilevitv2,
    fold_patches,
    get_spec,
    unfold_patches,
)
from mfdeploy.preprocessing import preprocess
from tests.conftest import FIXTURES, ROOT, max_abs

SHARED_MVIT = ROOT.parent / "shared" / "reference" / "mobilevitv2"
LAYOUT = json.loads((FIXTURES / "mobilevitv2_state_dict_layout.json").read_text())
PUBLISHED_PARAMS = {  # MOBILEVITV2.md, the exact counts of timm's implementation
    "mobilevitv2_050": 1_370_593,
    "mobilevitv2_075": 2_866_009,
    "mobilevitv2_100": 4_901_841,
    "mobilevitv2_125": 7_478_089,
    "mobilevitv2_150": 10_594_753,
    "mobilevitv2_175": 14_251_833,
    "mobilevitv2_200": 18_449_329,
}


def mvit_file(name: str):
    """A MobileViTv2 reference file: in-repo fixture, else ../shared (skip if absent)."""
    for folder in (FIXTURES, SHARED_MVIT):
        if (folder / name).is_file():
            return folder / name
    pytest.skip(f"{name} not available (needs ../shared/reference/mobilevitv2)")


def test_seven_widths_in_order():
    assert VARIANT_NAMES == tuple(PUBLISHED_PARAMS) == tuple(LAYOUT["params"])


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_parameter_count_matches_timm(name):
    count = count_parameters(create_mobilevitv2(name))
    assert count == LAYOUT["params"][name] == PUBLISHED_PARAMS[name]


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_state_dict_keys_and_shapes_match_timm(name, tmp_path):
    model = create_mobilevitv2(name)
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == LAYOUT["state_dicts"][name]
    # A checkpoint made from the layout alone loads with strict=True, value for value.
    gen = torch.Generator().manual_seed(0)
    state = {
        k: torch.randint(0, 9, shape, generator=gen)
        if k.endswith("num_batches_tracked")
        else torch.rand(shape, generator=gen)
        for k, shape in LAYOUT["state_dicts"][name].items()
    }
    path = tmp_path / f"{name}.safetensors"
    save_file(state, str(path))
    loaded = create_mobilevitv2(name, weights=path).state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


@pytest.mark.parametrize("width", ["050", "100"])
def test_fixture_weights_reproduce_timm_logits(width):
    """Logits computed by timm (../shared provenance, tests/fixtures/README.md)."""
    model = create_mobilevitv2(width, weights=mvit_file(f"mobilevitv2_{width}.safetensors"))
    x = torch.from_numpy(np.load(mvit_file("mvit_inputs_2x3x256x256.npy")))
    expected = np.load(mvit_file(f"mobilevitv2_{width}_logits.npy"))
    with torch.no_grad():
        logits = model(x).numpy()
    assert logits.shape == expected.shape == (2, 1000)
    assert max_abs(logits, expected) <= 1e-4
    # The check can fail: one attention unit's softmax over the wrong axis is far off.
    attn = model.stages[2][1].transformer[0].attn
    original = attn.forward

    def wrong_axis(t: torch.Tensor) -> torch.Tensor:
        q, k, v = attn.qkv_proj(t).split([1, attn.dim, attn.dim], dim=1)
        context = (k * q.softmax(dim=2)).sum(dim=-1, keepdim=True)
        return attn.out_proj(torch.relu(v) * context)

    attn.forward = wrong_axis
    with torch.no_grad():
        assert max_abs(model(x).numpy(), expected) > 1e-3
    attn.forward = original


def test_unfold_index_order_and_fold_inverse():
    """p = i * 2 + j inside a patch, n row-major over patches (MOBILEVITV2.md)."""
    h, w = 4, 6
    x = torch.arange(h * w, dtype=torch.float32).reshape(1, 1, h, w)
    patches = unfold_patches(x)
    assert patches.shape == (1, 1, 4, 6)
    for p in range(4):
        for n in range(6):
            row, col = 2 * (n // 3) + p // 2, 2 * (n % 3) + p % 2
            assert patches[0, 0, p, n] == x[0, 0, row, col]
    assert torch.equal(fold_patches(patches, h, w), x)


def test_odd_sizes_are_resized_inside_the_block():
    model = create_mobilevitv2("050", weights="synthetic")
    with torch.no_grad():
        y = model(torch.rand(1, 3, 200, 232))
    assert y.shape == (1, 1000) and torch.isfinite(y).all()


def test_synthetic_weights_are_deterministic_and_non_trivial():
    from mfdeploy.models.source import state_dict_sha256

    threads = torch.get_num_threads()
    try:
        hashes = set()
        for n in (1, 2):
            torch.set_num_threads(n)
            hashes.add(state_dict_sha256(create_mobilevitv2("050", weights="synthetic")))
    finally:
        torch.set_num_threads(threads)
    assert len(hashes) == 1
    model = create_mobilevitv2("050", weights="synthetic")
    unit = model.stages[2][1].transformer[0]
    assert not torch.allclose(unit.norm1.weight, torch.ones_like(unit.norm1.weight), atol=0.05)
    assert not torch.allclose(model.stem.bn.running_var, torch.ones(model.stem.bn.num_features))
    # The softmax over the 256 patches of stage 3 (256x256 input) is far from uniform.
    scores = []
    unit.attn.register_forward_hook(
        lambda mod, inp, out: scores.append(mod.qkv_proj(inp[0])[:, :1].softmax(-1))
    )
    with torch.no_grad():
        logits = model(torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(1)))
    assert scores[0].shape[-1] == 256 and float(scores[0].max()) * 256 > 10
    assert 0.1 < float(logits.abs().max()) < 5


def test_width_names():
    assert get_spec("mobilevitv2-075").name == "mobilevitv2_075"
    assert get_spec("0.75").name == get_spec("075").name == "mobilevitv2_075"
    assert get_spec("MobileViTv2_200").stage_channels == (128, 256, 512, 768, 1024)
    with pytest.raises(UnknownVariantError, match="mobilevitv2_050, mobilevitv2_075"):
        get_spec("mobilevitv2_060")


@pytest.fixture(scope="module")
def fixture_state():
    return read_state_dict(FIXTURES / "mobilevitv2_050.safetensors")


def test_torch_checkpoint_with_wrapper_loads(tmp_path, fixture_state):
    path = tmp_path / "mobilevitv2_050.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in fixture_state.items()}}, path)
    model = create_mobilevitv2("050", weights=path)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in fixture_state.items())


def test_checkpoint_of_another_width_is_a_clear_error(fixture_state, tmp_path):
    path = tmp_path / "w.safetensors"
    save_file(fixture_state, str(path))
    with pytest.raises(CheckpointError, match="shape mismatch at stem.conv.weight"):
        create_mobilevitv2("100", weights=path)


def test_missing_keys_and_head_size(fixture_state, tmp_path):
    state = {k: v for k, v in fixture_state.items() if "transformer.1" not in k}
    path = tmp_path / "partial.safetensors"
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match="missing keys"):
        create_mobilevitv2("050", weights=path)
    head = dict(fixture_state)
    head["head.fc.weight"], head["head.fc.bias"] = torch.zeros(10, 256), torch.zeros(10)
    save_file(head, str(path))
    assert create_mobilevitv2("050", weights=path).num_classes == 10
    with pytest.raises(CheckpointError, match="10-class head"):
        create_mobilevitv2("050", weights=path, num_classes=1000)


class _Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": _Payload()}, path)
    with pytest.raises(CheckpointError, match="refused for safety"):
        create_mobilevitv2("050", weights=path)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        create_mobilevitv2("050", weights=garbage)


def test_preprocessing_is_the_released_eval_recipe():
    """Short side 288 bicubic, centre 256, RGB / 255 with no mean/std, written out by hand."""
    assert PREPROCESSING.resize == 288 and PREPROCESSING.resolution == 256
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))
    resized = np.asarray(image.resize((384, 288), Image.BICUBIC), dtype=np.float64)
    expected = (resized[16:272, 64:320] / 255.0).transpose(2, 0, 1)
    assert max_abs(preprocess(image, PREPROCESSING), expected) < 1e-6


def test_registry_builds_and_names_every_width():
    from mfdeploy.models import create_model, get_family, resolve_model

    entry = get_family("mobilevitv2")
    assert len(entry.variants) == 7 and entry.default_variant == "mobilevitv2_100"
    assert resolve_model("mobilevitv2-050")[1] == "mobilevitv2_050"
    assert resolve_model("mobilevitv2", None)[1] == "mobilevitv2_100"
    model = create_model("mobilevitv2_050")
    assert sum(p.numel() for p in model.parameters()) == 1_370_593
    assert entry.preprocessing.resolution == 256 and entry.preprocessing.interpolation == "bicubic"


@pytest.mark.slow
@pytest.mark.parametrize("target", ["tflite", "onnx"])
def test_exports_through_the_pipeline_and_verifies(target, exported):
    """The family goes through the generic exporters and verify like any other (the
    artifact is the test matrix's, exported once per session)."""
    pytest.importorskip("onnxruntime" if target == "onnx" else "ai_edge_litert")
    from mfdeploy.artifact import Manifest
    from mfdeploy.harness.verify import verify_artifact

    out = exported(target, "fp32", "mobilevitv2_050")
    manifest = Manifest.load(out)
    assert manifest.model_family == "mobilevitv2" and manifest.input.shape[-2] in (256, 3)
    assert manifest.preprocessing["resolution"] == 256
    result = verify_artifact(out, num_images=8)
    assert result.passed, result.failed
