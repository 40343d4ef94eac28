"""TFLite precisions and int8 recipes on one variant: logits on the evaluation photos
against PyTorch fp32 (SQNR, cosine, top-1), model size, LiteRT latency (1 thread).

    .venv/bin/python benchmarks/tflite_int8_recipes.py [--variant 26m]
        [--weights tests/fixtures/mobile_former_26m.safetensors]
        [--configs fp32 fp16 int8-weights int8:auto int8:none int8:head ...]

A config is a precision, optionally `int8:<auto|none|module path>[:float-io][:nchw][:reference]`.
Prints a table and writes benchmarks/results/tflite_int8_recipes.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mfdeploy.console import print_table
from mfdeploy.export import export_artifact
from mfdeploy.harness.inspect import audit
from mfdeploy.harness.timing import time_runtime
from mfdeploy.metrics import cosine, sqnr_db, top1_agreement
from mfdeploy.models import load_source
from mfdeploy.photos import resolve_images
from mfdeploy.preprocessing import load_image, preprocess
from mfdeploy.runtimes import open_runtime

RESULTS = Path(__file__).parent / "results" / "tflite_int8_recipes.json"
DEFAULT_CONFIGS = ["fp32", "fp16", "int8-weights", "int8:auto", "int8:none", "int8:auto:float-io"]


def options_of(config: str) -> tuple[str, dict]:
    precision, *flags = config.split(":")
    options: dict = {}
    for flag in flags:
        if flag == "float-io":
            options["float_io"] = True
        elif flag in ("nchw", "nhwc"):
            options["layout"] = flag
        elif flag in ("reference", "deploy"):
            options["form"] = flag
        else:
            options["int8_float"] = flag
    return precision, options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="26m")
    parser.add_argument("--weights", default="tests/fixtures/mobile_former_26m.safetensors")
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    source = load_source(args.variant, args.weights)
    photos = np.stack([preprocess(load_image(p)) for p in resolve_images(None, "evaluation")])
    with torch.no_grad():
        reference = source.model(torch.from_numpy(photos)).numpy()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for config in args.configs:
            precision, options = options_of(config)
            start = time.perf_counter()
            path, manifest = export_artifact(
                "tflite",
                args.variant,
                precision=precision,
                source=source,
                out=Path(tmp) / config.replace(":", "-"),
                **options,
            )
            export_s = time.perf_counter() - start
            runtime = open_runtime(path, threads=1)
            out = runtime.run(photos)
            timing = time_runtime(runtime, photos[:1], runs=args.runs)
            report = audit(path)
            rows.append(
                {
                    "config": config,
                    "sqnr_db": sqnr_db(reference, out),
                    "cosine": cosine(reference, out),
                    "top1_agreement": top1_agreement(reference, out),
                    "model_bytes": report.model_bytes,
                    "latency_ms": timing["latency_ms"]["median"],
                    "export_s": export_s,
                    "audit_passed": report.passed,
                    "input": f"{manifest.input.dtype} {manifest.input.layout}",
                    "output": manifest.output.dtype,
                    "ops": dict(sorted(report.ops.items(), key=lambda kv: -kv[1])),
                }
            )
    print_table(
        f"{args.variant} TFLite on {len(photos)} evaluation photos vs PyTorch fp32",
        ["config", "SQNR dB", "cosine", "top-1", "MB", "ms (1 thr)", "input", "output", "audit"],
        [
            (
                r["config"],
                f"{r['sqnr_db']:.2f}",
                f"{r['cosine']:.4f}",
                f"{r['top1_agreement']:.2f}",
                f"{r['model_bytes'] / 1e6:.2f}",
                f"{r['latency_ms']:.2f}",
                r["input"],
                r["output"],
                "ok" if r["audit_passed"] else "FAIL",
            )
            for r in rows
        ],
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
