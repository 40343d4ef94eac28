"""Parameter and multiply-add counts measured on a built model.

Multiply-adds are counted by PyTorch's FlopCounterMode over one real forward pass: every
convolution, linear layer and matrix multiplication (including the attention products of
the bridges and the Former), each FLOP pair counted as one multiply-add. Element-wise work
(activations, dynamic ReLU, softmax, normalisation, residual adds) is not counted, which is
why the figures sit a few percent under the published FLOPs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

MACS_WHAT = "conv + linear + matmul multiply-adds (attention included; element-wise ops not)"


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, resolution: int = 224) -> int:
    """Multiply-adds of one forward pass on a single image."""
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.zeros(1, 3, resolution, resolution))
    return counter.get_total_flops() // 2
