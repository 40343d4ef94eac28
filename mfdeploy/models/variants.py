"""The seven published Mobile-Former variants, read from the packaged facts file.

The widths come from the authors' released code (see mfdeploy/data/mobile_former_variants.json);
keeping them as data rather than code means one source of truth for the model builder,
the `variants` table and the tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from mfdeploy.errors import UnknownVariantError


@dataclass(frozen=True)
class BlockSpec:
    kind: str  # "lite_bneck" | "mf" | "mf_down"
    stride: int
    in_ch: int
    hidden: int
    out_ch: int
    residual: bool
    hidden2: int = 0  # second depthwise width, mf_down only


@dataclass(frozen=True)
class VariantSpec:
    name: str
    stem_channels: int
    num_tokens: int
    token_dim: int
    former_heads: int
    bridge_heads: int
    ffn_hidden: int
    dyrelu_hidden: int
    pointwise_groups: int
    blocks: tuple[BlockSpec, ...]
    head_conv: int
    head_fc: int
    num_classes: int
    official_param_count: int
    official_macs_m: float
    paper_params_m: float
    paper_flops_m: float
    paper_top1: float

    @property
    def model_name(self) -> str:
        return f"mobile_former_{self.name}"


@lru_cache(maxsize=1)
def _facts() -> dict[str, Any]:
    text = resources.files("mfdeploy.data").joinpath("mobile_former_variants.json").read_text()
    return json.loads(text)


def preprocessing_facts() -> dict[str, Any]:
    """Eval preprocessing of the released checkpoints (resize, crop, mean/std)."""
    return dict(_facts()["preprocessing"])


def _block(raw: dict[str, Any]) -> BlockSpec:
    return BlockSpec(
        kind=raw["type"],
        stride=raw["stride"],
        in_ch=raw["in_ch"],
        hidden=raw["exp_hidden"],
        out_ch=raw["out_ch"],
        residual=raw["residual"],
        hidden2=raw.get("exp_hidden2", 0),
    )


def _variant(raw: dict[str, Any]) -> VariantSpec:
    return VariantSpec(
        name=raw["variant"],
        stem_channels=raw["stem_channels"],
        num_tokens=raw["num_tokens"],
        token_dim=raw["token_dim"],
        former_heads=raw["former_heads"],
        bridge_heads=raw["bridge_heads"],
        ffn_hidden=raw["former_ffn_hidden"],
        dyrelu_hidden=raw["dyrelu_mlp_hidden"],
        pointwise_groups=raw["pointwise_groups"],
        blocks=tuple(_block(b) for b in raw["blocks"]),
        head_conv=raw["head"]["conv1x1_out"],
        head_fc=raw["head"]["fc1_out"],
        num_classes=raw["head"]["num_classes"],
        official_param_count=raw["official_code_param_count"],
        official_macs_m=raw["official_code_macs_M_conv_linear_matmul"],
        paper_params_m=raw["paper"]["params_M"],
        paper_flops_m=raw["paper"]["flops_M"],
        paper_top1=raw["paper"]["imagenet_top1"],
    )


@lru_cache(maxsize=1)
def all_variants() -> dict[str, VariantSpec]:
    """All variants keyed by short name ("26m" ... "508m"), smallest first."""
    return {raw["variant"]: _variant(raw) for raw in _facts()["variants"]}


def variant_names() -> list[str]:
    return list(all_variants())


def normalize_variant_name(name: str) -> str:
    """Accept "294m", "294M", "mobile_former_294m" and "mobile-former-294m"."""
    key = name.strip().lower().replace("-", "_")
    if key.startswith("mobile_former_"):
        key = key[len("mobile_former_") :]
    if key not in all_variants():
        raise UnknownVariantError(
            f"unknown variant {name!r}; choose one of: {', '.join(variant_names())}"
        )
    return key


def get_variant(name: str) -> VariantSpec:
    return all_variants()[normalize_variant_name(name)]
