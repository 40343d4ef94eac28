"""Core ML precisions side by side: parity with PyTorch and the executor's time.

Exports the variant to Core ML at every precision (deploy form), runs each saved program on
this machine's Core ML executor (Core ML itself on macOS; the numpy MIL executor elsewhere)
on the evaluation photos plus seeded random inputs, and compares with the PyTorch reference.

On Linux the time column is the MIL executor's (numpy) time per image: it says how heavy
the program is to emulate, NOT how fast it runs on an iPhone or Mac.

    .venv/bin/python benchmarks/coreml_precisions.py --variant 294m
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from _common import evaluation_inputs

from mfdeploy.artifact import path_size
from mfdeploy.console import info, print_table
from mfdeploy.export import export_artifact
from mfdeploy.export.coreml import PRECISIONS
from mfdeploy.metrics import compare_logits, cosine
from mfdeploy.models import load_source
from mfdeploy.runtimes import open_runtime


def metrics(ref: np.ndarray, out: np.ndarray) -> dict:
    """The product's logits metrics, plus the worst single-image cosine."""
    values = compare_logits(ref, out)
    values["cosine_min"] = min(cosine(r[None], o[None]) for r, o in zip(ref, out))
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="294m")
    parser.add_argument("--weights", help="checkpoint (default: seeded synthetic weights)")
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    parser.add_argument("--runs", type=int, default=5, help="timed executor runs (batch 1)")
    parser.add_argument("--out", default="artifacts/bench-coreml")
    parser.add_argument("--json", default="reports/coreml_precisions.json")
    args = parser.parse_args()

    source = load_source(args.variant, args.weights)
    inputs = evaluation_inputs(source.preprocessing)
    with torch.no_grad():
        reference = source.model(torch.from_numpy(inputs)).numpy()

    rows, results = [], []
    fp32_out = None
    for precision in args.precisions.split(","):
        start = time.perf_counter()
        out_dir, _ = export_artifact(
            "coreml",
            args.variant,
            precision=precision,
            source=source,
            out=Path(args.out) / f"{source.name}-{precision}",
        )
        export_s = time.perf_counter() - start
        runtime = open_runtime(out_dir)
        out = runtime.run(inputs)
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            runtime.run(inputs[:1])
            times.append((time.perf_counter() - t0) * 1000)
        row = {
            "variant": args.variant,
            "precision": precision,
            "executor": runtime.info().executor,
            "vs_pytorch": metrics(reference, out),
            "sqnr_vs_fp32_db": metrics(fp32_out, out)["sqnr_db"] if fp32_out is not None else None,
            "executor_ms_median": statistics.median(times),
            "executor_time_is": "MIL executor (numpy) time per image, not device latency"
            if runtime.info().executor == "mil-executor"
            else "Core ML runtime (CPU_ONLY) latency",
            "model_bytes": path_size(out_dir / "model.mlpackage"),
            "export_s": export_s,
            "synthetic_weights": source.synthetic,
        }
        if precision == "fp32":
            fp32_out = out
        results.append(row)
        m = row["vs_pytorch"]
        rows.append(
            [
                precision,
                f"{m['max_abs']:.2e}",
                f"{m['cosine_min']:.5f}",
                f"{m['sqnr_db']:.1f}",
                "-" if row["sqnr_vs_fp32_db"] is None else f"{row['sqnr_vs_fp32_db']:.1f}",
                f"{m['top1_agreement']:.2f}",
                f"{row['executor_ms_median']:.0f}",
                f"{row['model_bytes'] / 1e6:.1f}",
            ]
        )
        info(f"{precision}: {m}")
    executor = results[0]["executor"] if results else "?"
    print_table(
        f"Core ML {source.name} ({executor}; {len(inputs)} inputs: evaluation photos + random)",
        [
            "precision",
            "max abs",
            "min cosine",
            "SQNR dB",
            "SQNR vs fp32",
            "top-1 agree",
            f"{executor} ms",
            "MB",
        ],
        rows,
    )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    info(f"wrote {args.json}")


if __name__ == "__main__":
    main()
