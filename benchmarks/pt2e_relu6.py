"""What quantising before a ReLU6 costs: a model's all-int8 PT2E graph in PyTorch, with and
without `export/pt2e_clamps.py`, for both quantizers.

    PYTHONPATH=. .venv/bin/python benchmarks/pt2e_relu6.py [--model efficientnet_lite0]

Every module int8 (bias-corrected as an export does), calibrated on three quarters of the
default calibration photos, scored on the held-out quarter: SQNR of the converted graph's
logits against float32. "before" switches the clamp pass off (the quantizers' own
annotation: the convolution's raw output quantised, then the ReLU6). Prints the table and
writes benchmarks/results/pt2e_relu6.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from _common import pt2e_graph_sqnr

from mfdeploy.console import print_table
from mfdeploy.export import executorch, pt2e_clamps, source_model, tflite_int8
from mfdeploy.export import int8_sensitivity as sens
from mfdeploy.export.common import DEFAULT_CALIB_COUNT, calibration_inputs, export_module

OUT = Path(__file__).parent / "results" / "pt2e_relu6.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    args = parser.parse_args()
    torch.set_num_threads(1)
    source = source_model(None, args.model)  # a variant or any registered model's name
    module = export_module(source, "deploy").eval()
    photos = calibration_inputs(None, DEFAULT_CALIB_COUNT, source.preprocessing)
    fit, score = sens.held_out_split(photos)
    module = sens.float_plan(module, photos, "none").int8_module(module)  # corrected on `fit`
    ref = sens.logits_of(source.model.eval(), torch.from_numpy(score))
    results = {}
    original = pt2e_clamps.quantise_after_clamps
    for kind in ("executorch", "tflite"):
        for label, moved in (("before", False), ("after", True)):
            patched = original if moved else (lambda gm, past_pads: 0)
            executorch.quantise_after_clamps = tflite_int8.quantise_after_clamps = patched
            try:
                sqnr = pt2e_graph_sqnr(kind, module, fit, score, ref)
                results[f"{kind} {label}"] = round(sqnr, 2)
            finally:
                executorch.quantise_after_clamps = tflite_int8.quantise_after_clamps = original
    print_table(
        f"{source.name}: all-int8 PT2E graph, SQNR on {len(score)} held-out calibration photos",
        ["quantizer", "ReLU6 quantised before it (dB)", "at its own output (dB)"],
        [
            [k, f"{results[f'{k} before']:.1f}", f"{results[f'{k} after']:.1f}"]
            for k in ("executorch", "tflite")
        ],  # fmt: skip
    )
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({source.name: results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
