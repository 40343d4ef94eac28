"""The reference model is checkpoint-compatible with the authors' release."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mfdeploy.models import create_model, get_variant, variant_names
from mfdeploy.models.counting import count_macs, count_parameters
from tests.conftest import FIXTURES, max_abs, official_file

LAYOUT = json.loads((FIXTURES / "state_dict_layout.json").read_text())


@pytest.mark.parametrize("variant", ["26m", "52m", "96m", "294m"])
def test_official_weights_reproduce_released_logits(variant, fixture_inputs):
    weights = official_file(f"mobile_former_{variant}.safetensors")
    expected = np.load(official_file(f"mobile_former_{variant}_logits.npy"))
    model = create_model(variant, weights=weights)
    with torch.no_grad():
        logits = model(torch.from_numpy(fixture_inputs)).numpy()
    assert logits.shape == expected.shape == (2, 1000)
    assert max_abs(logits, expected) <= 1e-4


@pytest.mark.parametrize("variant", variant_names())
def test_state_dict_layout_matches_release(variant):
    model = create_model(variant)
    layout = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert layout == LAYOUT[variant]


@pytest.mark.parametrize("variant", variant_names())
def test_parameter_count_matches_released_code(variant):
    assert count_parameters(create_model(variant)) == get_variant(variant).official_param_count


@pytest.mark.parametrize("variant", ["26m", "294m"])
def test_mac_count_matches_the_released_code(variant):
    macs = count_macs(create_model(variant), 224)
    assert macs / 1e6 == pytest.approx(get_variant(variant).official_macs_m, abs=0.01)
    assert macs / 1e6 < get_variant(variant).paper_flops_m  # element-wise work not counted


@pytest.mark.parametrize("resolution", [160, 256])
@pytest.mark.parametrize("batch", [1, 4])
def test_runs_at_other_resolutions_and_batches(resolution, batch):
    model = create_model("26m", weights="synthetic")
    x = torch.randn(batch, 3, resolution, resolution)
    with torch.no_grad():
        y = model(x)
        single = model(x[:1])
    assert y.shape == (batch, 1000)
    assert torch.isfinite(y).all()
    # Batch elements are independent (eval-mode BatchNorm, per-sample tokens).
    assert max_abs(y[:1].numpy(), single.numpy()) < 1e-4


@pytest.mark.parametrize("variant", ["26m", pytest.param("294m", marks=pytest.mark.slow)])
def test_torch_export_succeeds_and_matches(variant):
    model = create_model(variant, weights="synthetic")
    x = torch.randn(2, 3, 224, 224)
    program = torch.export.export(model, (x,))
    with torch.no_grad():
        assert max_abs(program.module()(x).numpy(), model(x).numpy()) < 1e-5


def test_synthetic_weights_are_deterministic_and_non_trivial():
    a = create_model("26m", weights="synthetic")
    b = create_model("26m", weights="synthetic")
    for (key, ta), tb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(ta, tb), key
    # Dynamic ReLU must not collapse to a plain ReLU: slopes a2 away from 0 somewhere.
    block = a.features[1]
    tokens = a.tokens.weight[:, None, :]
    coeffs = block.hyper1(tokens).flatten()
    a2 = (coeffs[coeffs.numel() // 2 :] - 0.5) * 2
    assert a2.abs().max() > 0.1
    bn = a.stem[1]
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))


def test_synthetic_weights_do_not_depend_on_the_thread_count():
    """Their sha256 is the artifact's identity: export and verify may run at other counts."""
    from mfdeploy.models.source import state_dict_sha256

    threads = torch.get_num_threads()
    try:
        hashes = set()
        for n in (1, 2):
            torch.set_num_threads(n)
            hashes.add(state_dict_sha256(create_model("26m", weights="synthetic")))
    finally:
        torch.set_num_threads(threads)
    assert len(hashes) == 1
    assert torch.get_num_threads() == threads


def test_unknown_variant_is_a_clear_error():
    from mfdeploy.errors import UnknownVariantError

    with pytest.raises(UnknownVariantError, match="26m, 52m"):
        create_model("27m")


def test_variant_name_forms_are_accepted():
    assert create_model("mobile-former-26m").variant.name == "26m"
    assert create_model("MOBILE_FORMER_26M").variant.name == "26m"


@pytest.mark.parametrize("model_name", ["mobile_former", "efficientnet_lite", "mobilevitv2"])
def test_macs_counted_on_the_meta_device_are_the_cpu_forwards(model_name):
    """The variants table counts without arithmetic (meta tensors); the figure is the one a
    real forward gives, for the smallest variant of every family."""
    from mfdeploy.models import get_family
    from mfdeploy.models.counting import macs_on

    entry = get_family(model_name)
    model = entry.build(entry.variants[0], None, None)
    resolution = entry.preprocessing.resolution
    assert macs_on(model, resolution, "meta") == macs_on(model, resolution, "cpu") > 0
