"""MobileViTv2's registry entry (Apple, 2022; seven widths, mobilevitv2_050 ... _200)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from mfdeploy.errors import MfdeployError, UnknownVariantError
from mfdeploy.models import mobilevitv2_layers as layers
from mfdeploy.models.mobilevitv2 import (
    PREPROCESSING,
    VARIANT_NAMES,
    create_mobilevitv2,
    get_spec,
)
from mfdeploy.models.registry import SYNTHETIC, ModelFamily

#: the paper's ImageNet-1k top-1 (%) and timm's counts, per width (MOBILEVITV2.md)
PUBLISHED_TOP1 = {
    "mobilevitv2_050": 70.18,
    "mobilevitv2_075": 75.56,
    "mobilevitv2_100": 78.09,
    "mobilevitv2_125": 79.65,
    "mobilevitv2_150": 80.38,
    "mobilevitv2_175": 80.84,
    "mobilevitv2_200": 81.17,
}


def build(
    variant: str, weights: str | Path | None = None, num_classes: int | None = None
) -> nn.Module:
    """weights: a timm-layout checkpoint, SYNTHETIC (seeded stand-in) or None (init)."""
    return create_mobilevitv2(variant, weights, num_classes)


def deploy_form(model: nn.Module, resolution: int, layout: str = "") -> nn.Module:
    """The export-friendly form; `layout` "features=nchw" is ONNX Runtime's measured layout
    (docs/mobilevitv2.md), the default channels-last one LiteRT's."""
    from mfdeploy.models.mobilevitv2_deploy import MobileViTv2Layout, to_deploy_mobilevitv2

    try:
        parsed = MobileViTv2Layout.parse(layout)
    except ValueError as exc:
        raise MfdeployError(str(exc)) from None
    return to_deploy_mobilevitv2(model, resolution, parsed)


def _alias(key: str) -> str | None:
    try:
        return get_spec(key).name
    except UnknownVariantError:
        return None


def variant_facts(variant: str) -> tuple[dict, dict[str, str]]:
    top1 = PUBLISHED_TOP1.get(variant)
    return {"published_top1": top1}, {"published top-1": f"{top1}%"}


#: the deploy layout measured fastest on each exporter's runtime (docs/mobilevitv2.md); the
#: other targets take the default (channels-last)
TARGET_LAYOUTS: dict[str, str] = {"tflite": "features=nhwc", "onnx": "features=nchw"}

FAMILY = ModelFamily(
    name="mobilevitv2",
    title="MobileViTv2",
    variants=VARIANT_NAMES,
    default_variant="mobilevitv2_100",
    build=build,
    default_weights=SYNTHETIC,
    preprocessing=PREPROCESSING,
    model_name=lambda variant: variant,
    aliases=_alias,
    to_deploy=deploy_form,
    target_layouts=TARGET_LAYOUTS,
    module_anchors=lambda variant, form: layers.module_anchors(get_spec(variant), form),
    anchor_shapes=lambda variant, res, batch, classes: layers.anchor_shapes(
        get_spec(variant), res, batch, classes
    ),
    anchor_layouts=layers.anchor_layouts,
    reference_hooks=layers.reference_hooks,
    variant_facts=variant_facts,
)
