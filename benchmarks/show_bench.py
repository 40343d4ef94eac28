"""Print the table of a `mfdeploy bench --json` file (one JSON object per line).

Used by `make bench`: the JSON is the machine record, this is the human view of the same rows.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mfdeploy.console import print_table


def main(path: str) -> int:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    print_table(
        f"{path} (batch 1; ms)",
        [
            "backend",
            "precision",
            "variant",
            "threads",
            "init",
            "first",
            "median",
            "p90",
            "mean",
            "std",
            "min",
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
            ]
            + [f"{r['latency_ms'][k]:.2f}" for k in ("median", "p90", "mean", "std", "min")]
            + [f"{r['peak_rss_mb']:.0f}", f"{r['model_bytes'] / 1e6:.2f}", r["executor"]]
            for r in rows
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/bench.json"))
