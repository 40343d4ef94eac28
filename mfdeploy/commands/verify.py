"""Check that an exported artifact computes what the PyTorch model computes.

Runs the artifact on its real runtime and the PyTorch reference (same weights: --weights,
or the manifest's synthetic weights, checked by sha256) on the evaluation photos plus
seeded random images, and compares the logits. Exit 0 pass, 1 a threshold failed,
2 bad input.
"""

from __future__ import annotations

import argparse
import json

from mfdeploy.console import print_table
from mfdeploy.errors import MfdeployError
from mfdeploy.verify import verify

NAME = "verify"
HELP = "parity of an artifact on its runtime against the PyTorch reference"


def _threshold(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifact", help="artifact directory (model + manifest.json)")
    parser.add_argument("--weights", help="checkpoint the artifact was exported from")
    parser.add_argument("--images", help="directory of images (default: evaluation photos)")
    parser.add_argument(
        "--threshold",
        type=_threshold,
        action="append",
        default=[],
        help="override a threshold, e.g. --threshold sqnr_db=15 (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    try:
        result = verify(args.artifact, args.weights, args.images, dict(args.threshold))
    except FileNotFoundError as exc:
        raise MfdeployError(str(exc)) from None
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        m = result.manifest
        print_table(
            f"{result.artifact}: {m.target} {m.precision} on {result.runtime['runtime']} "
            f"({result.num_inputs} inputs)",
            ["metric", "value", "threshold"],
            [
                [
                    name,
                    f"{value:.6g}",
                    f"{result.thresholds[name]:g}" if name in result.thresholds else "",
                ]
                for name, value in result.metrics.items()
            ],
        )
        if m.synthetic_weights:
            print("(synthetic weights: parity is meaningful, ImageNet accuracy is not)")
        print("PASSED" if result.passed else "FAILED: " + "; ".join(result.failures))
    return 0 if result.passed else 1
