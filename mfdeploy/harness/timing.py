"""Latency measurement in the manner of TFLite's benchmark_model: first run apart,
warm-up runs discarded, then N timed runs summarised."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mfdeploy.runtimes.base import Runtime


DEFAULT_RUNS = 50
DEFAULT_WARMUP = 10
MIN_RUNS = 10  # a time budget never cuts below this


def time_runtime(
    runtime: Runtime,
    batch: np.ndarray,
    runs: int = DEFAULT_RUNS,
    warmup: int = DEFAULT_WARMUP,
    budget_s: float | None = None,
) -> dict:
    """Time `runs` runs after `warmup`; with `budget_s`, a slow backend (an emulator) does
    fewer, as many as fit the budget at its first run's pace but at least MIN_RUNS."""
    start = time.perf_counter()
    runtime.run(batch)
    first_ms = (time.perf_counter() - start) * 1000.0
    if budget_s is not None and first_ms > 0:
        fit = int(budget_s * 1000.0 / first_ms)
        runs = max(min(runs, fit), min(runs, MIN_RUNS))
        warmup = min(warmup, max(1, fit // 10))
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
