"""Models: the registry of families, reference models, deploy forms and checkpoint loading.

`create_model("294m", weights=...)` / `load_source(...)` are the ways models are built.
"""

from __future__ import annotations

from mfdeploy.models.registry import (
    PRETRAINED,
    SYNTHETIC,
    ModelFamily,
    families,
    get_family,
    resolve_model,
)
from mfdeploy.models.source import (
    SourceModel,
    create_model,
    export_module,
    load_source,
    module_in_form,
    structure_model,
    weights_sha256,
)
from mfdeploy.models.variants import (
    VariantSpec,
    all_variants,
    get_variant,
    normalize_variant_name,
    variant_names,
)

__all__ = [
    "PRETRAINED",
    "SYNTHETIC",
    "ModelFamily",
    "SourceModel",
    "VariantSpec",
    "all_variants",
    "create_model",
    "export_module",
    "families",
    "get_family",
    "get_variant",
    "load_source",
    "module_in_form",
    "normalize_variant_name",
    "resolve_model",
    "structure_model",
    "variant_names",
    "weights_sha256",
]


def __getattr__(name: str):
    """Deploy-form names without importing the deploy module up front."""
    if name in ("to_deploy", "MobileFormer"):
        if name == "MobileFormer":
            from mfdeploy.models.mobile_former import MobileFormer

            return MobileFormer
        from mfdeploy.models import deploy

        return getattr(deploy, name)
    raise AttributeError(name)
