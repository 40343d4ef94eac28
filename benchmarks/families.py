"""Three families side by side at about the same published accuracy: Mobile-Former 294m,
MobileViTv2-1.0 and EfficientNet-Lite0, fp32 and the int8 precisions, on LiteRT, ONNX
Runtime and ExecuTorch (when installed), one thread, timed interleaved in one process.

    PYTHONPATH=. .venv/bin/python benchmarks/families.py [--models 294m mobilevitv2_100
        efficientnet_lite0] [--precisions fp32 int8 int8-weights int8-dynamic]
        [--targets tflite onnx executorch] [--runs 40] [--warmup 5]

Artifacts come from the bench cache (`mfdeploy bench`'s; exported on a miss with every
default: deploy form, the measured int8 float set, 32 calibration photos); a precision a
target does not export (int8-weights is LiteRT's, int8-dynamic ONNX Runtime's) is skipped
for it. Every timed round runs each artifact once in turn (round-robin,
`runtimes.interleaved`), so load from elsewhere on the machine falls on all alike. Each
model gets its own input size (224, MobileViTv2 256). Weights: the registry's defaults, i.e.
seeded synthetic for Mobile-Former and MobileViTv2 (latency and size are meaningful,
accuracy is not) and the trained ImageNet weights for EfficientNet-Lite0. Prints the table
and writes benchmarks/results/families.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _common import installed_targets
from runtimes import interleaved, open_all

from mfdeploy.artifact import Manifest, path_size
from mfdeploy.console import print_table
from mfdeploy.export import target_module
from mfdeploy.harness import bench
from mfdeploy.models import resolve_model
from mfdeploy.models.counting import count_macs, count_parameters

TARGETS = {"tflite": "litert", "onnx": "onnxruntime", "executorch": "executorch"}
OUT = Path(__file__).parent / "results" / "families.json"


def model_facts(name: str) -> dict:
    """Published top-1, counted params and MACs (at the model's own resolution), weights."""
    entry, variant = resolve_model(name)
    model = entry.build(variant, None, None)
    resolution = entry.preprocessing.resolution
    published, _ = entry.variant_facts(variant)
    return {
        "model": entry.model_name(variant),
        "family": entry.title,
        "published_top1": published.get("published_top1"),
        "params": count_parameters(model),
        "macs": count_macs(model, resolution),
        "resolution": resolution,
        "weights": entry.default_weights,
    }


def artifact(model: str, target: str, precision: str) -> tuple[Path, float | None]:
    """The cached artifact and, when it was exported now, the export's wall seconds."""
    start = time.perf_counter()
    path, cached = bench.cached_artifact(model, target, precision)
    return path, None if cached else time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["294m", "mobilevitv2_100",
                                                        "efficientnet_lite0"])  # fmt: skip
    parser.add_argument(
        "--precisions", nargs="+", default=["fp32", "int8", "int8-weights", "int8-dynamic"]
    )
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    targets = installed_targets(args.targets)

    facts = {name: model_facts(name) for name in args.models}
    paths: dict[str, Path] = {}
    keys: dict[str, dict] = {}
    for name in args.models:
        for precision in args.precisions:
            for target in targets:
                if precision not in target_module(target).PRECISIONS:
                    continue
                key = f"{name} {precision} {TARGETS[target]}"
                path, seconds = artifact(name, target, precision)
                paths[key] = path
                keys[key] = {
                    "name": name,
                    "precision": precision,
                    "runtime": TARGETS[target],
                    "export_seconds": None if seconds is None else round(seconds, 1),
                }
    runtimes, _spacer = open_all(paths, args.threads)
    rng = np.random.default_rng(0)
    batches = {}
    for key in runtimes:
        res = facts[keys[key]["name"]]["resolution"]
        batches[key] = rng.standard_normal((1, 3, res, res)).astype(np.float32)
    times = interleaved(runtimes, batches, args.runs, args.warmup)

    records, rows = [], []
    for key, meta in keys.items():
        fact = facts[meta["name"]]
        manifest = Manifest.load(paths[key])
        size = path_size(paths[key] / manifest.model_file)
        record = {
            **fact,
            "precision": meta["precision"],
            "runtime": meta["runtime"],
            "threads": args.threads,
            "median_ms": round(times[key]["median"], 3),
            "min_ms": round(times[key]["min"], 3),
            "runs": times[key]["runs"],
            "model_file_bytes": size,
            "export_seconds": meta["export_seconds"],
        }
        records.append(record)
        top1 = fact["published_top1"]
        rows.append(
            [
                fact["model"],
                f"{top1}%" if top1 is not None else "-",
                fact["weights"],
                f"{fact['params'] / 1e6:.2f}M",
                f"{fact['macs'] / 1e6:.0f}M",
                meta["precision"],
                meta["runtime"],
                f"{record['median_ms']:.2f}",
                f"{size / 1e6:.2f}",
            ]
        )
    print_table(
        f"median ms of {args.runs} interleaved runs, {args.threads} thread, batch 1",
        ["model", "published top-1", "weights", "params", "MACs", "precision", "runtime",
         "median ms", "MB"],
        rows,
    )  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
