"""Print the table of a `mfdeploy bench --json` file (one JSON object per line).

Used by `make bench`: the JSON is the machine record, this is the human view of the same rows.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mfdeploy.commands.bench import print_rows


def main(path: str) -> int:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    print_rows(f"{path} (batch 1; ms)", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/bench.json"))
