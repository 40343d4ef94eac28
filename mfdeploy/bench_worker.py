"""One benchmark run in its own process: `python -m mfdeploy.bench_worker ART --threads N ...`.

Prints one JSON object. Its own process so that peak RSS and thread settings belong to this
backend alone. Method follows TFLite's benchmark_model: init, first inference, warm-up, runs.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys

import numpy as np


def measure(artifact: str, threads: int, runs: int, warmup: int) -> dict:
    from mfdeploy.artifact import path_size
    from mfdeploy.harness.batching import static_batch
    from mfdeploy.runtimes import open_runtime
    from mfdeploy.timing import time_runtime

    runtime = open_runtime(artifact, threads=threads)
    manifest = runtime.manifest
    res = int(manifest.preprocessing.get("resolution", 224))
    batch = static_batch(manifest) or 1
    x = np.random.default_rng(0).standard_normal((batch, 3, res, res)).astype(np.float32)
    timing = time_runtime(runtime, x, runs=runs, warmup=warmup)
    info = runtime.info()
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return {
        "init_ms": float(info.init_ms),
        "first_ms": timing["first_ms"],
        "latency_ms": timing["latency_ms"],
        "peak_rss_mb": rss_kb / 1024.0,
        "model_bytes": path_size(runtime.model_path),
        "executor": info.executor,
        "runtime": info.runtime,
        "runtime_version": info.version,
        "threads": info.threads,
        "batch": batch,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mfdeploy.bench_worker")
    parser.add_argument("artifact")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)
    from mfdeploy.errors import MfdeployError

    try:
        print(json.dumps(measure(args.artifact, args.threads, args.runs, args.warmup)))
    except MfdeployError as exc:
        print(f"mfdeploy: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
