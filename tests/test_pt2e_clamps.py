"""A ReLU6 after a convolution is quantised at its own output (export/pt2e_clamps.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mfdeploy.export.int8_sensitivity import float_regex
from mfdeploy.metrics import sqnr_db


class _ConvRelu6(nn.Module):
    """conv -> ReLU6 -> pad -> conv -> ReLU6 -> mean, the first conv's output far wider than
    ReLU6's [0, 6] (as EfficientNet-Lite0's stem: -9..125)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.first = nn.Conv2d(3, 16, 3, stride=2)
        self.second = nn.Conv2d(16, 16, 3)
        with torch.no_grad():
            self.first.weight.mul_(40)

    def forward(self, x):
        x = F.pad(F.relu6(self.first(x)), (1, 1, 1, 1))
        return F.relu6(self.second(x)).mean((2, 3))


def _photos(count: int = 16) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((count, 3, 17, 17)).astype(np.float32)


def _graph(kind: str, float_modules: str = ""):
    model, example = _ConvRelu6().eval(), torch.zeros(1, 3, 17, 17)
    if kind == "executorch":
        from mfdeploy.export.executorch import quantize_int8

        return quantize_int8(model, example, _photos(), float_modules)
    from mfdeploy.export.tflite_int8 import quantize_pt2e

    return quantize_pt2e(model, example, _photos(), float_modules)[0]


def _relu6_inputs(graph) -> list[str]:
    return [
        str(node.args[0].target)
        for node in graph.graph.nodes
        if node.op == "call_function" and "relu6" in str(node.target)
    ]


@pytest.mark.parametrize("kind", ["executorch", "tflite"])
def test_relu6_reads_the_float_convolution_and_the_graph_keeps_its_resolution(kind):
    graph = _graph(kind)
    assert all("conv2d" in target for target in _relu6_inputs(graph)), _relu6_inputs(graph)
    photos = torch.from_numpy(_photos(8) + 0.1)
    with torch.no_grad():
        want = _ConvRelu6().eval()(photos).numpy()
        got = np.concatenate([graph(photos[i : i + 1]).numpy() for i in range(len(photos))])
    # quantised before the ReLU6 (step 1/255 of the conv's range), this scored 21-24 dB
    assert sqnr_db(want, got) > 30


def test_litert_converts_conv_relu6_pad_conv_without_int8_pads(tmp_path):
    import litert_torch
    from litert_torch.quantize.quant_config import QuantConfig

    from mfdeploy.export import tflite_int8 as q8

    model, example = _ConvRelu6().eval(), torch.zeros(1, 3, 17, 17)
    graph, quantizer = q8.quantize_pt2e(model, example, _photos(), "")
    path = tmp_path / "model.tflite"
    litert_torch.convert(graph, (example,), quant_config=QuantConfig(quantizer)).export(str(path))
    names = q8.opcode_names()
    model_t = q8.load_model(path)
    ops = [
        names[max(model_t.operatorCodes[op.opcodeIndex].builtinCode,
                  model_t.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)]
        for op in model_t.subgraphs[0].operators
    ]  # fmt: skip
    # quantised between the ReLU6 and the pad, LiteRT kept an int8 PAD and a transpose pair
    # around it; the two transposes left are the NCHW input's and output's
    assert ops.count("CONV_2D") == 2 and "PAD" not in ops and ops.count("TRANSPOSE") == 2, ops


def test_executorch_lowers_an_int8_relu6_before_a_float_module(tmp_path):
    """conv -> ReLU6 (int8) -> pad -> float conv: the lowering once refused it ('Weight and
    Input should both be quantized')."""
    from mfdeploy.export import executorch_lower as lower

    graph = _graph("executorch", float_regex(("second",)))
    with torch.no_grad():
        program = lower.export_for_xnnpack(graph, torch.zeros(1, 3, 17, 17), move_adds=False)
    lower.lower_to_pte(program, tmp_path / "model.pte", constant_methods={})
    assert (tmp_path / "model.pte").stat().st_size > 0
