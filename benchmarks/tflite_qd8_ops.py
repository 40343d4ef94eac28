"""Which float convolutions / linears pay for qd8 on LiteRT: the rules of `qd8_rule.py`,
alternatives to them, and op by op.

    PYTHONPATH=. .venv/bin/python benchmarks/tflite_qd8_ops.py [--model 294m] [--runs 150]

From the model's LiteRT fp32 artifact (the bench cache's, exported on a miss), builds
int8-weights files with `tflite.dynamic_range_int8`: the bytes rule alone (as shipped in
sessions 24-26); as `mfdeploy export --precision int8-weights` chooses (the bytes rule and
the wide GEMMs measured on the calibration photos, `tflite_wide_qd8.choose_wide`); the
bytes rule with every wide GEMM, or every GEMM of other widths, or every op; and the bytes
rule plus one op it leaves float (one file per such op). All run in one process,
interleaved, 1 thread, XNNPACK, on a seeded normal input: the median of `--runs` runs; the
bytes rule's file runs twice, first and last in each round, as a control. Prints the table
(an op's cost in qd8 is its row's ms minus the bytes rule's) and writes
benchmarks/results/tflite_qd8_ops_<model>.json."""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _common import RESULTS
from runtimes import interleaved

from mfdeploy.artifact import Manifest
from mfdeploy.console import info, print_table
from mfdeploy.export.common import calibration_inputs
from mfdeploy.export.qd8_rule import (
    MIN_INNER,
    MIN_OUTPUTS,
    MIN_WEIGHT_TO_INPUT,
    qd8_pays,
    wide_gemm,
)
from mfdeploy.export.tflite import INT8_WEIGHTS_TARGET_SQNR, dynamic_range_int8, qd8_builder
from mfdeploy.export.tflite_qd8 import float_ops
from mfdeploy.export.tflite_wide_qd8 import choose_wide
from mfdeploy.harness import bench
from mfdeploy.harness.report import machine
from mfdeploy.preprocessing import Preprocessing

#: (weight elements, input elements, K, N) -> qd8?
Rule = Callable[[int, int, int, int], bool]

BYTES = f"weights >= {MIN_WEIGHT_TO_INPUT:g}x input (the bytes rule alone, sessions 24-26)"
MEASURED = "that + the wide GEMMs measured to keep 22 dB (int8-weights as shipped)"
RULES: dict[str, Rule] = {
    BYTES: lambda w, i, k, n: qd8_pays(w, i),
    f"that + every wide GEMM (K >= {MIN_INNER}, N >= {MIN_OUTPUTS})": (
        lambda w, i, k, n: qd8_pays(w, i) or wide_gemm(w, n)
    ),
    "that + every GEMM with K >= 32, N >= 64 (session 27's wide rule)": (
        lambda w, i, k, n: qd8_pays(w, i) or (k >= 32 and n >= 64)
    ),
    "that + every GEMM with K >= 32, N >= 32": (
        lambda w, i, k, n: qd8_pays(w, i) or (k >= 32 and n >= 32)
    ),
    "that + every GEMM with K >= 64, N >= 64": (
        lambda w, i, k, n: qd8_pays(w, i) or (k >= 64 and n >= 64)
    ),
    "qd8, every op": lambda w, i, k, n: True,
}


class Interpreter:
    """One LiteRT interpreter, 1 thread, XNNPACK, with the `.run(batch)` the timer calls."""

    def __init__(self, path: Path):
        from ai_edge_litert.interpreter import Interpreter as LiteRT

        self.interpreter = LiteRT(model_path=str(path), num_threads=1)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.input["index"], batch)
        self.interpreter.invoke()
        return batch


def candidates(path: Path) -> list[tuple[str, tuple[int, int, int, int], str]]:
    """(scope, (W, I, K, N), description) of each float conv / linear with constant weights."""
    found = []
    for op in float_ops(path):
        w, i, n = op.weight_elements, op.input_elements, op.outputs
        shape = "x".join(str(d) for d in op.input_shape)
        what = f"{op.kind} on {shape}, K {w // n}, N {n}, weights {w / i:.3f}x input"
        found.append((op.scope, (w, i, w // n, n), what))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="294m", help="a variant or model name (294m, ...)")
    parser.add_argument("--runs", type=int, default=150)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    artifact = bench.cached_artifact(args.model, "tflite", "fp32")[0]
    fp32 = artifact / "model.tflite"
    ops = candidates(fp32)
    chosen = {label: [s for s, sizes, _ in ops if rule(*sizes)] for label, rule in RULES.items()}
    prep = Preprocessing.from_dict(Manifest.load(artifact).preprocessing)
    photos = calibration_inputs(None, None, prep).transpose(0, 2, 3, 1)  # the fp32 file's NHWC
    with tempfile.TemporaryDirectory() as tmp:
        shipped = Path(tmp) / "measured.tflite"
        measured = choose_wide(
            fp32, photos, INT8_WEIGHTS_TARGET_SQNR, qd8_builder(fp32), Path(tmp), shipped
        )
        chosen = {BYTES: chosen[BYTES], MEASURED: measured.scopes, **chosen}
        files = {"fp32": fp32}
        for n, (label, scopes) in enumerate(chosen.items()):
            files[label] = shipped if label == MEASURED else Path(tmp) / f"rule-{n}.tflite"
            if label != MEASURED:
                dynamic_range_int8(fp32, files[label], scopes=scopes)
        left = [(scope, what) for scope, sizes, what in ops if scope not in chosen[BYTES]]
        for n, (scope, what) in enumerate(left, start=1):
            files[f"bytes rule + op {n}: {what}"] = Path(tmp) / f"plus-{n}.tflite"
            scopes = [*chosen[BYTES], scope]
            dynamic_range_int8(fp32, files[f"bytes rule + op {n}: {what}"], scopes=scopes)
        # the same file again, timed last in each round: how far two runners of one file
        # differ here is the noise of this table
        files[f"{BYTES}, again"] = files[BYTES]
        info(f"{args.model}: timing {len(files)} LiteRT files interleaved, 1 thread")
        runners = {label: Interpreter(path) for label, path in files.items()}
        shape = runners["fp32"].input["shape"]
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        # one untimed run before each timed one: a run starts with its own model in the caches,
        # as in an app, not behind a 46 MB fp32 file (that slot ran 0.2 ms slower without)
        times = interleaved(runners, x, args.runs, args.warmup, block=1, settle=1)
    bytes_rule = times[BYTES]["median"]
    rows = [
        {
            "variant": label,
            "ops_in_qd8": len(chosen[label]) if label in chosen else None,
            "median_ms": round(t["median"], 3),
            "vs_bytes_rule_ms": round(t["median"] - bytes_rule, 3),
            "speedup_vs_fp32": round(times["fp32"]["median"] / t["median"], 3),
        }
        for label, t in times.items()
    ]
    print_table(
        f"{args.model} LiteRT int8-weights (qd8) of {len(ops)} convs / linears, 1 thread, "
        f"median of {args.runs} interleaved runs",
        ["variant", "ops in qd8", "ms", "vs bytes rule", "vs fp32"],
        [[r["variant"], "-" if r["ops_in_qd8"] is None else str(r["ops_in_qd8"]),
          f"{r['median_ms']:.2f}", f"{r['vs_bytes_rule_ms']:+.2f}",
          f"{r['speedup_vs_fp32']:.2f}x"] for r in rows],
    )  # fmt: skip
    out = RESULTS / f"tflite_qd8_ops_{args.model}.json"
    results = {"machine": machine(), "runs": args.runs, "measured": measured.to_dict()}
    out.write_text(json.dumps({**results, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
