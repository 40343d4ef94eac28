"""What finer int8 candidates could give back: the parts of the blocks the measured search
keeps float, quantised one kind at a time, on the int8 simulation.

    PYTHONPATH=. .venv/bin/python benchmarks/int8_parts.py [--model 294m]
        [--float-set lite.0,blocks.0,...]

The search (export/int8_sensitivity.py) scores whole blocks. A block's multiply-accumulates
sit mostly in a few of its parts (Mobile-Former: the two pointwise convolutions), its noise
maybe elsewhere; if so, quantising those parts of the float blocks would move compute to
int8 at little cost. This takes a float set (default: the one the 294m ONNX int8 export
kept after its runtime check), splits each of its blocks into its children with
parameters, and for each child name (`pw1`, `former`, ...) reports the simulated SQNR on
the held-out calibration photos with that child int8 in every float block, and its share of
the model's MACs. Same simulation, photos and split as the export's search.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from mfdeploy.console import print_table
from mfdeploy.export import int8_sensitivity as sens
from mfdeploy.export import source_model
from mfdeploy.export.common import DEFAULT_CALIB_COUNT, calibration_inputs, export_module

DEFAULT_FLOAT_SET = "lite.0,blocks.0,blocks.1,blocks.2,blocks.3,blocks.4,blocks.6,blocks.7,blocks.8"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="294m")
    parser.add_argument("--float-set", default=DEFAULT_FLOAT_SET)
    args = parser.parse_args()
    torch.set_num_threads(1)
    source = source_model(None, args.model)
    module = export_module(source, "deploy").eval()
    photos = calibration_inputs(None, DEFAULT_CALIB_COUNT, source.preprocessing)
    fit, score = (torch.from_numpy(p) for p in sens.held_out_split(photos))
    float_set = args.float_set.split(",")
    blocks = sens.candidate_groups(module)
    modules = dict(module.named_modules())
    groups: dict[str, tuple[str, ...]] = {}
    for name, paths in blocks.items():
        if name in float_set:
            parts = sens.candidate_groups(modules[name])
            groups |= {f"{name}.{p}": tuple(f"{name}.{q}" for q in qs) for p, qs in parts.items()}
        else:
            groups[name] = paths
    macs = sens.candidate_macs(module, groups, fit)
    total = sum(macs.values())
    sim = sens._Simulator(module, groups)
    try:
        sim.observing = True
        sens.logits_of(module, fit)
        sim.observing = False
        reference = sens.logits_of(module, score).astype(np.float64)
        signal = float(np.mean(reference**2))

        def sqnr(active: list[str]) -> float:
            with sim.quantised(set(active)):
                out = sens.logits_of(module, score)
            return sens._sqnr_from_noise(signal, float(np.mean((out - reference) ** 2)))

        base = [g for g in groups if g in blocks]
        rows = [["(float set as whole blocks)", f"{sqnr(base):.1f}", "-",
                 f"{100 * sum(macs[g] for g in base) / total:.1f} %"]]  # fmt: skip
        kinds = dict.fromkeys(g.rsplit(".", 1)[1] for g in groups if g not in blocks)
        for kind in kinds:
            parts = [g for g in groups if g not in blocks and g.rsplit(".", 1)[1] == kind]
            share = sum(macs[g] for g in parts) / total
            int8 = sum(macs[g] for g in base + parts) / total
            rows.append([f"+ {kind} of every float block", f"{sqnr(base + parts):.1f}",
                         f"{100 * share:.1f} %", f"{100 * int8:.1f} %"])  # fmt: skip
    finally:
        sim.close()
    print_table(
        f"{source.name}: simulated int8 SQNR on {len(score)} held-out calibration photos",
        ["int8", "SQNR dB", "MACs moved", "MACs int8"],
        rows,
    )


if __name__ == "__main__":
    main()
