"""Mobile-Former deploy-form layouts that were measured and rejected: built here, not shipped.

The product (mfdeploy.models.deploy) ships one arrangement of the deploy form's ops. Each
layout here computes the same function with the ops arranged otherwise; they are built by
subclassing the product's modules and rebuilding them from the reference model.
benchmarks/deploy_vs_reference.py times them (`--layouts`, `--forms deploy:KEY=VALUE,...`);
docs/deploy_form.md has the numbers and why each was rejected.

    .venv/bin/python benchmarks/deploy_layouts.py            # float64 check of every layout
    .venv/bin/python benchmarks/deploy_layouts.py --litert   # + two as TFLite, run on LiteRT
    .venv/bin/python benchmarks/deploy_layouts.py --export deploy:pixel_sum=flat \
        --target tflite --variant 26m --weights W --out ART   # one layout as an artifact

The check builds each layout of 26m and 151m and compares it with the reference in float64
(batch 3, 256 x 256, < 1e-9: the same function), and the shipped layout built through these
classes with the product's deploy form (bitwise equal in float32: the classes rebuild the
product faithfully). `--litert` exports two of them to TFLite with the 26m fixture weights
and checks the graph (rank <= 4, builtin ops) and the logits on LiteRT (<= 1e-4). `--export`
writes one layout as an ordinary artifact (its manifest records the form), for `mfdeploy
verify` / `inspect` / `bench`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from _common import FIXTURE_DIRS, fixture_weights
from torch import nn

from mfdeploy.console import print_table
from mfdeploy.models import SourceModel, create_model
from mfdeploy.models import deploy as shipped
from mfdeploy.models import mobile_former as ref
from mfdeploy.models.deploy import ConvNHWC, linear64, twice_hard_sigmoid
from mfdeploy.models.layouts import parse_layout_items
from mfdeploy.models.variants import VariantSpec

LAYOUT_CHOICES: dict[str, tuple[str, ...]] = {  # the first value of each is the shipped one
    "features": ("nchw", "nhwc"),
    "bridge": ("heads", "pixels"),
    "pixel_sum": ("rows", "flat", "head_rows"),
    "dyrelu": ("max", "relu"),
    "tokens": ("linear", "conv"),
}


@dataclass(frozen=True)
class DeployLayout:
    """Equivalent op arrangements of the deploy form (the defaults are what ships).

    features "nchw":  feature maps channels-first, as the reference holds them;
             "nhwc":  channels-last between the convolutions (each convolution permutes in and
                      out, which cancels against the transposes a TFLite converter wraps around
                      it); the heads bridges then permute to channels-first themselves.
    bridge  "heads":  feature maps viewed as (B, heads, C/heads, H*W), as NCHW runtimes hold them;
            "pixels": feature maps flattened pixel-major (B, H*W, C), as NHWC runtimes hold them,
                      heads kept apart by block-diagonal token matrices (no per-head views).
    pixel_sum "rows": the Mobile->Former sum over pixels taken per image row, then over the
                      rows, on maps of more than LONG_SUM pixels, all heads in one matmul
                      against the map pixel-major; "flat": one sum over all H*W pixels
                      (LiteRT's sequential float32 sum put 26m's logits 2e-4 from PyTorch,
                      against 6e-5 per row); "head_rows": per-row sums head by head on the
                      channels-first map (shipped until session 32: a transpose of the map
                      and of the attention more).
    dyrelu  "max":    y = max(x * a1, x * a2);
            "relu":   y = x * a2 + relu(x * (a1 - a2)), the same function
                      (max(p, q) = q + relu(p - q)).
    tokens  "linear": tokens (B, M, d), token projections are linears;
            "conv":   tokens as a channels-first map (B, d, 1, M), projections are 1x1
                      convolutions and LayerNorm runs over the channel axis: per-head views
                      of tokens and bridge outputs need no transposes (heads bridges only).
    """

    features: str = "nchw"
    bridge: str = "heads"
    pixel_sum: str = "rows"
    dyrelu: str = "max"
    tokens: str = "linear"

    def __post_init__(self) -> None:
        for name, allowed in LAYOUT_CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"deploy layout {name}={getattr(self, name)!r}; choose {' or '.join(allowed)}"
                )
        if self.tokens == "conv" and self.bridge != "heads":
            raise ValueError("deploy layout tokens=conv works with bridge=heads only")

    @property
    def nhwc(self) -> bool:
        return self.features == "nhwc"

    @classmethod
    def parse(cls, spec: str) -> DeployLayout:
        """From "bridge=pixels,dyrelu=relu" (empty: the shipped layout)."""
        return cls(**parse_layout_items(spec, LAYOUT_CHOICES, "deploy layout"))

    def spec(self) -> str:
        """The non-default choices, as `parse` reads them ("" for the shipped layout)."""
        default = DeployLayout()
        return ",".join(
            f"{f.name}={getattr(self, f.name)}"
            for f in fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        )


SHIPPED = DeployLayout()
# The layouts timed in docs/deploy_form.md and checked by `main`.
LAYOUTS = [
    "features=nhwc",
    "bridge=pixels",
    "features=nhwc,bridge=pixels",
    "dyrelu=relu",
    "features=nhwc,bridge=pixels,dyrelu=relu",
    "pixel_sum=flat",
    "pixel_sum=head_rows",
    "tokens=conv",
    "features=nhwc,tokens=conv,dyrelu=relu",
]


# --- channels-last feature maps ---------------------------------------------------------


class ChannelShuffleNHWC(shipped.ChannelShuffle4d):
    """The rank-4 channel shuffle on channels-last maps (B, H, W, C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g, c, h, w = self.groups, self.channels, self.height, self.width
        x = x.reshape(-1, h * w, g, c // g).transpose(2, 3)
        return x.reshape(-1, h, w, c)


def channels_last(module: nn.Module) -> None:
    """Its folded convolutions and channel shuffles (direct children) on channels-last maps."""
    for name, child in list(module.named_children()):
        if type(child) is nn.Conv2d:
            conv = ConvNHWC(
                child.in_channels,
                child.out_channels,
                child.kernel_size,
                child.stride,
                child.padding,
                groups=child.groups,
                bias=True,
            )
            conv.weight.data, conv.bias.data = child.weight.data, child.bias.data
            setattr(module, name, conv)
        elif type(child) is shipped.ChannelShuffle4d:
            shuffle = ChannelShuffleNHWC(child.groups, child.channels, child.height, child.width)
            setattr(module, name, shuffle)


# --- tokens as (B, d, 1, M) maps -----------------------------------------------------------


def conv1x1(linear: nn.Linear) -> nn.Conv2d:
    """The same map as a 1x1 convolution, for tokens held as (B, d, 1, M)."""
    conv = nn.Conv2d(linear.in_features, linear.out_features, 1)
    conv.weight.data = linear.weight.data[:, :, None, None].clone()
    conv.bias.data = linear.bias.data.clone()
    return conv


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of (B, d, 1, M) tokens, written out."""

    def __init__(self, norm: nn.LayerNorm) -> None:
        super().__init__()
        self.eps = norm.eps
        self.weight = nn.Parameter(norm.weight.data.reshape(1, -1, 1, 1).clone())
        self.bias = nn.Parameter(norm.bias.data.reshape(1, -1, 1, 1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - x.mean(dim=1, keepdim=True)
        variance = (centred * centred).mean(dim=1, keepdim=True)
        return centred * torch.rsqrt(variance + self.eps) * self.weight + self.bias


def first_token(tokens: torch.Tensor, dim: int) -> torch.Tensor:
    """Token 0 as (B, d) with a slice; tokens (B, M, d) or (B, d, 1, M)."""
    if tokens.dim() == 4:
        return tokens[:, :, :, 0:1].reshape(-1, dim)
    return shipped.first_token(tokens, dim)


# --- dynamic ReLU ------------------------------------------------------------------------


class DynamicReLULayout(shipped.DynamicReLU):
    """The shipped dynamic ReLU on either feature layout, as max or as relu."""

    def __init__(self, coeffs: ref.DyReLUCoefficients, form: str, nhwc: bool) -> None:
        super().__init__(coeffs)
        self.form = form
        if nhwc:
            self.shape = (-1, 1, 1, self.channels)

    def forward(self, x: torch.Tensor, token0: torch.Tensor) -> torch.Tensor:
        hidden = F.relu(self.fc1(token0))
        a1 = twice_hard_sigmoid(self.slope1(hidden))
        a2 = twice_hard_sigmoid(self.slope2(hidden)) - 1.0
        a1, a2 = a1.reshape(self.shape), a2.reshape(self.shape)
        if self.form == "relu":
            return x * a2 + F.relu(x * (a1 - a2))
        return torch.maximum(x * a1, x * a2)


# --- bridges -------------------------------------------------------------------------------


def head_mask(heads: int, channels: int) -> torch.Tensor:
    """(heads, 1, C): the shipped bridge's head mask without its batch axis."""
    return shipped.head_channels(heads, channels)[0]


def block_diagonal(rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, M, C) -> (B, heads*M, C): row (n, m) keeps only head n's channels of row m."""
    heads, _, channels = mask.shape
    return (rows[:, None] * mask).reshape(-1, heads * rows.shape[1], channels)


class MobileToFormerLayout(shipped.MobileToFormer):
    """The shipped Mobile->Former bridge on either feature layout, rows or flat pixel sum."""

    def __init__(
        self,
        bridge: ref.MobileToFormer,
        num_tokens: int,
        height: int,
        width: int,
        constant_tokens: torch.Tensor | None = None,
        nhwc: bool = False,
        pixel_sum: str = "rows",
    ) -> None:
        super().__init__(bridge, num_tokens, height, width)
        self.nhwc = nhwc
        if pixel_sum == "flat":
            self.rows = 1
        self.per_head = pixel_sum == "head_rows"
        self.register_buffer("mask", head_mask(self.heads, self.channels).to(bridge.q.weight))
        self.constant = constant_tokens is not None
        if self.constant:  # as the product does, through this layout's `queries`
            del self.q, self.alpha
            z = constant_tokens[None]  # (1, M, d)
            q_heads = self.queries(linear64(bridge.q, z) * bridge.scale)
            self.register_buffer("tokens_in", z.clone())
            self.register_buffer("q_heads", q_heads.to(z.dtype))
            gate = twice_hard_sigmoid(linear64(bridge.alpha[0], z)).to(z.dtype)
            self.register_buffer("gate", gate)

    def attend(self, x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        if self.per_head:
            out = self.attend_heads(x, q)  # B,N,C/N,M
            return out.permute(0, 3, 1, 2).reshape(-1, self.num_tokens, self.channels)
        return super().attend(x.permute(0, 3, 1, 2) if self.nhwc else x, q)

    def attend_heads(self, x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Attention output per head, channels first (B, N, C/N, M); on long maps summed per
        row head by head (pixel_sum=head_rows, and the tokens=conv bridge)."""
        if self.nhwc:  # the per-head view needs channels-first
            x = x.permute(0, 3, 1, 2)
        n, c, m = self.heads, self.channels, self.num_tokens
        pixels = x.reshape(-1, n, c // n, self.hw)  # B,N,C/N,HW
        attn = torch.softmax(q @ pixels, dim=-1)  # B,N,M,HW
        if self.rows > 1:  # per-row partial sums (B*N,R,C/N,M), then the sum over rows R
            r, length = self.rows, self.hw // self.rows
            row_pixels = pixels.reshape(-1, c // n, r, length).transpose(1, 2)
            row_attn = attn.reshape(-1, m, r, length).permute(0, 2, 3, 1)
            return (row_pixels @ row_attn).sum(dim=1).reshape(-1, n, c // n, m)
        return pixels @ attn.transpose(-1, -2)  # B,N,C/N,M


class MobileToFormerPixels(MobileToFormerLayout):
    """The same bridge on pixel-major features (B, HW, C): all heads in one matmul against
    block-diagonal queries (N*M, C); only the small (HW x N*M) score matrix is transposed."""

    def queries(self, q: torch.Tensor) -> torch.Tensor:
        return block_diagonal(q, self.mask).transpose(1, 2)  # B,C,N*M

    def attend(self, x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        n, c, m = self.heads, self.channels, self.num_tokens
        pixels = (x if self.nhwc else x.permute(0, 2, 3, 1)).reshape(-1, self.hw, c)  # B,HW,C
        attn = torch.softmax((pixels @ q).transpose(1, 2), dim=-1)  # B,N*M,HW
        out = (attn @ pixels).reshape(-1, n, m, c) * self.mask  # B,N,M,C, head n's channels
        return out.sum(dim=1)  # B,M,C


class MobileToFormerConvTokens(MobileToFormerLayout):
    """The heads bridge for tokens held as (B, d, 1, M): the per-head output (B, N, C/N, M)
    is already channels-first, so it reaches the 1x1-conv projection by a reshape alone."""

    def __init__(self, bridge: ref.MobileToFormer, num_tokens: int, *args, **kwargs) -> None:
        super().__init__(bridge, num_tokens, *args, **kwargs)
        self.proj = conv1x1(self.proj)
        self.norm = ChannelLayerNorm(self.norm)
        if self.constant:  # (1, M, d) / (1, M, C) constants -> (1, d, 1, M) / (1, C, 1, M)
            self.tokens_in = self.tokens_in.transpose(1, 2)[:, :, None, :].contiguous()
            self.gate = self.gate.transpose(1, 2)[:, :, None, :].contiguous()
        else:
            self.q = conv1x1(self.q)
            self.alpha = conv1x1(self.alpha)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor | None) -> torch.Tensor:
        n, c, m = self.heads, self.channels, self.num_tokens
        if self.constant:
            tokens, q, gate = self.tokens_in, self.q_heads, self.gate
        else:
            q = self.q(tokens).reshape(-1, n, c // n, m).transpose(2, 3)  # B,N,M,C/N
            gate = twice_hard_sigmoid(self.alpha(tokens))
        out = self.attend_heads(x, q).reshape(-1, c, 1, m) * gate
        return self.norm(tokens + self.proj(out))


class FormerConvTokens(shipped.Former):
    """The Former on (B, d, 1, M) tokens: 1x1 convolutions, LayerNorm over channels."""

    def __init__(self, former: ref.Former, num_tokens: int) -> None:
        super().__init__(former, num_tokens)
        for name in ("q", "channel_mlp", "fc1", "fc2"):
            setattr(self, name, conv1x1(getattr(self, name)))
        self.norm1, self.norm2 = ChannelLayerNorm(self.norm1), ChannelLayerNorm(self.norm2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        n, m, d = self.heads, self.m, self.d
        q = self.q(tokens).reshape(-1, n, d // n, m).transpose(2, 3)  # B,N,M,d/N
        kv = tokens.reshape(-1, n, d // n, m)  # B,N,d/N,M
        attn = torch.softmax(q @ kv, dim=-1)  # B,N,M,M
        out = (kv @ attn.transpose(2, 3)).reshape(-1, d, 1, m)
        tokens = self.norm1(tokens + self.channel_mlp(out))
        return self.norm2(tokens + self.fc2(F.gelu(self.fc1(tokens))))


class FormerToMobileLayout(shipped.FormerToMobile):
    """The shipped Former->Mobile bridge on either feature layout."""

    def __init__(
        self,
        bridge: ref.FormerToMobile,
        num_tokens: int,
        height: int,
        width: int,
        nhwc: bool = False,
    ) -> None:
        super().__init__(bridge, num_tokens, height, width)
        self.nhwc = nhwc
        self.register_buffer("mask", head_mask(self.heads, self.channels).to(bridge.k.weight))

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        if not self.nhwc:
            return super().forward(x, tokens)
        n, c = self.heads, self.channels
        k, v = self.keys_values(tokens)
        pixels = x.permute(0, 3, 1, 2).reshape(-1, n, c // n, self.h * self.w)  # B,N,C/N,HW
        attn = torch.softmax(k @ pixels, dim=2)  # B,N,M,HW (normalised over tokens)
        out = (v @ attn).reshape(-1, c, self.h, self.w)  # B,N,C/N,HW -> B,C,H,W
        return x + out.permute(0, 2, 3, 1)


class FormerToMobilePixels(FormerToMobileLayout):
    """The same bridge on pixel-major features (B, HW, C): scores (B, HW, N, M) with the
    softmax over the last axis; block-diagonal keys / values keep the heads apart."""

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        n, c, m, h, w = self.heads, self.channels, self.m, self.h, self.w
        keys = block_diagonal(self.k(tokens), self.mask).transpose(1, 2)  # B,C,N*M
        values = block_diagonal(self.v(tokens), self.mask)  # B,N*M,C
        pixels = (x if self.nhwc else x.permute(0, 2, 3, 1)).reshape(-1, h * w, c)  # B,HW,C
        scores = (pixels @ keys).reshape(-1, h * w, n, m)
        attn = torch.softmax(scores, dim=-1).reshape(-1, h * w, n * m)
        out = (attn @ values).reshape(-1, h, w, c)  # B,H,W,C
        return x + (out if self.nhwc else out.permute(0, 3, 1, 2))


class FormerToMobileConvTokens(FormerToMobileLayout):
    """Keys and values from (B, d, 1, M) tokens: values need no transpose."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.k, self.v = conv1x1(self.k), conv1x1(self.v)

    def keys_values(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, c, m = self.heads, self.channels, self.m
        v = self.v(tokens).reshape(-1, n, c // n, m)
        return self.k(tokens).reshape(-1, n, c // n, m).transpose(2, 3), v


BRIDGES: dict[str, tuple[type[MobileToFormerLayout], type[FormerToMobileLayout]]] = {
    "heads": (MobileToFormerLayout, FormerToMobileLayout),
    "pixels": (MobileToFormerPixels, FormerToMobilePixels),
    "conv": (MobileToFormerConvTokens, FormerToMobileConvTokens),  # heads, tokens=conv
}
FORMERS: dict[str, type[shipped.Former]] = {"linear": shipped.Former, "conv": FormerConvTokens}


def bridges(layout: DeployLayout) -> tuple[type[MobileToFormerLayout], type[FormerToMobileLayout]]:
    return BRIDGES["conv" if layout.tokens == "conv" else layout.bridge]


# --- blocks, head and model: the shipped ones, their token path and layout rebuilt ----------


class LiteBottleneckLayout(shipped.LiteBottleneck):
    def __init__(self, block: ref.LiteBottleneck, height: int, width: int, layout: DeployLayout):
        super().__init__(block, height, width)
        if layout.nhwc:
            channels_last(self)


def relayout_token_path(
    block: shipped.MobileFormerBlock | shipped.MobileFormerDownBlock,
    source: ref.MobileFormerBlock | ref.MobileFormerDownBlock,
    variant: VariantSpec,
    height: int,
    width: int,
    constant_tokens: torch.Tensor | None,
    layout: DeployLayout,
) -> None:
    """A shipped block's bridges, Former, dynamic ReLUs and convolutions in `layout`."""
    m = variant.num_tokens
    if layout.nhwc:
        channels_last(block)
    bridge_in, bridge_out = bridges(layout)
    block.bridge_in = bridge_in(
        source.local_global, m, height, width, constant_tokens, layout.nhwc, layout.pixel_sum
    )
    block.former = FORMERS[layout.tokens](source.global_block, m)
    second = source.hyper2 if isinstance(source, ref.MobileFormerBlock) else source.hyper3
    block.act1 = DynamicReLULayout(source.hyper1, layout.dyrelu, layout.nhwc)
    block.act2 = DynamicReLULayout(second, layout.dyrelu, layout.nhwc)
    block.bridge_out = bridge_out(source.global_local, m, *block.out_hw, layout.nhwc)


class _AnyTokens:
    """Token 0 of tokens held as (B, M, d) or as (B, d, 1, M)."""

    def tokens(self, x: torch.Tensor, tokens: torch.Tensor | None):
        tokens = self.former(self.bridge_in(x, tokens))
        return tokens, first_token(tokens, self.d)


class MobileFormerBlockLayout(_AnyTokens, shipped.MobileFormerBlock):
    def __init__(self, block, variant, height, width, constant_tokens, layout) -> None:
        super().__init__(block, variant, height, width, constant_tokens)
        relayout_token_path(self, block, variant, height, width, constant_tokens, layout)


class MobileFormerDownBlockLayout(_AnyTokens, shipped.MobileFormerDownBlock):
    def __init__(self, block, variant, height, width, constant_tokens, layout) -> None:
        super().__init__(block, variant, height, width, constant_tokens)
        relayout_token_path(self, block, variant, height, width, constant_tokens, layout)


class MergeHeadLayout(shipped.MergeHead):
    def __init__(self, head, variant, height: int, width: int, layout: DeployLayout) -> None:
        super().__init__(head, variant, height, width)
        self.nhwc = layout.nhwc
        if self.nhwc:
            channels_last(self)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.conv(self.shuffle(x)))
        pooled = x.mean(dim=(1, 2)) if self.nhwc else F.adaptive_avg_pool2d(x, 1)
        x = shipped.hard_swish(pooled.reshape(-1, self.conv_out))
        x = torch.cat([x, first_token(tokens, self.d)], dim=1)
        return self.fc2(shipped.hard_swish(self.fc1(x)))


class MobileFormerLayout(shipped.MobileFormerDeploy):
    """The deploy form in another layout: the shipped form, every part rebuilt in `layout`."""

    def __init__(self, model: ref.MobileFormer, resolution: int, layout: DeployLayout) -> None:
        super().__init__(model, resolution)
        self.layout = layout
        variant = model.variant
        if layout.nhwc:
            channels_last(self)  # the stem
        h = w = (resolution - 1) // 2 + 1
        constant: torch.Tensor | None = model.tokens.weight.detach().clone()
        lite: list[nn.Module] = []
        blocks: list[nn.Module] = []
        for block in model.features:
            if isinstance(block, ref.LiteBottleneck):
                lite.append(LiteBottleneckLayout(block, h, w, layout))
                h, w = lite[-1].out_hw
                continue
            kind = (
                MobileFormerBlockLayout
                if isinstance(block, ref.MobileFormerBlock)
                else MobileFormerDownBlockLayout
            )
            blocks.append(kind(block, variant, h, w, constant, layout))
            h, w = blocks[-1].out_hw
            constant = None
        self.lite, self.blocks = nn.ModuleList(lite), nn.ModuleList(blocks)
        self.bridge_final = bridges(layout)[0](
            model.local_global, variant.num_tokens, h, w, None, layout.nhwc, layout.pixel_sum
        )
        self.head = MergeHeadLayout(model.classifier, variant, h, w, layout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layout.nhwc:  # cancels the NHWC -> NCHW transpose at a TFLite input
            x = x.permute(0, 2, 3, 1)
        return super().forward(x)


@torch.no_grad()
def to_deploy_layout(
    model: nn.Module, resolution: int = 224, layout: DeployLayout | str = ""
) -> nn.Module:
    """The deploy form of a reference Mobile-Former in `layout` ("key=value,..." or a
    DeployLayout); the shipped layout is the product's own `to_deploy`."""
    layout = DeployLayout.parse(layout) if isinstance(layout, str) else layout
    if layout == SHIPPED:
        return shipped.to_deploy(model, resolution)
    if not isinstance(model, ref.MobileFormer):
        raise TypeError("to_deploy_layout expects a reference MobileFormer")
    return MobileFormerLayout(model.eval(), resolution, layout).eval()


def layout_source(source: SourceModel) -> SourceModel:
    """`source` whose deploy form reads the layouts here: `export_artifact(...,
    source=layout_source(source), form="deploy:bridge=pixels")` exports that layout and
    records the form in the manifest."""
    entry = dataclasses.replace(source.entry, to_deploy=to_deploy_layout)
    return dataclasses.replace(source, entry=entry)


# --- checks --------------------------------------------------------------------------------


def _inputs(batch: int, resolution: int, dtype=torch.float32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(batch * 1000 + resolution)
    return torch.randn(batch, 3, resolution, resolution, generator=gen).to(dtype)


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def check_specs() -> None:
    for spec in LAYOUTS:
        assert DeployLayout.parse(DeployLayout.parse(spec).spec()) == DeployLayout.parse(spec)
    assert DeployLayout.parse("").spec() == "" and DeployLayout.parse("") == SHIPPED
    for bad in (
        "bridge=diagonal",
        "colour=red",
        "bridge",
        "dyrelu=prelu",
        "tokens=conv,bridge=pixels",
    ):
        try:
            DeployLayout.parse(bad)
        except ValueError:
            continue
        raise AssertionError(f"layout {bad!r} was accepted")


def check_float64(variants: list[str], resolution: int, batch: int) -> list[list]:
    """Per variant and layout: max abs logit difference from the reference in float64, and
    whether the shipped layout rebuilt by these classes equals the product bitwise."""
    rows = []
    for variant in variants:
        model = create_model(variant, weights="synthetic")
        x = _inputs(batch, resolution)
        with torch.no_grad():
            product = shipped.to_deploy(model, resolution)(x)
            rebuilt = MobileFormerLayout(model, resolution, SHIPPED).eval()(x)
        same = torch.equal(product, rebuilt)
        rows.append([variant, "(shipped, rebuilt here)", "bitwise" if same else "DIFFERS", same])
        model = model.double()
        x = x.double()
        with torch.no_grad():
            expected = model(x)
            for spec in LAYOUTS:
                error = _max_abs(to_deploy_layout(model, resolution, spec)(x), expected)
                rows.append([variant, spec, f"{error:.1e}", error < 1e-9])
    return rows


def check_litert(forms: list[str]) -> list[list]:
    """Each form exported to TFLite (26m fixture weights): builtin ops, rank <= 4, and the
    logits on LiteRT within 1e-4 of PyTorch on the fixture inputs."""
    from mfdeploy.export import export_artifact
    from mfdeploy.harness.inspect import audit
    from mfdeploy.models import load_source
    from mfdeploy.runtimes import open_runtime

    weights = fixture_weights("26m")
    inputs_file = next(d / "inputs_2x3x224x224.npy" for d in FIXTURE_DIRS)
    x = np.load(inputs_file)
    source = layout_source(load_source("26m", weights, 224, "mobile_former"))
    with torch.no_grad():
        expected = source.model(torch.from_numpy(x)).numpy()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for form in forms:
            out = Path(tmp) / form.replace(":", "-").replace(",", "-").replace("=", "-")
            path, manifest = export_artifact("tflite", "26m", out=out, source=source, form=form)
            report = audit(path)
            error = float(np.abs(open_runtime(path, threads=1).run(x) - expected).max())
            ok = manifest.form == form and report.passed and report.max_rank <= 4 and error <= 1e-4
            rows.append([form, report.max_rank, report.passed, f"{error:.1e}", ok])
    return rows


def export_layout(args: argparse.Namespace) -> int:
    from mfdeploy.export import export_artifact
    from mfdeploy.models import load_source

    source = layout_source(load_source(args.variant, args.weights, None, "mobile_former"))
    path, manifest = export_artifact(
        args.target, precision=args.precision, out=args.out, source=source, form=args.export
    )
    print(f"wrote {path} ({manifest.form} form, {manifest.precision})")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--variants", nargs="*", default=["26m", "151m"], help="float64 check (none: skip it)"
    )
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--batch", type=int, default=3)
    parser.add_argument(
        "--litert",
        action="store_true",
        help="also export deploy:tokens=conv and deploy:features=nhwc,bridge=pixels to TFLite "
        "and run them on LiteRT",
    )
    export = parser.add_argument_group("--export FORM: one layout as an artifact, no checks")
    export.add_argument("--export", metavar="FORM", help="e.g. deploy:dyrelu=relu")
    export.add_argument("--target", default="tflite", help="onnx, tflite or coreml (tflite)")
    export.add_argument("--precision", default="fp32")
    export.add_argument("--variant", default="26m")
    export.add_argument("--weights", help="checkpoint (default: synthetic weights)")
    export.add_argument("--out", help="artifact directory")
    args = parser.parse_args()
    if args.export:
        return export_layout(args)
    check_specs()
    rows = check_float64(args.variants, args.resolution, args.batch)
    if rows:
        print_table(
            f"deploy layouts vs the reference, float64, batch {args.batch}, "
            f"{args.resolution}x{args.resolution} (max abs logits; < 1e-9 passes)",
            ["variant", "layout", "max abs", "ok"],
            rows,
        )
    if args.litert:
        litert = check_litert(["deploy:tokens=conv", "deploy:features=nhwc,bridge=pixels"])
        print_table(
            "TFLite fp32 on LiteRT, 26m fixture weights (max abs vs PyTorch; <= 1e-4 passes)",
            ["form", "max rank", "builtin ops", "max abs", "ok"],
            litert,
        )
        rows += litert
    failed = [row for row in rows if not row[-1]]
    if failed:
        print(f"FAILED: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
