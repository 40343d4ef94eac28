"""ONNX target, every precision and int8 recipe: parity and ONNX Runtime latency.

    .venv/bin/python benchmarks/onnx_precisions.py [--variant 294m] [--weights CKPT]
        [--runs 50] [--threads 1 2]

Parity on the project's evaluation photos (int8 is calibrated on the calibration photos):
against the PyTorch reference (max abs, cosine, top-1 agreement) and against the fp32 ONNX
graph (SQNR, cosine). Latency: ORT CPU EP, median of --runs after 10 warm-up runs.
Also prints the simplifier node counts (exporter / onnxsim / onnxslim) of the fp32 graph.
Writes benchmarks/results/onnx_precisions_<variant>.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from mfdeploy.artifact import Manifest, path_size
from mfdeploy.console import print_table
from mfdeploy.export import export_artifact
from mfdeploy.harness.timing import time_runtime
from mfdeploy.metrics import cosine, max_abs, sqnr_db, top1_agreement
from mfdeploy.models import load_source
from mfdeploy.photos import resolve_images
from mfdeploy.preprocessing import load_image, preprocess
from mfdeploy.runtimes import open_runtime

RESULTS = Path(__file__).parent / "results"
# (row name, precision, exporter options)
CASES = (
    ("fp32", "fp32", {}),
    ("fp16", "fp16", {}),
    ("int8 (default: conv, early stage float)", "int8", {}),
    ("int8 conv only", "int8", {"float_ops": "none"}),
    ("int8 conv+gemm+matmul", "int8", {"int8_recipe": "linear", "float_ops": "none"}),
    ("int8 full, softmax/LN float", "int8", {"int8_recipe": "full"}),
    ("int8 full", "int8", {"int8_recipe": "full", "float_ops": "none"}),
    ("int8-dynamic", "int8-dynamic", {}),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="294m")
    parser.add_argument("--weights", help="checkpoint (default: seeded synthetic weights)")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--cases", nargs="+", help="subset of row names (default: all)")
    args = parser.parse_args()

    source = load_source(args.variant, args.weights)
    photos = np.stack([preprocess(load_image(p)) for p in resolve_images(None, "evaluation")])
    with torch.no_grad():
        reference = source.model.eval()(torch.from_numpy(photos)).numpy()
    x = photos[:1]
    rows: list[dict] = []
    fp32_logits = None
    with tempfile.TemporaryDirectory() as tmp:
        for name, precision, options in CASES:
            if args.cases and name not in args.cases and precision not in args.cases:
                continue
            out = Path(tmp) / name.replace(" ", "_").replace("/", "-")
            path, manifest = export_artifact(
                "onnx",
                args.variant,
                precision=precision,
                out=out,
                source=source,
                ort_format=False,
                **options,
            )
            logits = open_runtime(path).run(photos)
            if precision == "fp32":
                fp32_logits = logits
            base = fp32_logits if fp32_logits is not None else reference
            row = {
                "case": name,
                "precision": precision,
                "variant": args.variant,
                "options": options,
                "vs_pytorch": {
                    "max_abs": max_abs(reference, logits),
                    "cosine": cosine(reference, logits),
                    "top1_agreement": top1_agreement(reference, logits),
                },
                "vs_fp32": {"sqnr_db": sqnr_db(base, logits), "cosine": cosine(base, logits)},
                "model_bytes": path_size(path / manifest.model_file),
                "extra": {
                    k: v
                    for k, v in Manifest.load(path).extra.items()
                    if k != "mobile_execution_providers"
                },
                "timing": {},
            }
            for n in args.threads:
                row["timing"][n] = time_runtime(open_runtime(path, threads=n), x, runs=args.runs)
            rows.append(row)
            print(f"done {name}", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    result_path = RESULTS / f"onnx_precisions_{args.variant}.json"
    result_path.write_text(json.dumps(rows, indent=2, default=str) + "\n")

    columns = ["case", "max abs vs torch", "cos vs torch", "top1 agr", "SQNR vs fp32", "MB"]
    columns += [f"median ms ({n}t)" for n in args.threads]
    table = []
    for row in rows:
        cells = [
            row["case"],
            f"{row['vs_pytorch']['max_abs']:.2e}",
            f"{row['vs_pytorch']['cosine']:.5f}",
            f"{row['vs_pytorch']['top1_agreement']:.2f}",
            f"{row['vs_fp32']['sqnr_db']:.1f}",
            f"{row['model_bytes'] / 1e6:.1f}",
        ]
        cells += [f"{row['timing'][n]['latency_ms']['median']:.2f}" for n in args.threads]
        table.append(cells)
    weights = args.weights or "synthetic"
    print_table(
        f"ONNX {args.variant} ({weights} weights), {len(photos)} evaluation photos, "
        f"ORT CPU, median of {args.runs} runs",
        columns,
        table,
    )
    fp32 = next((r for r in rows if r["precision"] == "fp32"), None)
    if fp32:
        print(
            f"fp32 node counts: {fp32['extra'].get('node_counts')} -> "
            f"{fp32['extra'].get('simplifier')}"
        )
    print(f"wrote {result_path}")


if __name__ == "__main__":
    main()
