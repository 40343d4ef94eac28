"""The int8 float set measured on the target's own PT2E program (export/pt2e_plan.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mfdeploy.metrics import sqnr_db
from tests.test_int8_sensitivity import Toy, make_fragile, photos

pytest.importorskip("litert_torch")

from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e  # noqa: E402

from mfdeploy.export.pt2e_plan import ProgramProbe, plan_on_program  # noqa: E402
from mfdeploy.export.tflite_int8 import make_quantizer  # noqa: E402


def prepared(model: torch.nn.Module) -> torch.fx.GraphModule:
    example = torch.from_numpy(photos(1))
    graph = torch.export.export(model.eval(), (example,)).module()
    return prepare_pt2e(graph, make_quantizer(""))


def run(graph, images: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([graph(torch.from_numpy(images[i : i + 1])).numpy()
                               for i in range(len(images))])  # fmt: skip


def observer_owners(graph: torch.fx.GraphModule) -> list[list[str]]:
    """For each observer left in a prepared graph: the module paths of the ops it connects."""
    owners = []
    for node in graph.graph.nodes:
        if node.op == "call_module" and "activation_post_process" in str(node.target):
            members = [node.args[0], *node.users]
            owners.append([
                str(p) for m in members for p, _ in (m.meta.get("nn_module_stack") or {}).values()
            ])  # fmt: skip
    return owners


@pytest.mark.parametrize("float_set", [(), ("blocks.1", "head")])
def test_the_probe_computes_what_the_converted_program_computes(float_set):
    """The switched observers predict convert_pt2e's int8 program for that float set."""
    model = Toy()
    images = photos(8)
    probe = ProgramProbe(prepared(model), batch=1)
    probe.calibrate(images, "calibration")
    probe.correct_biases(images)
    probe.set_float(("blocks.0",) if float_set else ("stem", "blocks.2"))
    probe.run(images[:2])  # another set first: int8 weights kept between runs stay right
    probe.set_float(float_set)
    predicted = probe.run(images)
    graph, corrected = probe.finish(float_set)
    assert corrected == (6 if not float_set else 4)  # the biases of the int8 layers
    biases = {p: graph.get_parameter(f"{p}.bias") for p in ("stem", "blocks.1.conv")}
    assert not torch.equal(biases["stem"], model.stem.bias)  # int8 weights: corrected
    assert torch.equal(biases["blocks.1.conv"], model.blocks[1].conv.bias) == bool(float_set)
    converted = convert_pt2e(graph, fold_quantize=False)
    actual = run(converted, images)
    with torch.no_grad():
        reference = model(torch.from_numpy(images)).numpy()
    assert np.abs(predicted - actual).max() <= 1e-4 * np.abs(reference).max()
    assert sqnr_db(reference, actual) < 60  # int8 really was applied somewhere


def test_fragile_block_is_kept_float_on_the_program():
    model = make_fragile(Toy(), 2)
    graph, plan = plan_on_program(
        model, prepared(model), photos(), batch=1, spec=None, target_sqnr=30.0
    )
    assert plan.measured_on.startswith("target program")
    assert "blocks.2" in plan.float_modules and plan.reached_target
    assert min(plan.candidates, key=lambda c: c.sqnr_db_alone).module == "blocks.2"
    owners = observer_owners(graph)
    inside = [o for o in owners if o and all(".blocks.2" in p or p.startswith("blocks.2")
                                             for p in o)]  # fmt: skip
    assert not inside  # no observer between two ops of the float block
    with torch.no_grad():
        reference = model(torch.from_numpy(photos())).numpy()
    shipped = run(convert_pt2e(graph, fold_quantize=False), photos())
    assert sqnr_db(reference, shipped) >= 25.0  # the fragile channel no longer drowns the rest


def test_given_float_set_is_taken_as_is():
    model = Toy()
    graph, plan = plan_on_program(
        model, prepared(model), photos(), batch=1, spec="none", target_sqnr=30.0
    )
    assert plan.chosen_by == "none" and plan.float_modules == ()
    assert len(observer_owners(graph)) == len(observer_owners(prepared(model)))


def test_a_tensor_observed_twice_in_a_row_follows_the_ops_around_it():
    """A tensor annotated at its producer's output and again at its consumer's input has two
    observers in a row; each belongs to the producer and consumer, not to the observer
    beside it (which is in no module, so "outside every candidate": always int8)."""
    from torchao.quantization.pt2e import MinMaxObserver

    root = torch.nn.Module()
    root.first, root.second = MinMaxObserver(), MinMaxObserver()
    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    inside = graph.call_function(torch.relu, (x,))
    inside.meta["nn_module_stack"] = {"head": ("head", torch.nn.Module)}
    first = graph.call_module("first", (inside,))
    second = graph.call_module("second", (first,))
    outside = graph.call_function(torch.neg, (second,))
    outside.meta["nn_module_stack"] = {"head": ("head", torch.nn.Module)}
    graph.output(outside)
    probe = ProgramProbe(torch.fx.GraphModule(root, graph), batch=1)
    probe.calibrate(photos(2), "calibration")
    probe.set_float(("head",))
    assert [switch.mode for _, _, switch, _ in probe.switches] == ["float", "float"]
    probe.set_float(())
    assert [switch.mode for _, _, switch, _ in probe.switches] == ["int8", "int8"]
