"""Which float convolutions and linears of a .tflite get int8 weights (qd8): those the rules
of qd8_rule.py say pay for it.

A float CONV_2D / FULLY_CONNECTED with int8 weights runs in XNNPACK as qd8 (its input
quantised at run time, then an int8 GEMM).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mfdeploy.export import tflite_int8 as fb
from mfdeploy.export.qd8_rule import MIN_WEIGHT_TO_INPUT, qd8_pays, wide_gemm

#: Float ops that can carry int8 weights with activations quantised at run time (BATCH_MATMUL
#: is left out: LiteRT refuses an int8 constant operand beside a float32 one).
QD8_OPS = ("FULLY_CONNECTED", "CONV_2D")


@dataclass(frozen=True)
class FloatOp:
    """A float CONV_2D / FULLY_CONNECTED with a constant float weight."""

    scope: str  # its output tensor names, as AI Edge Quantizer's regex matches them
    kind: str
    input_shape: tuple[int, ...]
    weight_elements: int
    input_elements: int
    outputs: int  # the weight's first axis (output channels)


def float_ops(path: Path) -> Iterator[FloatOp]:
    """The float convs / linears with constant float weights in `path`, in graph order."""
    model = fb.load_model(path)
    names = fb.opcode_names()
    float32 = fb.flatbuffer_schema().TensorType.FLOAT32
    for graph in model.subgraphs:
        for op in graph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            kind = names.get(max(code.builtinCode, code.deprecatedBuiltinCode))
            if kind not in QD8_OPS:
                continue
            source, weights = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
            if weights.type != float32 or fb.constant_data(model, weights) is None:
                continue
            outputs = [graph.tensors[i].name for i in op.outputs if i >= 0]
            yield FloatOp(
                scope=";".join(_text(n) for n in outputs) + ";",
                kind=kind,
                input_shape=tuple(int(d) for d in source.shape),
                weight_elements=_elements(weights.shape),
                input_elements=_elements(source.shape),
                outputs=int(weights.shape[0]),
            )


def pays_in_bytes(op: FloatOp, ratio: float = MIN_WEIGHT_TO_INPUT) -> bool:
    """qd8_rule's bytes rule for one op: weights at least `ratio` x its input."""
    return qd8_pays(op.weight_elements, op.input_elements, ratio)


def is_wide(op: FloatOp) -> bool:
    """An op the bytes rule leaves float that is a wide GEMM (qd8_rule's arithmetic rule)."""
    return not pays_in_bytes(op) and wide_gemm(op.weight_elements, op.outputs)


def qd8_scopes(path: Path, ratio: float = MIN_WEIGHT_TO_INPUT) -> tuple[list[str], int]:
    """The scopes of the float convs / linears in `path` whose constant weights are at least
    `ratio` x their input (the bytes rule), and how many float convs / linears with
    constant weights there are in all."""
    ops = list(float_ops(path))
    return [op.scope for op in ops if pays_in_bytes(op, ratio)], len(ops)


def wide_ops(path: Path) -> list[FloatOp]:
    """The float convs / linears in `path` that are wide GEMMs the bytes rule leaves float,
    in graph order."""
    return [op for op in float_ops(path) if is_wide(op)]


def _elements(shape) -> int:
    return int(np.prod([max(int(d), 1) for d in shape])) if shape is not None else 0


def _text(name) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)
