"""Are exports byte-identical across a change? sha256 of fp32 ONNX and TFLite model files.

    .venv/bin/python benchmarks/export_identity.py --json before.json     # on the old commit
    .venv/bin/python benchmarks/export_identity.py --compare before.json  # on the new one

Exports Mobile-Former 26m (fixture weights where present) and EfficientNet-Lite0 (trained
weights). `model.ort` is left out: ONNX Runtime's ORT-format writer is not deterministic
(two conversions of one model differ), see docs/onnx.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

from _common import fixture_weights

from mfdeploy.console import print_table
from mfdeploy.export import export_artifact

MODELS = {"26m": fixture_weights("26m"), "efficientnet_lite0": None}
TARGETS = ("onnx", "tflite")


def hashes(workdir: Path) -> dict[str, str]:
    found = {}
    for model, weights in MODELS.items():
        for target in TARGETS:
            out, manifest = export_artifact(
                target, model, weights=weights, out=workdir / f"{model}-{target}"
            )
            digest = hashlib.sha256((out / manifest.model_file).read_bytes()).hexdigest()
            found[f"{model} {target} {manifest.model_file}"] = digest
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the hashes here")
    parser.add_argument("--compare", help="hashes of an earlier run to compare with")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        now = hashes(Path(tmp))
    if args.json:
        Path(args.json).write_text(json.dumps(now, indent=2) + "\n")
    before = json.loads(Path(args.compare).read_text()) if args.compare else {}
    rows = [[k, v[:16], (before.get(k, "")[:16] or "-")] for k, v in now.items()]
    for row, key in zip(rows, now):
        row.append("-" if key not in before else "same" if before[key] == now[key] else "DIFF")
    print_table("export identity (sha256)", ["artifact", "now", "before", ""], rows)
    return 1 if any(r[-1] == "DIFF" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
