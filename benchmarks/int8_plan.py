"""The measured int8 float set of one or more models: each candidate's simulated SQNR when it
alone is int8, its compute, what stays float, and how long the measurement took.

    PYTHONPATH=. .venv/bin/python benchmarks/int8_plan.py [--models 26m 294m efficientnet_lite0]
        [--calib-count 32] [--target-sqnr 22] [--threads 1]

Prints one table per model and writes benchmarks/results/int8_plan.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from mfdeploy.console import print_table
from mfdeploy.export.common import calibration_inputs
from mfdeploy.export.int8_sensitivity import DEFAULT_TARGET_SQNR, measure_float_plan
from mfdeploy.models import load_source
from mfdeploy.models.source import export_module

RESULTS = Path(__file__).parent / "results" / "int8_plan.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["26m", "294m", "efficientnet_lite0"])
    parser.add_argument("--calib-count", type=int, default=32)
    parser.add_argument("--target-sqnr", type=float, default=DEFAULT_TARGET_SQNR)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    for name in args.models:
        source = load_source(name)
        module = export_module(source, "deploy")
        photos = calibration_inputs(None, args.calib_count, source.preprocessing)
        start = time.perf_counter()
        plan = measure_float_plan(module, photos, target_sqnr=args.target_sqnr)
        seconds = time.perf_counter() - start
        record = {"model": source.name, "seconds": round(seconds, 1), **plan.to_dict()}
        results.append(record)
        rows = [
            [c["module"], f"{c['sqnr_db_alone']:.1f}", f"{c['macs'] / 1e6:.1f}", c["float"]]
            for c in record["candidates"]
        ]
        print_table(
            f"{source.name}: all int8 {plan.all_int8_sqnr_db:.1f} dB -> "
            f"{plan.planned_sqnr_db:.1f} dB with {len(plan.float_modules)} float modules "
            f"({seconds:.1f} s, {args.threads} thread)",
            ["candidate", "SQNR dB, only it int8", "MMACs", "float"],
            rows,
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
