"""The static batch of an artifact, for verify and the bench worker (no torch import here, so a
benchmark of a non-PyTorch runtime does not pay torch's memory)."""

from __future__ import annotations

from mfdeploy.artifact import Manifest


def static_batch(manifest: Manifest) -> int | None:
    """The artifact's fixed batch size, or None when its batch dimension is dynamic."""
    first = manifest.input.shape[0] if manifest.input.shape else None
    return first if isinstance(first, int) and first > 0 else None
