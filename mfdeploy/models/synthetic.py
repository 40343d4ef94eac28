"""Deterministic stand-in weights in the authors' checkpoint layout.

Without a user checkpoint the pipeline still needs weights on which parity and latency are
meaningful: at the authors' initialisation dynamic ReLU is a plain ReLU, the bridge gates
are constant and BatchNorm is the identity, so a wrong rewrite of any of them would go
unnoticed. These weights are seeded, perturbed away from init, and their BatchNorm
statistics are re-estimated on seeded inputs so that activations keep realistic ranges
through all blocks (int8 calibration behaves as on a trained network). ImageNet accuracy
on them is meaningless, and every report says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from mfdeploy.models.mobile_former import MobileFormer
from mfdeploy.models.variants import VariantSpec

DEFAULT_SEED = 20220608


def _perturb(model: nn.Module, gen: torch.Generator) -> None:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            fan = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
            module.weight.normal_(0.0, (2.0 / fan) ** 0.5, generator=gen)
        elif isinstance(module, nn.Linear):
            bound = module.in_features**-0.5
            module.weight.uniform_(-bound, bound, generator=gen)
            module.bias.normal_(0.0, 0.2, generator=gen)
        elif isinstance(module, nn.LayerNorm):
            module.weight.normal_(1.0, 0.1, generator=gen)
            module.bias.normal_(0.0, 0.1, generator=gen)
        elif isinstance(module, nn.Embedding):
            module.weight.normal_(0.0, 1.0, generator=gen)
    # Logits of the size the released fixtures have (|logit| ~ 1-2): large random logits
    # would put float32 rounding of the reference itself above the 1e-5 parity checks.
    classifier = model.classifier.classifier[1]
    classifier.weight.mul_(0.1)
    classifier.bias.normal_(0.0, 0.02, generator=gen)


def _recalibrate_batchnorm(model: nn.Module, gen: torch.Generator, resolution: int) -> None:
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration batches
    model.train()
    for _ in range(4):
        x = torch.randn(8, 3, resolution, resolution, generator=gen)
        model(x)
    model.eval()
    for bn in norms:
        bn.momentum = 0.1
        bn.weight.uniform_(0.6, 1.4, generator=gen)
        bn.bias.normal_(0.0, 0.15, generator=gen)


@contextmanager
def _single_thread() -> Iterator[None]:
    """Reductions split across threads round differently; the weights' sha256 must not."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@torch.no_grad()
def synthetic_model(variant: VariantSpec, seed: int = DEFAULT_SEED) -> MobileFormer:
    """A variant with seeded, non-trivial weights (same seed -> same weights)."""
    gen = torch.Generator().manual_seed(seed)
    model = MobileFormer(variant)
    _perturb(model, gen)
    with _single_thread():
        _recalibrate_batchnorm(model, gen, resolution=128)
    return model.eval()
