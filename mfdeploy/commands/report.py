"""The main job: every installed target x precision of a model (and the yardstick models),
exported, verified against PyTorch on real photos and benchmarked on its runtime.

Writes report.md (a summary of what to ship per platform, the tables, what failed and why),
report.json, latency.png, parity_vs_latency.png and size_vs_latency.png into --out, and
each step's converter output into --out/logs/ (the console shows one progress display and
one line per row; --verbose shows everything).

  mfdeploy report                          # Mobile-Former 294m, synthetic weights
  mfdeploy report --variant 26m --precisions fp32,int8 --out reports/26m
  mfdeploy report --targets onnx,tflite --precisions int8,int8-weights,int8-dynamic
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mfdeploy.commands.common import (
    MAX_THREADS,
    add_model_arguments,
    add_timing_arguments,
    int_in,
    model_from_args,
)
from mfdeploy.console import info
from mfdeploy.harness.export_pool import MAX_WORKERS
from mfdeploy.harness.report import ReportOptions, build_report, ship_lines

NAME = "report"
HELP = "export + verify + bench every target x precision, write report.md/json + plots"


def _list(text: str | None) -> list[str] | None:
    return [t for t in text.split(",") if t] if text else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--out", default="reports", help="output directory (default reports/)")
    parser.add_argument("--targets", help="comma list (default: every installed target)")
    parser.add_argument(
        "--precisions",
        help="comma list (default: every precision a target recommends; 'all' adds those a "
        "target offers for comparison only, never recommended to ship: none today)",
    )
    parser.add_argument("--form", default="deploy", choices=["deploy", "reference"])
    parser.add_argument(
        "--threads", type=int_in(1, MAX_THREADS), default=1, help="bench threads (default 1)"
    )
    add_timing_arguments(parser)
    parser.add_argument(
        "--jobs",
        type=int_in(1, 64),
        default=None,
        help="exports run at once, each in its own process (default: one per core, at most "
        f"{MAX_WORKERS}); benches always run one at a time",
    )
    parser.add_argument(
        "--no-yardstick",
        action="store_true",
        help="leave out the yardstick models reported beside every model (trained weights)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show converter output instead of logging it"
    )


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    entry, variant = model_from_args(args)
    opts = ReportOptions(
        targets=_list(args.targets),
        precisions=_list(args.precisions),
        weights=args.weights,
        form=args.form,
        threads=args.threads,
        runs=args.runs,
        warmup=args.warmup,
        include_yardsticks=not args.no_yardstick,
        verbose=args.verbose,
        workers=args.jobs,
    )
    report = build_report(entry.model_name(variant), out, opts)
    for line in ship_lines(report):
        info(line)
    rows = report["rows"]
    bad = [r for r in rows if (r["error"] or not r["verify"]["passed"]) and not r["comparison"]]
    info(
        f"wrote {out / 'report.md'}, report.json and 3 plots in {report['seconds']:.0f} s "
        f"({len(rows)} rows, {len(bad)} recommended-precision rows failed)"
    )
    return 0
