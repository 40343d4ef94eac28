"""int8 artifacts on the calibration photos the float-set search held out, on their own
runtimes: the figure the int8 runtime check (mfdeploy/harness/int8_check.py) judges, for
comparing with `mfdeploy verify` on the evaluation photos.

    PYTHONPATH=. .venv/bin/python benchmarks/int8_held_out.py DIR [DIR ...] [--calib-count 32]

Each DIR is an exported int8 artifact (e.g. the main job's bench cache entries). The
reference is the PyTorch model with the artifact's own weights (sha256 checked, as `verify`
does). Prints the table and writes benchmarks/results/int8_held_out.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from mfdeploy.console import print_table
from mfdeploy.export.common import calibration_inputs
from mfdeploy.export.int8_sensitivity import held_out_split
from mfdeploy.harness.verify import reference_model
from mfdeploy.metrics import sqnr_db
from mfdeploy.preprocessing import Preprocessing
from mfdeploy.runtimes import open_runtime

OUT = Path(__file__).parent / "results" / "int8_held_out.json"


def held_out_sqnr(artifact: Path, calib_count: int | None) -> dict:
    runtime = open_runtime(artifact)
    manifest = runtime.manifest
    prep = Preprocessing.from_dict(manifest.preprocessing)
    photos = held_out_split(calibration_inputs(None, calib_count, prep))[1]
    with torch.no_grad():
        expected = reference_model(manifest, artifact, None)(torch.from_numpy(photos)).numpy()
    got = sqnr_db(expected, runtime.run(photos).astype(np.float32))
    return {
        "artifact": str(artifact),
        "model": manifest.model,
        "target": manifest.target,
        "precision": manifest.precision,
        "held_out_photos": len(photos),
        "sqnr_db": round(got, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifacts", nargs="+", type=Path)
    parser.add_argument("--calib-count", type=int, default=None)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    records = [held_out_sqnr(path, args.calib_count) for path in args.artifacts]
    print_table(
        "SQNR on the held-out calibration photos",
        ["model", "target", "precision", "photos", "SQNR dB"],
        [
            [
                r["model"],
                r["target"],
                r["precision"],
                str(r["held_out_photos"]),
                f"{r['sqnr_db']:.1f}",
            ]
            for r in records
        ],
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1) + "\n")


if __name__ == "__main__":
    main()
