"""Depthwise convolutions with a channel multiplier, split for XNNPACK (LiteRT and ExecuTorch).

XNNPACK's depthwise kernels take a channel multiplier of 1 only. A convolution with one input
channel and k > 1 output channels per group (PyTorch `groups == in_channels`, `out_channels
= k * in_channels`; TFLite DEPTHWISE_CONV_2D with depth_multiplier k) runs as a grouped
IGEMM instead, one input channel per group, which pads both the k outputs and the kh x kw
taps of each group to the GEMM kernel's tile: most of its multiply-adds are padding.
Measured on 294m (1 thread): 4.6 of 16.1 ms of ExecuTorch fp32 (ETDump, AVX2 host); on
LiteRT the IGEMM kernels (these convolutions and the 3x3 stem) took 26 % of fp32's and 33 %
of all-int8's samples, 5 % after the split (`perf`, AVX-512 VNNI host; docs/int8.md).

The split is exact: a 1x1 convolution with 0 / 1 weights repeats each input channel k times
(output channel c*k + m is input channel c, PyTorch's own order), then a multiplier-1
depthwise convolution takes the original weights and bias. In int8 the repeat is exact too
(weights 1.0 are one per-channel step; its output has its input's range). Only where the
repeat costs less than the IGEMM it replaces (`MAX_REPEAT_MACS`). A rule on the
convolution's shape, so it holds for any model.
"""

from __future__ import annotations

import copy

import torch

#: Split a multiplier-k depthwise convolution only while its channel repeat costs at most this
#: many multiply-adds per output element (in_channels x stride_h x stride_w: the 1x1 repeat
#: runs on the input pixels). Measured on 294m (ETDump, 1 thread, x86 AVX2): XNNPACK's grouped
#: IGEMM took 2.0-2.7 ns per output element (5.4 at k = 2), the repeat ~0.025 ns per
#: multiply-add; split won at 16, 24 and 48, broke even at 64 and 96, lost at 96-512.
MAX_REPEAT_MACS = 64


class DepthwiseWithMultiplier(torch.nn.Module):
    """A grouped convolution with one input channel and k > 1 output channels per group, as
    a 1x1 convolution that repeats each input channel k times (0 / 1 weights) and a
    depthwise convolution (multiplier 1) with the original weights and bias."""

    def __init__(self, conv: torch.nn.Conv2d) -> None:
        super().__init__()
        channels, out = conv.in_channels, conv.out_channels
        self.repeat = torch.nn.Conv2d(channels, out, 1, bias=False)
        picks = torch.zeros(out, channels, 1, 1, dtype=conv.weight.dtype)
        picks[torch.arange(out), torch.arange(out) // (out // channels)] = 1.0
        self.repeat.weight = torch.nn.Parameter(picks, requires_grad=False)
        self.depthwise = torch.nn.Conv2d(
            out,
            out,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            conv.dilation,
            groups=out,
            bias=conv.bias is not None,
        )
        self.depthwise.weight = conv.weight  # (out, 1, kh, kw): the same layout
        self.depthwise.bias = conv.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.depthwise(self.repeat(x))


def multiplies_channels(module: torch.nn.Module) -> bool:
    """A depthwise convolution with a channel multiplier k > 1 (one input channel and k
    outputs per group), whatever its cost."""
    return (
        type(module) is torch.nn.Conv2d
        and module.groups > 1
        and module.groups == module.in_channels
        and module.out_channels > module.in_channels
    )


def has_channel_multiplier(module: torch.nn.Module) -> bool:
    """A depthwise convolution with a channel multiplier > 1 whose repeat is cheap enough."""
    return (
        multiplies_channels(module)
        and module.padding_mode == "zeros"
        and not isinstance(module.padding, str)
        and module.in_channels * module.stride[0] * module.stride[1] <= MAX_REPEAT_MACS
    )


def split_channel_multipliers(module: torch.nn.Module) -> tuple[torch.nn.Module, int]:
    """(module, n): a copy whose n depthwise convolutions with a channel multiplier k > 1 are
    `DepthwiseWithMultiplier`; the module itself when there are none (nothing to split, or
    a traced graph, which has no convolution modules)."""
    names = [name for name, sub in module.named_modules() if has_channel_multiplier(sub)]
    if not names:
        return module, 0
    if names == [""]:  # the module is such a convolution
        return DepthwiseWithMultiplier(copy.deepcopy(module)), 1
    module = copy.deepcopy(module)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, child, DepthwiseWithMultiplier(getattr(parent, child)))
    return module, len(names)
