"""Per-layer drift: intermediate tensors at block anchors, compared reference vs runtime.

Anchor names are the contract between the reference side (forward hooks here) and each
runtime adapter's `Runtime.intermediates(batch)`:
  "stem"                     stem output, NCHW
  "block{i}.bridge_in"       Mobile->Former bridge (features.i.local_global) output tokens
  "block{i}.former"          Former (features.i.global_block) output tokens
  "block{i}.mobile"          the Mobile path's output, i.e. the input of features.i.global_local
                             (block 0 has no bridges: its output features)
  "block{i}.bridge_out"      Former->Mobile bridge (features.i.global_local) output, NCHW
  "final_bridge"             the last Mobile->Former bridge (local_global) output tokens
  "head"                     logits
Tokens are given as (B, M, d) whatever layout the model uses internally; feature maps NCHW,
float32. An adapter maps its own tensor names onto these (e.g. ONNX node scopes, LiteRT
tensor names, MIL op names) and returns only the anchors it can find.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from mfdeploy.metrics import sqnr_db


def _tokens(t: torch.Tensor) -> torch.Tensor:
    return t.permute(1, 0, 2)  # reference tokens are sequence-first (M, B, d)


def _hooks(model: nn.Module) -> list[tuple[str, str, str, Callable]]:
    """(anchor, module name, "out" | "in", to-tensor) for a reference Mobile-Former."""
    out: list[tuple[str, str, str, Callable]] = [("stem", "stem", "out", lambda t: t)]
    for i, block in enumerate(getattr(model, "features", [])):
        if hasattr(block, "global_local"):
            out += [
                (f"block{i}.bridge_in", f"features.{i}.local_global", "out", _tokens),
                (f"block{i}.former", f"features.{i}.global_block", "out", _tokens),
                (f"block{i}.mobile", f"features.{i}.global_local", "in", lambda t: t),
                (f"block{i}.bridge_out", f"features.{i}.global_local", "out", lambda t: t),
            ]
        else:
            out.append((f"block{i}.mobile", f"features.{i}", "out", lambda t: t[0]))
    if hasattr(model, "local_global"):
        out.append(("final_bridge", "local_global", "out", _tokens))
    return out


def capture(model: nn.Module, batch: np.ndarray) -> dict[str, np.ndarray]:
    """Run `model` once and return the anchor tensors (plus "head", the logits)."""
    modules = dict(model.named_modules())
    seen: dict[str, np.ndarray] = {}
    handles = []
    for anchor, name, where, convert in _hooks(model):
        if name not in modules:
            continue

        def hook(_m, args, output, anchor=anchor, where=where, convert=convert):
            value = args[0] if where == "in" else output
            seen[anchor] = convert(value).detach().float().numpy().copy()

        handles.append(modules[name].register_forward_hook(hook))
    try:
        with torch.no_grad():
            seen["head"] = model(torch.from_numpy(np.ascontiguousarray(batch))).numpy()
    finally:
        for handle in handles:
            handle.remove()
    return seen


def block_report(
    reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray]
) -> list[dict[str, object]]:
    """One row per anchor both sides have: SQNR and max abs, worst (lowest SQNR) first."""
    rows = []
    for anchor, ref in reference.items():
        if anchor not in candidate:
            continue
        cand = candidate[anchor]
        if cand.shape != ref.shape:
            rows.append(
                {
                    "block": anchor,
                    "sqnr_db": None,
                    "max_abs": None,
                    "note": f"shape {cand.shape} vs reference {ref.shape}",
                }
            )
            continue
        rows.append(
            {
                "block": anchor,
                "sqnr_db": sqnr_db(ref, cand),
                "max_abs": float(np.max(np.abs(ref - cand))),
                "note": "",
            }
        )
    return sorted(rows, key=lambda r: (r["sqnr_db"] is not None, r["sqnr_db"] or 0.0))
