"""ONNX int8-dynamic: int8 weights with activations quantised at run time, no calibration;
which pointwise convolutions join the linears, measured.

Rule: every MatMul / Gemm with a constant float weight gets int8 per-channel weights and
run-time activation scales (`onnx_quant.quantize_float_linears`). The float 1x1
convolutions whose weights are at least `qd8_rule.MIN_WEIGHT_TO_INPUT` x their input (the
bytes rule of LiteRT's int8-weights) are rewritten as MatMul (`onnx_pointwise`) to join
them, as `measured_subset` decides on the file's logits against the fp32 file's on
calibration photos (ONNX Runtime as shipped: its whole-tensor run-time scale over an early,
wide-ranged map can cost too much). Other convolutions stay float (ORT's ConvInteger is
per-tensor and slow, docs/onnx.md).

Why: with the pointwise convolutions, 294m's int8-dynamic ran faster than its static int8
(whose few int8 modules pay less than their conversions cost), and EfficientNet-Lite0's
int8-dynamic gained over its fp32 where MatMul / Gemm alone had not (docs/onnx.md,
"int8-dynamic with the pointwise convolutions")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mfdeploy.export import onnx_quant as quant
from mfdeploy.export.measured_subset import (
    FileScores,
    MeasuredChoice,
    measured_subset,
    spread,
)
from mfdeploy.export.onnx_pointwise import pointwise_as_matmul, rewritable
from mfdeploy.export.qd8_rule import MIN_WEIGHT_TO_INPUT
from mfdeploy.static_batches import run_static_batches


@dataclass
class PointwiseChoice(MeasuredChoice):
    """What the measurement chose; `dynamic_nodes` (recorded apart) counts the MatMul / Gemm
    layers with int8 weights in the final file."""

    dynamic_nodes: int


#: how the manifest and the log name the candidates
POINTWISE = f"pointwise convolutions (weights >= {MIN_WEIGHT_TO_INPUT:g}x their input)"


def ort_logits(path: Path, photos: np.ndarray) -> np.ndarray:
    """The ONNX file's outputs on `photos`, ONNX Runtime's CPU EP with its default (full)
    graph optimisations, as an app runs it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    source = session.get_inputs()[0]
    static = source.shape[0] if isinstance(source.shape[0], int) else None

    def run(chunk: np.ndarray) -> np.ndarray:
        return session.run(None, {source.name: np.ascontiguousarray(chunk, np.float32)})[0]

    return run_static_batches(photos, static, run)


def int8_dynamic(
    fp32_path: Path, out_path: Path, photos: np.ndarray, target_db: float, scratch: Path
) -> PointwiseChoice:
    """Write the int8-dynamic file of `fp32_path` to `out_path` by the module's rule;
    candidate files are built into `scratch` and removed."""
    candidates = rewritable(fp32_path, MIN_WEIGHT_TO_INPUT)
    photos = spread(photos)

    def build(chosen: Sequence[str], path: Path) -> int:
        rewritten = scratch / "pointwise.onnx"
        pointwise_as_matmul(fp32_path, rewritten, MIN_WEIGHT_TO_INPUT, only=set(chosen))
        try:
            return quant.quantize_float_linears(rewritten, path)
        finally:
            rewritten.unlink()

    kept, reached, built = [], None, 0
    if candidates:
        scores = FileScores(fp32_path, photos, ort_logits, build, scratch, ".onnx", target_db)
        kept, reached = measured_subset(
            candidates, scores, target_db, "int8-dynamic", "pointwise convolutions"
        )
        dynamic_nodes, built = scores.write(kept, out_path), scores.built
    else:
        dynamic_nodes = build(kept, out_path)
    counts = (len(candidates), len(kept), reached, target_db, len(photos), built)
    return PointwiseChoice(POINTWISE, *counts, dynamic_nodes=dynamic_nodes)


__all__ = ["PointwiseChoice", "int8_dynamic", "ort_logits"]
