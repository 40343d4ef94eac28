"""Which float convolutions and linears of a .tflite get int8 weights (qd8): those the rule
of qd8_rule.py says pay for it.

A float CONV_2D / FULLY_CONNECTED with int8 weights runs in XNNPACK as qd8 (its input
quantised at run time, then an int8 GEMM).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mfdeploy.export import tflite_int8 as fb
from mfdeploy.export.qd8_rule import MIN_WEIGHT_TO_INPUT, qd8_pays

#: Float ops that can carry int8 weights with activations quantised at run time (BATCH_MATMUL
#: is left out: LiteRT refuses an int8 constant operand beside a float32 one).
QD8_OPS = ("FULLY_CONNECTED", "CONV_2D")


def kept_float_note(kept: int) -> str:
    """How a manifest says which convs / linears this rule left float32."""
    return (
        f"float32 in {kept} whose weights are < {MIN_WEIGHT_TO_INPUT:g}x their input (quantising "
        f"the input at run time would cost more than the int8 GEMM saves)"
    )


def _elements(shape) -> int:
    return int(np.prod([max(int(d), 1) for d in shape])) if shape is not None else 0


def qd8_scopes(path: Path, ratio: float = MIN_WEIGHT_TO_INPUT) -> tuple[list[str], int]:
    """The scope names (output tensor names, as AI Edge Quantizer matches them) of the float
    convs / linears in `path` whose constant weights are at least `ratio` x their input, and
    how many float convs / linears with constant weights there are in all."""
    model = fb.load_model(path)
    names = fb.opcode_names()
    float32 = fb.flatbuffer_schema().TensorType.FLOAT32
    scopes, candidates = [], 0
    for graph in model.subgraphs:
        for op in graph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            if names.get(max(code.builtinCode, code.deprecatedBuiltinCode)) not in QD8_OPS:
                continue
            source, weights = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
            if weights.type != float32 or fb.constant_data(model, weights) is None:
                continue
            candidates += 1
            if qd8_pays(_elements(weights.shape), _elements(source.shape), ratio):
                outputs = [graph.tensors[i].name for i in op.outputs if i >= 0]
                scopes.append(";".join(_text(n) for n in outputs) + ";")
    return scopes, candidates


def _text(name) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)
