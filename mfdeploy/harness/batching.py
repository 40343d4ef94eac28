"""Static-batch handling shared by verify and the bench worker (no torch import here, so a
benchmark of a non-PyTorch runtime does not pay torch's memory)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mfdeploy.artifact import Manifest


def static_batch(manifest: Manifest) -> int | None:
    """The artifact's fixed batch size, or None when its batch dimension is dynamic."""
    first = manifest.input.shape[0] if manifest.input.shape else None
    return first if isinstance(first, int) and first > 0 else None


def run_batched(
    fn: Callable[[np.ndarray], np.ndarray], inputs: np.ndarray, batch: int | None
) -> np.ndarray:
    """Apply `fn` in chunks of a static batch (the last chunk padded), or all at once."""
    if batch is None:
        return fn(inputs)
    outs = []
    for start in range(0, len(inputs), batch):
        chunk = inputs[start : start + batch]
        n = len(chunk)
        if n < batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - n, axis=0)])
        outs.append(np.asarray(fn(chunk))[:n])
    return np.concatenate(outs)
