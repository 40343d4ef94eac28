"""Latency measurement in the manner of TFLite's benchmark_model: first run apart,
warm-up runs discarded, then N timed runs summarised."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mfdeploy.runtimes.base import Runtime


def time_runtime(runtime: Runtime, batch: np.ndarray, runs: int = 50, warmup: int = 10) -> dict:
    start = time.perf_counter()
    runtime.run(batch)
    first_ms = (time.perf_counter() - start) * 1000.0
    for _ in range(warmup):
        runtime.run(batch)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        runtime.run(batch)
        samples.append((time.perf_counter() - start) * 1000.0)
    values = np.asarray(samples)
    return {
        "init_ms": runtime.init_ms,
        "first_ms": first_ms,
        "latency_ms": {
            "median": float(np.median(values)),
            "p90": float(np.percentile(values, 90)),
            "mean": float(values.mean()),
            "std": float(values.std()),
            "min": float(values.min()),
        },
        "runs": runs,
        "warmup": warmup,
    }
