"""int8 weights and the bias that corrects them: measured on the calibration photos.

Rule: every convolution / linear an int8 export quantises is given its int8 weights before
the target's quantiser sees it (per-output-channel symmetric, -127..127: the grid of ONNX,
LiteRT and ExecuTorch, so their quantisers reproduce them exactly; Core ML's rounds to
-128..127 after folding batch norms, so there the error is measured on its own program:
`pt2e_plan`), and its bias is corrected by the
mean, per output channel, of what those int8 weights change in its output on the
calibration photos that set the ranges (empirical bias correction: Nagel et al., "Data-Free
Quantization Through Weight Equalization and Bias Correction", ICCV 2019).

Why: rounding the weights of a layer whose inputs have a large mean (a ReLU6 output, a
depthwise convolution's 9 weights per channel) shifts each output channel by a constant,
and the batch norm after it can amplify that shift. On EfficientNet-Lite0's trained weights
int8 weights alone cost the logits 16.4 dB (simulated, every layer int8; activations alone
25.8 dB), 25.2 dB after the correction (docs/int8.md, "Bias correction").

What stays float keeps its float weights and bias: the correction is applied per layer,
to the layers the float plan quantises, in the search's simulation and in the export alike.
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Iterable, Iterator

import torch
from torch import nn

CORRECTED = (nn.Conv2d, nn.Linear)


def int8_grid(weight: torch.Tensor) -> torch.Tensor:
    """Per-output-channel symmetric int8 (-127..127), as every target's int8 weights are."""
    flat = weight.reshape(weight.shape[0], -1)
    scale = flat.abs().amax(dim=1).clamp(min=1e-12) / 127.0
    shape = (-1,) + (1,) * (weight.dim() - 1)
    return torch.round(weight / scale.reshape(shape)).clamp(-127, 127) * scale.reshape(shape)


def _forward_with(
    leaf: nn.Module, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """`leaf`'s own forward (any layout) with other weights and bias, restored after."""
    saved_weight, saved_bias = leaf.weight.data, leaf.bias
    leaf.weight.data = weight
    leaf.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)
    try:
        return leaf.forward(x)
    finally:
        leaf.weight.data, leaf.bias = saved_weight, saved_bias


def output_channel_dim(leaf: nn.Module, x: torch.Tensor) -> int:
    """Which dimension of `leaf`'s output holds its output channels: probed with zero weights
    and the channel index as bias (a channels-last convolution's maps can have as many rows
    as channels, so shapes alone do not tell)."""
    channels = leaf.weight.shape[0]
    index = torch.arange(channels, dtype=leaf.weight.dtype)
    out = _forward_with(leaf, x[:1], torch.zeros_like(leaf.weight), index)
    for dim in (-1, 1):
        if out.shape[dim] == channels and torch.equal(
            out.movedim(dim, -1).flatten()[:channels], index
        ):
            return dim
    raise ValueError(f"no output channel dimension in {tuple(out.shape)}")


def _weight_error(leaf: nn.Module, x: torch.Tensor, channel: int) -> torch.Tensor:
    """Mean per output channel of what int8 weights add to `leaf`'s output for `x`: its own
    forward with its weights replaced by their rounding error and no bias."""
    weight = leaf.weight.data
    out = _forward_with(leaf, x, int8_grid(weight) - weight, None).movedim(channel, -1)
    return out.reshape(-1, out.shape[-1]).mean(dim=0)


def weight_errors(
    module: nn.Module, photos: torch.Tensor, batch: int = 8
) -> dict[str, torch.Tensor]:
    """Layer path -> the mean int8-weight error of its output channels, over `photos` (float
    inputs: one float forward, each layer's error measured where it sits)."""
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    channel: dict[str, int] = {}

    def hook(path: str):
        def record(leaf, args):
            if args and isinstance(args[0], torch.Tensor):
                x = args[0]
                if path not in channel:
                    channel[path] = output_channel_dim(leaf, x)
                sums[path] = sums.get(path, 0) + _weight_error(leaf, x, channel[path]) * len(x)
                counts[path] = counts.get(path, 0) + len(x)

        return record

    handles = [
        leaf.register_forward_pre_hook(hook(path))
        for path, leaf in module.named_modules()
        if isinstance(leaf, CORRECTED)
    ]
    try:
        with torch.no_grad():
            for i in range(0, len(photos), batch):
                module(photos[i : i + batch])
    finally:
        for handle in handles:
            handle.remove()
    return {path: sums[path] / counts[path] for path in sums}


def corrected_bias(leaf: nn.Module, error: torch.Tensor) -> nn.Parameter:
    """`leaf`'s bias minus `error` (a zero bias when it had none)."""
    base = leaf.bias.data if leaf.bias is not None else torch.zeros_like(error)
    return nn.Parameter(base - error.to(base.dtype), requires_grad=False)


@contextlib.contextmanager
def int8_weights_swapped(
    layers: Iterable[tuple[str, nn.Module]], errors: dict[str, torch.Tensor]
) -> Iterator[None]:
    """Run with `layers` (path, conv / linear) on their int8 grid, each bias corrected by its
    measured error where `errors` has one; weights and biases restored after."""
    swapped = []
    try:
        for path, leaf in layers:
            swapped.append((leaf, leaf.weight.data, leaf.bias))
            if path in errors:
                leaf.bias = corrected_bias(leaf, errors[path])
            leaf.weight.data = int8_grid(leaf.weight.data)
        yield
    finally:
        for leaf, weight, bias in swapped:
            leaf.weight.data, leaf.bias = weight, bias


def with_int8_weights(
    module: nn.Module, errors: dict[str, torch.Tensor], float_pattern: str = ""
) -> tuple[nn.Module, int]:
    """A copy of `module` whose layers in `errors` (except those `float_pattern` matches:
    the float modules) carry int8-grid weights and corrected biases; and how many did."""
    if not errors:
        return module, 0
    floats = re.compile(float_pattern) if float_pattern else None
    out = copy.deepcopy(module)
    layers = dict(out.named_modules())
    count = 0
    for path, error in errors.items():
        if floats is not None and floats.match(path):
            continue
        leaf = layers[path]
        leaf.bias = corrected_bias(leaf, error)
        leaf.weight.data = int8_grid(leaf.weight.data)
        count += 1
    return out, count
