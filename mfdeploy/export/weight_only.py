"""int8 weights alone (activations stay float): which layers get them, measured per model,
and the biases that correct them.

Rule: every convolution / linear a weights-only int8 target compresses (its weight has more
than `min_elements` elements) gets its int8-grid weights and a bias corrected for their mean
output error on three quarters of the calibration photos (int8_bias), except in the candidate
modules kept float: the fewest that bring the logits to `target_sqnr` dB against float32 on
the other quarter, chosen by the int8 search (int8_sensitivity.search_float_set, same
candidates and order), the noise here being the weights' alone.

Why: rounding the weights alone took MobileViTv2-0.5's logits under verify's int8-weights
bound, and most of that error is a mean shift per channel that a bias takes back
(docs/int8.md, "int8 weights alone"). The simulation is exact up to the target's float16
compute, since the target reproduces the -127..127 per-channel grid (coremltools'
`linear_symmetric`), so no runtime check follows.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mfdeploy.console import info
from mfdeploy.export.int8_bias import CORRECTED, int8_weights_swapped, weight_errors
from mfdeploy.export.int8_sensitivity import DEFAULT_TARGET_SQNR as INT8_TARGET_SQNR
from mfdeploy.export.int8_sensitivity import (
    FloatPlan,
    candidate_groups,
    fit_photos,
    held_out_split,
    logits_of,
    modules_inside,
    parse_float_modules,
    search_with,
)
from mfdeploy.metrics import default_thresholds

#: verify's int8-weights bound plus the margin the int8 search keeps over the int8 bound:
#: the held-out calibration photos score above the evaluation photos (docs/int8.md)
DEFAULT_TARGET_SQNR = (
    default_thresholds("int8-weights")["sqnr_db"]
    + INT8_TARGET_SQNR
    - default_thresholds("int8")["sqnr_db"]
)

MEASURED_ON = "int8 weights alone, simulated in PyTorch"


def compressed_layers(module: nn.Module, min_elements: int) -> dict[str, nn.Module]:
    """Path -> convolution / linear whose weight the target compresses (> `min_elements`)."""
    return {
        path: leaf
        for path, leaf in module.named_modules()
        if isinstance(leaf, CORRECTED) and leaf.weight.numel() > min_elements
    }


def weight_plan(
    module: nn.Module,
    calibration: np.ndarray,
    *,
    spec: str | None,
    target_sqnr: float | None = None,
    min_elements: int,
) -> FloatPlan:
    """The float set and bias corrections of a weights-only int8 export (module doc);
    `spec` is --int8-float (None / "auto" measures, "none", or module paths)."""
    module = module.eval()
    layers = compressed_layers(module, min_elements)
    given = parse_float_modules(spec, module)
    fit, score = held_out_split(calibration) if given is None else (fit_photos(calibration), None)
    errors = {p: e for p, e in weight_errors(module, torch.from_numpy(fit)).items() if p in layers}
    if given is not None:
        plan = FloatPlan(given, "given" if given else "none", weight_errors=errors)
        plan.measured_on = MEASURED_ON
        return plan
    groups = candidate_groups(module)
    inside = {
        name: [(path, leaf) for path, leaf in held if path in layers]
        for name, held in modules_inside(module, groups).items()
    }

    def logits_with(active: set[str]) -> np.ndarray:
        chosen = [layer for name in active for layer in inside[name]]
        with int8_weights_swapped(chosen, errors):
            return logits_of(module, torch.from_numpy(score))

    target = DEFAULT_TARGET_SQNR if target_sqnr is None else target_sqnr
    plan = search_with(module, groups, (fit, score), logits_with, target, MEASURED_ON)
    plan.weight_errors = errors
    info(f"int8 weights: {plan.describe()}")
    return plan
