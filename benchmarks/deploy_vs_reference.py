"""Reference form vs deploy form, exported to ONNX and TFLite float32, timed on
ONNX Runtime and LiteRT at 1 and 2 threads (median of >= 50 runs after warm-up).

    .venv/bin/python benchmarks/deploy_vs_reference.py [--variants 26m 294m] [--runs 50]

Prints a table and writes benchmarks/results/deploy_vs_reference.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from mfdeploy.console import print_table
from mfdeploy.export import export_artifact
from mfdeploy.graph_audit import audit
from mfdeploy.runtimes import open_runtime
from mfdeploy.timing import time_runtime

TARGETS = {"onnx": "onnxruntime", "tflite": "litert"}
RESULTS = Path(__file__).parent / "results" / "deploy_vs_reference.json"


def measure(variant: str, runs: int, threads: list[int], workdir: Path) -> list[dict]:
    rows = []
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    for target, runtime_name in TARGETS.items():
        for form in ("reference", "deploy"):
            out = workdir / f"{variant}-{target}-{form}"
            options = {"ort_format": False} if target == "onnx" else {}
            path, _ = export_artifact(target, variant, form=form, out=out, **options)
            report = audit(path)
            for n in threads:
                timing = time_runtime(open_runtime(path, threads=n), x, runs=runs)
                rows.append(
                    {
                        "variant": variant,
                        "runtime": runtime_name,
                        "form": form,
                        "threads": n,
                        "ops": sum(report.ops.values()),
                        "transposes": report.ops.get("Transpose", report.ops.get("TRANSPOSE", 0)),
                        "max_rank": report.max_rank,
                        **timing,
                    }
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["26m", "294m"])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants:
            rows += measure(variant, args.runs, args.threads, Path(tmp))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=2) + "\n")
    table = []
    for row in rows:
        if row["form"] != "deploy":
            continue
        ref = next(
            r
            for r in rows
            if r["form"] == "reference"
            and all(r[k] == row[k] for k in ("variant", "runtime", "threads"))
        )
        speedup = ref["latency_ms"]["median"] / row["latency_ms"]["median"]
        table.append(
            [
                row["variant"],
                row["runtime"],
                row["threads"],
                f"{ref['latency_ms']['median']:.2f}",
                f"{row['latency_ms']['median']:.2f}",
                f"{speedup:.2f}x",
                f"{ref['ops']} / {row['ops']}",
                f"{ref['transposes']} / {row['transposes']}",
                f"{ref['max_rank']} / {row['max_rank']}",
            ]
        )
    print_table(
        f"deploy vs reference form, float32, median of {args.runs} runs (ms)",
        [
            "variant",
            "runtime",
            "threads",
            "reference",
            "deploy",
            "speed-up",
            "ops ref/dep",
            "transposes ref/dep",
            "max rank ref/dep",
        ],
        table,
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
