"""How far LiteRT int8-weights can get ahead of fp32 on Mobile-Former: the deploy form and the
same form with parts of its token path removed (not the model), exported at both precisions
and timed interleaved in one process.

    PYTHONPATH=. .venv/bin/python benchmarks/token_path_int8.py [--variant 294m]
        [--precisions fp32 int8-weights int8] [--runs 300] [--sessions 2] [--threads 1]

An int8-weights file differs from the fp32 one only in the GEMMs that carry int8 weights;
everything else (depthwise convolutions, the dynamic ReLU's passes over the maps, the
bridges' matmuls and softmaxes, LayerNorms, transposes) runs the same float32 kernels in both
and caps their ratio. Each ablation (benchmarks/deploy_vs_reference.py's `--ablations`)
removes one part from both files: the difference to the deploy form is what that part costs
in each, and its ratio is what the rest reaches without it. "convolutions only" (no bridges,
no Former, ReLU for the dynamic ReLU) is the ceiling no rewrite of the token path can pass.
`--precisions` adds static int8 (each form's own measured float set) for comparison. Prints
the table and writes benchmarks/results/token_path_int8.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from deploy_vs_reference import NOT_THE_MODEL, export_forms
from runtimes import interleaved, open_all

from mfdeploy.console import counted, print_table

OUT = Path(__file__).parent / "results" / "token_path_int8.json"
PRECISIONS = ["fp32", "int8-weights"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="294m")
    parser.add_argument(
        "--precisions", nargs="+", default=PRECISIONS, help="fp32 first (default: %(default)s)"
    )
    parser.add_argument("--runs", type=int, default=300, help="timed runs per file (>= 50)")
    parser.add_argument("--sessions", type=int, default=2, help="interpreters per file")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if args.precisions[0] != "fp32":
        parser.error("--precisions: fp32 first (the others are compared with it)")
    forms = ["deploy", *NOT_THE_MODEL]
    with tempfile.TemporaryDirectory() as tmp:
        paths = {
            (form, precision): path
            for precision in args.precisions
            for form, path in export_forms(
                args.variant, "tflite", forms, Path(tmp), precision
            ).items()
        }  # fmt: skip
        names = {f"{form} / {precision}": path for (form, precision), path in paths.items()}
        runtimes, spacer = open_all(names, args.threads, args.sessions)
        x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
        timed = interleaved(runtimes, x, args.runs, warmup=10)
        del spacer
    ms = {key: timed[f"{key[0]} / {key[1]}"]["median"] for key in paths}
    others = args.precisions[1:]
    rows, results = [], []
    for form in forms:
        fp32 = ms[form, "fp32"]
        results.append({"form": form} | {p: ms[form, p] for p in args.precisions})
        costs = [ms["deploy", p] - ms[form, p] for p in args.precisions]
        rows.append(
            [form]
            + [f"{ms[form, p]:.2f}" for p in args.precisions]
            + [f"{fp32 / ms[form, p]:.2f}x" for p in others]
            + ["-" if form == "deploy" else " / ".join(f"{c:.2f}" for c in costs)]
        )
    print_table(
        f"{args.variant} on LiteRT, {counted(args.threads, 'thread')}, median of {args.runs} runs "
        f"interleaved over {args.sessions} interpreters per file (ms)",
        ["form", *args.precisions, *(f"fp32 / {p}" for p in others),
         "removed part: " + " / ".join(args.precisions)],
        rows,
    )  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {"variant": args.variant, "threads": args.threads, "runs": args.runs}
    args.out.write_text(json.dumps({**record, "forms": results}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
