"""Deploy form: the reference Mobile-Former rewritten into ops every mobile runtime handles.

`to_deploy(model, resolution)` builds it from a reference model with the same weights:
- BatchNorm folded into the convolution / linear before it (computed in float64);
- shapes are Python ints fixed at build time (no shape reads in forward), batch as -1;
- tokens batch-first (B, M, d); the token table and everything computed only from it (the
  first bridge's queries and gate) are constants;
- every tensor rank <= 4: the 26m channel shuffle is a rank-4 reshape/transpose;
- dynamic ReLU: token 0 taken with a slice (not a gather), two linears give the slopes
  directly (scale and offset folded into them), y = max(x * a1, x * a2);
- bridges are matmul + softmax over static shapes, ordered so that only the small
  (tokens x pixels) attention matrices are transposed, never the feature maps on NHWC
  runtimes (the long maps' row sums read them pixel-major, as those runtimes hold them);
- attention scales folded into the query / key projections.

Only the arrangement measured fastest ships here. The equivalent arrangements tried against
it (channels-last features, pixel-major bridges, flat pixel sums, the relu form of the dynamic
ReLU, tokens as a 1x1-conv map) are built in benchmarks/deploy_layouts.py and timed by
benchmarks/deploy_vs_reference.py (docs/deploy_form.md).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from mfdeploy.models import mobile_former as ref
from mfdeploy.models.variants import VariantSpec

# Pixels; above this the Mobile->Former bridge sums over pixels per image row, then over the
# rows. LiteRT's BATCH_MATMUL adds the 3136 products of a 56x56 map in one sequential float32
# sum (~75 ulp error), which alone put 26m's logits 2e-4 from PyTorch; per-row sums bring it
# to 6e-5 (docs/deploy_form.md).
LONG_SUM = 1024


class ConvNHWC(nn.Conv2d):
    """A convolution on channels-last maps (B, H, W, C) (MobileViTv2's deploy form)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d, nhwc: bool = False) -> nn.Conv2d:
    """conv -> BN as one conv with bias (float64 arithmetic, result in the conv's dtype)."""
    std = torch.sqrt(bn.running_var.double() + bn.eps)
    scale = bn.weight.double() / std
    fused = (ConvNHWC if nhwc else nn.Conv2d)(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        groups=conv.groups,
        bias=True,
    )
    weight = conv.weight.double() * scale[:, None, None, None]
    bias = bn.bias.double() - bn.running_mean.double() * scale
    if conv.bias is not None:
        bias = bias + conv.bias.double() * scale
    fused.weight.data = weight.to(conv.weight.dtype)
    fused.bias.data = bias.to(conv.weight.dtype)
    return fused


def fold_linear_bn(linear: nn.Linear, bn: nn.BatchNorm1d) -> nn.Linear:
    std = torch.sqrt(bn.running_var.double() + bn.eps)
    scale = bn.weight.double() / std
    fused = nn.Linear(linear.in_features, linear.out_features)
    fused.weight.data = (linear.weight.double() * scale[:, None]).to(linear.weight.dtype)
    bias = (linear.bias.double() - bn.running_mean.double()) * scale + bn.bias.double()
    fused.bias.data = bias.to(linear.weight.dtype)
    return fused


def scaled_linear(linear: nn.Linear, scale: float, shift: float = 0.0) -> nn.Linear:
    """Linear whose output is `scale * linear(x) + shift` (folds constants into weights)."""
    out = nn.Linear(linear.in_features, linear.out_features)
    out.weight.data = (linear.weight.double() * scale).to(linear.weight.dtype)
    out.bias.data = (linear.bias.double() * scale + shift).to(linear.weight.dtype)
    return out


def rows(linear: nn.Linear, start: int, stop: int) -> nn.Linear:
    out = nn.Linear(linear.in_features, stop - start)
    out.weight.data = linear.weight.data[start:stop].clone()
    out.bias.data = linear.bias.data[start:stop].clone()
    return out


def conv_bn_from(seq: nn.Sequential) -> nn.Conv2d:
    """The folded conv of a reference `conv_bn` pair at the head of a Sequential."""
    convs = [m for m in seq if isinstance(m, nn.Conv2d)]
    norms = [m for m in seq if isinstance(m, nn.BatchNorm2d)]
    return fold_conv_bn(convs[0], norms[0])


def shuffle_of(seq: nn.Sequential) -> int:
    """Groups of the channel shuffle in a reference Sequential (0 if none)."""
    shuffles = [m for m in seq if isinstance(m, ref.ChannelShuffle)]
    return shuffles[0].groups if shuffles else 0


class ChannelShuffle4d(nn.Module):
    """Channel shuffle as rank-4 reshape / transpose over flattened pixels."""

    def __init__(self, groups: int, channels: int, height: int, width: int) -> None:
        super().__init__()
        self.groups, self.channels, self.height, self.width = groups, channels, height, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g, c, h, w = self.groups, self.channels, self.height, self.width
        x = x.reshape(-1, g, c // g, h * w).transpose(1, 2)
        return x.reshape(-1, c, h, w)


def maybe_shuffle(groups: int, channels: int, height: int, width: int) -> nn.Module:
    return ChannelShuffle4d(groups, channels, height, width) if groups else nn.Identity()


def twice_hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """2 * hsig(x) = relu6(x + 3) / 3: the Mobile->Former gate and the dynamic-ReLU slopes."""
    return F.relu6(x + 3.0) / 3.0


class DynamicReLU(nn.Module):
    """Slopes from token 0: a1 = 2*hsig(u), a2 = 2*hsig(v) - 1; y = max(x*a1, x*a2)."""

    def __init__(self, coeffs: ref.DyReLUCoefficients) -> None:
        super().__init__()
        fc1, fc2 = coeffs.hyper[0], coeffs.hyper[2]
        channels = fc2.out_features // 2
        self.channels = channels
        self.fc1 = copy.deepcopy(fc1)
        # hsig(z) = relu6(z + 3) / 6; slope1 = 2 hsig(z1) = relu6(z1 + 3) / 3, slope2 = that - 1
        self.slope1 = rows(fc2, 0, channels)
        self.slope2 = rows(fc2, channels, 2 * channels)
        self.shape = (-1, channels, 1, 1)

    def forward(self, x: torch.Tensor, token0: torch.Tensor) -> torch.Tensor:
        hidden = F.relu(self.fc1(token0))
        a1 = twice_hard_sigmoid(self.slope1(hidden))
        a2 = twice_hard_sigmoid(self.slope2(hidden)) - 1.0
        a1, a2 = a1.reshape(self.shape), a2.reshape(self.shape)
        return torch.maximum(x * a1, x * a2)


def hard_swish(x: torch.Tensor) -> torch.Tensor:
    """Written out (Clip, Mul, Div): ONNX's HardSwish op is not taken by NNAPI / Core ML EPs."""
    return x * F.relu6(x + 3.0) / 6.0


def first_token(tokens: torch.Tensor, dim: int) -> torch.Tensor:
    """Token 0 of (B, M, d) tokens as (B, d), with a slice, not a gather."""
    return tokens[:, 0:1, :].reshape(-1, dim)


def linear64(linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """linear(x) in float64, for constants that are rounded once."""
    return F.linear(x.double(), linear.weight.double(), linear.bias.double())


def head_channels(heads: int, channels: int) -> torch.Tensor:
    """(1, N, 1, C): 1 where channel c belongs to head n (heads own contiguous blocks)."""
    owner = torch.arange(channels) // (channels // heads)
    return (owner == torch.arange(heads)[:, None]).float()[None, :, None, :]


class MobileToFormer(nn.Module):
    """Tokens attend to pixels: scores (B,N,M,HW); out^T = X @ attn^T keeps pixels in place.
    On maps of more than LONG_SUM pixels the sum over pixels is taken per image row, then over
    the rows (`row_sums`)."""

    def __init__(
        self,
        bridge: ref.MobileToFormer,
        num_tokens: int,
        height: int,
        width: int,
        constant_tokens: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.heads = bridge.heads
        self.channels = bridge.q.out_features
        self.num_tokens = num_tokens
        self.hw = height * width
        self.rows = height if self.hw > LONG_SUM else 1
        if self.rows > 1:
            self.register_buffer("head_mask", head_channels(self.heads, self.channels))
        self.token_dim = bridge.proj.out_features
        alpha = bridge.alpha[0]
        self.proj = copy.deepcopy(bridge.proj)
        self.norm = copy.deepcopy(bridge.layer_norm)
        self.constant = constant_tokens is not None
        if self.constant:
            # In float64 and rounded once: a float32 product here would round differently
            # with the thread count, and one ulp in these constants moves 294m's logits ~7e-6.
            with torch.no_grad():
                z = constant_tokens[None]  # (1, M, d)
                q_heads = self.queries(linear64(bridge.q, z) * bridge.scale)
                self.register_buffer("tokens_in", z.clone())
                self.register_buffer("q_heads", q_heads.to(z.dtype))
                self.register_buffer("gate", twice_hard_sigmoid(linear64(alpha, z)).to(z.dtype))
        else:
            self.q = scaled_linear(bridge.q, bridge.scale)
            self.alpha = copy.deepcopy(alpha)

    def queries(self, q: torch.Tensor) -> torch.Tensor:
        n = self.heads
        return q.reshape(-1, self.num_tokens, n, self.channels // n).transpose(1, 2)  # B,N,M,C/N

    def attend(self, x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Attention output (B, M, C) of the tokens' queries over the pixels of x."""
        n, c, m, hw = self.heads, self.channels, self.num_tokens, self.hw
        pixels = x.reshape(-1, n, c // n, hw)  # B,N,C/N,HW
        attn = torch.softmax(q @ pixels, dim=-1)  # B,N,M,HW
        if self.rows > 1:
            return self.row_sums(x, attn)
        return (pixels @ attn.transpose(-1, -2)).permute(0, 3, 1, 2).reshape(-1, m, c)

    def row_sums(self, x: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        """The attention-weighted sum over pixels (B, M, C), per image row, then over the rows:
        one batched matmul for all heads, the attention's rows (B*R, N*M, W) against the map's
        rows pixel-major (B*R, W, C), as NHWC runtimes hold them (LiteRT's graph transposes
        only the attention here), each head's channels then kept by a mask. Summed per head,
        the map and the attention each took a transpose more (docs/deploy_form.md)."""
        n, c, m, r = self.heads, self.channels, self.num_tokens, self.rows
        width = self.hw // r
        row_attn = attn.reshape(-1, n * m, r, width).transpose(1, 2).reshape(-1, n * m, width)
        row_pixels = x.permute(0, 2, 3, 1).reshape(-1, width, c)
        out = (row_attn @ row_pixels).reshape(-1, r, n * m, c).sum(dim=1)  # B,N*M,C
        return (out.reshape(-1, n, m, c) * self.head_mask).sum(dim=1)  # B,M,C

    def forward(self, x: torch.Tensor, tokens: torch.Tensor | None) -> torch.Tensor:
        if self.constant:
            tokens, q, gate = self.tokens_in, self.q_heads, self.gate
        else:
            q = self.queries(self.q(tokens))
            gate = twice_hard_sigmoid(self.alpha(tokens))
        return self.norm(tokens + self.proj(self.attend(x, q) * gate))


class Former(nn.Module):
    def __init__(self, former: ref.Former, num_tokens: int) -> None:
        super().__init__()
        self.heads = former.heads
        self.m = num_tokens
        self.d = former.q.in_features
        self.q = scaled_linear(former.q, former.scale)
        self.channel_mlp = copy.deepcopy(former.channel_mlp)
        self.norm1 = copy.deepcopy(former.layer_norm)
        self.fc1 = copy.deepcopy(former.ffn[0])
        self.fc2 = copy.deepcopy(former.ffn[2])
        self.norm2 = copy.deepcopy(former.ffn_norm)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        n, m, d = self.heads, self.m, self.d
        q = self.q(tokens).reshape(-1, m, n, d // n).transpose(1, 2)  # B,N,M,d/N
        kv = tokens.reshape(-1, m, n, d // n).permute(0, 2, 3, 1)  # B,N,d/N,M
        attn = torch.softmax(q @ kv, dim=-1)  # B,N,M,M
        out = (attn @ kv.transpose(-1, -2)).transpose(1, 2).reshape(-1, m, d)
        tokens = self.norm1(tokens + self.channel_mlp(out))
        return self.norm2(tokens + self.fc2(F.gelu(self.fc1(tokens))))


class FormerToMobile(nn.Module):
    """Pixels attend to tokens, computed transposed: scores (B,N,M,HW), softmax over M."""

    def __init__(
        self,
        bridge: ref.FormerToMobile,
        num_tokens: int,
        height: int,
        width: int,
    ) -> None:
        super().__init__()
        self.heads = bridge.heads
        self.channels = bridge.k.out_features
        self.m, self.h, self.w = num_tokens, height, width
        self.k = scaled_linear(bridge.k, bridge.scale)
        self.v = copy.deepcopy(bridge.proj)

    def keys_values(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys (B, N, M, C/N) and values (B, N, C/N, M) of the tokens."""
        n, c, m = self.heads, self.channels, self.m
        k = self.k(tokens).reshape(-1, m, n, c // n).transpose(1, 2)
        v = self.v(tokens).reshape(-1, m, n, c // n).permute(0, 2, 3, 1)
        return k, v

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        n, c = self.heads, self.channels
        k, v = self.keys_values(tokens)
        pixels = x.reshape(-1, n, c // n, self.h * self.w)  # B,N,C/N,HW
        attn = torch.softmax(k @ pixels, dim=2)  # B,N,M,HW (normalised over tokens)
        out = (v @ attn).reshape(-1, c, self.h, self.w)  # B,N,C/N,HW -> B,C,H,W
        return x + out


def _out_size(size: int, stride: int) -> int:
    return (size - 1) // stride + 1


class LiteBottleneck(nn.Module):
    def __init__(self, block: ref.LiteBottleneck, height: int, width: int) -> None:
        super().__init__()
        seq = block.conv
        self.dw = fold_conv_bn(seq[0], seq[1])
        self.residual = block.residual
        h, w = _out_size(height, self.dw.stride[0]), _out_size(width, self.dw.stride[0])
        self.shuffle = maybe_shuffle(shuffle_of(seq), self.dw.out_channels, h, w)
        self.pw = fold_conv_bn(seq[4], seq[5])
        self.out_hw = (h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pw(self.shuffle(F.relu6(self.dw(x))))
        return out + x if self.residual else out


class _TokenPath(nn.Module):
    """Mobile->Former bridge and Former, shared by both block kinds."""

    def __init__(
        self,
        block: ref.MobileFormerBlock | ref.MobileFormerDownBlock,
        variant: VariantSpec,
        height: int,
        width: int,
        constant_tokens: torch.Tensor | None,
    ) -> None:
        super().__init__()
        m = variant.num_tokens
        self.d = variant.token_dim
        self.bridge_in = MobileToFormer(block.local_global, m, height, width, constant_tokens)
        self.former = Former(block.global_block, m)

    def tokens(self, x: torch.Tensor, tokens: torch.Tensor | None):
        """Updated tokens and token 0 (the dynamic-ReLU input)."""
        tokens = self.former(self.bridge_in(x, tokens))
        return tokens, first_token(tokens, self.d)


class MobileFormerBlock(_TokenPath):
    def __init__(
        self,
        block: ref.MobileFormerBlock,
        variant: VariantSpec,
        height: int,
        width: int,
        constant_tokens: torch.Tensor | None,
    ) -> None:
        super().__init__(block, variant, height, width, constant_tokens)
        m = variant.num_tokens
        self.pw1 = conv_bn_from(block.conv1)
        self.shuffle1 = maybe_shuffle(shuffle_of(block.conv1), self.pw1.out_channels, height, width)
        self.act1 = DynamicReLU(block.hyper1)
        self.dw = conv_bn_from(block.conv2)
        self.act2 = DynamicReLU(block.hyper2)
        self.pw2 = conv_bn_from(block.conv3)
        self.shuffle2 = maybe_shuffle(shuffle_of(block.conv3), self.pw2.out_channels, height, width)
        self.residual = block.residual
        self.bridge_out = FormerToMobile(block.global_local, m, height, width)
        self.out_hw = (height, width)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor | None):
        tokens, t0 = self.tokens(x, tokens)
        out = self.act1(self.shuffle1(self.pw1(x)), t0)
        out = self.act2(self.dw(out), t0)
        out = self.shuffle2(self.pw2(out))
        if self.residual:
            out = out + x
        return self.bridge_out(out, tokens), tokens


class MobileFormerDownBlock(_TokenPath):
    def __init__(
        self,
        block: ref.MobileFormerDownBlock,
        variant: VariantSpec,
        height: int,
        width: int,
        constant_tokens: torch.Tensor | None,
    ) -> None:
        super().__init__(block, variant, height, width, constant_tokens)
        m = variant.num_tokens
        self.dw1 = conv_bn_from(block.conv1)
        h, w = _out_size(height, self.dw1.stride[0]), _out_size(width, self.dw1.stride[0])
        self.shuffle1 = maybe_shuffle(shuffle_of(block.conv1), self.dw1.out_channels, h, w)
        self.act1 = DynamicReLU(block.hyper1)
        self.pw1 = conv_bn_from(block.conv2)
        self.dw2 = conv_bn_from(block.conv3)
        self.shuffle2 = maybe_shuffle(shuffle_of(block.conv3), self.dw2.out_channels, h, w)
        self.act2 = DynamicReLU(block.hyper3)
        self.pw2 = conv_bn_from(block.conv4)
        self.bridge_out = FormerToMobile(block.global_local, m, h, w)
        self.out_hw = (h, w)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor | None):
        tokens, t0 = self.tokens(x, tokens)
        y = self.pw1(self.act1(self.shuffle1(self.dw1(x)), t0))
        out = self.pw2(self.act2(self.shuffle2(self.dw2(y)), t0)) + y
        return self.bridge_out(out, tokens), tokens


class MergeHead(nn.Module):
    def __init__(self, head: ref.MergeHead, variant: VariantSpec, height: int, width: int) -> None:
        super().__init__()
        in_ch = head.conv[1].in_channels
        self.shuffle = maybe_shuffle(shuffle_of(head.conv), in_ch, height, width)
        self.conv = conv_bn_from(head.conv)
        self.fc1 = fold_linear_bn(head.fc[0], head.fc[1])
        self.fc2 = copy.deepcopy(head.classifier[1])
        self.conv_out = self.conv.out_channels
        self.d = variant.token_dim

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.conv(self.shuffle(x)))
        x = hard_swish(F.adaptive_avg_pool2d(x, 1).reshape(-1, self.conv_out))
        x = torch.cat([x, first_token(tokens, self.d)], dim=1)
        return self.fc2(hard_swish(self.fc1(x)))


class MobileFormerDeploy(nn.Module):
    """Same function as the reference MobileFormer, export-friendly ops only."""

    def __init__(self, model: ref.MobileFormer, resolution: int = 224) -> None:
        super().__init__()
        variant = model.variant
        self.variant = variant
        self.num_classes = model.num_classes
        self.resolution = resolution
        self.stem = fold_conv_bn(model.stem[0], model.stem[1])
        h = w = _out_size(resolution, 2)
        table = model.tokens.weight.detach().clone()
        blocks: list[nn.Module] = []
        constant: torch.Tensor | None = table
        for block in model.features:
            if isinstance(block, ref.LiteBottleneck):
                blocks.append(LiteBottleneck(block, h, w))
            elif isinstance(block, ref.MobileFormerBlock):
                blocks.append(MobileFormerBlock(block, variant, h, w, constant))
                constant = None
            else:
                blocks.append(MobileFormerDownBlock(block, variant, h, w, constant))
                constant = None
            h, w = blocks[-1].out_hw
        self.lite = nn.ModuleList(b for b in blocks if isinstance(b, LiteBottleneck))
        self.blocks = nn.ModuleList(b for b in blocks if not isinstance(b, LiteBottleneck))
        self.bridge_final = MobileToFormer(model.local_global, variant.num_tokens, h, w)
        self.head = MergeHead(model.classifier, variant, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.stem(x))
        for block in self.lite:
            x = block(x)
        tokens = None
        for block in self.blocks:
            x, tokens = block(x, tokens)
        tokens = self.bridge_final(x, tokens)
        return self.head(x, tokens)


@torch.no_grad()
def to_deploy(model: nn.Module, resolution: int = 224) -> MobileFormerDeploy:
    """Deploy form of a reference Mobile-Former for inputs of `resolution` x `resolution`."""
    if not isinstance(model, ref.MobileFormer):
        raise TypeError("to_deploy expects a reference MobileFormer")
    return MobileFormerDeploy(model.eval(), resolution).eval()
