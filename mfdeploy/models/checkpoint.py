"""Reading checkpoints safely and matching them to a model with clear errors.

Checkpoints may come from anywhere, so nothing here unpickles code: `.safetensors` is read
with safetensors, everything else with `torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from mfdeploy.errors import CheckpointError

# Training scripts wrap the weights under one of these keys (timm, DeiT-style, EMA copies).
WRAPPER_KEYS = ("state_dict", "model", "state_dict_ema", "model_ema")
_SHOW = 5


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_raw(path: Path) -> object:
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc).partition("WeightsUnpickler error:")[2] or str(exc)
        first = text.strip().splitlines()[0] if text.strip() else ""
        # Only a GLOBAL (a class or function to import) means code; torch wraps every
        # unpickling failure in its "weights_only" notice, garbage bytes included.
        if "Unsupported global" in str(exc) or "GLOBAL" in str(exc):
            raise CheckpointError(
                f"{path}: this pickle needs arbitrary code to load and is refused for safety "
                "(re-save it as a plain state_dict or .safetensors)"
            ) from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({first})") from None
    except Exception as exc:  # torch.load raises many types on garbage input
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({first})") from None


def _is_state_dict(obj: object) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) for k in obj)
        and any(isinstance(v, torch.Tensor) for v in obj.values())
    )


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        for key in WRAPPER_KEYS:
            if key in obj and _is_state_dict(obj[key]):
                obj = obj[key]
                break
    if not _is_state_dict(obj):
        raise CheckpointError(
            f"{path}: no state_dict found (expected tensors at the top level or under one of "
            f"{', '.join(WRAPPER_KEYS)})"
        )
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    prefix = "module."
    if all(k.startswith(prefix) for k in tensors):
        tensors = {k[len(prefix) :]: v for k, v in tensors.items()}
    return tensors


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file, unwrapped and with `module.` prefixes stripped.

    Floating tensors are returned as float32 (released files may store float16).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    state = _unwrap(_read_raw(path), path)
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    check_finite(state, str(path))
    return state


def check_finite(state: Mapping[str, torch.Tensor], source: str) -> None:
    """Refuse NaN / inf weights: a model built from them predicts "nan" for every image and
    every export of it would verify against an equally broken reference."""
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(
                f"{source}: {key} holds {bad} non-finite values (NaN or inf); "
                "the checkpoint is corrupt or the training diverged"
            )


def _names(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW])
    return shown + (", ..." if len(keys) > _SHOW else "")


def check_compatible(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise CheckpointError describing the first class of mismatch, if any."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({_names(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({_names(unexpected)})")
        raise CheckpointError(f"{source}: does not fit this model: " + "; ".join(parts))
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{source}: shape mismatch at {key}: checkpoint {tuple(state[key].shape)}, "
                f"model {tuple(tensor.shape)}"
            )


def load_into(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """strict=True load, after a readable compatibility check."""
    check_compatible(model, state, source)
    model.load_state_dict(state, strict=True)
