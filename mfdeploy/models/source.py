"""checkpoint -> reference model, with the weights' identity: what every stage starts from.

`load_source` is the one way export, verify, bench, predict and evaluate get a model; the
identity (`weights_sha256`) is what a manifest records and what verify checks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from mfdeploy.artifact import Manifest, form_kind
from mfdeploy.errors import MfdeployError
from mfdeploy.models.checkpoint import file_sha256
from mfdeploy.models.registry import SYNTHETIC, ModelFamily, get_family, resolve_model
from mfdeploy.preprocessing import Preprocessing

FORM_KINDS = ("deploy", "reference")


@dataclass
class SourceModel:
    """A reference model, its registry entry and where its weights came from."""

    model: nn.Module
    entry: ModelFamily
    variant: str  # the family's canonical variant ("294m", "efficientnet_lite0")
    checkpoint: str  # a path, SYNTHETIC or PRETRAINED
    checkpoint_sha256: str
    preprocessing: Preprocessing = field(default_factory=Preprocessing)

    @property
    def name(self) -> str:  # "mobile_former_294m"
        return self.entry.model_name(self.variant)

    @property
    def family(self) -> str:  # the manifest's model_family
        return self.entry.name

    @property
    def manifest_variant(self) -> str | None:
        return self.entry.manifest_variant(self.variant)

    @property
    def synthetic(self) -> bool:
        return self.checkpoint == SYNTHETIC

    @property
    def num_classes(self) -> int:
        return int(getattr(self.model, "num_classes", 1000))

    def form(self, form: str) -> str:
        """The form an artifact of this source records: families without a deploy form
        export (and record) their reference form."""
        return form if self.entry.has_deploy_form else "reference"


def state_dict_sha256(model: nn.Module) -> str:
    """Content hash of a model's weights (names, shapes and float32 bytes, in key order)."""
    digest = hashlib.sha256()
    for key, tensor in model.state_dict().items():
        digest.update(key.encode() + b"\0" + str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def _plain(value: object) -> bool:
    """A setting whose repr is its value: numbers, strings, dtypes, frozen layouts and
    tuples / lists of them (not tensors, modules or functions, whose repr may be an address)."""
    if value is None or isinstance(value, (bool, int, float, str, torch.dtype)):
        return True
    if isinstance(value, (tuple, list)):
        return all(_plain(item) for item in value)
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def module_settings(model: nn.Module) -> str:
    """Every submodule's class (with its module path) and plain public attributes.

    What a module computes is its code, its weights and the settings its forward reads;
    a setting kept as a plain attribute (a layout flag, a row count) does not show in the
    module's repr, so two modules with one repr and one state dict can compute different
    functions. Caches keyed by the module include this."""
    lines = []
    for name, sub in model.named_modules():
        kind = type(sub)
        plain = sorted((k, v) for k, v in vars(sub).items() if not k.startswith("_") and _plain(v))
        lines.append(f"{name} {kind.__module__}.{kind.__qualname__} {plain!r}")
    return "\n".join(lines)


#: packages whose classes' code caches key by version: mfdeploy's by `export_code_sha256`,
#: torch's by the tool versions
VERSIONED_PACKAGES = ("mfdeploy", "torch")


def foreign_code(model: nn.Module) -> str:
    """The source of every submodule class defined outside `VERSIONED_PACKAGES` (a test's, a
    benchmark's, another package's): editing such a forward must not reuse a cache entry
    made by its old code."""
    kinds = {type(sub) for sub in model.modules()}
    sources = []
    for kind in sorted(kinds, key=lambda k: (k.__module__, k.__qualname__)):
        if kind.__module__.split(".")[0] in VERSIONED_PACKAGES:
            continue
        try:
            sources.append(inspect.getsource(kind))
        except (OSError, TypeError):  # defined in a REPL / exec: only its name is known
            sources.append(f"{kind.__module__}.{kind.__qualname__}")
    return "\n".join(sources)


def module_identity(model: nn.Module) -> str:
    """sha256 of what decides a module's function here: its tree (repr), every submodule's
    class and settings (`module_settings`), the code of classes no version covers
    (`foreign_code`) and its weights (`state_dict_sha256`). The package's own code is not in
    it: caches add `export_code_sha256` for that."""
    digest = hashlib.sha256()
    parts = (repr(model), module_settings(model), foreign_code(model), state_dict_sha256(model))
    for part in parts:
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()


def weights_sha256(
    weights: str | Path,
    model: nn.Module | Callable[[], nn.Module] | None = None,
    entry: ModelFamily | None = None,
) -> str:
    """The identity recorded in a manifest: a checkpoint file's sha256 (the packaged file for
    PRETRAINED), else the content hash of the rebuilt weights (SYNTHETIC). `model` may be a
    builder, called only when a content hash is needed."""
    packaged = entry.weights_file(str(weights)) if entry is not None else None
    if packaged is not None:
        return file_sha256(packaged)
    if Path(weights).is_file():
        return file_sha256(weights)
    if model is None:
        raise MfdeployError(f"{weights}: no such checkpoint file")
    return state_dict_sha256(model if isinstance(model, nn.Module) else model())


def create_model(
    name: str, weights: str | Path | None = None, num_classes: int | None = None
) -> nn.Module:
    """A registry model ("294m", "mobile_former_294m", "efficientnet_lite0", ...) in eval mode.

    weights: a checkpoint path, SYNTHETIC, PRETRAINED (where a package ships trained weights)
    or None for the family's initialisation.
    """
    entry, variant = resolve_model(name)
    return entry.build(variant, weights, num_classes)


def load_source(
    name: str | None = None,
    weights: str | Path | None = None,
    resolution: int | None = None,
    family: str | None = None,
) -> SourceModel:
    """checkpoint -> reference model; no weights means the family's default (synthetic
    stand-in, or the trained weights a package ships)."""
    entry, variant = resolve_model(name, family)
    weights = entry.default_weights if weights is None else weights
    model = entry.build(variant, weights, None)
    return SourceModel(
        model=model,
        entry=entry,
        variant=variant,
        checkpoint=str(weights),
        checkpoint_sha256=weights_sha256(weights, model, entry),
        preprocessing=entry.preprocessing_at(resolution),
    )


def module_in_form(model: nn.Module, entry: ModelFamily, resolution: int, form: str) -> nn.Module:
    """A reference model in `form` ("deploy", "deploy:LAYOUT" or "reference"). Families
    without a deploy form export as they are."""
    kind, _, layout = form.partition(":")
    if kind not in FORM_KINDS or (kind == "reference" and layout):
        raise MfdeployError(f"unknown form {form!r}; choose deploy, deploy:LAYOUT or reference")
    if kind == "reference" or entry.to_deploy is None:
        return model
    return entry.to_deploy(model, resolution, layout)


def export_module(source: SourceModel, form: str) -> nn.Module:
    """The module an exporter traces: the deploy form (default) or the reference form."""
    return module_in_form(source.model, source.entry, source.preprocessing.resolution, form)


def manifest_variant_name(manifest: Manifest) -> str:
    """The registry variant an artifact was exported from."""
    entry = get_family(manifest.model_family)
    return resolve_model(manifest.variant or manifest.model, entry.name)[1]


def structure_model(manifest: Manifest) -> nn.Module:
    """The exported form of an artifact's model with initial weights (module names only)."""
    entry = get_family(manifest.model_family)
    model = entry.build(manifest_variant_name(manifest), None, manifest.num_classes)
    resolution = int(manifest.preprocessing["resolution"])
    return module_in_form(model, entry, resolution, manifest.form)


__all__ = [
    "SourceModel",
    "create_model",
    "export_module",
    "foreign_code",
    "form_kind",
    "load_source",
    "module_in_form",
    "module_identity",
    "state_dict_sha256",
    "structure_model",
    "weights_sha256",
]
