"""Reference Mobile-Former in PyTorch, checkpoint-compatible with the authors' release.

Module names (and the positions inside each nn.Sequential) mirror the released state_dict
layout so that published checkpoints load with strict=True. The arithmetic follows the
released forward pass, including its sequence-first (M, B, d) token layout, so the outputs
match the authors' code to float32 rounding. Export-friendly rewrites live in deploy.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mfdeploy.models.variants import BlockSpec, VariantSpec


def h_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return F.relu6(x + 3.0) / 6.0


class HSigmoid(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return h_sigmoid(x)


class HSwish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * h_sigmoid(x)


class ChannelShuffle(nn.Module):
    """ShuffleNet channel shuffle: channel g*k + i moves to i*groups + g."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x = x.view(b, self.groups, c // self.groups, h, w).transpose(1, 2)
        return x.reshape(b, c, h, w)


def _shuffle_or_identity(groups: int, pointwise_groups: int) -> nn.Module:
    # Only grouped-pointwise variants (26m) shuffle; the others keep a parameter-free
    # placeholder so that Sequential indices match the checkpoint keys.
    return ChannelShuffle(groups) if pointwise_groups > 1 else nn.Identity()


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]


class DyReLUCoefficients(nn.Module):
    """Token 0 -> two slopes per channel for dynamic ReLU (key prefix `hyperN.hyper`)."""

    def __init__(self, token_dim: int, hidden: int, channels: int) -> None:
        super().__init__()
        self.hyper = nn.Sequential(
            nn.Linear(token_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 2 * channels),
            HSigmoid(),
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        coeffs = self.hyper(tokens[0])  # (B, 2C)
        return coeffs[:, :, None, None]


def dynamic_relu(x: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """max(x * a1, x * a2) with a1 in [0, 2] and a2 in [-1, 1] (released DyReLU, 2 slopes)."""
    c = coeffs.shape[1] // 2
    a1, a2 = torch.split(coeffs, [c, c], dim=1)
    a1 = (a1 - 0.5) * 2.0 + 1.0
    a2 = (a2 - 0.5) * 2.0
    return torch.max(x * a1, x * a2)


class MobileToFormer(nn.Module):
    """Cross attention from tokens (queries) to the raw feature map (keys = values)."""

    def __init__(self, channels: int, token_dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (channels // heads) ** -0.5
        self.alpha = nn.Sequential(nn.Linear(token_dim, channels), HSigmoid())
        self.q = nn.Linear(token_dim, channels)
        self.proj = nn.Linear(channels, token_dim)
        self.layer_norm = nn.LayerNorm(token_dim)

    def forward(self, features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        b, c, h, w = features.shape
        m = tokens.shape[0]
        q = self.q(tokens).view(m, b, self.heads, -1).permute(1, 2, 0, 3)  # B,N,M,C/N
        kv = features.view(b, self.heads, -1, h * w)  # B,N,C/N,HW
        attn = ((q @ kv) * self.scale).softmax(dim=-1)  # B,N,M,HW
        out = (attn @ kv.transpose(-1, -2)).permute(2, 0, 1, 3).reshape(m, b, -1)
        out = out * (self.alpha(tokens) * 2.0)
        return self.layer_norm(tokens + self.proj(out))


class Former(nn.Module):
    """Post-norm transformer block over the M tokens; keys = values = the raw tokens."""

    def __init__(self, token_dim: int, heads: int, ffn_hidden: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (token_dim // heads) ** -0.5
        self.ffn = nn.Sequential(
            nn.Linear(token_dim, ffn_hidden), nn.GELU(), nn.Linear(ffn_hidden, token_dim)
        )
        self.ffn_norm = nn.LayerNorm(token_dim)
        self.q = nn.Linear(token_dim, token_dim)
        self.channel_mlp = nn.Linear(token_dim, token_dim)
        self.layer_norm = nn.LayerNorm(token_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        m, b, d = tokens.shape
        q = self.q(tokens).view(m, b, self.heads, -1).permute(1, 2, 0, 3)  # B,N,M,d/N
        kv = tokens.permute(1, 2, 0).reshape(b, self.heads, -1, m)  # B,N,d/N,M
        attn = ((q @ kv) * self.scale).softmax(dim=-1)
        out = (attn @ kv.transpose(-1, -2)).permute(2, 0, 1, 3).reshape(m, b, d)
        tokens = self.layer_norm(tokens + self.channel_mlp(out))
        return self.ffn_norm(tokens + self.ffn(tokens))


class FormerToMobile(nn.Module):
    """Cross attention from the feature map (queries) to the tokens; added to the features."""

    def __init__(self, channels: int, token_dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (channels // heads) ** -0.5
        self.k = nn.Linear(token_dim, channels)
        self.proj = nn.Linear(token_dim, channels)

    def forward(self, features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        b, c, h, w = features.shape
        m = tokens.shape[0]
        q = features.view(b, self.heads, -1, h * w).transpose(-1, -2)  # B,N,HW,C/N
        k = self.k(tokens).permute(1, 2, 0).reshape(b, self.heads, -1, m)  # B,N,C/N,M
        v = self.proj(tokens).permute(1, 2, 0).reshape(b, self.heads, -1, m)
        attn = ((q @ k) * self.scale).softmax(dim=-1)  # B,N,HW,M
        out = (attn @ v.transpose(-1, -2)).transpose(-1, -2).reshape(b, c, h, w)
        return features + out


class LiteBottleneck(nn.Module):
    """Block 0: depthwise (channel multiplier) -> ReLU6 -> pointwise; no bridges."""

    def __init__(self, spec: BlockSpec, groups: int) -> None:
        super().__init__()
        self.residual = spec.residual
        self.conv = nn.Sequential(
            *conv_bn(spec.in_ch, spec.hidden, 3, spec.stride, groups=spec.in_ch),
            nn.ReLU6(),
            _shuffle_or_identity(spec.in_ch, groups),
            *conv_bn(spec.hidden, spec.out_ch, 1, groups=groups),
        )

    def forward(self, features: torch.Tensor, tokens: torch.Tensor):
        out = self.conv(features)
        if self.residual:
            out = out + features
        return out, tokens


class _BridgedBlock(nn.Module):
    """The token path shared by both Mobile-Former block kinds."""

    def __init__(self, spec: BlockSpec, variant: VariantSpec) -> None:
        super().__init__()
        d = variant.token_dim
        self.local_global = MobileToFormer(spec.in_ch, d, variant.bridge_heads)
        self.global_block = Former(d, variant.former_heads, variant.ffn_hidden)
        self.global_local = FormerToMobile(spec.out_ch, d, variant.bridge_heads)

    def _coefficients(self, variant: VariantSpec, channels: int) -> DyReLUCoefficients:
        return DyReLUCoefficients(variant.token_dim, variant.dyrelu_hidden, channels)


class MobileFormerBlock(_BridgedBlock):
    """Stride-1 block (`mf`): pw -> DyReLU -> dw -> DyReLU -> pw, residual, then Former->Mobile."""

    def __init__(self, spec: BlockSpec, variant: VariantSpec) -> None:
        super().__init__(spec, variant)
        g = variant.pointwise_groups
        self.residual = spec.residual
        self.conv1 = nn.Sequential(
            *conv_bn(spec.in_ch, spec.hidden, 1, groups=g), _shuffle_or_identity(g, g)
        )
        self.hyper1 = self._coefficients(variant, spec.hidden)
        self.conv2 = nn.Sequential(
            *conv_bn(spec.hidden, spec.hidden, 3, spec.stride, groups=spec.hidden)
        )
        self.hyper2 = self._coefficients(variant, spec.hidden)
        self.conv3 = nn.Sequential(
            *conv_bn(spec.hidden, spec.out_ch, 1, groups=g), _shuffle_or_identity(g, g)
        )

    def forward(self, features: torch.Tensor, tokens: torch.Tensor):
        tokens = self.global_block(self.local_global(features, tokens))
        out = dynamic_relu(self.conv1(features), self.hyper1(tokens))
        out = dynamic_relu(self.conv2(out), self.hyper2(tokens))
        out = self.conv3(out)
        if self.residual:
            out = out + features
        return self.global_local(out, tokens), tokens


class MobileFormerDownBlock(_BridgedBlock):
    """Downsampling block (`mf_down`): dw s2 -> DyReLU -> pw = y; dw -> DyReLU -> pw; + y."""

    def __init__(self, spec: BlockSpec, variant: VariantSpec) -> None:
        super().__init__(spec, variant)
        g = variant.pointwise_groups
        self.conv1 = nn.Sequential(
            *conv_bn(spec.in_ch, spec.hidden, 3, spec.stride, groups=spec.in_ch),
            _shuffle_or_identity(spec.in_ch, g),
        )
        self.hyper1 = self._coefficients(variant, spec.hidden)
        self.conv2 = nn.Sequential(*conv_bn(spec.hidden, spec.out_ch, 1, groups=g))
        self.conv3 = nn.Sequential(
            *conv_bn(spec.out_ch, spec.hidden2, 3, groups=spec.out_ch),
            _shuffle_or_identity(spec.out_ch, g),
        )
        self.hyper3 = self._coefficients(variant, spec.hidden2)
        self.conv4 = nn.Sequential(*conv_bn(spec.hidden2, spec.out_ch, 1, groups=g))

    def forward(self, features: torch.Tensor, tokens: torch.Tensor):
        tokens = self.global_block(self.local_global(features, tokens))
        y = self.conv2(dynamic_relu(self.conv1(features), self.hyper1(tokens)))
        out = self.conv4(dynamic_relu(self.conv3(y), self.hyper3(tokens))) + y
        return self.global_local(out, tokens), tokens


class MergeHead(nn.Module):
    """1x1 conv -> ReLU6 -> GAP -> h-swish, concat token 0, FC -> BN1d -> h-swish -> FC."""

    def __init__(self, variant: VariantSpec, in_ch: int, num_classes: int) -> None:
        super().__init__()
        g = variant.pointwise_groups
        self.conv = nn.Sequential(
            _shuffle_or_identity(g, g), *conv_bn(in_ch, variant.head_conv, 1, groups=g)
        )
        self.fc = nn.Sequential(
            nn.Linear(variant.head_conv + variant.token_dim, variant.head_fc),
            nn.BatchNorm1d(variant.head_fc),
            HSwish(),
        )
        self.classifier = nn.Sequential(nn.Dropout(0.0), nn.Linear(variant.head_fc, num_classes))

    def forward(self, features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.conv(features))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        x = x * h_sigmoid(x)
        x = torch.cat([x, tokens[0]], dim=1)
        return self.classifier(self.fc(x))


def build_block(spec: BlockSpec, variant: VariantSpec) -> nn.Module:
    if spec.kind == "lite_bneck":
        return LiteBottleneck(spec, variant.pointwise_groups)
    if spec.kind == "mf":
        return MobileFormerBlock(spec, variant)
    if spec.kind == "mf_down":
        return MobileFormerDownBlock(spec, variant)
    raise ValueError(f"unknown block kind {spec.kind!r}")


class MobileFormer(nn.Module):
    """Mobile-Former classifier for one published variant."""

    def __init__(self, variant: VariantSpec, num_classes: int | None = None) -> None:
        super().__init__()
        self.variant = variant
        self.num_classes = num_classes or variant.num_classes
        self.tokens = nn.Embedding(variant.num_tokens, variant.token_dim)
        self.stem = nn.Sequential(*conv_bn(3, variant.stem_channels, 3, stride=2), nn.ReLU6())
        self.features = nn.ModuleList(build_block(spec, variant) for spec in variant.blocks)
        last = variant.blocks[-1].out_ch
        self.local_global = MobileToFormer(last, variant.token_dim, variant.bridge_heads)
        self.classifier = MergeHead(variant, last, self.num_classes)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Feature map after the last block and tokens after the final bridge."""
        b = x.shape[0]
        tokens = self.tokens.weight[None].repeat(b, 1, 1).permute(1, 0, 2)  # M,B,d
        x = self.stem(x)
        for block in self.features:
            x, tokens = block(x, tokens)
        return x, self.local_global(x, tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, tokens = self.forward_features(x)
        return self.classifier(features, tokens)
