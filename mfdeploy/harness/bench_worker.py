"""One benchmark run in its own process: `python -m mfdeploy.harness.bench_worker ART ...`.

Prints one JSON object. Its own process so that peak RSS and thread settings belong to this
backend alone. Method follows TFLite's benchmark_model: init, first inference, warm-up, runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
from pathlib import Path

import numpy as np


def peak_rss_mb() -> float:
    """This process's own peak resident memory.

    Linux: `VmHWM` of /proc/self/status, the high-water mark of this address space alone
    (`ru_maxrss` survives fork + exec, so a worker spawned by a large process would report
    its parent's peak). macOS: `ru_maxrss` is in bytes there (kilobytes on Linux).
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if platform.system() == "Darwin" else rss / 1024.0


def measure(
    artifact: str, threads: int, runs: int, warmup: int, budget_s: float | None = None
) -> dict:
    from mfdeploy.artifact import path_size
    from mfdeploy.harness.batching import static_batch
    from mfdeploy.harness.timing import time_runtime
    from mfdeploy.runtimes import open_runtime

    runtime = open_runtime(artifact, threads=threads)
    manifest = runtime.manifest
    res = int(manifest.preprocessing.get("resolution", 224))
    batch = static_batch(manifest) or 1
    x = np.random.default_rng(0).standard_normal((batch, 3, res, res)).astype(np.float32)
    timing = time_runtime(runtime, x, runs=runs, warmup=warmup, budget_s=budget_s)
    info = runtime.info()
    return {
        "init_ms": float(info.init_ms),
        "first_ms": timing["first_ms"],
        "latency_ms": timing["latency_ms"],
        "peak_rss_mb": peak_rss_mb(),
        "model_bytes": path_size(runtime.model_path),
        "executor": info.executor,
        "runtime": info.runtime,
        "runtime_version": info.version,
        "threads": info.threads,
        "batch": batch,
        "runs": timing["runs"],
        "warmup": timing["warmup"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mfdeploy.harness.bench_worker")
    parser.add_argument("artifact")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--budget", type=float, help="seconds of timed runs at most")
    args = parser.parse_args(argv)
    from mfdeploy.errors import MfdeployError

    try:
        measured = measure(args.artifact, args.threads, args.runs, args.warmup, args.budget)
        print(json.dumps(measured))
    except MfdeployError as exc:
        print(f"mfdeploy: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
