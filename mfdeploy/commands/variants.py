"""List a model family's variants (default: the first registered family, Mobile-Former).

Parameters and multiply-adds are counted on the model built here; the published facts
(params / FLOPs / ImageNet-1k top-1) are shown beside them.
Multiply-adds: conv + linear + matmul (attention included), element-wise ops not counted,
which is why they sit 2-9 % under the published FLOPs.
"""

from __future__ import annotations

import argparse
import json

from mfdeploy.commands.common import MAX_RESOLUTION, MIN_RESOLUTION, int_in
from mfdeploy.console import print_table
from mfdeploy.models import ModelFamily, families, get_family
from mfdeploy.models.counting import MACS_WHAT, count_macs, count_parameters

NAME = "variants"
HELP = "table of a family's variants: params and MACs counted from the built model vs published"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--model",
        help=f"model family ({', '.join(families())}; default the first)",
    )
    parser.add_argument(
        "--resolution",
        type=int_in(MIN_RESOLUTION, MAX_RESOLUTION),
        help="input size for the MAC count (default: the model's)",
    )


def variant_rows(entry: ModelFamily, resolution: int) -> list[tuple[dict, dict[str, str]]]:
    """(JSON row, table columns) per variant, counted on the built model."""
    rows = []
    for variant in entry.variants:
        model = entry.build(variant, None, None)
        data, shown = entry.variant_facts(variant)
        counted = {
            "variant": variant,
            "params": count_parameters(model),
            "macs": count_macs(model, resolution),
            "resolution": resolution,
        }
        rows.append(({**counted, **data}, shown))
    return rows


def run(args: argparse.Namespace) -> int:
    entry = get_family(args.model) if args.model else next(iter(families().values()))
    resolution = args.resolution or entry.preprocessing.resolution
    rows = variant_rows(entry, resolution)
    if args.json:
        data = {"model": entry.name, "macs_counted": MACS_WHAT}
        print(json.dumps({**data, "variants": [r for r, _ in rows]}, indent=2))
        return 0
    extra = list(rows[0][1]) if rows else []
    print_table(
        f"{entry.title} variants (MACs at {resolution}x{resolution}: {MACS_WHAT})",
        ["variant", "params", "MACs", *extra],
        [
            [r["variant"], f"{r['params']:,}", f"{r['macs'] / 1e6:.1f}M", *shown.values()]
            for r, shown in rows
        ],
    )
    return 0
