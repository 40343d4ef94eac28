"""LiteRT, ExecuTorch and ONNX Runtime on the same model, precision and thread count, timed
interleaved in one process (each timed run goes to every runtime in turn, so load from
elsewhere on the machine falls on all alike).

    .venv/bin/python benchmarks/runtimes.py [--models 294m efficientnet_lite0]
        [--precisions fp32 int8] [--threads 1] [--runs 40] [--settle 1]

Artifacts come from the bench cache (`mfdeploy bench`'s, exported on a miss), or are given
as `--artifacts litert=DIR executorch=DIR ...` (one row; exported beforehand with
`mfdeploy export`, same model and weights). All three run
XNNPACK-class CPU kernels: LiteRT's XNNPACK delegate, ExecuTorch's XNNPACK delegate, ONNX
Runtime's CPU EP (its own MLAS kernels). Prints the table and writes
benchmarks/results/runtimes.json. Median and min ms; the ratio column is ExecuTorch / LiteRT
(with --artifacts: each artifact's speed-up against the first one named).

Each timed run follows `--settle` untimed runs of the same artifact (default 1), as an app
runs one model frame after frame: timed straight after another file, a file runs with that
file's weights in the caches, which cost 294m's int8-weights LiteRT file more than its fp32
one (1.38-1.39x of fp32 without settling, 1.43x with one settling run, session 32;
docs/int8.md).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from mfdeploy.console import print_table
from mfdeploy.harness import bench
from mfdeploy.runtimes import open_runtime

TARGETS = {"tflite": "litert", "executorch": "executorch", "onnx": "onnxruntime"}
OUT = Path(__file__).parent / "results" / "runtimes.json"


def open_all(
    paths: dict[str, Path | str], threads: int, sessions: int = 1
) -> tuple[dict[str, list], object]:
    """`sessions` runtimes per artifact (for `interleaved`, which pools their samples), opened
    in rounds (each artifact once, then each once more, ...), and a spacer: the first
    artifact opened once more after the others, which the caller keeps (unused) until its
    timing ends.

    One session's median is ~1-2 % off another's of the same file (memory placement, most
    likely: six ONNX Runtime sessions of 294m int8 timed interleaved spread 7.70-7.74 ms,
    LiteRT fp32 6.31-6.57 ms), so a speed-up between two artifacts timed one session each
    carries that much; more sessions average it out. And the last ONNX Runtime session a
    process opens runs about 2 % faster than the others (7.53 ms there; with one more session
    opened after them, 7.02-7.11 for all), whatever order they are timed in: the spacer
    keeps every timed one from being last."""
    runtimes: dict[str, list] = {name: [] for name in paths}
    for _ in range(sessions):
        for name, path in paths.items():
            runtimes[name].append(open_runtime(path, threads=threads))
    return runtimes, open_runtime(next(iter(paths.values())), threads=threads)


def interleaved(
    runtimes: dict,
    batch: np.ndarray | dict[str, np.ndarray],
    runs: int,
    warmup: int,
    block: int = 1,
    settle: int = 0,
) -> dict[str, dict]:
    """Median / min ms per runtime over `runs` timed runs, taken in rounds: each round gives
    every runtime `settle` untimed runs and then `block` timed ones in a row, in turn, so
    load from elsewhere falls on all alike. A runtime may be a list of sessions of one
    artifact (`open_all`): each round then runs each session, and their samples are pooled
    (`runs` in all, split between them). `batch` is one input for all, or one per runtime
    name (models of different input sizes).

    `settle` is for several threads per runtime: the previous runtime's worker threads keep
    spinning for a while after its last run (ONNX Runtime's and XNNPACK's thread pools wait
    busily before they sleep) and take the cores from the next one's first runs, which an
    app running one model never sees."""
    batches = batch if isinstance(batch, dict) else dict.fromkeys(runtimes, batch)
    sessions = {name: r if isinstance(r, list) else [r] for name, r in runtimes.items()}
    if len({len(group) for group in sessions.values()}) > 1:
        raise ValueError("every artifact needs the same number of sessions")
    for name, group in sessions.items():
        for runtime in group:
            for _ in range(warmup):
                runtime.run(batches[name])
    samples: dict[str, list[float]] = {name: [] for name in runtimes}
    per_round = block * len(next(iter(sessions.values())))
    for _ in range(-(-runs // per_round)):
        for name, group in sessions.items():
            for runtime in group:
                for _ in range(settle):
                    runtime.run(batches[name])
                for _ in range(block):
                    start = time.perf_counter()
                    runtime.run(batches[name])
                    samples[name].append((time.perf_counter() - start) * 1000.0)
    return {
        name: {"median": float(np.median(v)), "min": float(np.min(v)), "runs": len(v)}
        for name, v in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["294m", "efficientnet_lite0"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "int8"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--sessions", type=int, default=1, help="sessions per artifact, samples pooled (open_all)"
    )
    parser.add_argument(
        "--settle", type=int, default=1, help="untimed runs of an artifact before each timed one"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--artifacts", nargs="+", metavar="RUNTIME=DIR", help="time these artifacts only"
    )
    args = parser.parse_args()
    rows, records = [], []
    if args.artifacts:
        paths = dict(item.split("=", 1) for item in args.artifacts)
        manifest = open_runtime(next(iter(paths.values()))).manifest
        for threads in args.threads:
            runtimes, _spacer = open_all(paths, threads, args.sessions)
            res = int(manifest.preprocessing.get("resolution", 224))
            batch = np.random.default_rng(0).standard_normal((1, 3, res, res))
            times = interleaved(
                runtimes, batch.astype(np.float32), args.runs, args.warmup, settle=args.settle
            )
            first = times[next(iter(paths))]["median"]
            rows.append(
                [manifest.model, threads]
                + [
                    f"{times[n]['median']:.2f} ({times[n]['min']:.2f}) "
                    f"{first / times[n]['median']:.2f}x"
                    for n in times
                ]
            )
            records.append(
                {"model": manifest.model, "threads": threads, "ms": times}
            )  # fmt: skip
        print_table(
            f"median (min) ms, interleaved; speed-up against {next(iter(paths))}",
            ["model", "threads", *paths],
            rows,
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(records, indent=1) + "\n")
        return
    for model in args.models:
        for precision in args.precisions:
            paths = {
                name: bench.cached_artifact(model, target, precision)[0]
                for target, name in TARGETS.items()
            }
            for threads in args.threads:
                runtimes, _spacer = open_all(paths, threads, args.sessions)
                batch = np.random.default_rng(0).standard_normal((1, 3, 224, 224))
                times = interleaved(
                    runtimes, batch.astype(np.float32), args.runs, args.warmup, settle=args.settle
                )
                ratio = times["executorch"]["median"] / times["litert"]["median"]
                rows.append(
                    [model, precision, threads]
                    + [f"{times[n]['median']:.2f} ({times[n]['min']:.2f})" for n in times]
                    + [f"{ratio:.2f}x"]
                )
                records.append(
                    {"model": model, "precision": precision, "threads": threads, "ms": times}
                )
    print_table(
        "median (min) ms, interleaved",
        ["model", "precision", "threads", *TARGETS.values(), "executorch / litert"],
        rows,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1) + "\n")


if __name__ == "__main__":
    main()
