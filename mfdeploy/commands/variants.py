"""List the seven Mobile-Former variants.

Parameters and multiply-adds are counted on the model built here; the published
params / FLOPs / top-1 (ImageNet-1k, 224x224) are shown beside them.
Multiply-adds: conv + linear + matmul (attention included), element-wise ops not counted,
which is why they sit 2-9 % under the published FLOPs.
"""

from __future__ import annotations

import argparse
import json

from mfdeploy.console import print_table
from mfdeploy.models import all_variants, create_model
from mfdeploy.models.counting import MACS_WHAT, count_macs, count_parameters

NAME = "variants"
HELP = "table of all variants: params and MACs counted from the built model vs published"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--resolution", type=int, default=224, help="input size for the MAC count (default 224)"
    )


def variant_rows(resolution: int = 224) -> list[dict]:
    rows = []
    for name, spec in all_variants().items():
        model = create_model(name)
        rows.append(
            {
                "variant": name,
                "params": count_parameters(model),
                "macs": count_macs(model, resolution),
                "resolution": resolution,
                "tokens": spec.num_tokens,
                "token_dim": spec.token_dim,
                "published_params_m": spec.paper_params_m,
                "published_flops_m": spec.paper_flops_m,
                "published_top1": spec.paper_top1,
            }
        )
    return rows


def run(args: argparse.Namespace) -> int:
    rows = variant_rows(args.resolution)
    if args.json:
        print(json.dumps({"macs_counted": MACS_WHAT, "variants": rows}, indent=2))
        return 0
    print_table(
        f"Mobile-Former variants (MACs at {args.resolution}x{args.resolution}: {MACS_WHAT})",
        [
            "variant",
            "params",
            "MACs",
            "tokens",
            "published params",
            "published FLOPs",
            "published top-1",
        ],
        [
            [
                r["variant"],
                f"{r['params']:,}",
                f"{r['macs'] / 1e6:.1f}M",
                f"{r['tokens']}x{r['token_dim']}",
                f"{r['published_params_m']}M",
                f"{r['published_flops_m']}M",
                f"{r['published_top1']}%",
            ]
            for r in rows
        ],
    )
    return 0
