"""ONNX Runtime time per operator type, from its own profiler, for artifacts side by side.

    PYTHONPATH=. .venv/bin/python benchmarks/ort_ops.py NAME=ART_DIR ... [--runs 60] [--top 14]

Each artifact's `model.onnx` runs `--runs` times in one session (1 thread, CPU EP, the
input a seeded normal image) with ORT's profiler on; the kernel times are summed per
operator type and divided by the runs. The sessions run one after the other, not
interleaved: compare shares and op types, and take latency ratios from
benchmarks/runtimes.py. Prints one table (ms per run; the count of nodes in brackets).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from mfdeploy.console import print_table


def op_times(model: Path, runs: int) -> tuple[Counter, Counter]:
    """(ms per run, nodes) by operator type."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.intra_op_num_threads = 1
        options.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        feed = session.get_inputs()[0]
        shape = [d if isinstance(d, int) else 1 for d in feed.shape]
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        for _ in range(runs):
            session.run(None, {feed.name: x})
        events = json.loads(Path(session.end_profiling()).read_text())
    total, nodes = Counter(), Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            total[event["args"]["op_name"]] += event["dur"] / 1000 / runs
            nodes[event["args"]["op_name"]] += 1
    return total, Counter({op: n // runs for op, n in nodes.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifacts", nargs="+", help="NAME=ARTIFACT_DIR")
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--top", type=int, default=14)
    args = parser.parse_args()
    measured = {}
    for item in args.artifacts:
        name, _, path = item.partition("=")
        measured[name] = op_times(Path(path) / "model.onnx", args.runs)
    ranked = Counter()
    for total, _ in measured.values():
        ranked.update(total)
    ops = [op for op, _ in ranked.most_common(args.top)]
    rows = [
        [op, *(f"{t[op]:.2f} ({n[op]})" if op in t else "-" for t, n in measured.values())]
        for op in ops
    ]
    rows.append(["all operators", *(f"{sum(t.values()):.2f}" for t, _ in measured.values())])
    print_table("ONNX Runtime kernel ms per run by operator type (nodes), 1 thread",
                ["operator", *measured], rows)  # fmt: skip


if __name__ == "__main__":
    main()
