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

And one thing keeps the artifact in one XNNPACK partition: `float_islands` (see there).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mfdeploy.console import progress
from mfdeploy.errors import MfdeployError
from mfdeploy.export.pt2e_clamps import quantise_after_clamps
from mfdeploy.export.pt2e_statistics import float_statistics


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
            quantise_after_clamps(model, past_pads=True)
            return model

        def annotate(self, model):  # after propagate_annotation (shared specs of means)
            model = super().annotate(model)
            float_statistics(model)
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


def affine_int8(lo: float, hi: float, margin: float = 1.0) -> tuple[float, int]:
    """int8 (scale, zero point) covering [lo, hi] widened `margin` times about its centre."""
    centre, half = (hi + lo) / 2.0, max((hi - lo) / 2.0, 1e-6) * margin
    lo, hi = min(centre - half, 0.0), max(centre + half, 0.0)
    scale = (hi - lo) / 255.0
    zero = int(np.clip(round(-128 - lo / scale), -128, 127))
    return float(scale), zero


# ---- input / output tensor types in the flatbuffer ----------------------------------------


def flatbuffer_schema():
    """LiteRT's generated flatbuffer classes (ModelT, TensorType, BuiltinOperator, ...)."""
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _opcode(model, builtin: int) -> int:
    for i, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return i
    code = flatbuffer_schema().OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, builtin, 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _new_tensor(model, graph, like, dtype: int, name: str, quant=None) -> int:
    schema = flatbuffer_schema()
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
    schema = flatbuffer_schema()
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
    model = load_model(path)
    graph = model.subgraphs[0]
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise MfdeployError("int8 export: expected one input and one output")
    inp = _convert_end(model, graph, "input", want, input_quant)
    out = _convert_end(model, graph, "output", want, output_quant)
    _save_model(path, model)
    return inp, out


def load_model(path: Path):
    """The flatbuffer at `path` as an editable ModelT (buffers inside the file only)."""
    model = flatbuffer_schema().ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    if any(b.offset > 1 for b in model.buffers or []):
        raise MfdeployError("int8 export: model with external buffers is not supported")
    return model


def _save_model(path: Path, model) -> None:
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))


# ---- ops XNNPACK takes only in float ------------------------------------------------------

#: Builtin ops the XNNPACK delegate accepts in float32 / float16 only. The converter's static
#: QDQ mode folds DEQUANTIZE -> op -> QUANTIZE into an int8 op even when the PT2E quantizer
#: left the op unannotated (GELU and MAXIMUM between two int8 ops), and an int8 one of these
#: runs in LiteRT's own kernels: each splits the graph into one more XNNPACK partition.
XNNPACK_FLOAT_ONLY = (
    "GELU",
    "MAXIMUM",
    "MINIMUM",
    "DIV",
    "PRELU",
    "HARD_SWISH",
    "SOFTMAX",
)


def opcode_names() -> dict[int, str]:
    """Builtin operator code -> name (CONV_2D, ...), from the schema."""
    ops = flatbuffer_schema().BuiltinOperator
    return {v: k for k, v in vars(ops).items() if not k.startswith("_") and isinstance(v, int)}


def constant_data(model, tensor) -> np.ndarray | None:
    """A constant tensor's raw bytes, or None when it has no buffer (an activation)."""
    data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
    return None if data is None or len(data) == 0 else np.asarray(data, np.uint8)


def _dequantized_constant(model, graph, index: int) -> int:
    """A float32 copy of the constant int8 tensor `index` (per-tensor or per-channel)."""
    tensor = graph.tensors[index]
    values = constant_data(model, tensor).view(np.int8).astype(np.float32)
    values = values.reshape(list(tensor.shape)) if len(tensor.shape) else values.reshape(())
    q = tensor.quantization
    scale = np.asarray(q.scale, np.float32)
    zero = np.asarray(q.zeroPoint, np.float32)
    if scale.size > 1:
        axes = [1] * values.ndim
        axes[q.quantizedDimension] = -1
        scale, zero = scale.reshape(axes), zero.reshape(axes)
    data = ((values - zero) * scale).astype(np.float32)
    float32 = flatbuffer_schema().TensorType.FLOAT32
    new = _new_tensor(model, graph, tensor, float32, f"{tensor.name}_f32")
    model.buffers[graph.tensors[new].buffer].data = np.frombuffer(data.tobytes(), np.uint8)
    return new


def _island(model, graph, op, dequantized: dict[int, int], dq: int, q: int) -> list:
    """[DEQUANTIZE per int8 input, op in float32, QUANTIZE per int8 output]; `dequantized`
    maps int8 tensors already given a float copy (one DEQUANTIZE per tensor)."""
    schema = flatbuffer_schema()
    int8 = schema.TensorType.INT8
    before, after = [], []
    inputs = list(op.inputs)
    for k, index in enumerate(inputs):
        if index < 0 or graph.tensors[index].type != int8:
            continue
        if index not in dequantized:
            tensor = graph.tensors[index]
            if constant_data(model, tensor) is not None:
                dequantized[index] = _dequantized_constant(model, graph, index)
            else:
                name = f"{tensor.name}_f32"
                new = _new_tensor(model, graph, tensor, schema.TensorType.FLOAT32, name)
                convert = schema.OperatorT()
                convert.opcodeIndex, convert.inputs, convert.outputs = dq, [index], [new]
                before.append(convert)
                dequantized[index] = new
        inputs[k] = dequantized[index]
    outputs = list(op.outputs)
    for k, index in enumerate(outputs):
        tensor = graph.tensors[index]
        if tensor.type != int8:
            continue
        new = _new_tensor(model, graph, tensor, schema.TensorType.FLOAT32, f"{tensor.name}_f32")
        convert = schema.OperatorT()
        convert.opcodeIndex, convert.inputs, convert.outputs = q, [new], [index]
        after.append(convert)
        outputs[k] = new
    op.inputs, op.outputs = inputs, outputs
    return [*before, op, *after]


def float_islands(path: Path, ops: Sequence[str] = XNNPACK_FLOAT_ONLY) -> int:
    """Rewrite every int8 op of a type in `ops` as DEQUANTIZE -> float32 op -> QUANTIZE,
    the int8 tensors around it unchanged; returns how many ops were rewritten.

    Rule (XNNPACK delegate): these op types are delegated in float only, while QUANTIZE and
    DEQUANTIZE are delegated, so the float op stays inside the one XNNPACK subgraph instead
    of splitting it. The arithmetic stays close to the int8 kernels' (LiteRT's int8 GELU is a
    table of the float function; int8 MAXIMUM / MINIMUM compare values sharing one scale and
    zero point): the int8 tensors' parameters are the calibrated ones either way."""
    model = load_model(path)
    names = opcode_names()
    int8 = flatbuffer_schema().TensorType.INT8
    rewritten = 0
    for graph in model.subgraphs:
        dq = _opcode(model, flatbuffer_schema().BuiltinOperator.DEQUANTIZE)
        q = _opcode(model, flatbuffer_schema().BuiltinOperator.QUANTIZE)
        dequantized: dict[int, int] = {}
        operators = []
        for op in graph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            name = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "")
            if name in ops and any(graph.tensors[i].type == int8 for i in op.outputs):
                operators += _island(model, graph, op, dequantized, dq, q)
                rewritten += 1
            else:
                operators.append(op)
        graph.operators = operators
    if rewritten:
        _save_model(path, model)
    return rewritten
