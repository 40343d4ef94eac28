"""An ONNX graph's tensors after shape inference: element type and dims, by name.

One reader for what the ONNX exporters, the drift finder and `mfdeploy inspect` each need
of a graph's shapes, so that they agree on which tensors have one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ValueType:
    elem_type: int  # onnx.TensorProto data type
    dims: list[int] | None  # None: no shape inferred; a 0 in it: that dimension unknown


def inferred_values(model) -> dict[str, ValueType]:
    """name -> ValueType of the graph's inputs, intermediate values and outputs, after ONNX
    shape inference (initializers are not included). Raises what shape inference raises."""
    from onnx import shape_inference

    graph = shape_inference.infer_shapes(model).graph
    values = {}
    for info in (*graph.input, *graph.value_info, *graph.output):
        tensor = info.type.tensor_type
        dims = [d.dim_value for d in tensor.shape.dim] if tensor.HasField("shape") else None
        values[info.name] = ValueType(tensor.elem_type, dims)
    return values
