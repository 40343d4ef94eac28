"""Show what an exported graph contains: op histogram, tensor ranks, size, rule check.

The deploy-form rules: no Shape / Gather / Einsum / ScatterND ops (ONNX), builtin ops only
(TFLite), no op outside the XNNPACK delegate (ExecuTorch), no tensor of rank > 4 (all).
Exit code 1 when a rule is broken.
"""

from __future__ import annotations

import argparse
import json

from mfdeploy.console import print_table
from mfdeploy.harness.inspect import audit

NAME = "inspect"
HELP = (
    "op histogram, tensor ranks and size of an exported model (ONNX, TFLite, Core ML, ExecuTorch)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifact", help="artifact directory or model file")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    report = audit(args.artifact)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print_table(
            f"{report.path} ({report.format}, {report.model_bytes / 1e6:.2f} MB, "
            f"max tensor rank {report.max_rank})",
            ["op", "count"],
            [[op, count] for op, count in report.ops.items()],
        )
        if report.xnnpack_partitions is not None:
            print(f"XNNPACK partitions: {report.xnnpack_partitions} (1: every op delegated)")
        if report.delegate_calls is not None:
            outside = sum((report.portable_ops or {}).values())
            print(
                f"XNNPACK delegate calls: {report.delegate_calls}; ops on portable kernels: "
                f"{outside} (0: every op delegated)"
            )
        print("rules: " + ("passed" if report.passed else "; ".join(report.violations)))
    return 0 if report.passed else 1
