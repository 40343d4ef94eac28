"""Core ML W8A8: float set measured on coremltools' PT2E program vs on the eager simulation.

For each model, export int8 twice: with `--int8-float` set to what the eager simulation
(`int8_sensitivity`) chose, and with the default (`auto`: for Core ML measured on the
quantizer's own program, `pt2e_plan`; for the other targets `auto` is the simulation). Each
artifact is judged by `verify` on its real runtime (Core ML: the MIL executor on Linux)
against PyTorch on evaluation photos.

    PYTHONPATH=. .venv/bin/python benchmarks/int8_program_vs_simulation.py \
        [--models 26m efficientnet_lite0] [--targets coreml] [--calib-count 32]

Prints a table and writes benchmarks/results/int8_program_vs_simulation.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from _common import fixture_weights

from mfdeploy.artifact import Manifest
from mfdeploy.console import print_table
from mfdeploy.export import export_artifact
from mfdeploy.export.common import calibration_inputs
from mfdeploy.export.int8_sensitivity import measure_float_plan
from mfdeploy.harness.verify import verify_artifact
from mfdeploy.models import load_source
from mfdeploy.models.source import export_module

RESULTS = Path(__file__).parent / "results" / "int8_program_vs_simulation.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["26m", "efficientnet_lite0"])
    parser.add_argument("--targets", nargs="+", default=["coreml"])
    parser.add_argument("--calib-count", type=int, default=32)
    parser.add_argument("--eval-count", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results, rows = [], []
    work = Path(tempfile.mkdtemp(prefix="int8-pvs-"))
    for name in args.models:
        weights = fixture_weights(name) if name[0].isdigit() else "synthetic"
        weights = None if weights == "synthetic" else weights
        source = load_source(name, weights)
        calib = calibration_inputs(None, args.calib_count, source.preprocessing)
        simulated = measure_float_plan(export_module(source, "deploy"), calib).float_modules
        for target in args.targets:
            for label, spec in (("simulation", ",".join(simulated) or "none"), ("program", None)):
                start = time.perf_counter()
                path, _ = export_artifact(
                    target,
                    precision="int8",
                    source=source,
                    out=work / f"{source.name}-{target}-{label}",
                    calib_count=args.calib_count,
                    int8_float=spec,
                )
                seconds = time.perf_counter() - start
                extra = Manifest.load(path).extra
                plan = extra["int8_plan"]
                result = verify_artifact(path, weights=weights, num_images=args.eval_count)
                record = {
                    "model": source.name,
                    "target": target,
                    "float_set_from": label,
                    "float_modules": plan["float_modules"],
                    "held_out_sqnr_db": plan.get("planned_sqnr_db"),
                    "verify_sqnr_db": round(result.metrics["sqnr_db"], 2),
                    "verify_passed": result.passed,
                    "evaluation_photos": args.eval_count,
                    "export_seconds": round(seconds, 1),
                }
                results.append(record)
                rows.append([
                    source.name, target, label, ", ".join(plan["float_modules"]) or "-",
                    f"{record['verify_sqnr_db']:.1f}", "pass" if result.passed else "FAIL",
                    f"{seconds:.0f}",
                ])  # fmt: skip
                print(record, flush=True)
    print_table(
        f"int8 float set: simulation vs target program ({args.calib_count} calibration photos; "
        f"verify on {args.eval_count} evaluation photos, real runtimes)",
        ["model", "target", "float set from", "float modules", "SQNR dB", "verify", "export s"],
        rows,
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    key = ("model", "target", "float_set_from")
    done = {tuple(r[k] for k in key) for r in results}
    earlier = json.loads(RESULTS.read_text()) if RESULTS.is_file() else []
    kept = [r for r in earlier if tuple(r.get(k) for k in key) not in done]
    RESULTS.write_text(json.dumps(kept + results, indent=2) + "\n")  # other cells kept
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
