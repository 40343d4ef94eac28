"""TFLite full-integer int8 through litert-torch's PT2E path.

export (torch.export) -> `prepare_pt2e` with litert-torch's PT2EQuantizer (per-channel
symmetric int8 weights, int8 activations with histogram observers) -> calibration on real
photos -> `convert_pt2e` -> `litert_torch.convert(..., quant_config=QuantConfig(...))`
-> the model's input / output tensors set to int8 or float32 (`set_io_types`).

Two things make the Mobile-Former graph go through:
- `unshare_dequantize`: torchao duplicates a DEQUANTIZE per consumer only for quantised
  consumers; an activation read both by a float op in NCHW order (a bridge's pixel reshape)
  and by an op litert-torch's layout pass moves to NHWC (a residual add) keeps one shared
  DEQUANTIZE, and the layout pass fails on it ("Attempting to convert non-NHWC compatible
  node to NHWC: dequantize_per_tensor"). One DEQUANTIZE per consumer is the same function.
- `FloatModulesQuantizer`: modules matching a regex (by module path) are left in float.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mfdeploy.console import progress
from mfdeploy.errors import MfdeployError


def _quantizer_base():
    from litert_torch.quantize import pt2e_quantizer

    return pt2e_quantizer


def make_quantizer(float_modules: str):
    """litert-torch's PT2EQuantizer (per-channel, static), skipping float modules' ops."""
    pt2e = _quantizer_base()
    pattern = re.compile(float_modules) if float_modules else None

    class FloatModulesQuantizer(pt2e.PT2EQuantizer):
        def _annotate_for_static_quantization_config(self, model):
            self._annotate_all_static_patterns(model, self.global_config, self.quantized)
            return model

        @staticmethod
        def quantized(node) -> bool:
            if pattern is None:
                return True
            paths = [p for p, _ in node.meta.get("nn_module_stack", {}).values()]
            return not any(pattern.search(p.removeprefix("module.")) for p in paths)

    config = pt2e.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
    return FloatModulesQuantizer().set_global(config)


def unshare_dequantize(gm: torch.fx.GraphModule) -> int:
    """Give every consumer of a DEQUANTIZE node its own copy. Returns copies made."""
    copies = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or "dequantize" not in str(node.target):
            continue
        for user in list(node.users)[1:]:
            with gm.graph.inserting_after(node):
                copy = gm.graph.node_copy(node)
            user.replace_input_with(node, copy)
            copies += 1
    gm.graph.lint()
    gm.recompile()
    return copies


def quantize_pt2e(
    module: nn.Module, example: torch.Tensor, calibration: np.ndarray, float_modules: str
):
    """(quantised GraphModule, quantizer). `calibration` is in the module's input layout."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = make_quantizer(float_modules)
    graph = torch.export.export(module.eval(), (example,)).module()
    graph = prepare_pt2e(graph, quantizer)
    batch = example.shape[0]
    with torch.no_grad():
        for start in progress(range(0, len(calibration), batch), "int8 calibration"):
            chunk = calibration[start : start + batch]
            if len(chunk) == batch:
                graph(torch.from_numpy(np.ascontiguousarray(chunk)))
    graph = convert_pt2e(graph, fold_quantize=False)
    unshare_dequantize(graph)
    return graph, quantizer


def run_graph(graph: Callable, inputs: np.ndarray, batch: int) -> np.ndarray:
    outs = []
    with torch.no_grad():
        for start in range(0, len(inputs) - batch + 1, batch):
            x = torch.from_numpy(np.ascontiguousarray(inputs[start : start + batch]))
            outs.append(graph(x).numpy())
    return np.concatenate(outs)


def affine_int8(lo: float, hi: float, margin: float = 1.0) -> tuple[float, int]:
    """int8 (scale, zero point) covering [lo, hi] widened `margin` times about its centre."""
    centre, half = (hi + lo) / 2.0, max((hi - lo) / 2.0, 1e-6) * margin
    lo, hi = min(centre - half, 0.0), max(centre + half, 0.0)
    scale = (hi - lo) / 255.0
    zero = int(np.clip(round(-128 - lo / scale), -128, 127))
    return float(scale), zero


# ---- input / output tensor types in the flatbuffer ----------------------------------------


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _opcode(model, builtin: int) -> int:
    for i, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return i
    code = _schema().OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, builtin, 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _new_tensor(model, graph, like, dtype: int, name: str, quant=None) -> int:
    schema = _schema()
    tensor = schema.TensorT()
    tensor.shape, tensor.shapeSignature = list(like.shape), like.shapeSignature
    tensor.type, tensor.name = dtype, name
    model.buffers.append(schema.BufferT())
    tensor.buffer = len(model.buffers) - 1
    if quant is not None:
        q = schema.QuantizationParametersT()
        q.scale, q.zeroPoint, q.quantizedDimension = [quant[0]], [quant[1]], 0
        tensor.quantization = q
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def _quant_of(tensor) -> tuple[float, int] | None:
    q = tensor.quantization
    if q is None or q.scale is None or len(q.scale) != 1:
        return None
    return float(q.scale[0]), int(q.zeroPoint[0])


def _retarget(model, graph, old: int, new: int, side: str) -> None:
    ends = graph.inputs if side == "input" else graph.outputs
    ends[list(ends).index(old)] = new
    for sig in model.signatureDefs or []:
        for entry in sig.inputs if side == "input" else sig.outputs:
            if entry.tensorIndex == old:
                entry.tensorIndex = new


def _convert_end(model, graph, side: str, want: str, quant: tuple[float, int] | None) -> dict:
    """Make the graph's single input / output `want` ("int8" | "float32") with a
    QUANTIZE / DEQUANTIZE op at the boundary. Returns that tensor's dtype and params."""
    schema = _schema()
    types = schema.TensorType
    index = (graph.inputs if side == "input" else graph.outputs)[0]
    tensor = graph.tensors[index]
    have = "int8" if tensor.type == types.INT8 else "float32"
    if tensor.type not in (types.INT8, types.FLOAT32):
        raise MfdeployError(f"int8 export: unexpected {side} tensor type {tensor.type}")
    if have != want:
        if want == "int8":
            new = _new_tensor(model, graph, tensor, types.INT8, f"{side}_int8", quant)
        else:
            quant = _quant_of(tensor)
            new = _new_tensor(model, graph, tensor, types.FLOAT32, f"{side}_float32")
        op = schema.OperatorT()
        to_int8 = (side == "input") == (want == "float32")  # float in -> QUANTIZE
        code = schema.BuiltinOperator.QUANTIZE if to_int8 else schema.BuiltinOperator.DEQUANTIZE
        op.opcodeIndex = _opcode(model, code)
        op.inputs, op.outputs = ([new], [index]) if side == "input" else ([index], [new])
        if side == "input":
            graph.operators.insert(0, op)
        else:
            graph.operators.append(op)
        _retarget(model, graph, index, new, side)
    elif want == "int8":
        quant = _quant_of(tensor)
    return {"dtype": want, "quant": quant if want == "int8" else None}


def set_io_types(
    path: Path,
    want: str,
    input_quant: tuple[float, int] | None,
    output_quant: tuple[float, int] | None,
) -> tuple[dict, dict]:
    """Rewrite `path` so its input and output are `want`; quant params used when an int8
    end has to be added (a float input / output in the converted model)."""
    import flatbuffers

    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    if any(b.offset > 1 for b in model.buffers or []):
        raise MfdeployError("int8 export: model with external buffers is not supported")
    graph = model.subgraphs[0]
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise MfdeployError("int8 export: expected one input and one output")
    inp = _convert_end(model, graph, "input", want, input_quant)
    out = _convert_end(model, graph, "output", want, output_quant)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return inp, out
