"""Mobile-Former's per-layer anchors and int8 candidate modules, for the registry entry.

Anchors (reference module <-> deploy-form module):
  stem                 stem output               input of lite.0 (or blocks.0)
  block{i}.mobile      lite block output         output of lite.{j}
  block{i}.bridge_in   features.i.local_global   blocks.k.bridge_in output (tokens)
  block{i}.former      features.i.global_block   blocks.k.former output (tokens)
  block{i}.mobile      input of global_local     input of blocks.k.bridge_out (map)
  block{i}.bridge_out  features.i.global_local   blocks.k.bridge_out output (map)
  final_bridge         local_global              bridge_final output (tokens)
  head                 logits                    logits
"""

from __future__ import annotations

import torch
from torch import nn

from mfdeploy.artifact import form_kind
from mfdeploy.models.anchors import LOGITS, MAP, TOKENS, ModuleAnchor, ReferenceHook, same
from mfdeploy.models.variants import VariantSpec

SEQ_FIRST_TO_BATCH_FIRST = (1, 0, 2)


def _out_size(size: int, stride: int) -> int:
    return (size - 1) // stride + 1


def module_anchors(spec: VariantSpec, form: str = "deploy") -> list[ModuleAnchor]:
    """The anchors of a variant in its deploy or reference form (module paths of that form)."""
    deploy = form_kind(form) == "deploy"
    lite = [i for i, b in enumerate(spec.blocks) if b.kind == "lite_bneck"]
    first = ("lite.0" if lite else "blocks.0") if deploy else "features.0"
    out = [ModuleAnchor("stem", first, "in", MAP)]
    for i, block in enumerate(spec.blocks):
        if block.kind == "lite_bneck":
            path = f"lite.{lite.index(i)}" if deploy else f"features.{i}"
            out.append(ModuleAnchor(f"block{i}.mobile", path, "out", MAP))
            continue
        path = f"blocks.{i - len([j for j in lite if j < i])}" if deploy else f"features.{i}"
        names = ("bridge_in", "former", "bridge_out")
        if not deploy:
            names = ("local_global", "global_block", "global_local")
        out += [
            ModuleAnchor(f"block{i}.bridge_in", f"{path}.{names[0]}", "out", TOKENS),
            ModuleAnchor(f"block{i}.former", f"{path}.{names[1]}", "out", TOKENS),
            ModuleAnchor(f"block{i}.mobile", f"{path}.{names[2]}", "in", MAP),
            ModuleAnchor(f"block{i}.bridge_out", f"{path}.{names[2]}", "out", MAP),
        ]
    out.append(
        ModuleAnchor("final_bridge", "bridge_final" if deploy else "local_global", "out", TOKENS)
    )
    return out


def anchor_shapes(
    spec: VariantSpec, resolution: int, batch: int, num_classes: int
) -> dict[str, tuple]:
    """Each anchor's shape in the reference layout (what the reference hooks give)."""
    h = _out_size(resolution, 2)
    tokens = (batch, spec.num_tokens, spec.token_dim)
    shapes: dict[str, tuple] = {"stem": (batch, spec.stem_channels, h, h)}
    for i, block in enumerate(spec.blocks):
        h = _out_size(h, block.stride)
        shapes[f"block{i}.mobile"] = (batch, block.out_ch, h, h)
        if block.kind != "lite_bneck":
            shapes[f"block{i}.bridge_in"] = shapes[f"block{i}.former"] = tokens
            shapes[f"block{i}.bridge_out"] = (batch, block.out_ch, h, h)
    shapes["final_bridge"] = tokens
    shapes["head"] = (batch, num_classes)
    return shapes


def anchor_layouts(form: str) -> dict[int, tuple]:
    """rank -> permutations that may bring a tensor of `form` to the reference layout: the
    reference form keeps tokens sequence-first (M, B, d)."""
    deploy = form_kind(form) == "deploy"
    return {3: ((None,) if deploy else (SEQ_FIRST_TO_BATCH_FIRST,)), 4: (None,)}


def _tokens(t: torch.Tensor) -> torch.Tensor:
    return t.permute(1, 0, 2)  # reference tokens are sequence-first (M, B, d)


def reference_hooks(model: nn.Module) -> list[ReferenceHook]:
    """Forward hooks on a reference MobileFormer giving each anchor's tensor."""
    out = [ReferenceHook("stem", "stem", "out", same)]
    for i, block in enumerate(getattr(model, "features", [])):
        if hasattr(block, "global_local"):
            out += [
                ReferenceHook(f"block{i}.bridge_in", f"features.{i}.local_global", "out", _tokens),
                ReferenceHook(f"block{i}.former", f"features.{i}.global_block", "out", _tokens),
                ReferenceHook(f"block{i}.mobile", f"features.{i}.global_local", "in", same),
                ReferenceHook(f"block{i}.bridge_out", f"features.{i}.global_local", "out", same),
            ]
        else:
            out.append(ReferenceHook(f"block{i}.mobile", f"features.{i}", "out", lambda t: t[0]))
    if hasattr(model, "local_global"):
        out.append(ReferenceHook("final_bridge", "local_global", "out", _tokens))
    return out


__all__ = ["LOGITS", "anchor_layouts", "anchor_shapes", "module_anchors", "reference_hooks"]
