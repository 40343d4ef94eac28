"""Weights-only int8 (export/weight_only.py): which layers get int8 weights is measured, and
their biases are corrected for them."""

from __future__ import annotations

import torch
from torch import nn

from mfdeploy.export import weight_only
from mfdeploy.export.int8_bias import int8_grid
from mfdeploy.export.int8_sensitivity import held_out_indices, logits_of
from mfdeploy.export.weight_only import compressed_layers, weight_plan
from mfdeploy.metrics import sqnr_db
from tests.test_int8_sensitivity import Toy, photos

MIN_ELEMENTS = 200  # Toy's stem (216) and block convs (576) are compressed, its head (80) not


def weight_fragile(model: Toy, index: int) -> Toy:
    """Same function, but blocks.<index>.conv carries a spike of 1000x its largest weight on
    one tap, which the block subtracts again in float: on the int8 grid of each output
    channel (step = its largest weight / 127) every other weight rounds to zero."""
    block = model.blocks[index]
    with torch.no_grad():
        spike = 1000.0 * float(block.conv.weight.abs().max())
        block.conv.weight[:, 0, 1, 1] += spike

    def forward(x):
        return block.act(block.conv(x) - spike * x[:, :1]) + x

    block.forward = forward
    return model


def test_only_layers_the_target_compresses_are_planned():
    model = Toy()
    assert set(compressed_layers(model, MIN_ELEMENTS)) == {"stem"} | {
        f"blocks.{i}.conv" for i in range(4)
    }
    plan = weight_plan(model, photos(), spec="none", min_elements=MIN_ELEMENTS)
    assert set(plan.weight_errors) == set(compressed_layers(model, MIN_ELEMENTS))
    quantised = plan.int8_module(model)
    assert torch.equal(quantised.head.weight, model.head.weight)  # under the threshold
    assert torch.equal(quantised.stem.weight, int8_grid(model.stem.weight))
    assert plan.bias_corrected_layers == 5
    given = weight_plan(model, photos(), spec="blocks.1", min_elements=MIN_ELEMENTS)
    assert given.chosen_by == "given" and given.float_modules == ("blocks.1",)
    kept = given.int8_module(model)
    assert torch.equal(kept.blocks[1].conv.weight, model.blocks[1].conv.weight)
    assert given.bias_corrected_layers == 4


def test_a_block_fragile_to_weight_rounding_keeps_its_float_weights():
    model = weight_fragile(Toy(), 2)
    plan = weight_plan(model, photos(), spec=None, target_sqnr=30.0, min_elements=MIN_ELEMENTS)
    assert plan.chosen_by == "measured" and plan.float_modules == ("blocks.2",)
    assert plan.all_int8_sqnr_db < 30.0 <= plan.planned_sqnr_db
    assert min(plan.candidates, key=lambda c: c.sqnr_db_alone).module == "blocks.2"
    quantised = plan.int8_module(model)
    assert torch.equal(quantised.blocks[2].conv.weight, model.blocks[2].conv.weight)
    assert torch.equal(quantised.blocks[2].conv.bias, model.blocks[2].conv.bias)
    assert not torch.equal(quantised.blocks[1].conv.weight, model.blocks[1].conv.weight)


def test_the_bias_correction_removes_the_weights_mean_error():
    """Inputs far from zero mean: each channel's rounding error becomes a constant shift of
    its output, which the correction takes out."""
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.Flatten(), nn.LazyLinear(4))
    model(torch.zeros(1, 3, 16, 16))  # materialise the lazy layer
    images = photos() + 4.0
    plan = weight_plan(model, images, spec="none", min_elements=MIN_ELEMENTS)
    assert set(plan.weight_errors) == {"0", "2"}
    corrected = plan.int8_module(model)
    rounded = plan.int8_module(model)
    with torch.no_grad():  # the same int8 weights with the float biases
        rounded[0].bias.copy_(model[0].bias)
        rounded[2].bias.copy_(model[2].bias)
    x = torch.from_numpy(images)
    reference = logits_of(model, x)
    gain = sqnr_db(reference, logits_of(corrected, x)) - sqnr_db(reference, logits_of(rounded, x))
    assert gain > 6.0


def test_the_errors_are_measured_on_the_photos_not_held_out(monkeypatch):
    seen = []

    def record(module, images, batch=8):
        seen.append(images.clone())
        return {}

    monkeypatch.setattr(weight_only, "weight_errors", record)
    images = photos()
    weight_plan(Toy(), images, spec=None, min_elements=MIN_ELEMENTS)
    held = images[held_out_indices(len(images))]
    assert len(seen) == 1 and len(seen[0]) == len(images) - len(held)
    for photo in held:
        assert not any(torch.equal(torch.from_numpy(photo), s) for s in seen[0])
