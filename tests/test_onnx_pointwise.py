"""Float 1x1 convolutions of an int8 ONNX graph rewritten as MatMul for the dynamic int8 pass
(export/onnx_pointwise.py): which ones, that the function is unchanged, and that the
rewritten ones then get int8 weights."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from mfdeploy.export import onnx_quant as quant
from mfdeploy.export.onnx import torch_to_onnx
from mfdeploy.export.onnx_pointwise import MIN_WEIGHT_TO_INPUT, pointwise_as_matmul

ort = pytest.importorskip("onnxruntime")


class _Block(torch.nn.Module):
    """On an 8-channel 8x8 map (512 input elements per sample): `expand`'s weight has 512
    elements (1x its input: rewritten), `project`'s 512 on a 4096-element input (1/8: too
    small), and a 3x3, a grouped and a strided 1x1 convolution (never rewritten)."""

    def __init__(self) -> None:
        super().__init__()
        self.expand = torch.nn.Conv2d(8, 64, 1)
        self.project = torch.nn.Conv2d(64, 8, 1)
        self.spatial = torch.nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.grouped = torch.nn.Conv2d(8, 64, 1, groups=2)
        self.strided = torch.nn.Conv2d(64, 64, 1, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(torch.relu(self.expand(x))) + self.spatial(x)
        return self.strided(self.grouped(y)).mean(dim=(2, 3))


def _run(path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("pointwise")
    fp32, rewritten = folder / "fp32.onnx", folder / "rewritten.onnx"
    onnx.save(torch_to_onnx(_Block().eval(), torch.randn(1, 8, 8, 8), False), fp32)
    count = pointwise_as_matmul(fp32, rewritten)
    return fp32, rewritten, count


def test_only_the_pointwise_convolutions_the_rule_covers_become_matmuls(graphs):
    assert MIN_WEIGHT_TO_INPUT <= 1.0  # the fixture's `expand` sits at exactly 1x
    fp32, rewritten, count = graphs
    before = onnx.load(str(fp32)).graph
    after = onnx.load(str(rewritten)).graph
    assert count == 1
    convs = [n.op_type for n in before.node].count("Conv")
    ops = [n.op_type for n in after.node]
    assert ops.count("Conv") == convs - 1 and ops.count("MatMul") == 1
    # the convolution's old weight is gone from the file, its transpose is the MatMul's
    matmul = next(n for n in after.node if n.op_type == "MatMul")
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in after.initializer}
    assert weights[matmul.input[1]].shape == (8, 64)
    assert len(after.initializer) == len(before.initializer)


def test_the_rewritten_graph_computes_the_same(graphs):
    fp32, rewritten, _ = graphs
    x = np.random.default_rng(1).standard_normal((1, 8, 8, 8)).astype(np.float32)
    expected = _run(fp32, x)
    np.testing.assert_allclose(_run(rewritten, x), expected, rtol=0, atol=1e-5)


def test_rewritten_nodes_keep_the_convolutions_module_scope(graphs):
    fp32, rewritten, _ = graphs
    conv = next(n for n in onnx.load(str(fp32)).graph.node if n.op_type == "Conv")
    after = onnx.load(str(rewritten)).graph.node
    new = [n for n in after if n.name.startswith(f"{conv.name}/")]
    assert [n.op_type for n in new] == ["Transpose", "MatMul", "Add", "Transpose"]
    assert conv.metadata_props
    assert all(list(n.metadata_props) == list(conv.metadata_props) for n in new)


def test_the_dynamic_pass_then_gives_them_int8_weights(graphs, tmp_path):
    fp32, rewritten, _ = graphs
    out = tmp_path / "dynamic.onnx"
    assert quant.quantize_float_linears(rewritten, out) == 1
    graph = onnx.load(str(out)).graph
    weights = {t.name: t for t in graph.initializer}
    integer = [n for n in graph.node if n.op_type == "MatMulInteger"]
    assert len(integer) == 1 and weights[integer[0].input[1]].data_type == onnx.TensorProto.INT8
    x = np.random.default_rng(2).standard_normal((1, 8, 8, 8)).astype(np.float32)
    expected = _run(fp32, x)
    got = _run(out, x)
    assert np.abs(got - expected).max() <= 0.02 * np.abs(expected).max()
