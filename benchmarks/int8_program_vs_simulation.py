"""Float set measured on the target's PT2E program vs on the eager int8 simulation.

For each model and PT2E target (TFLite: litert-torch's quantizer; Core ML: coremltools';
ExecuTorch: XNNPACKQuantizer),
quantise twice: keeping float the set the eager simulation chose (`int8_sensitivity`) and the
set measured on that quantizer's own program (`pt2e_plan`, what the exporters use). Each
converted PT2E program is run in PyTorch on the evaluation photos (never calibration ones)
and compared with float32: the converted program is what the target's converter translates.

    PYTHONPATH=. .venv/bin/python benchmarks/int8_program_vs_simulation.py \
        [--models 26m efficientnet_lite0] [--targets tflite coreml executorch] [--calib-count 32]

Prints a table and writes benchmarks/results/int8_program_vs_simulation.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from _common import fixture_weights

from mfdeploy.console import print_table
from mfdeploy.export.common import calibration_inputs
from mfdeploy.export.int8_sensitivity import DEFAULT_TARGET_SQNR, measure_float_plan
from mfdeploy.metrics import sqnr_db
from mfdeploy.models import load_source
from mfdeploy.models.source import export_module
from mfdeploy.photos import resolve_images
from mfdeploy.preprocessing import preprocess_batch

RESULTS = Path(__file__).parent / "results" / "int8_program_vs_simulation.json"


def quantise(target: str, module: torch.nn.Module, calib: np.ndarray, spec: str | None):
    """(converted PT2E program, float plan) for `target`'s quantizer."""
    if target == "coreml":
        from mfdeploy.export.coreml_w8a8 import quantize_w8a8

        converted, _, plan = quantize_w8a8(module, calib, float_spec=spec)
        return converted, plan
    example = torch.from_numpy(calib[:1])
    if target == "executorch":
        from mfdeploy.export.executorch import quantize_int8

        return quantize_int8(module, example, calib, spec=spec, target_sqnr=DEFAULT_TARGET_SQNR)
    from mfdeploy.export.tflite_int8 import quantize_pt2e

    converted, _, plan = quantize_pt2e(
        module, example, calib, candidates_in=module, spec=spec, target_sqnr=DEFAULT_TARGET_SQNR
    )
    return converted, plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["26m", "efficientnet_lite0"])
    parser.add_argument("--targets", nargs="+", default=["tflite", "coreml", "executorch"])
    parser.add_argument("--calib-count", type=int, default=32)
    parser.add_argument("--eval-count", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results, rows = [], []
    for name in args.models:
        weights = fixture_weights(name) if name[0].isdigit() else None
        source = load_source(name, None if weights == "synthetic" else weights)
        module = export_module(source, "deploy").eval()
        calib = calibration_inputs(None, args.calib_count, source.preprocessing)
        evals = preprocess_batch(
            resolve_images(None, "evaluation", args.eval_count), source.preprocessing
        )
        with torch.no_grad():
            reference = module(torch.from_numpy(evals)).numpy()
        simulated = measure_float_plan(module, calib).float_modules
        for target in args.targets:
            for label, spec in (("simulation", ",".join(simulated) or "none"), ("program", None)):
                start = time.perf_counter()
                converted, plan = quantise(target, module, calib, spec)
                seconds = time.perf_counter() - start
                with torch.no_grad():
                    out = np.concatenate(
                        [converted(torch.from_numpy(x[None])).numpy() for x in evals]
                    )
                record = {
                    "model": source.name,
                    "target": target,
                    "float_set_from": label,
                    "float_modules": list(plan.float_modules),
                    "held_out_sqnr_db": plan.planned_sqnr_db,
                    "evaluation_sqnr_db": round(sqnr_db(reference, out), 2),
                    "evaluation_photos": len(evals),
                    "seconds": round(seconds, 1),
                }
                results.append(record)
                rows.append([
                    source.name, target, label, ", ".join(plan.float_modules) or "-",
                    f"{record['evaluation_sqnr_db']:.1f}", f"{seconds:.0f}",
                ])  # fmt: skip
                print(record, flush=True)
    print_table(
        f"int8 float set: simulation vs target program ({args.calib_count} calibration photos, "
        f"SQNR of the converted PT2E program on {args.eval_count} evaluation photos)",
        ["model", "target", "float set from", "float modules", "SQNR dB", "s"],
        rows,
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
