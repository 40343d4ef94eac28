"""Float pointwise convolutions of an int8 ONNX graph rewritten as MatMul, so that the dynamic
pass (`onnx_quant.quantize_float_linears`) gives them int8 weights.

ONNX Runtime quantises a MatMul with a constant weight at run time (int8 weights, the input's
scale chosen per run), but not a convolution: its ConvInteger takes per-tensor weights only
and runs many times slower than the float convolution (docs/onnx.md, "Dynamic int8"). A 1x1
convolution with stride 1, no padding and one group is a MatMul over the pixels: NCHW ->
NHWC transpose, MatMul with the transposed weight, bias add, transpose back.

Rule: rewrite a float pointwise convolution whose weight has at least `MIN_WEIGHT_TO_INPUT`
elements per input element (per sample). Below that, the run-time pass over a large input
and the two transposes cost more than the int8 GEMM saves; above it, the int8 GEMM wins on
a CPU with int8 dot products. Measured on Mobile-Former 294m's int8, whose float blocks have
such convolutions (docs/onnx.md, "Dynamic int8 for the float modules' pointwise
convolutions"): thresholds from 0.25 to 2 ran within 3 % of each other; 0.5 passed the
runtime check with the float set of the int8 before it. The int8-dynamic precision passes
qd8_rule's quarter instead (`onnx_int8_dynamic`): it measures which rewritten convolutions
keep the accuracy, so the threshold there is about speed alone, and a quarter was the fastest.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np

from mfdeploy.export.onnx_values import inferred_values

#: Weight elements per input element (one sample) from which a float 1x1 convolution is
#: rewritten as a MatMul for the dynamic int8 pass (module doc).
MIN_WEIGHT_TO_INPUT = 0.5


def input_shapes(model) -> dict[str, list[int]]:
    """tensor name -> dims (0 where unknown, [] where no shape) from ONNX shape inference."""
    return {name: value.dims or [] for name, value in inferred_values(model).items()}


def rewritable_weight(node, initializers: dict, shapes: dict, ratio: float):
    """The float weight of a Conv the rule rewrites, else None."""
    from onnx import helper, numpy_helper

    if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in initializers:
        return None
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    weight = numpy_helper.to_array(initializers[node.input[1]])
    dims = shapes.get(node.input[0], [])
    if (
        weight.dtype != np.float32
        or weight.ndim != 4
        or weight.shape[2:] != (1, 1)
        or attrs.get("group", 1) != 1
        or any(s != 1 for s in attrs.get("strides", [1, 1]))
        or any(attrs.get("pads", [0, 0, 0, 0]))
        or len(dims) != 4
        or not all(dims[1:])
    ):
        return None
    return weight if weight.size >= ratio * int(np.prod(dims[1:])) else None


def node_id(node) -> str:
    """A node's name, or its first output's where the exporter left it unnamed."""
    return node.name or node.output[0]


def rewritable(path: Path, ratio: float = MIN_WEIGHT_TO_INPUT) -> list[str]:
    """The ids (`node_id`) of the float 1x1 convolutions in `path` the rule rewrites."""
    import onnx

    model = onnx.load(str(path))
    initializers = {t.name: t for t in model.graph.initializer}
    shapes = input_shapes(model)
    return [
        node_id(node)
        for node in model.graph.node
        if rewritable_weight(node, initializers, shapes, ratio) is not None
    ]


def pointwise_as_matmul(
    in_path: Path,
    out_path: Path,
    ratio: float = MIN_WEIGHT_TO_INPUT,
    only: Collection[str] | None = None,
) -> int:
    """Write `in_path` with the rule's float 1x1 convolutions (those of them named in `only`,
    if given) as Transpose -> MatMul (-> Add) -> Transpose, each new node carrying the
    convolution's metadata (its module scope); returns how many were rewritten. The function
    is the same up to float rounding."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(in_path))
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    shapes = input_shapes(model)
    nodes, rewritten, replaced = [], 0, set()
    for node in graph.node:
        weight = rewritable_weight(node, initializers, shapes, ratio)
        if weight is None or (only is not None and node_id(node) not in only):
            nodes.append(node)
            continue
        rewritten += 1
        replaced.add(node.input[1])
        out = node.output[0]
        name = node_id(node)
        columns = np.ascontiguousarray(weight[:, :, 0, 0].T)  # (in, out): x_nhwc @ columns
        matrix = numpy_helper.from_array(columns, f"{out}.matmul_w")
        graph.initializer.append(matrix)
        nhwc, product = f"{out}.nhwc", f"{out}.matmul"
        to_nhwc = helper.make_node(
            "Transpose", [node.input[0]], [nhwc], f"{name}/to_nhwc", perm=[0, 2, 3, 1]
        )
        matmul = helper.make_node("MatMul", [nhwc, matrix.name], [product], f"{name}/matmul")
        new = [to_nhwc, matmul]
        if len(node.input) > 2 and node.input[2]:
            biased = f"{out}.biased"
            new.append(helper.make_node("Add", [product, node.input[2]], [biased], f"{name}/bias"))
            product = biased
        new.append(
            helper.make_node("Transpose", [product], [out], f"{name}/to_nchw", perm=[0, 3, 1, 2])
        )
        for item in new:
            item.metadata_props.extend(node.metadata_props)
        nodes.extend(new)
    used = {name for node in nodes for name in node.input}
    kept = [t for t in graph.initializer if t.name not in replaced or t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.save(model, str(out_path))
    return rewritten
