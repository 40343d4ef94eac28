"""Deploy form of MobileViTv2: the reference function in ops every mobile runtime handles.

`to_deploy_mobilevitv2(model, resolution)` builds it from a reference model with the same
weights:
- BatchNorm folded into the convolution before it (float64 arithmetic, rounded once;
  deploy.fold_conv_bn);
- static shapes fixed at build time (batch as -1), every tensor rank <= 4 (the reference's
  unfold / fold reshape through rank 6, which Core ML and TFLite TRANSPOSE refuse, and
  pixel_(un)shuffle decomposes to rank 6 in the ONNX exporter): see MobileViTv2Layout;
- GroupNorm(1) written as mean / centred variance / rsqrt over (d, P, N) (no builtin in
  TFLite; ONNX GroupNormalization needs opset 18+). Its per-channel affine is folded into
  the 1x1 convolution that follows it (float64), so only the standardisation remains;
- the query / key / value projection split into separate convolutions (no channel slices);
  the key projection is applied after the sum over patches (sum_N (W x + b) s = W sum_N x s
  + b, as the scores sum to 1): a (B, d, P, 1) map instead of a (B, d, P, N) one;
- the softmax over the patch axis N as the layout holds it: litert-torch lowers it to
  REDUCE_MAX / EXP / SUM / DIV along that axis, with no transpose around it.

The layouts kept are the fastest per runtime family in benchmarks/mobilevitv2_layouts.py
(docs/mobilevitv2.md, which also lists the rejected ones).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mfdeploy.models import mobilevitv2 as ref
from mfdeploy.models.deploy import ConvNHWC, fold_conv_bn
from mfdeploy.models.layouts import parse_layout_items

LAYOUT_CHOICES: dict[str, tuple[str, ...]] = {"features": ("nhwc", "nchw")}


@dataclass(frozen=True)
class MobileViTv2Layout:
    """Equivalent op arrangements, chosen by measurement.

    features "nhwc": maps channels-last between the convolutions (each convolution permutes
                     in and out, which cancels against the transposes litert-torch wraps
                     around it); patches held as (B, N, P, d), so unfold and fold are one
                     rank-4 transpose each and every residual add, norm and softmax sees the
                     layout the convolutions produce. For LiteRT (the default): 6 TRANSPOSE
                     ops in the whole graph, one XNNPACK partition.
             "nchw": the reference's (B, d, P, N), unfold a stride-2 2x2 depthwise
                     convolution with one-hot weights (channel multiplier 4), fold its
                     transposed convolution. For NCHW runtimes (ONNX Runtime): no Transpose
                     node at all; on LiteRT the transposed convolution leaves XNNPACK.
    """

    features: str = "nhwc"

    def __post_init__(self) -> None:
        for name, allowed in LAYOUT_CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"MobileViTv2 layout {name}={getattr(self, name)!r}; "
                    f"choose {' or '.join(allowed)}"
                )

    @property
    def nhwc(self) -> bool:
        return self.features == "nhwc"

    @classmethod
    def parse(cls, spec: str) -> MobileViTv2Layout:
        """From "features=nchw" (empty: the default)."""
        return cls(**parse_layout_items(spec, LAYOUT_CHOICES, "MobileViTv2 layout"))


def _out_size(size: int, stride: int) -> int:
    return (size - 1) // stride + 1


def conv_from(
    conv: nn.Conv2d,
    scale: torch.Tensor | None = None,
    shift: torch.Tensor | None = None,
    dtype: torch.dtype | None = None,
) -> nn.Conv2d:
    """`conv(scale * x + shift)` (scale, shift per input channel) as one 1x1 convolution with
    bias, in float64 arithmetic rounded once to `dtype` (default: the conv's)."""
    if conv.kernel_size != (1, 1):
        raise ValueError("only a 1x1 convolution absorbs a per-channel shift exactly")
    weight = conv.weight.double()
    bias = conv.bias.double() if conv.bias is not None else weight.new_zeros(conv.out_channels)
    if shift is not None:
        bias = bias + weight.sum(dim=(2, 3)) @ shift.double()
    if scale is not None:
        weight = weight * scale.double()[None, :, None, None]
    out = nn.Conv2d(conv.in_channels, conv.out_channels, 1, bias=True)
    out.weight.data = weight.to(dtype or conv.weight.dtype)
    out.bias.data = bias.to(dtype or conv.weight.dtype)
    return out


def rows_of(conv: nn.Conv2d, start: int, stop: int) -> nn.Conv2d:
    """Output channels start:stop of a 1x1 convolution, as its own convolution."""
    out = nn.Conv2d(conv.in_channels, stop - start, 1)
    out.weight.data = conv.weight.data[start:stop].clone()
    out.bias.data = conv.bias.data[start:stop].clone()
    return out


def channels_last(conv: nn.Conv2d) -> ConvNHWC:
    """The same convolution on channels-last maps (B, H, W, C)."""
    out = ConvNHWC(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        groups=conv.groups,
        bias=conv.bias is not None,
    ).to(conv.weight.dtype)
    out.load_state_dict(conv.state_dict())
    return out


def in_layout(conv: nn.Conv2d, nhwc: bool) -> nn.Conv2d:
    return channels_last(conv) if nhwc else conv


def folded(block: ref.ConvBN, nhwc: bool) -> nn.Conv2d:
    return fold_conv_bn(block.conv, block.bn, nhwc)


class Standardise(nn.Module):
    """GroupNorm(1) without its affine: (x - mean) * rsqrt(var + eps) over all of (C, P, N)
    per sample (either layout), in Mean / Sub / Mul / Rsqrt."""

    def __init__(self, eps: float) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - x.mean(dim=(1, 2, 3), keepdim=True)
        variance = (centred * centred).mean(dim=(1, 2, 3), keepdim=True)
        return centred * torch.rsqrt(variance + self.eps)


class SeparableAttention(nn.Module):
    """Separable self-attention on standardised patches, (B, d, P, N) or (B, N, P, d); norm1's
    affine is in the projections."""

    def __init__(self, unit: ref.AttentionUnit, layout: MobileViTv2Layout) -> None:
        super().__init__()
        attn, norm = unit.attn, unit.norm1
        d = attn.dim
        qkv = conv_from(attn.qkv_proj, norm.weight, norm.bias)
        self.query = in_layout(rows_of(qkv, 0, 1), layout.nhwc)
        # applied to the score-weighted patch sum (B, d, P, 1), not to every patch
        self.key = in_layout(rows_of(qkv, 1, 1 + d), layout.nhwc)
        self.value = in_layout(rows_of(qkv, 1 + d, 1 + 2 * d), layout.nhwc)
        self.out = in_layout(copy.deepcopy(attn.out_proj), layout.nhwc)
        self.axis = 1 if layout.nhwc else 3  # the patch axis N

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = torch.softmax(self.query(x), dim=self.axis)  # (B, 1, P, N) / (B, N, P, 1)
        pooled = (x * scores).sum(dim=self.axis, keepdim=True)  # (B, d, P, 1) / (B, 1, P, d)
        return self.out(F.relu(self.value(x)) * self.key(pooled))


class AttentionUnit(nn.Module):
    def __init__(self, unit: ref.AttentionUnit, layout: MobileViTv2Layout) -> None:
        super().__init__()
        self.norm1 = Standardise(unit.norm1.eps)
        self.attn = SeparableAttention(unit, layout)
        self.norm2 = Standardise(unit.norm2.eps)
        fc1 = conv_from(unit.mlp.fc1, unit.norm2.weight, unit.norm2.bias)
        self.fc1 = in_layout(fc1, layout.nhwc)
        self.fc2 = in_layout(copy.deepcopy(unit.mlp.fc2), layout.nhwc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.silu(self.fc1(self.norm2(x))))


def one_hot_patch_weight(channels: int, patch: int) -> torch.Tensor:
    """(C * P, 1, patch, patch): output channel c * P + p takes pixel p = i * patch + j."""
    area = patch * patch
    eye = torch.eye(area).reshape(area, 1, patch, patch)
    return eye.repeat(channels, 1, 1, 1)


class Unfold(nn.Module):
    """Maps to patches in the published index order (p = i * 2 + j, n row-major), rank <= 4:
    NCHW (B, C, H, W) -> (B, C, P, N); NHWC (B, H, W, C) -> (B, N, P, C)."""

    def __init__(
        self, channels: int, height: int, width: int, layout: MobileViTv2Layout, dtype
    ) -> None:
        super().__init__()
        self.c, self.h, self.w = channels, height // ref.PATCH, width // ref.PATCH
        self.layout = layout
        if not layout.nhwc:
            self.conv = nn.Conv2d(
                channels,
                channels * ref.PATCH**2,
                ref.PATCH,
                ref.PATCH,
                groups=channels,
                bias=False,
            )
            self.conv.weight.data = one_hot_patch_weight(channels, ref.PATCH).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, h, w, k = self.c, self.h, self.w, ref.PATCH
        if self.layout.nhwc:  # (B, h, i, w, j*C + c) -> (B, h, w, i, j*C + c): one transpose
            x = x.reshape(-1, k, w, k * c).transpose(1, 2)
            return x.reshape(-1, h * w, k * k, c)
        return self.conv(x).reshape(-1, c, k * k, h * w)


class Fold(nn.Module):
    """Patches back to maps, the inverse of Unfold."""

    def __init__(
        self, channels: int, height: int, width: int, layout: MobileViTv2Layout, dtype
    ) -> None:
        super().__init__()
        self.c, self.h, self.w = channels, height // ref.PATCH, width // ref.PATCH
        self.layout = layout
        if not layout.nhwc:
            self.conv = nn.ConvTranspose2d(
                channels * ref.PATCH**2,
                channels,
                ref.PATCH,
                ref.PATCH,
                groups=channels,
                bias=False,
            )
            self.conv.weight.data = one_hot_patch_weight(channels, ref.PATCH).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, h, w, k = self.c, self.h, self.w, ref.PATCH
        if self.layout.nhwc:
            x = x.reshape(-1, w, k, k * c).transpose(1, 2)
            return x.reshape(-1, h * k, w * k, c)
        return self.conv(x.reshape(-1, c * k * k, h, w))


class InvertedResidual(nn.Module):
    def __init__(self, block: ref.InvertedResidual, nhwc: bool) -> None:
        super().__init__()
        self.expand = folded(block.conv1_1x1, nhwc)
        self.dw = folded(block.conv2_kxk, nhwc)
        self.project = folded(block.conv3_1x1, nhwc)
        self.residual = block.residual
        self.stride = self.dw.stride[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(F.silu(self.dw(F.silu(self.expand(x)))))
        return out + x if self.residual else out


class MobileViTv2Block(nn.Module):
    def __init__(
        self, block: ref.MobileViTv2Block, height: int, width: int, layout: MobileViTv2Layout
    ) -> None:
        super().__init__()
        self.size = (height, width)
        h, w = (-(-s // ref.PATCH) * ref.PATCH for s in (height, width))
        self.resized = (h, w)  # as the reference: bilinear resize when not divisible by 2
        self.nhwc = layout.nhwc
        d, dtype = block.conv_1x1.out_channels, block.conv_1x1.weight.dtype
        self.local = folded(block.conv_kxk, layout.nhwc)
        self.reduce = in_layout(copy.deepcopy(block.conv_1x1), layout.nhwc)
        self.unfold = Unfold(d, h, w, layout, dtype)
        self.units = nn.ModuleList(AttentionUnit(u, layout) for u in block.transformer)
        self.norm = Standardise(block.norm.eps)
        self.fold = Fold(d, h, w, layout, dtype)
        # conv_proj + BN after the GroupNorm affine (which commutes with the fold), folded in
        # float64 and rounded once.
        conv, bn = block.conv_proj.conv, block.conv_proj.bn
        proj64 = fold_conv_bn(copy.deepcopy(conv).double(), copy.deepcopy(bn).double())
        proj = conv_from(proj64, block.norm.weight, block.norm.bias, dtype)
        self.proj = in_layout(proj, layout.nhwc)

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        if self.nhwc:
            x = x.permute(0, 3, 1, 2)
        x = F.interpolate(x, size=self.resized, mode="bilinear", align_corners=True)
        return x.permute(0, 2, 3, 1) if self.nhwc else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resized != self.size:
            x = self.resize(x)
        x = self.unfold(self.reduce(F.silu(self.local(x))))
        for unit in self.units:
            x = unit(x)
        return self.proj(self.fold(self.norm(x)))


class MobileViTv2Deploy(nn.Module):
    """Same function as the reference MobileViTv2 for resolution x resolution inputs (NCHW in,
    as the reference)."""

    def __init__(
        self, model: ref.MobileViTv2, resolution: int, layout: MobileViTv2Layout | None = None
    ) -> None:
        super().__init__()
        self.layout = layout = layout or MobileViTv2Layout()
        self.spec = model.spec
        self.num_classes = model.num_classes
        self.resolution = resolution
        self.stem = folded(model.stem, layout.nhwc)
        h = w = _out_size(resolution, 2)
        blocks: list[nn.Module] = []
        for stage in model.stages:
            for block in stage:
                if isinstance(block, ref.InvertedResidual):
                    blocks.append(InvertedResidual(block, layout.nhwc))
                    h, w = _out_size(h, blocks[-1].stride), _out_size(w, blocks[-1].stride)
                else:
                    blocks.append(MobileViTv2Block(block, h, w, layout))
                    h, w = blocks[-1].resized
        self.blocks = nn.ModuleList(blocks)
        self.fc = copy.deepcopy(model.head.fc)
        self.features = model.head.fc.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layout.nhwc:  # cancels the NHWC -> NCHW transpose at a TFLite input
            x = x.permute(0, 2, 3, 1)
        x = F.silu(self.stem(x))
        for block in self.blocks:
            x = block(x)
        pooled = x.mean(dim=(1, 2)) if self.layout.nhwc else F.adaptive_avg_pool2d(x, 1)
        return self.fc(pooled.reshape(-1, self.features))


@torch.no_grad()
def to_deploy_mobilevitv2(
    model: nn.Module, resolution: int = 256, layout: MobileViTv2Layout | None = None
) -> MobileViTv2Deploy:
    """Deploy form of a reference MobileViTv2 for inputs of `resolution` x `resolution`."""
    if not isinstance(model, ref.MobileViTv2):
        raise TypeError("to_deploy_mobilevitv2 expects a reference MobileViTv2")
    return MobileViTv2Deploy(model.eval(), resolution, layout).eval()
