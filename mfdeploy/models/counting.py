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
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

MACS_WHAT = "conv + linear + matmul multiply-adds (attention included; element-wise ops not)"


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def macs_on(model: nn.Module, resolution: int, device: str) -> int:
    """Multiply-adds of one forward pass on a single image, with the weights and the input on
    `device`: "meta" runs no arithmetic (the counts are functions of shapes alone)."""
    model.eval()
    tensors = {name: t.to(device) for name, t in model.state_dict(keep_vars=True).items()}
    counter = FlopCounterMode(display=False)
    with counter:
        functional_call(model, tensors, (torch.zeros(1, 3, resolution, resolution, device=device),))
    return counter.get_total_flops() // 2


def count_macs(model: nn.Module, resolution: int = 224) -> int:
    """Multiply-adds of one forward pass on a single image: on the meta device (the variants
    table's seven Mobile-Former forwards took 8 s on this CPU), or on the CPU for a model whose
    forward needs real values (a tensor made in `forward` on the CPU, data-dependent code)."""
    try:
        return macs_on(model, resolution, "meta")
    except (RuntimeError, NotImplementedError, ValueError):
        return macs_on(model, resolution, "cpu")
