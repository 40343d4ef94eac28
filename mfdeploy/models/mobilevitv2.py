"""Reference MobileViTv2 (Mehta & Rastegari 2022, arXiv 2206.02680), all seven widths.

Checkpoint-compatible with the weights timm serves as `mobilevitv2_<w>.cvnets_in1k` (Apple's
ml-cvnets weights in timm's key layout): module names mirror that layout so those files load
with strict=True. Written for this project (timm imports torchvision, which does not import
beside the CPU torch installed here). The arithmetic follows the published forward pass
(unfold to (B, d, P, N), separable self-attention, GroupNorm(1) as "LayerNorm2D"), so it
reproduces timm's logits to float32 rounding. Export-friendly rewrites live in
mobilevitv2_deploy.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mfdeploy.errors import CheckpointError, UnknownVariantError
from mfdeploy.preprocessing import Preprocessing

# Released eval recipe: short side 288 (bicubic), centre crop 256, RGB in [0, 1], no mean/std.
PREPROCESSING = Preprocessing(
    resolution=256,
    crop_pct=256 / 288,
    interpolation="bicubic",
    mean=(0.0, 0.0, 0.0),
    std=(1.0, 1.0, 1.0),
    pixel_scale=1.0 / 255.0,
)
HEAD_KEY = "head.fc.weight"
PATCH = 2  # patch height = width in every MobileViTv2 block
EXPAND = 2  # inverted-residual expansion
MLP_RATIO = 2  # FFN hidden = 2d
# (stage channels at width 1.0, blocks; stages 2-4 end in a MobileViTv2 block of this depth)
_STAGE_CHANNELS = (64, 128, 256, 384, 512)
_INVERTED_RESIDUALS = (1, 2, 1, 1, 1)
_ATTENTION_DEPTHS = (0, 0, 2, 4, 3)
_STEM_CHANNELS = 32


@dataclass(frozen=True)
class MobileViTv2Spec:
    """One width: its name (`mobilevitv2_050` ...), multiplier and channel widths."""

    name: str
    multiplier: float

    @property
    def stem_channels(self) -> int:
        return int(_STEM_CHANNELS * self.multiplier)

    @property
    def stage_channels(self) -> tuple[int, ...]:
        return tuple(int(c * self.multiplier) for c in _STAGE_CHANNELS)


WIDTHS = {"050": 0.5, "075": 0.75, "100": 1.0, "125": 1.25, "150": 1.5, "175": 1.75, "200": 2.0}
VARIANTS: dict[str, MobileViTv2Spec] = {
    f"mobilevitv2_{key}": MobileViTv2Spec(f"mobilevitv2_{key}", m) for key, m in WIDTHS.items()
}
VARIANT_NAMES = tuple(VARIANTS)


def get_spec(width_name: str) -> MobileViTv2Spec:
    """Accept "mobilevitv2_050", "mobilevitv2-050", "050", "0.5" (any case)."""
    key = width_name.strip().lower().replace("-", "_")
    key = key.removeprefix("mobilevitv2_")
    for short, multiplier in WIDTHS.items():
        if key in (short, str(multiplier), f"{multiplier:g}"):
            return VARIANTS[f"mobilevitv2_{short}"]
    raise UnknownVariantError(
        f"unknown MobileViTv2 width {width_name!r}; choose one of: {', '.join(VARIANT_NAMES)}"
    )


class ConvBN(nn.Module):
    """Conv (no bias) -> BatchNorm -> optional SiLU; keys `conv`, `bn` as in timm."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class InvertedResidual(nn.Module):
    """1x1 expand (SiLU) -> 3x3 depthwise (SiLU) -> 1x1 project; skip iff stride 1, in == out."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        mid = cin * EXPAND
        self.conv1_1x1 = ConvBN(cin, mid, 1)
        self.conv2_kxk = ConvBN(mid, mid, 3, stride, groups=mid)
        self.conv3_1x1 = ConvBN(mid, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv3_1x1(self.conv2_kxk(self.conv1_1x1(x)))
        return out + x if self.residual else out


class LayerNorm2D(nn.GroupNorm):
    """GroupNorm with one group: normalises over all of (d, P, N) of a sample, per-channel
    affine. Not a per-token LayerNorm; the released models were trained with this."""

    def __init__(self, channels: int) -> None:
        super().__init__(1, channels)


class SeparableSelfAttention(nn.Module):
    """Linear-cost attention on (B, d, P, N): one query map scores the N patches (softmax over
    N per patch position), the score-weighted key sum is a context vector per (d, P) that
    gates ReLU(value)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.qkv_proj = nn.Conv2d(dim, 1 + 2 * dim, 1)
        self.out_proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        query, key, value = self.qkv_proj(x).split([1, self.dim, self.dim], dim=1)
        scores = query.softmax(dim=-1)  # (B, 1, P, N)
        context = (key * scores).sum(dim=-1, keepdim=True)  # (B, d, P, 1)
        return self.out_proj(F.relu(value) * context)


class ConvMlp(nn.Module):
    """1x1 conv d -> 2d, SiLU, 1x1 conv 2d -> d."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, MLP_RATIO * dim, 1)
        self.fc2 = nn.Conv2d(MLP_RATIO * dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.silu(self.fc1(x)))


class AttentionUnit(nn.Module):
    """Pre-norm separable attention and pre-norm FFN, each with a residual."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm1 = LayerNorm2D(dim)
        self.attn = SeparableSelfAttention(dim)
        self.norm2 = LayerNorm2D(dim)
        self.mlp = ConvMlp(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def unfold_patches(x: torch.Tensor, patch: int = PATCH) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, P, N): p = i * patch + j inside a patch, n row-major over
    patches (the published index order)."""
    b, c, h, w = x.shape
    nh, nw = h // patch, w // patch
    x = x.reshape(b, c, nh, patch, nw, patch).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(b, c, patch * patch, nh * nw)


def fold_patches(x: torch.Tensor, height: int, width: int, patch: int = PATCH) -> torch.Tensor:
    """Inverse of unfold_patches."""
    b, c = x.shape[:2]
    nh, nw = height // patch, width // patch
    x = x.reshape(b, c, patch, patch, nh, nw).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(b, c, height, width)


class MobileViTv2Block(nn.Module):
    """Local 3x3 depthwise (BN, SiLU) and 1x1 to d = C/2, L attention units over 2x2
    patches, GroupNorm(1), fold, 1x1 back to C (BN). No skip around the block."""

    def __init__(self, channels: int, depth: int) -> None:
        super().__init__()
        dim = channels // 2
        self.conv_kxk = ConvBN(channels, channels, 3, groups=channels)
        self.conv_1x1 = nn.Conv2d(channels, dim, 1, bias=False)
        self.transformer = nn.Sequential(*(AttentionUnit(dim) for _ in range(depth)))
        self.norm = LayerNorm2D(dim)
        self.conv_proj = ConvBN(dim, channels, 1, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        new_h, new_w = math.ceil(h / PATCH) * PATCH, math.ceil(w / PATCH) * PATCH
        if (new_h, new_w) != (h, w):  # as released: resize, never at multiples of 32
            x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=True)
        x = self.conv_1x1(self.conv_kxk(x))
        x = self.norm(self.transformer(unfold_patches(x)))
        return self.conv_proj(fold_patches(x, new_h, new_w))


class ClassifierHead(nn.Module):
    """Global average pool -> Linear (key `head.fc`)."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))


class MobileViTv2(nn.Module):
    """MobileViTv2 classifier for one width; input RGB in [0, 1] (PREPROCESSING)."""

    def __init__(self, spec: MobileViTv2Spec, num_classes: int | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.num_classes = num_classes or 1000
        self.stem = ConvBN(3, spec.stem_channels, 3, stride=2)
        stages: list[nn.Module] = []
        cin = spec.stem_channels
        for i, cout in enumerate(spec.stage_channels):
            blocks: list[nn.Module] = []
            for j in range(_INVERTED_RESIDUALS[i]):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(InvertedResidual(cin, cout, stride))
                cin = cout
            if _ATTENTION_DEPTHS[i]:
                blocks.append(MobileViTv2Block(cout, _ATTENTION_DEPTHS[i]))
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = ClassifierHead(cin, self.num_classes)

    @property
    def attention_blocks(self) -> list[MobileViTv2Block]:
        return [m for m in self.modules() if isinstance(m, MobileViTv2Block)]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


def create_mobilevitv2(
    width_name: str, weights: str | Path | None = None, num_classes: int | None = None
) -> MobileViTv2:
    """A MobileViTv2 width in eval mode.

    weights: None (PyTorch's default initialisation), "synthetic" (seeded stand-in weights,
    `synthetic_mobilevitv2`) or a timm-layout checkpoint (.safetensors, or .pth / .pt
    read with weights_only=True), loaded with strict=True. With a checkpoint, num_classes
    defaults to its head size; a given one must agree with it.
    """
    from mfdeploy.models.checkpoint import load_into, read_state_dict

    spec = get_spec(width_name)
    if weights is None:
        return MobileViTv2(spec, num_classes).eval()
    if str(weights) == "synthetic":
        if num_classes not in (None, 1000):
            raise CheckpointError("synthetic MobileViTv2 weights have a 1000-class head")
        return synthetic_mobilevitv2(spec.name)
    state = read_state_dict(weights)
    if HEAD_KEY in state:
        head = int(state[HEAD_KEY].shape[0])
        if num_classes not in (None, head):
            raise CheckpointError(
                f"{weights}: checkpoint has a {head}-class head, {num_classes} classes asked"
            )
        num_classes = head
    model = MobileViTv2(spec, num_classes)
    load_into(model, state, str(weights))
    return model.eval()


# ---- seeded synthetic weights ---------------------------------------------------------------

DEFAULT_SEED = 20220606  # arXiv 2206.02680


def _perturb(model: MobileViTv2, gen: torch.Generator) -> None:
    """Weights away from PyTorch's init: He-normal convolutions, non-zero biases, GroupNorm
    affines away from (1, 0), and a query projection strong enough that the softmax over
    patches is far from uniform (at init it is nearly 1/N everywhere, which would hide a
    wrong patch order or a softmax over the wrong axis)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            fan = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
            module.weight.normal_(0.0, (2.0 / fan) ** 0.5, generator=gen)
            if module.bias is not None:
                module.bias.normal_(0.0, 0.1, generator=gen)
        elif isinstance(module, nn.GroupNorm):
            module.weight.normal_(1.0, 0.2, generator=gen)
            module.bias.normal_(0.0, 0.2, generator=gen)
    for block in model.attention_blocks:
        for unit in block.transformer:
            query = unit.attn.qkv_proj.weight[:1]
            query.normal_(0.0, 3.0 * unit.attn.dim**-0.5, generator=gen)
    # Logits of the size the shared fixtures have (|logit| <~ 1): large random logits would
    # put the float32 rounding of the reference itself above the parity checks.
    fc = model.head.fc
    bound = fc.in_features**-0.5
    fc.weight.uniform_(-bound, bound, generator=gen)
    fc.bias.normal_(0.0, 0.02, generator=gen)


@torch.no_grad()
def synthetic_mobilevitv2(width_name: str, seed: int = DEFAULT_SEED) -> MobileViTv2:
    """A width with seeded, non-trivial weights (same seed -> same weights, any thread count).

    Like the Mobile-Former stand-in (synthetic.py): perturbed away from init, then BatchNorm
    statistics re-estimated on seeded inputs so activations keep realistic ranges (int8
    calibration behaves as on a trained network), then BatchNorm affines perturbed. ImageNet
    accuracy on them is meaningless.
    """
    from mfdeploy.models.synthetic import _recalibrate_batchnorm, _single_thread

    gen = torch.Generator().manual_seed(seed)
    model = MobileViTv2(get_spec(width_name))
    _perturb(model, gen)
    with _single_thread():
        _recalibrate_batchnorm(model, gen, resolution=128)
    return model.eval()
