"""Parity of an artifact on its runtime against the PyTorch reference with the same weights.

Inputs: the evaluation photos (never calibration ones), preprocessed exactly as the manifest
says, plus seeded random inputs (they reach parts of the input space photos do not).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from mfdeploy.artifact import Manifest
from mfdeploy.errors import MfdeployError
from mfdeploy.harness.batching import static_batch
from mfdeploy.metrics import compare_logits, default_thresholds, failures
from mfdeploy.models import get_family, resolve_model, weights_sha256
from mfdeploy.photos import resolve_images
from mfdeploy.preprocessing import Preprocessing, preprocess_batch
from mfdeploy.runtimes import Runtime, open_runtime
from mfdeploy.static_batches import run_static_batches

RANDOM_INPUTS = 4
FLOAT_PRECISIONS = ("fp32", "fp16")
RANDOM_SEED = 1234
# Photos per verify by default: spread over every source package, and a verify of a 294m
# program on the Core ML MIL executor stays around a minute. `num_images=None` takes all.
DEFAULT_NUM_IMAGES = 64


@dataclass
class VerifyResult:
    artifact: str
    target: str
    precision: str
    runtime: str
    executor: str
    num_inputs: int
    metrics: dict[str, float]
    thresholds: dict[str, float]
    failed: list[str]
    synthetic_weights: bool
    per_layer: list[dict] | None = field(default=None)

    @property
    def passed(self) -> bool:
        return not self.failed

    def to_json(self) -> dict:
        out = {
            "artifact": self.artifact,
            "target": self.target,
            "precision": self.precision,
            "runtime": self.runtime,
            "executor": self.executor,
            "num_inputs": self.num_inputs,
            "metrics": self.metrics,
            "thresholds": self.thresholds,
            "passed": self.passed,
        }
        if self.per_layer is not None:
            out["per_layer"] = self.per_layer
        return out


def _find_checkpoint(manifest: Manifest, artifact_dir: Path) -> Path:
    """A file checkpoint named in the manifest: beside the artifact, its parent, or the cwd."""
    name = manifest.source_checkpoint or ""
    for folder in (artifact_dir, artifact_dir.parent, Path.cwd()):
        if name and (folder / name).is_file():
            return folder / name
    raise MfdeployError(
        f"the artifact was exported from checkpoint {name!r}, which is not beside it: "
        "pass it with --weights"
    )


def reference_model(
    manifest: Manifest, artifact_dir: Path, weights: str | Path | None
) -> nn.Module:
    """The PyTorch reference with the artifact's own weights, checked by sha256.

    Without --weights: non-file sources ("synthetic", a registry's "pretrained") are rebuilt
    and hashed by content; a file source is looked up beside the artifact.
    """
    source = manifest.source_checkpoint
    if weights is None:
        if source is None:
            raise MfdeployError("the manifest records no source checkpoint: pass --weights")
        looks_like_file = Path(source).suffix in (".pth", ".tar", ".pt", ".safetensors")
        weights = _find_checkpoint(manifest, artifact_dir) if looks_like_file else source
    elif not Path(weights).is_file():
        raise MfdeployError(f"{weights}: no such checkpoint file")
    entry = get_family(manifest.model_family)
    variant = resolve_model(manifest.variant or manifest.model, entry.name)[1]
    model = entry.build(variant, str(weights), None)
    expected = manifest.source_checkpoint_sha256
    actual = weights_sha256(weights, model, entry)
    if expected and actual != expected:
        raise MfdeployError(
            f"weights {weights} (sha256 {actual[:12]}…) are not the ones the artifact was "
            f"exported from ({expected[:12]}…)"
        )
    return model.eval()


def verification_inputs(
    manifest: Manifest, images: str | Path | None, num_images: int | None = DEFAULT_NUM_IMAGES
) -> np.ndarray:
    """Evaluation photos (preprocessed per the manifest), NCHW float32, plus seeded random
    inputs for float precisions.

    Random inputs reach parts of the input space photos do not, which float conversions must
    handle too. Quantised artifacts are calibrated for photos: on noise their logits are
    near-uniform and any drift dominates (measured in the README), so they are judged on
    photos only.
    """
    prep = Preprocessing.from_dict(manifest.preprocessing)
    photos = preprocess_batch(resolve_images(images, "evaluation", num_images), prep)
    photos = photos.astype(np.float32)
    if manifest.precision not in FLOAT_PRECISIONS:
        return photos
    rng = np.random.default_rng(RANDOM_SEED)
    shape = (RANDOM_INPUTS, 3, prep.resolution, prep.resolution)
    randoms = rng.standard_normal(shape).astype(np.float32)
    return np.concatenate([photos, randoms])


#: reference logits already computed in this process, by (weights identity, input bytes):
#: the main job verifies a dozen artifacts of one model on the same photos
_EXPECTED: dict[tuple[str, str, int | None], np.ndarray] = {}
_EXPECTED_MAX = 4


def _reference_logits(
    manifest: Manifest, reference: nn.Module, inputs: np.ndarray, batch: int | None
) -> np.ndarray:
    """The reference's logits on `inputs`, reused when the same weights (sha256 checked by
    reference_model) already ran on the same inputs in this process."""
    import torch

    sha = manifest.source_checkpoint_sha256
    digest = hashlib.sha256(np.ascontiguousarray(inputs).tobytes()).hexdigest()
    key = (f"{manifest.model}:{sha}", digest, batch)
    if sha and key in _EXPECTED:
        return _EXPECTED[key]

    def ref_fn(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return reference(torch.from_numpy(np.ascontiguousarray(x))).numpy()

    expected = run_static_batches(inputs, batch, ref_fn)
    if sha:  # without a recorded sha256 the weights' identity is unknown: not kept
        if len(_EXPECTED) >= _EXPECTED_MAX:
            _EXPECTED.pop(next(iter(_EXPECTED)))
        _EXPECTED[key] = expected
    return expected


def _per_layer(runtime: Runtime, reference: nn.Module, inputs: np.ndarray, batch: int | None):
    from mfdeploy.harness.per_layer import per_layer_rows

    return per_layer_rows(runtime, reference, inputs[: batch or 1])


def verify_artifact(
    artifact_dir: str | Path,
    *,
    weights: str | Path | None = None,
    images: str | Path | None = None,
    overrides: dict[str, float] | None = None,
    per_layer: bool = False,
    threads: int | None = None,
    num_images: int | None = DEFAULT_NUM_IMAGES,
) -> VerifyResult:
    artifact_dir = Path(artifact_dir)
    runtime = open_runtime(artifact_dir, threads=threads)
    manifest = runtime.manifest
    reference = reference_model(manifest, artifact_dir, weights)
    inputs = verification_inputs(manifest, images, num_images)
    batch = static_batch(manifest)
    expected = _reference_logits(manifest, reference, inputs, batch)
    actual = runtime.run(inputs).astype(np.float32)  # adapters chunk static batches
    metrics = compare_logits(expected, actual)
    thresholds = default_thresholds(manifest.precision, manifest.target) | (overrides or {})
    info = runtime.info()
    return VerifyResult(
        artifact=str(artifact_dir),
        target=manifest.target,
        precision=manifest.precision,
        runtime=info.runtime,
        executor=info.executor,
        num_inputs=len(inputs),
        metrics=metrics,
        thresholds=thresholds,
        failed=failures(metrics, thresholds),
        synthetic_weights=manifest.synthetic_weights,
        per_layer=_per_layer(runtime, reference, inputs, batch) if per_layer else None,
    )
