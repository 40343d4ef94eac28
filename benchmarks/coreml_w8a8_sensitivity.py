"""Which parts of Mobile-Former does Core ML W8A8 hurt? Measured in PyTorch, not guessed.

For each group of deploy-form modules (Former, Mobile->Former bridge, Former->Mobile bridge,
dynamic-ReLU coefficient MLPs, head), quantize the whole model W8A8 with the CoreMLQuantizer
(calibrated on the calibration photos) except that group, and report the logits SQNR against
the float model on the evaluation photos plus seeded random inputs. Prints a table and writes
JSON. The default recipe in mfdeploy/export/coreml_w8a8.py is chosen from this table.

    .venv/bin/python benchmarks/coreml_w8a8_sensitivity.py --variant 26m \
        --weights tests/fixtures/mobile_former_26m.safetensors
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from _common import evaluation_inputs

from mfdeploy.console import print_table
from mfdeploy.export.common import calibration_inputs
from mfdeploy.export.coreml_w8a8 import quantize_w8a8
from mfdeploy.metrics import cosine, sqnr_db
from mfdeploy.models import export_module, load_source

GROUPS = {  # deploy-form classes (mfdeploy/models/deploy.py)
    "former": ("Former",),
    "bridges": ("MobileToFormer", "FormerToMobile"),
    "dyrelu": ("DynamicReLU",),
    "head": ("MergeHead",),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="26m")
    parser.add_argument("--weights")
    parser.add_argument("--calib-count", type=int, default=32)
    parser.add_argument("--all-groups", action="store_true", help="also one group at a time")
    parser.add_argument("--json", default="reports/coreml_w8a8_sensitivity.json")
    args = parser.parse_args()
    source = load_source(args.variant, args.weights)
    module = export_module(source, "deploy").eval()
    calib = calibration_inputs(None, args.calib_count, source.preprocessing)
    evals = evaluation_inputs(source.preprocessing)
    with torch.no_grad():
        ref = module(torch.from_numpy(evals)).numpy()
    configs = {"all int8": ()}
    configs["float former+bridges"] = GROUPS["former"] + GROUPS["bridges"]
    configs["float former+bridges+dyrelu"] = configs["float former+bridges"] + GROUPS["dyrelu"]
    if args.all_groups:
        configs.update({f"float {k}": v for k, v in GROUPS.items()})
    rows, results = [], {}
    for label, float_modules in configs.items():
        quantized, _ = quantize_w8a8(module, calib, float_modules=float_modules)
        with torch.no_grad():
            out = torch.cat([quantized(torch.from_numpy(x[None])) for x in evals]).numpy()
        cos_min = min(cosine(r[None], o[None]) for r, o in zip(ref, out))
        results[label] = {"sqnr_db": sqnr_db(ref, out), "cosine_min": cos_min}
        rows.append([label, f"{results[label]['sqnr_db']:.2f}", f"{cos_min:.4f}"])
        print(label, results[label], flush=True)
    print_table(
        f"Core ML W8A8 sensitivity, {source.name} (PyTorch-side, vs float)",
        ["kept in float", "SQNR dB", "min cosine"],
        rows,
    )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
