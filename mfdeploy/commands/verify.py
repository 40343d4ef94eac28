"""Run an artifact on its runtime and compare its logits with the PyTorch reference.

Same weights (--weights, else the manifest's checkpoint, checked by sha256), same inputs
(evaluation photos + seeded random inputs). Exit 0 pass, 1 a threshold fails, 2 bad input.

examples:
  mfdeploy verify artifacts/mobile_former_294m-onnx-int8
  mfdeploy verify ART --threshold sqnr_db=25 --per-layer --json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mfdeploy.commands.common import int_in, threads_argument
from mfdeploy.console import info, print_table
from mfdeploy.harness.verify import DEFAULT_NUM_IMAGES, verify_artifact
from mfdeploy.metrics import LOWER_IS_BETTER, METRICS, parse_overrides

NAME = "verify"
HELP = "parity of an artifact on its runtime against the PyTorch reference"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifact", type=Path, help="artifact directory (with manifest.json)")
    parser.add_argument("--weights", help="checkpoint the artifact was exported from")
    parser.add_argument("--images", help="directory of images (default: evaluation photos)")
    parser.add_argument(
        "--num-images",
        type=int_in(0, 1_000_000),
        default=DEFAULT_NUM_IMAGES,
        help=f"images to use, spread over the set (default {DEFAULT_NUM_IMAGES}; 0 = all)",
    )
    parser.add_argument("--per-layer", action="store_true", help="SQNR per model block")
    threads_argument(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--threshold",
        action="append",
        metavar="NAME=VALUE",
        help=f"override a threshold ({', '.join(METRICS)}); repeatable",
    )


def run(args: argparse.Namespace) -> int:
    result = verify_artifact(
        args.artifact,
        weights=args.weights,
        images=args.images,
        overrides=parse_overrides(args.threshold),
        per_layer=args.per_layer,
        threads=args.threads,
        num_images=args.num_images or None,
    )
    if args.json:
        print(json.dumps(result.to_json()))
        return 0 if result.passed else 1
    rows = []
    for name in METRICS:
        bound = result.thresholds.get(name)
        op = "<=" if name in LOWER_IS_BETTER else ">="
        rows.append(
            [name, f"{result.metrics[name]:.6g}", "" if bound is None else f"{op} {bound:g}"]
        )
    title = (
        f"{result.artifact}: {result.target} {result.precision} on {result.runtime} "
        f"({result.executor}), {result.num_inputs} inputs"
    )
    print_table(title, ["metric", "value", "threshold"], rows)
    if result.per_layer is not None:
        print_table(
            "per block, worst first",
            ["block", "SQNR dB", "max abs", "note"],
            [
                [
                    r["block"],
                    "-" if r["sqnr_db"] is None else f"{r['sqnr_db']:.1f}",
                    "-" if r["max_abs"] is None else f"{r['max_abs']:.3g}",
                    r["note"],
                ]
                for r in result.per_layer
            ],
        )
    if result.synthetic_weights:
        info("weights are synthetic: parity is meaningful, ImageNet accuracy is not")
    if result.passed:
        print("PASS")
        return 0
    print("FAIL: " + "; ".join(result.failed))
    return 1
