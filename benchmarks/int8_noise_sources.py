"""Where a model's int8 noise comes from: weights or activations, with and without the bias
correction, on the search's own simulation.

    PYTHONPATH=. .venv/bin/python benchmarks/int8_noise_sources.py [--models MODEL ...]

Every candidate int8 (export/int8_sensitivity.py's simulation: per-channel symmetric int8
weights, per-tensor 8-bit activations with min / max ranges from three quarters of the
calibration photos), scored on the other quarter: the SQNR of the logits against float32
with only the weights int8, only the activations, and both; each with the weights as
rounded and with the bias correction (export/int8_bias.py). Prints the table and writes
benchmarks/results/int8_noise_sources.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from mfdeploy.console import print_table
from mfdeploy.export import int8_bias, source_model
from mfdeploy.export import int8_sensitivity as sens
from mfdeploy.export.common import DEFAULT_CALIB_COUNT, calibration_inputs, export_module
from mfdeploy.export.int8_bias import weight_errors

OUT = Path(__file__).parent / "results" / "int8_noise_sources.json"


def measure(name: str) -> dict[str, float]:
    source = source_model(None, name)  # a variant or any registered model's name
    module = export_module(source, "deploy").eval()
    photos = calibration_inputs(None, DEFAULT_CALIB_COUNT, source.preprocessing)
    fit, score = (torch.from_numpy(p) for p in sens.held_out_split(photos))
    groups = sens.candidate_groups(module)
    errors = weight_errors(module, fit)
    sim = sens._Simulator(module, groups)
    sim.observing = True
    sens.logits_of(module, fit)
    sim.observing = False
    reference = sens.logits_of(module, score).astype(np.float64)
    signal = float(np.mean(reference**2))
    quantise_activations, rounded = sim._apply, int8_bias.int8_grid
    rows = {}
    for corrected in (False, True):
        for kind in ("weights", "activations", "both"):
            if kind == "activations" and corrected:
                continue  # float weights: nothing to correct
            sim.errors = errors if corrected else {}
            sim._apply = quantise_activations if kind != "weights" else (lambda key, ts: ts)
            int8_bias.int8_grid = rounded if kind != "activations" else (lambda w: w)
            try:
                with sim.quantised(set(groups)):
                    out = sens.logits_of(module, score)
            finally:
                int8_bias.int8_grid = rounded
            noise = float(np.mean((out - reference) ** 2))
            label = f"{kind}{', bias corrected' if corrected else ''}"
            rows[label] = round(sens._sqnr_from_noise(signal, noise), 2)
    sim.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["efficientnet_lite0", "294m"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {name: measure(name) for name in args.models}
    columns = list(next(iter(results.values())))
    print_table(
        "simulated int8 SQNR of the logits, every candidate int8 (dB, held-out calibration photos)",
        ["model", *columns],
        [[name, *(f"{row[c]:.1f}" for c in columns)] for name, row in results.items()],
    )
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
