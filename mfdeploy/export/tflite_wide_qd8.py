"""LiteRT int8-weights: which wide GEMMs, beyond the bytes rule, also get qd8, measured.

Rule: the ops of qd8_rule's bytes rule always get qd8. The wide GEMMs it leaves float
(qd8_rule.wide_gemm) join them as `measured_subset` decides, on the file's logits against
the fp32 file's on up to `measured_subset.SCORED_PHOTOS` calibration photos.

Why: a wide GEMM runs faster in qd8 whatever its map size (MobileViTv2-1.0's LiteRT
int8-weights with all of them: 1.38x -> 1.95x of fp32), but its input, quantised at run
time, may be an early wide-ranged activation (MobileViTv2-0.5 on synthetic weights, all of
them: 15.6 dB on the evaluation photos, under verify's 18; 3-5 dB each for its first three;
docs/int8.md, "Which float convolutions get qd8"). Which ones hold depends on the weights,
so it is measured, not listed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mfdeploy.export.measured_subset import (
    FileScores,
    MeasuredChoice,
    measured_subset,
    spread,
)
from mfdeploy.export.qd8_rule import MIN_INNER, MIN_OUTPUTS
from mfdeploy.export.tflite_qd8 import float_ops, is_wide, pays_in_bytes
from mfdeploy.static_batches import run_static_batches

#: (scopes given qd8, output path) -> writes that int8-weights file
Build = Callable[[Sequence[str], Path], None]


@dataclass
class WideChoice(MeasuredChoice):
    """What the measurement chose; `scopes` (not recorded) is every op given qd8, the bytes
    rule's and the chosen wide GEMMs, of the file's `float_ops` float convs / linears."""

    scopes: list[str] = field(default_factory=list)
    float_ops: int = 0


#: how the manifest and the log name the candidates
WIDE_GEMMS = f"wide GEMMs (K >= {MIN_INNER}, N >= {MIN_OUTPUTS})"


def litert_logits(path: Path, photos: np.ndarray) -> np.ndarray:
    """The .tflite's outputs on `photos` (in its input layout), XNNPACK as shipped."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    target = interpreter.get_output_details()[0]

    def run(chunk: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(source["index"], np.ascontiguousarray(chunk, np.float32))
        interpreter.invoke()
        return interpreter.get_tensor(target["index"]).copy()

    return run_static_batches(photos, int(source["shape"][0]), run)


def choose_wide(
    fp32_path: Path,
    photos: np.ndarray,
    target_db: float,
    build: Build,
    scratch: Path,
    out_path: Path,
) -> WideChoice:
    """Write the int8-weights file of the fp32 file at `fp32_path` to `out_path` by the rule
    of the module doc; candidate files are built into `scratch` and removed."""
    ops = list(float_ops(fp32_path))  # one read of the flatbuffer for both rules
    base = [op.scope for op in ops if pays_in_bytes(op)]
    wide = [op.scope for op in ops if is_wide(op)]
    photos = spread(photos)

    def choice(kept: list[str], sqnr: float | None, built: int) -> WideChoice:
        counts = (len(wide), len(kept), sqnr, target_db, len(photos), built)
        return WideChoice(WIDE_GEMMS, *counts, scopes=[*base, *kept], float_ops=len(ops))

    if not wide:
        build(base, out_path)
        return choice([], None, 0)

    def build_with_base(chosen: Sequence[str], path: Path) -> None:
        build([*base, *chosen], path)

    scores = FileScores(
        fp32_path, photos, litert_logits, build_with_base, scratch, ".tflite", target_db
    )
    kept, reached = measured_subset(wide, scores, target_db, "int8-weights", "wide GEMMs")
    scores.write(kept, out_path)
    return choice(kept, reached, scores.built)
