"""The int8 alternatives side by side, per model and runtime: what each costs in accuracy and
what it buys in size and speed against the same runtime's fp32.

    PYTHONPATH=. .venv/bin/python benchmarks/int8_speed.py [--models 294m efficientnet_lite0]
        [--targets tflite onnx executorch] [--threads 1 2] [--runs 50] [--sessions 2]
        [--images 64]

Per target, the artifacts `mfdeploy export` makes with every default (weights: the registry's
defaults, i.e. seeded synthetic Mobile-Former, trained EfficientNet-Lite0):

- fp32;
- int8 as shipped: static int8 with the measured float set (checked on the runtime), the
  float modules' linears / convolutions with int8 weights and run-time activation scales
  where that pays (docs/int8.md);
- the target's int8 without calibrated scales: LiteRT int8-weights (dynamic-range qd8, its
  wide GEMMs measured on calibration photos), ONNX int8-dynamic (MatMul / Gemm and its
  pointwise convolutions measured on calibration photos);
  ExecuTorch has none;
- every module static int8 (`--int8-float none`): the speed ceiling of static int8, which
  misses the accuracy bound on the synthetic weights (not checked, not shipped).

Each artifact: model file size (and against fp32's), XNNPACK partitions (LiteRT) or delegate
calls (ExecuTorch), float modules, `mfdeploy verify`'s SQNR on `--images` evaluation photos
(pass / FAIL at the default bounds), top-1 on the labelled photos for models with trained
weights, and the median of `--runs` runs per thread count. Every artifact of a model is
timed in one process, interleaved (`runtimes.interleaved`: each round runs each artifact
in turn, with 1 thread one untimed run and one timed, because a run right after another
model's starts with that model in the caches; with 2 threads ten untimed runs and ten timed
ones in a row, because the previous artifact's worker threads still spin), so load from
elsewhere falls on all alike; each artifact is opened `--sessions` times and the runs are
pooled (`runtimes.open_all`: one session's median can be 1-2 % off another's of the same
file), with one untimed spacer session opened after them (the last session opened ran 2 %
faster). Artifacts
come from the bench cache (`mfdeploy bench`'s; exported on a miss, the all-int8 ones under
their own key). Prints one table per model and writes benchmarks/results/int8_speed.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from _common import installed_targets
from runtimes import interleaved, open_all

from mfdeploy.artifact import Manifest, path_size
from mfdeploy.console import info, print_table
from mfdeploy.harness import bench
from mfdeploy.harness.accuracy import accuracy, labelled_images
from mfdeploy.harness.inspect import audit
from mfdeploy.harness.report import machine
from mfdeploy.harness.verify import verify_artifact
from mfdeploy.models import resolve_model
from mfdeploy.preprocessing import Preprocessing
from mfdeploy.runtimes import open_runtime

OUT = Path(__file__).parent / "results" / "int8_speed.json"
#: with more than one thread: untimed runs, then timed runs, in a row per artifact and round
#: (`runtimes.interleaved`: the previous artifact's threads still spin; measured here, ONNX
#: Runtime's spin through five runs of the next artifact, ten settle it)
MULTI_THREAD_SETTLE, MULTI_THREAD_BLOCK = 10, 10
#: with 1 thread: one untimed run before each timed one, so a run starts with its own model
#: in the caches, as in an app (without it, the artifact timed right after a 46 MB fp32 file
#: ran 0.2 ms slower than the same file later in the round: benchmarks/tflite_qd8_ops.py)
ONE_THREAD_SETTLE = 1
RUNTIMES = {"tflite": "litert", "onnx": "onnxruntime", "executorch": "executorch"}
#: (label, precision, --int8-float) per target, fp32 first: the speed-ups are against it
ALTERNATIVES = {
    "tflite": (
        ("fp32", "fp32", None),
        ("int8 (shipped)", "int8", None),
        ("int8-weights (qd8, nothing calibrated)", "int8-weights", None),
        ("int8, every module", "int8", "none"),
    ),
    "onnx": (
        ("fp32", "fp32", None),
        ("int8 (shipped)", "int8", None),
        ("int8-dynamic (nothing calibrated)", "int8-dynamic", None),
        ("int8, every module", "int8", "none"),
    ),
    "executorch": (
        ("fp32", "fp32", None),
        ("int8 (shipped)", "int8", None),
        ("int8, every module", "int8", "none"),
    ),
}


def partitions(path: Path, target: str) -> str:
    """XNNPACK partitions (LiteRT) or delegate calls per run (ExecuTorch)."""
    report = audit(path)
    if target == "tflite":
        return str(report.xnnpack_partitions)
    if target == "executorch":
        return f"{report.delegate_calls} calls"
    return "-"


def describe(path: Path, target: str, images: int, labelled: bool) -> dict:
    """Size, partitions, float modules, verify and (trained weights) top-1 of one artifact."""
    manifest = Manifest.load(path)
    plan = (manifest.extra or {}).get("int8_plan") or {}
    result = verify_artifact(path, num_images=images)
    record = {
        "artifact": path.name,  # the bench cache's entry (its directory is the machine's)
        "bytes": path_size(path / manifest.model_file),
        "partitions": partitions(path, target),
        "float_modules": plan.get("float_modules"),
        "sqnr_db": round(float(result.metrics["sqnr_db"]), 2),
        "passed": result.passed,
        "top1": None,
    }
    if labelled:
        runtime = open_runtime(path)
        prep = Preprocessing.from_dict(manifest.preprocessing)
        record["top1"] = accuracy(runtime.run, labelled_images(None), prep).top1
    return record


def measure(model: str, targets: list[str], args: argparse.Namespace) -> list[dict]:
    entry, variant = resolve_model(model)
    trained = entry.default_weights != "synthetic"
    resolution = entry.preprocessing.resolution
    rows: dict[str, dict] = {}
    paths: dict[str, Path] = {}
    for target in targets:
        for label, precision, int8_float in ALTERNATIVES[target]:
            path, _ = bench.cached_artifact(model, target, precision, int8_float=int8_float)
            paths[f"{target}|{label}"] = path
            info(f"{model} {RUNTIMES[target]} {label}: verify on {args.images} photos")
            rows[f"{target}|{label}"] = {
                "model": entry.model_name(variant),
                "runtime": RUNTIMES[target],
                "alternative": label,
                "precision": precision,
                "int8_float": int8_float,
                **describe(path, target, args.images, trained and precision != "fp32"),
                "ms": {},
            }
    batch = np.random.default_rng(0).standard_normal((1, 3, resolution, resolution))
    for threads in args.threads:
        info(f"{model}: timing {len(rows)} artifacts interleaved, {threads} thread(s)")
        runtimes, _spacer = open_all(paths, threads, args.sessions)
        block, settle = (
            (1, ONE_THREAD_SETTLE) if threads == 1 else (MULTI_THREAD_BLOCK, MULTI_THREAD_SETTLE)
        )
        x = batch.astype(np.float32)
        times = interleaved(runtimes, x, args.runs, args.warmup, block, settle)
        for key, row in rows.items():
            row["ms"][str(threads)] = round(times[key]["median"], 3)
    return list(rows.values())


def table(records: list[dict], threads: list[int]) -> None:
    fp32 = {r["runtime"]: r for r in records if r["precision"] == "fp32"}
    rows = []
    for r in records:
        base = fp32[r["runtime"]]
        floats = r["float_modules"]
        rows.append(
            [
                r["runtime"],
                r["alternative"],
                f"{r['bytes'] / 1e6:.1f} ({r['bytes'] / base['bytes']:.2f}x)",
                r["partitions"],
                "-" if floats is None else str(len(floats)),
                f"{r['sqnr_db']:.1f}{'' if r['passed'] else ' FAIL'}",
                "-" if r["top1"] is None else f"{100 * r['top1']:.1f}%",
                *(
                    f"{r['ms'][str(t)]:.2f} ({base['ms'][str(t)] / r['ms'][str(t)]:.2f}x)"
                    for t in threads
                ),
            ]
        )
    print_table(
        f"{records[0]['model']}: median ms of interleaved runs (speed-up against the same "
        f"runtime's fp32)",
        ["runtime", "artifact", "MB (x fp32)", "XNNPACK", "float modules", "verify dB",
         "top-1", *(f"ms, {t} thread{'s' if t > 1 else ''}" for t in threads)],
        rows,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["294m", "efficientnet_lite0"])
    parser.add_argument("--targets", nargs="+", default=list(RUNTIMES), choices=list(RUNTIMES))
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument(
        "--sessions",
        type=int,
        default=2,
        help="sessions per artifact, their runs pooled (one session's median is ~1-2 %% off "
        "another's of the same file: runtimes.open_all)",
    )
    parser.add_argument("--images", type=int, default=64, help="evaluation photos for verify")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    targets = installed_targets(args.targets)
    results = {"machine": machine(), "runs": args.runs, "images": args.images, "models": {}}
    for model in args.models:
        records = measure(model, targets, args)
        results["models"][model] = records
        table(records, args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
