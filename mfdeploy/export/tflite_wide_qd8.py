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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mfdeploy.export.measured_subset import measured_subset, spread
from mfdeploy.export.qd8_rule import MIN_INNER, MIN_OUTPUTS
from mfdeploy.export.tflite_qd8 import float_ops, is_wide, pays_in_bytes
from mfdeploy.metrics import sqnr_db
from mfdeploy.static_batches import run_static_batches

#: (scopes given qd8, output path) -> writes that int8-weights file
Build = Callable[[Sequence[str], Path], None]


@dataclass
class WideChoice:
    """What the measurement chose, for the manifest."""

    scopes: list[str]  # every op given qd8: the bytes rule's and the chosen wide GEMMs
    wide_candidates: int
    wide_kept: int
    sqnr_db: float | None  # the chosen file's logits against the fp32 file's (None: no wide)
    target_db: float
    photos: int
    files_built: int

    def to_dict(self) -> dict:
        record = {k: v for k, v in asdict(self).items() if k != "scopes"}
        if self.sqnr_db is not None:
            record["sqnr_db"] = round(self.sqnr_db, 2)
        return record

    def describe(self) -> str:
        if not self.wide_candidates:
            return "no wide GEMM left to measure"
        held = f"{self.sqnr_db:.1f} dB" if self.sqnr_db is not None else "-"
        return (
            f"{self.wide_kept} of {self.wide_candidates} wide GEMMs (K >= {MIN_INNER}, "
            f"N >= {MIN_OUTPUTS}) measured to keep {held} >= {self.target_db:g} dB against "
            f"fp32 on {self.photos} calibration photos"
        )


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
    fp32_path: Path, photos: np.ndarray, target_db: float, build: Build, scratch: Path
) -> WideChoice:
    """The rule of the module doc on the fp32 file at `fp32_path`; candidate files are built
    into `scratch` and removed."""
    ops = list(float_ops(fp32_path))  # one read of the flatbuffer for both rules
    base = [op.scope for op in ops if pays_in_bytes(op)]
    wide = [op.scope for op in ops if is_wide(op)]
    photos = spread(photos)
    built = 0

    def choice(kept: list[str], sqnr: float | None) -> WideChoice:
        return WideChoice([*base, *kept], len(wide), len(kept), sqnr, target_db, len(photos), built)

    if not wide:
        return choice([], None)
    reference = litert_logits(fp32_path, photos)

    def score(scopes: Sequence[str]) -> float:
        nonlocal built
        path = scratch / f"wide-{built}.tflite"
        built += 1
        build(scopes, path)
        try:
            return sqnr_db(reference, litert_logits(path, photos))
        finally:
            path.unlink()

    kept, reached = measured_subset(
        wide,
        lambda chosen: score([*base, *chosen]),
        target_db,
        "int8-weights",
        "wide GEMMs",
    )
    return choice(kept, reached)
