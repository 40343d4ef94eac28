"""Parity of an artifact against the PyTorch reference with the same weights.

Flow: manifest -> reference model (weights checked against the manifest's sha256) ->
the same inputs (evaluation photos + seeded random images) through both -> metrics ->
verdict against per-precision thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mfdeploy.artifact import Manifest
from mfdeploy.errors import MfdeployError
from mfdeploy.export.common import state_dict_sha256
from mfdeploy.metrics import parity_metrics
from mfdeploy.models import SYNTHETIC, create_model
from mfdeploy.models.checkpoint import file_sha256
from mfdeploy.photos import resolve_images
from mfdeploy.preprocessing import Preprocessing, load_image, preprocess
from mfdeploy.runtimes import open_runtime

# Lower bounds (cosine, sqnr_db, top1_agreement, top5_overlap) and upper bounds (max_abs).
DEFAULT_THRESHOLDS: dict[str, dict[str, float]] = {
    "fp32": {"max_abs": 1e-4, "cosine": 0.99999, "top1_agreement": 1.0},
    "fp16": {"cosine": 0.9995, "top1_agreement": 0.9},
    "int8": {"sqnr_db": 18.0, "cosine": 0.98},
    "int8-weights": {"cosine": 0.9},
    "int8-dynamic": {"cosine": 0.9},
}
UPPER_BOUNDS = ("max_abs", "mean_abs")
RANDOM_INPUTS = 4


@dataclass
class VerifyResult:
    artifact: str
    manifest: Manifest
    runtime: dict
    num_inputs: int
    metrics: dict[str, float]
    thresholds: dict[str, float]
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return {
            "artifact": self.artifact,
            "target": self.manifest.target,
            "precision": self.manifest.precision,
            "runtime": self.runtime["runtime"],
            "executor": self.runtime["executor"],
            "num_inputs": self.num_inputs,
            "metrics": self.metrics,
            "thresholds": self.thresholds,
            "passed": self.passed,
            "synthetic_weights": self.manifest.synthetic_weights,
        }


def reference_model(manifest: Manifest, weights: str | Path | None) -> torch.nn.Module:
    """The PyTorch model the artifact was exported from, proven by sha256."""
    if weights is None and not manifest.synthetic_weights:
        raise MfdeployError(
            f"pass --weights: the artifact was exported from {manifest.source_checkpoint}"
        )
    model = create_model(manifest.model, weights=weights or SYNTHETIC)
    sha = file_sha256(weights) if weights else state_dict_sha256(model)
    if sha != manifest.source_checkpoint_sha256:
        raise MfdeployError(
            "the weights do not match the checkpoint this artifact was exported from "
            f"(sha256 {sha[:12]}…, manifest {str(manifest.source_checkpoint_sha256)[:12]}…)"
        )
    return model


def verification_inputs(manifest: Manifest, images: str | Path | None) -> np.ndarray:
    """Evaluation photos (never calibration ones) + seeded random images, NCHW float32."""
    prep = Preprocessing.from_dict({**manifest.preprocessing, "layout": "NCHW"})
    photos = [preprocess(load_image(p), prep) for p in resolve_images(images, "evaluation")]
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((RANDOM_INPUTS, 3, prep.resolution, prep.resolution))
    return np.concatenate([np.stack(photos), noise.astype(np.float32)])


def check_thresholds(metrics: dict[str, float], thresholds: dict[str, float]) -> list[str]:
    failures = []
    for name, bound in thresholds.items():
        value = metrics[name]
        ok = value <= bound if name in UPPER_BOUNDS else value >= bound
        if not ok:
            sign = "<=" if name in UPPER_BOUNDS else ">="
            failures.append(f"{name} {value:.6g} (needs {sign} {bound:g})")
    return failures


def verify(
    artifact: str | Path,
    weights: str | Path | None = None,
    images: str | Path | None = None,
    thresholds: dict[str, float] | None = None,
) -> VerifyResult:
    artifact = Path(artifact)
    runtime = open_runtime(artifact)
    manifest = runtime.manifest
    model = reference_model(manifest, weights)
    inputs = verification_inputs(manifest, images)
    with torch.no_grad():
        expected = model(torch.from_numpy(inputs)).numpy()
    metrics = parity_metrics(expected, runtime.run(inputs))
    limits = dict(DEFAULT_THRESHOLDS.get(manifest.precision, {}))
    limits.update(thresholds or {})
    unknown = set(limits) - set(metrics)
    if unknown:
        raise MfdeployError(f"unknown threshold metric(s): {', '.join(sorted(unknown))}")
    return VerifyResult(
        str(artifact),
        manifest,
        runtime.info().to_dict(),
        len(inputs),
        metrics,
        limits,
        check_thresholds(metrics, limits),
    )
