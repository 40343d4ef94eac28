"""Where int8 hurts on the ONNX target, and which blocks to keep in float.

    .venv/bin/python benchmarks/onnx_int8_recipes.py [--variant 26m] [--weights CKPT]
        [--steps 4]

1. Op-type recipes (all types / all but Softmax+LayerNorm / Conv+Gemm+MatMul / Conv only).
2. Conv-only with one block at a time kept in float (leave-one-block-out).
3. Greedy forward selection: keep in float the block whose exclusion helps most, repeat.
Selection is scored on the calibration photos (logits SQNR vs the fp32 graph); every row is
also shown on the evaluation photos, which play no part in the choice.
Defaults to 26m with the test fixture weights (what the thresholds are defined on).
Writes benchmarks/results/onnx_int8_recipes_<variant>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from mfdeploy.console import print_table
from mfdeploy.export import export_artifact
from mfdeploy.export import onnx_quant as quant
from mfdeploy.export.common import calibration_inputs
from mfdeploy.metrics import cosine, sqnr_db
from mfdeploy.models import load_source
from mfdeploy.photos import resolve_images
from mfdeploy.preprocessing import Preprocessing, load_image, preprocess

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_26M = ROOT / "tests" / "fixtures" / "mobile_former_26m.safetensors"
PREVIOUS_FLOAT_SCOPES = ("lite", "blocks.0", "blocks.1")
RESULTS = Path(__file__).parent / "results"


def run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {"input": x[i : i + 1]})[0] for i in range(len(x))])


def block_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "blocks" else parts[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="26m")
    parser.add_argument("--weights", help="default: the 26m test fixture, else synthetic")
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    weights = args.weights or (str(FIXTURE_26M) if args.variant == "26m" else None)
    source = load_source(args.variant, weights)
    calib = calibration_inputs(None, None, Preprocessing())
    evaluation = np.stack([preprocess(load_image(p)) for p in resolve_images(None, "evaluation")])
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path, _ = export_artifact(
            "onnx", args.variant, out=tmp / "fp32", source=source, ort_format=False
        )
        fp32 = path / "model.onnx"
        prepared = tmp / "prepared.onnx"
        quant.prepare(fp32, prepared)
        model = onnx.load(str(prepared))
        scopes = {
            o: quant.node_module(n, {}) for n in onnx.load(str(fp32)).graph.node for o in n.output
        }
        ref_cal, ref_eval = run(prepared, calib), run(prepared, evaluation)

        def score(label: str, recipe: str, entries: tuple[str, ...]) -> dict:
            plan = quant.make_plan(model, scopes, recipe, entries, "minmax")
            out = tmp / "q.onnx"
            with contextlib.redirect_stdout(io.StringIO()):
                quant.quantize_static_qdq(prepared, out, calib, plan)
            q_cal, q_eval = run(out, calib), run(out, evaluation)
            row = {
                "case": label,
                "recipe": recipe,
                "float": list(entries),
                "quantized_nodes": plan.quantized_nodes,
                "calibration": {
                    "sqnr_db": sqnr_db(ref_cal, q_cal),
                    "cosine": cosine(ref_cal, q_cal),
                },
                "evaluation": {
                    "sqnr_db": sqnr_db(ref_eval, q_eval),
                    "cosine": cosine(ref_eval, q_eval),
                },
            }
            rows.append(row)
            print(
                f"{label:50s} cal {row['calibration']['sqnr_db']:6.2f} dB  "
                f"eval {row['evaluation']['sqnr_db']:6.2f} dB",
                flush=True,
            )
            return row

        score("all op types", "full", ())
        score("all but Softmax, LayerNormalization", "full", ("Softmax", "LayerNormalization"))
        score("Conv + Gemm + MatMul", "linear", ())
        score("Conv only", "conv", ())
        blocks = sorted(
            {
                block_of(quant.node_module(n, scopes))
                for n in model.graph.node
                if n.op_type == "Conv"
            }
        )
        for block in blocks:
            score(f"Conv only, {block} float", "conv", (block,))
        chosen: list[str] = []
        for step in range(args.steps):
            best = None
            for block in blocks:
                if block in chosen:
                    continue
                row = score(f"greedy {step}: + {block}", "conv", (*chosen, block))
                if best is None or row["calibration"]["sqnr_db"] > best[1]:
                    best = (block, row["calibration"]["sqnr_db"])
            chosen.append(best[0])
            print(f"greedy step {step}: keep {chosen} in float", flush=True)
        score(  # the float scopes hand-picked on 26m before they were measured per export
            f"previous default ({', '.join(PREVIOUS_FLOAT_SCOPES)} float)",
            "conv",
            PREVIOUS_FLOAT_SCOPES,
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    result_path = RESULTS / f"onnx_int8_recipes_{args.variant}.json"
    result_path.write_text(json.dumps({"greedy": chosen, "rows": rows}, indent=2) + "\n")
    print_table(
        f"int8 recipes, {args.variant}: logits vs fp32 (calibration | evaluation photos)",
        ["case", "nodes of int8 types", "SQNR cal", "cos cal", "SQNR eval", "cos eval"],
        [
            [
                r["case"],
                r["quantized_nodes"],
                f"{r['calibration']['sqnr_db']:.2f}",
                f"{r['calibration']['cosine']:.4f}",
                f"{r['evaluation']['sqnr_db']:.2f}",
                f"{r['evaluation']['cosine']:.4f}",
            ]
            for r in rows
            if not r["case"].startswith("greedy")
        ],
    )
    print(f"greedy selection: {chosen}")
    print(f"wrote {result_path}")


if __name__ == "__main__":
    main()
