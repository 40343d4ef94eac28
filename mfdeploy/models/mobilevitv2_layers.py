"""MobileViTv2's per-layer anchors, for the registry entry.

Blocks are numbered flat over the stages (the deploy form's `blocks.{i}`; the reference's
`stages.{s}.{j}`):

  stem          reference `stem` output (conv, BN, SiLU)    input of blocks.0
  block{i}      `stages.s.j` output                         blocks.{i} output
  block{i}.local  attention blocks: the local representation, `conv_1x1` output
                (before unfold)                             blocks.{i}.reduce output
  head          logits                                      logits

Every anchor is a feature map, compared NCHW. Inside the attention units the deploy form
holds patches as (B, N, P, d) (NHWC layout) and the reference as (B, d, P, N); with maps and
patches both rank 4 a layout permutation could not tell them apart on square maps, so the
patch tensors are not anchors. The deploy form's default layout keeps maps channels-last,
but a converter may cancel the transposes at a block boundary (onnxsim does: the ONNX
graph's block outputs are NCHW), so its maps are read either way; a map whose channels equal
its height and width (050: 64 channels at 64x64) then fits both and is left out.
"""

from __future__ import annotations

from torch import nn

from mfdeploy.artifact import form_kind
from mfdeploy.models.anchors import MAP, ModuleAnchor, ReferenceHook, same
from mfdeploy.models.mobilevitv2 import (
    _ATTENTION_DEPTHS,
    _INVERTED_RESIDUALS,
    PATCH,
    MobileViTv2Spec,
)

NHWC_TO_NCHW = (0, 3, 1, 2)


def _out_size(size: int, stride: int) -> int:
    return (size - 1) // stride + 1


def _blocks(spec: MobileViTv2Spec) -> list[tuple[str, int, int, bool]]:
    """(reference path, stride, output channels, is attention block), flat over the stages."""
    out = []
    for s, channels in enumerate(spec.stage_channels):
        for j in range(_INVERTED_RESIDUALS[s]):
            out.append((f"stages.{s}.{j}", 2 if s > 0 and j == 0 else 1, channels, False))
        if _ATTENTION_DEPTHS[s]:
            out.append((f"stages.{s}.{_INVERTED_RESIDUALS[s]}", 1, channels, True))
    return out


def module_anchors(spec: MobileViTv2Spec, form: str = "deploy") -> list[ModuleAnchor]:
    """The anchors in the deploy or reference form (module paths of that form)."""
    deploy = form_kind(form) == "deploy"
    out = [ModuleAnchor("stem", "blocks.0", "in", MAP) if deploy else ModuleAnchor(
        "stem", "stem", "out", MAP
    )]  # fmt: skip
    for i, (path, _, _, attention) in enumerate(_blocks(spec)):
        block = f"blocks.{i}" if deploy else path
        out.append(ModuleAnchor(f"block{i}", block, "out", MAP))
        if attention:
            local = f"{block}.reduce" if deploy else f"{block}.conv_1x1"
            out.append(ModuleAnchor(f"block{i}.local", local, "out", MAP))
    return out


def anchor_shapes(
    spec: MobileViTv2Spec, resolution: int, batch: int, num_classes: int
) -> dict[str, tuple]:
    """Each anchor's NCHW shape at `resolution` (an attention block first resizes its input
    to a multiple of the patch size, as the reference does)."""
    h = _out_size(resolution, 2)
    shapes: dict[str, tuple] = {"stem": (batch, spec.stem_channels, h, h)}
    for i, (_, stride, channels, attention) in enumerate(_blocks(spec)):
        if attention:
            h = -(-h // PATCH) * PATCH
            shapes[f"block{i}.local"] = (batch, channels // 2, h, h)
        else:
            h = _out_size(h, stride)
        shapes[f"block{i}"] = (batch, channels, h, h)
    shapes["head"] = (batch, num_classes)
    return shapes


def anchor_layouts(form: str) -> dict[int, tuple]:
    """rank -> the permutations that may bring a map of `form` to NCHW: the deploy form's
    default layout (features=nhwc) holds maps channels-last unless the converter cancelled
    the transposes at a block boundary; `deploy:features=nchw` and the reference hold them
    channels-first."""
    from mfdeploy.models.mobilevitv2_deploy import MobileViTv2Layout

    kind, _, layout = form.partition(":")
    nhwc = kind == "deploy" and MobileViTv2Layout.parse(layout).nhwc
    return {4: (None, NHWC_TO_NCHW) if nhwc else (None,)}


def reference_hooks(model: nn.Module) -> list[ReferenceHook]:
    """Forward hooks on a reference MobileViTv2 giving each anchor's NCHW tensor."""
    out = [ReferenceHook("stem", "stem", "out", same)]
    for i, (path, _, _, attention) in enumerate(_blocks(model.spec)):
        out.append(ReferenceHook(f"block{i}", path, "out", same))
        if attention:
            out.append(ReferenceHook(f"block{i}.local", f"{path}.conv_1x1", "out", same))
    return out
