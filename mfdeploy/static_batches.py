"""Running a model traced for a fixed batch size on any number of inputs.

Rule: inputs go in chunks of exactly the static batch, the last one zero-padded, and the
padding's outputs are dropped (rows are independent in inference). Shared by the runtime
adapters (a manifest's static batch) and the exporters (a traced int8 graph), so it lives
below both and imports neither torch nor a runtime.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np


def run_static_batches(
    batch: np.ndarray, static: int | str | None, run_once: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Feed a model with a fixed batch size (a manifest's, a traced graph's) chunk by chunk.

    A dynamic batch dimension (a name, None or -1) takes the whole batch at once; a short
    last chunk is padded with zeros and the padding's outputs dropped.
    """
    if not isinstance(static, int) or static <= 0 or static == len(batch):
        return run_once(batch)
    return np.concatenate([run_once(chunk)[:real] for chunk, real in padded_chunks(batch, static)])


def padded_chunks(batch: np.ndarray, size: int) -> Iterator[tuple[np.ndarray, int]]:
    """(chunk, number of real rows): chunks of exactly `size`, the last one zero-padded."""
    for start in range(0, len(batch), size):
        chunk = batch[start : start + size]
        real = len(chunk)
        if real < size:
            pad = np.zeros((size - real, *chunk.shape[1:]), dtype=chunk.dtype)
            chunk = np.concatenate([chunk, pad])
        yield chunk, real


__all__ = ["padded_chunks", "run_static_batches"]
