"""Per-layer anchors: named points inside a model where reference and artifact are compared.

A family declares its anchors twice, once per side:
- `ModuleAnchor`: the output or input of one module of the *exported* form, found in an
  artifact's graph by the module scopes its converter recorded (`mfdeploy.export.scopes`);
- `ReferenceHook`: the same tensor on the PyTorch reference, read by a forward hook and
  converted to the anchor's reference layout.
Tokens are compared as (B, M, d), feature maps NCHW, logits as (B, classes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

MAP, TOKENS, LOGITS = "map", "tokens", "logits"
HEAD = "head"  # the logits anchor, every family has it


@dataclass(frozen=True)
class ModuleAnchor:
    anchor: str
    module: str  # module path in the exported form
    where: str  # "in" | "out"
    kind: str  # MAP (B, C, H, W) | TOKENS (B, M, d) | LOGITS


@dataclass(frozen=True)
class ReferenceHook:
    anchor: str
    module: str  # module path in the reference model
    where: str  # "in" | "out"
    convert: Callable[[torch.Tensor], torch.Tensor]  # -> the anchor's reference layout


def same(t: torch.Tensor) -> torch.Tensor:
    return t
