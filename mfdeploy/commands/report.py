"""Export every target x precision for a variant, verify and bench each, write a report.

Writes report.md, report.json, latency.png and parity_vs_latency.png into --out. Artifacts
are exported into the bench cache, so a second report does not re-export. EfficientNet-Lite0
(trained weights) is included when the model registry has it.

examples:
  mfdeploy report --variant 294m --out reports/
  mfdeploy report --variant 26m --targets onnx,tflite --precisions fp32,int8
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mfdeploy.commands.common import MAX_THREADS, add_model_arguments, int_in, model_from_args
from mfdeploy.console import info
from mfdeploy.harness.report import build_report

NAME = "report"
HELP = "export + verify + bench every target x precision, write report.md/json + plots"


def _list(text: str | None) -> list[str] | None:
    return [t for t in text.split(",") if t] if text else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--out", default="reports", help="output directory (default reports/)")
    parser.add_argument("--targets", help="comma list (default: every installed target)")
    parser.add_argument("--precisions", help="comma list (default: every precision)")
    parser.add_argument("--form", default="deploy", choices=["deploy", "reference"])
    parser.add_argument(
        "--threads", type=int_in(1, MAX_THREADS), default=1, help="bench threads (default 1)"
    )
    parser.add_argument(
        "--runs", type=int_in(1, 100_000), default=10, help="timed runs (default 10)"
    )
    parser.add_argument(
        "--warmup", type=int_in(0, 100_000), default=2, help="warm-up runs (default 2)"
    )
    parser.add_argument(
        "--no-yardstick",
        action="store_true",
        help="leave out the yardstick models reported beside every model (trained weights)",
    )


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    entry, variant = model_from_args(args)
    report = build_report(
        entry.model_name(variant),
        out,
        targets=_list(args.targets),
        precisions=_list(args.precisions),
        weights=args.weights,
        form=args.form,
        threads=args.threads,
        runs=args.runs,
        warmup=args.warmup,
        include_yardsticks=not args.no_yardstick,
    )
    bad = [r for r in report["rows"] if r["error"] or not r["verify"]["passed"]]
    info(
        f"wrote {out / 'report.md'}, report.json and 2 plots ({len(report['rows'])} rows, "
        f"{len(bad)} failed)"
    )
    return 0
