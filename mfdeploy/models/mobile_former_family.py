"""Mobile-Former's registry entry (CVPR 2022; seven variants, 26m ... 508m)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from mfdeploy.errors import CheckpointError, MfdeployError, UnknownVariantError
from mfdeploy.models import mobile_former_layers as layers
from mfdeploy.models.checkpoint import load_into, read_state_dict
from mfdeploy.models.mobile_former import MobileFormer
from mfdeploy.models.registry import SYNTHETIC, ModelFamily
from mfdeploy.models.synthetic import DEFAULT_SEED, synthetic_model
from mfdeploy.models.variants import get_variant, normalize_variant_name, variant_names
from mfdeploy.preprocessing import Preprocessing

HEAD_KEY = "classifier.classifier.1.weight"


def build(
    variant: str, weights: str | Path | None = None, num_classes: int | None = None
) -> nn.Module:
    """weights: a checkpoint path, SYNTHETIC (seeded stand-in) or None (authors' init).

    With a checkpoint, num_classes defaults to the checkpoint's head size.
    """
    spec = get_variant(variant)
    if weights is None:
        return MobileFormer(spec, num_classes).eval()
    if str(weights) == SYNTHETIC:
        if num_classes not in (None, spec.num_classes):
            raise CheckpointError("synthetic weights have a 1000-class head")
        return synthetic_model(spec, DEFAULT_SEED)
    state = read_state_dict(weights)
    if num_classes is None and HEAD_KEY in state:
        num_classes = int(state[HEAD_KEY].shape[0])
    model = MobileFormer(spec, num_classes)
    load_into(model, state, str(weights))
    return model.eval()


def deploy_form(model: nn.Module, resolution: int, layout: str = "") -> nn.Module:
    """The export-friendly form (mfdeploy.models.deploy). It has one layout: the measured
    alternatives are built in benchmarks/deploy_layouts.py, not here."""
    from mfdeploy.models.deploy import to_deploy

    if layout.strip():
        raise MfdeployError(
            f"Mobile-Former's deploy form has no layout options (got deploy:{layout}); "
            "use --form deploy or --form reference"
        )
    return to_deploy(model, resolution)


def variant_facts(variant: str) -> tuple[dict, dict[str, str]]:
    """Tokens and the paper's params / FLOPs / top-1 (ImageNet-1k, 224x224)."""
    spec = get_variant(variant)
    data = {
        "tokens": spec.num_tokens,
        "token_dim": spec.token_dim,
        "published_params_m": spec.paper_params_m,
        "published_flops_m": spec.paper_flops_m,
        "published_top1": spec.paper_top1,
    }
    shown = {
        "tokens": f"{spec.num_tokens}x{spec.token_dim}",
        "published params": f"{spec.paper_params_m}M",
        "published FLOPs": f"{spec.paper_flops_m}M",
        "published top-1": f"{spec.paper_top1}%",
    }
    return data, shown


def _alias(key: str) -> str | None:
    try:
        return normalize_variant_name(key)
    except UnknownVariantError:
        return None


FAMILY = ModelFamily(
    name="mobile_former",
    title="Mobile-Former",
    variants=tuple(variant_names()),
    default_variant="294m",
    build=build,
    default_weights=SYNTHETIC,
    preprocessing=Preprocessing(),
    model_name=lambda variant: get_variant(variant).model_name,
    aliases=_alias,
    to_deploy=deploy_form,
    module_anchors=lambda variant, form: layers.module_anchors(get_variant(variant), form),
    anchor_shapes=lambda variant, res, batch, classes: layers.anchor_shapes(
        get_variant(variant), res, batch, classes
    ),
    anchor_layouts=layers.anchor_layouts,
    reference_hooks=layers.reference_hooks,
    variant_facts=variant_facts,
)
