"""int8 exports checked on their own runtime before they are kept.

Rule: an int8 export whose float set is measured (`--int8-float auto`, the default) is run,
still in its staging directory, on the held-out calibration photos (the quarter the float-set
search scored on; never an evaluation photo) by the runtime that will serve it. When its
logits miss `verify`'s int8 SQNR bound plus MARGIN_DB, the search's simulated target is
raised by the shortfall plus STEP_DB and the model exported again (more modules float), at
most MAX_EXPORTS exports in all. Every check is recorded in the manifest
(`extra.int8_plan.runtime_check`).

Targets whose exporter quantises with PT2E (TFLite, ExecuTorch) are checked earlier too: the
exporter hands the converted PT2E graph (`int8_graph_check`) to the same test, against the
same bound, before its conversion or lowering, the bulk of an export. A graph that falls
short is raised and quantised again without converting it; the artifact is still checked.
The graph computes each int8 op as dequantise -> float op -> quantise, the artifact in its
runtime's int8 kernels: on 294m the two were within 1 dB of each other, either side (graph /
artifact, ExecuTorch 19.0 / 19.6 and 21.5 / 20.5 dB, TFLite 19.5 / 20.2 and 21.4 / 22.2 dB;
docs/int8.md), where the simulation had been 3 dB above both. On EfficientNet-Lite0 the
graph was ~2.5 dB below its artifact until a ReLU6 was quantised at its own output
(export/pt2e_clamps.py); now within 0.7 dB.

Why: the search simulates int8 in PyTorch, and a converter does things the simulation does
not model (fused activations, int8 residual adds and matmuls, its own observers). Measured
(docs/int8.md): Mobile-Former 294m's ONNX and ExecuTorch int8 artifacts verified at 17.8 and
17.4 dB from a float set the simulation put at 22 dB; on their runtimes the held-out
calibration photos gave 19.8 and 18.8 dB, below this check's bound, while every int8
artifact that verified above 20 dB gave 21.0 dB or more.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mfdeploy.artifact import Manifest
from mfdeploy.console import info
from mfdeploy.export import export_artifact, source_model, target_options
from mfdeploy.export.common import calibration_inputs
from mfdeploy.export.int8_sensitivity import DEFAULT_TARGET_SQNR, held_out_split, measured
from mfdeploy.metrics import default_thresholds, sqnr_db
from mfdeploy.models import SourceModel
from mfdeploy.runtimes import open_runtime

CHECKED_PRECISIONS = ("int8",)
#: above verify's bound: the held-out photos are few (8 of the default 32), and the evaluation
#: photos have scored 0.3-2.1 dB below them on the main job's int8 artifacts, and 26m's
#: bias-corrected ExecuTorch int8 passed 20.0 dB there and verified 17.9 (docs/int8.md)
MARGIN_DB = 2.5
#: added to the shortfall when the simulated target is raised (the simulation is optimistic)
STEP_DB = 1.0
MAX_EXPORTS = 3


class _Short(Exception):
    """The staged artifact missed the bound (its staging directory is discarded)."""

    def __init__(self, got_db: float, photos: int, planned_db: float | None, on: str) -> None:
        super().__init__(f"{got_db:.1f} dB")
        self.got_db, self.photos, self.planned_db, self.on = got_db, photos, planned_db, on


def checked(target: str, precision: str, options: dict[str, Any]) -> bool:
    """Whether this export is checked: int8 with a measured float set on a target that
    measures one."""
    return (
        precision in CHECKED_PRECISIONS
        and "int8_target_sqnr" in target_options(target)
        and measured(options.get("int8_float"))
    )


def held_out_photos(source: SourceModel, calib: str | None, count: int | None) -> np.ndarray:
    """The calibration photos the float-set search held out, preprocessed for `source`."""
    photos = calibration_inputs(calib, count, source.preprocessing)
    return held_out_split(photos)[1]


def reference_logits(source: SourceModel, photos: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return source.model.eval()(torch.from_numpy(photos)).numpy()


def export_checked(
    target: str,
    variant: str | None = None,
    *,
    precision: str = "fp32",
    model: str | None = None,
    weights: str | Path | None = None,
    resolution: int | None = None,
    source: SourceModel | None = None,
    bound_db: float | None = None,
    **options: Any,
) -> tuple[Path, Manifest]:
    """`export_artifact`, with the runtime check of the module doc for measured int8.

    `bound_db` replaces the default bound (verify's int8 SQNR bound + MARGIN_DB).
    """
    if not checked(target, precision, options):
        return export_artifact(
            target, variant, precision=precision, model=model, weights=weights,
            resolution=resolution, source=source, **options,
        )  # fmt: skip
    source = source or source_model(model, variant, weights, resolution)
    # read on the first check, after export_artifact has refused bad input (its checks
    # come first, and its exporter has read these photos without error by then)
    calib, count = options.get("calib"), options.get("calib_count")

    @functools.cache
    def held_out() -> tuple[np.ndarray, np.ndarray]:  # (photos, reference logits), made once
        photos = held_out_photos(source, calib, count)
        return photos, reference_logits(source, photos)

    bound = (
        default_thresholds("int8", target)["sqnr_db"] + MARGIN_DB if bound_db is None else bound_db
    )
    simulated = options.pop("int8_target_sqnr", None) or DEFAULT_TARGET_SQNR
    checks: list[dict] = []
    for attempt in range(1, MAX_EXPORTS + 1):
        last = attempt == MAX_EXPORTS
        judge = _Judge(held_out, bound, simulated, checks, last=last)
        try:
            return export_artifact(
                target, precision=precision, source=source, int8_target_sqnr=simulated,
                review=judge.artifact, int8_graph_check=judge.graph, **options,
            )  # fmt: skip
        except _Short as short:
            simulated = raised_target(simulated, short.planned_db, bound - short.got_db)
            info(
                f"int8 check: {short.got_db:.1f} dB on {short.photos} held-out calibration photos "
                f"on {short.on}, below {bound:.1f} dB: exporting again with the "
                f"simulated target raised to {simulated:.1f} dB ({attempt + 1}/{MAX_EXPORTS})"
            )
    raise AssertionError("unreachable: the last attempt keeps its artifact")


def raised_target(target_db: float, planned_db: float | None, shortfall_db: float) -> float:
    """The simulated target of the next export: what the artifact that fell short was
    simulated at, plus its shortfall and STEP_DB.

    From the plan's simulated SQNR, not the target it was searched for: a search stops at the
    first set at or above its target, often a dB above it, and that simulated figure is the
    one the runtime measured short (294m ExecuTorch int8: target 22.0, plan 22.8 dB, runtime
    19.6 dB; raised from the target, 23.4 dB gave a plan at 23.8 and a runtime 20.0 dB, a
    third export).
    """
    return max(target_db, planned_db or target_db) + shortfall_db + STEP_DB


class _Judge:
    """One export's checks: `graph` for the exporter's PT2E graph (before conversion),
    `artifact` for the sealed staging directory (`export_artifact`'s review)."""

    GRAPH = "the PT2E graph in PyTorch"

    def __init__(
        self,
        held_out: Callable[[], tuple[np.ndarray, np.ndarray]],
        bound: float,
        simulated: float,
        checks: list[dict],
        *,
        last: bool,
    ) -> None:
        self.held_out, self.bound, self.simulated = held_out, bound, simulated
        self.checks, self.last = checks, last

    def _judge(self, got: float, photos: int, plan: dict, on: str) -> bool:
        """Record the check; True when it passed; raise _Short when another export may pass."""
        self.checks.append(
            {
                "checked_on": on,
                "simulated_target_db": round(self.simulated, 2),
                "float_modules": len(plan["float_modules"]),
                "sqnr_db": round(got, 2),
            }
        )
        candidates = plan.get("candidates", [])
        all_float = bool(candidates) and all(c["float"] for c in candidates)
        if got < self.bound and not (self.last or all_float):
            raise _Short(got, photos, plan.get("planned_sqnr_db"), on)
        return got >= self.bound

    def graph(self, run: Callable[[np.ndarray], np.ndarray], plan: dict) -> None:
        """`run` maps held-out photos (NCHW float32) to the quantised graph's logits."""
        if plan.get("chosen_by") != "measured":
            return
        photos, expected = self.held_out()
        got = sqnr_db(expected, np.asarray(run(photos), np.float32))
        if self._judge(got, len(photos), plan, self.GRAPH):
            info(
                f"int8 check: {got:.1f} dB on {len(photos)} held-out calibration photos on "
                f"{self.GRAPH} (bound {self.bound:.1f}): converting"
            )

    def artifact(self, staging: Path, manifest: Manifest) -> None:
        plan = manifest.extra.get("int8_plan")
        if plan is None:  # `checked` said this export measures a plan: its exporter lost it
            raise RuntimeError(
                f"int8 check: the {manifest.target} exporter recorded no extra.int8_plan"
            )
        if plan.get("chosen_by") != "measured":
            return
        photos, expected = self.held_out()
        runtime = open_runtime(staging)
        name = runtime.info().runtime
        got = sqnr_db(expected, runtime.run(photos).astype(np.float32))
        passed = self._judge(got, len(photos), plan, f"{name} (the artifact)")
        plan["runtime_check"] = {
            "runtime": name,
            "held_out_photos": len(photos),
            "bound_db": round(self.bound, 2),
            "passed": passed,
            "exports": list(self.checks),
        }
        if passed:
            info(
                f"int8 check: {got:.1f} dB on {len(photos)} held-out calibration photos "
                f"(bound {self.bound:.1f})"
            )
        else:
            info(
                f"int8 check: {got:.1f} dB on {len(photos)} held-out calibration photos, still "
                f"below {self.bound:.1f} dB after {len(self.checks)} checks: kept; verify judges it"
            )


__all__ = ["export_checked", "checked", "held_out_photos"]
