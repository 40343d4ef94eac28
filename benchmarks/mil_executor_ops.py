"""Where the Core ML MIL executor spends a run: seconds per op type, one image, best of N.

    PYTHONPATH=. .venv/bin/python benchmarks/mil_executor_ops.py ARTIFACT_DIR ... [--repeat 7]

Each ARTIFACT_DIR is a Core ML artifact (`mfdeploy export --target coreml ...`). Run with
OPENBLAS_NUM_THREADS=1 for steady figures on a shared machine. Prints a table per program
and writes benchmarks/results/mil_executor_ops.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import time
from pathlib import Path

import numpy as np

from mfdeploy.runtimes.mil_executor import MilExecutor

OUT = Path(__file__).parent / "results" / "mil_executor_ops.json"


def op_seconds(executor: MilExecutor, feeds: dict, repeat: int) -> tuple[float, dict]:
    """(best total seconds, seconds per op type in that run) over `repeat` runs."""
    best: tuple[float, dict] = (float("inf"), {})
    evaluate = executor._evaluate
    for _ in range(repeat):
        spent: collections.Counter = collections.Counter()

        def timed(op, env, spent=spent):
            start = time.perf_counter()
            evaluate(op, env)
            spent[op.op_type] += time.perf_counter() - start

        executor._evaluate = timed
        start = time.perf_counter()
        executor.run(feeds)
        total = time.perf_counter() - start
        if total < best[0]:
            best = (total, dict(spent))
    executor._evaluate = evaluate
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", nargs="+", type=Path)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    results = {}
    for artifact in args.artifacts:
        executor = MilExecutor.from_mlpackage(artifact / "model.mlpackage")
        name = executor.input_names[0]
        x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
        executor.run({name: x})  # warm-up
        total, per_op = op_seconds(executor, {name: x}, args.repeat)
        results[artifact.name] = {"total_s": total, "per_op_s": per_op}
        print(f"\n{artifact.name}: {total * 1000:.1f} ms per image (best of {args.repeat})")
        for op, seconds in sorted(per_op.items(), key=lambda kv: -kv[1])[:12]:
            print(f"  {op:16} {seconds * 1000:8.1f} ms")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
