"""Latency and memory of artifacts on their real runtimes, one subprocess per measurement.

Without --artifact, each backend's artifact is exported into a cache (key: model, target,
precision, form, weights sha256, tool versions), so a second run does not re-export.
Method like TFLite's benchmark_model: init (load / session creation), first inference,
warm-up runs, then N timed runs (median, p90, mean, std, min); peak RSS of the worker
process; model size on disk.

examples:
  mfdeploy bench --backend all --variant 294m --threads 1,2 --json
  mfdeploy bench --artifact artifacts/mobile_former_294m-onnx-int8 --runs 50
"""

from __future__ import annotations

import argparse
import json

from mfdeploy.artifact import open_artifact
from mfdeploy.commands.common import (
    MAX_THREADS,
    add_model_arguments,
    add_timing_arguments,
    int_list_in,
    model_from_args,
)
from mfdeploy.console import info, print_table
from mfdeploy.errors import MfdeployError
from mfdeploy.harness import bench

NAME = "bench"
HELP = "latency / memory / size of artifacts on their runtimes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        default="all",
        choices=[*bench.BACKEND_TARGETS, "all"],
        help="runtime to measure (default: all installed)",
    )
    add_model_arguments(parser)
    parser.add_argument("--precision", default="fp32", help="comma list, e.g. fp32,fp16,int8")
    parser.add_argument("--form", default="deploy", choices=["deploy", "reference"])
    parser.add_argument("--artifact", help="measure this artifact directory (no export)")
    parser.add_argument(
        "--threads",
        type=int_list_in(1, MAX_THREADS),
        default=[1],
        help=f"comma list of thread counts, each 1..{MAX_THREADS} (default 1)",
    )
    add_timing_arguments(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object per row")


def _plan(args: argparse.Namespace) -> list[tuple[str, object]]:
    """(backend, artifact dir) pairs to measure."""
    if args.artifact:
        manifest = open_artifact(args.artifact)
        return [(bench.backend_of(manifest.target), args.artifact)]
    entry, variant = model_from_args(args)
    model = entry.model_name(variant)
    precisions = [p for p in args.precision.split(",") if p]
    backends = bench.resolve_backends(args.backend)
    whash = bench.weights_hash(model, args.weights)
    plan = []
    for backend in backends:
        target = bench.BACKEND_TARGETS[backend]
        available = bench.target_precisions(target)
        for precision in precisions:
            if precision not in available:
                if args.backend != "all":
                    raise MfdeployError(
                        f"backend {backend} has no precision {precision!r}; "
                        f"choose {', '.join(available)}"
                    )
                info(f"skipping {backend} {precision}: not offered by target {target}")
                continue
            out, cached = bench.cached_artifact(
                model, target, precision, weights=args.weights, form=args.form, whash=whash
            )
            info(f"{backend} {precision}: {'cached' if cached else 'exported'} {out}")
            plan.append((backend, out))
    return plan


def run(args: argparse.Namespace) -> int:
    rows = []
    for backend, artifact in _plan(args):
        manifest = open_artifact(artifact)
        for n in args.threads:
            info(f"measuring {backend} {manifest.precision} threads={n}")
            measured = bench.run_worker(artifact, n, args.runs, args.warmup)
            rows.append(bench.bench_row(backend, manifest, measured, n))
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print_rows(f"latency ({args.runs} runs after {args.warmup} warm-up)", rows)
    return 0


def print_rows(title: str, rows: list[dict]) -> None:
    """The human view of bench rows (the same objects `--json` prints)."""
    print_table(
        title,
        [
            "backend",
            "precision",
            "model",
            "threads",
            "init ms",
            "first ms",
            "median ms",
            "p90 ms",
            "mean±std ms",
            "min ms",
            "peak RSS MB",
            "size MB",
            "executor",
        ],
        [
            [
                r["backend"],
                r["precision"],
                r["variant"],
                r["threads"],
                f"{r['init_ms']:.1f}",
                f"{r['first_ms']:.1f}",
                f"{r['latency_ms']['median']:.2f}",
                f"{r['latency_ms']['p90']:.2f}",
                f"{r['latency_ms']['mean']:.2f}±{r['latency_ms']['std']:.2f}",
                f"{r['latency_ms']['min']:.2f}",
                f"{r['peak_rss_mb']:.0f}",
                f"{r['model_bytes'] / 1e6:.2f}",
                r["executor"],
            ]
            for r in rows
        ],
    )
