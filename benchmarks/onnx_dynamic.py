"""ONNX Runtime's dynamic int8 (int8 weights, activations quantised at run time): where it
pays and where it does not.

    PYTHONPATH=. .venv/bin/python benchmarks/onnx_dynamic.py [--model 294m] [--images 32]
        [--runs 100] [--pointwise-ratios 0.25 1 2]

Exports the model's fp32 and int8 ONNX artifacts with its default weights, as `mfdeploy
export` does: int8 as shipped, and with the passes after the static one switched off step
by step (without the float 1x1 convolutions rewritten as MatMul, as in session 25; without
the dynamic pass over the linears too, as before it), and with the rewrite's threshold
(`onnx_pointwise.MIN_WEIGHT_TO_INPUT`) at each `--pointwise-ratios` value (each int8 export
runs its own runtime check, so a variant may keep more modules float). Then builds from the
fp32 graph the dynamic variants ORT's `quantize_dynamic` offers: every op type it quantises
(convolutions as ConvInteger, per-tensor weights), the same with the convolution weights
re-quantised per output channel, and MatMul / Gemm only (what `--precision int8-dynamic`
shipped until session 29; it adds measured pointwise convolutions now); and ORT's
weight-only MatMulNBits (8 bits) for the linears, on the fp32 graph and in
place of the int8 export's dynamic pass (tried in session 27, not shipped). Each runs the
evaluation photos on ONNX Runtime (SQNR and top-1 agreement against fp32) and is timed
interleaved in one process, 1 thread. Prints the table and writes
benchmarks/results/onnx_dynamic_<model>.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import onnx
import onnxruntime as ort
from _common import RESULTS
from onnx import numpy_helper
from runtimes import interleaved

from mfdeploy.artifact import Manifest
from mfdeploy.console import print_table
from mfdeploy.export import onnx as onnx_target
from mfdeploy.export import onnx_pointwise as pointwise
from mfdeploy.export import onnx_quant as quant
from mfdeploy.harness.int8_check import export_checked
from mfdeploy.harness.report import machine
from mfdeploy.metrics import sqnr_db
from mfdeploy.photos import resolve_images
from mfdeploy.preprocessing import Preprocessing, preprocess_batch


class Session:
    """One ONNX Runtime CPU session, 1 thread, with the `.run(batch)` the timer calls."""

    def __init__(self, path: Path):
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.name = self.session.get_inputs()[0].name

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.name: batch})[0]


def static_only(int8_path: Path, out_path: Path) -> int:
    """Stands in for a pass after the static one (`quantize_float_linears`,
    `pointwise_as_matmul`): the graph as it was."""
    shutil.copy(int8_path, out_path)
    return 0


def float_modules(model_path: Path) -> int | None:
    """How many modules an int8 artifact keeps float (None: not a calibrated int8 export)."""
    manifest = model_path.parent / "manifest.json"
    if not manifest.is_file():
        return None
    plan = Manifest.load(model_path.parent).extra.get("int8_plan")
    return None if plan is None else len(plan["float_modules"])


def per_channel_convs(fp32: Path, dynamic: Path, out: Path) -> None:
    """ORT's ConvInteger weights re-quantised per output channel (symmetric, zero point 0):
    its weight-scale input becomes a per-channel vector the output multiply broadcasts."""
    floats = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(fp32)).graph.initializer}
    model = onnx.load(str(dynamic))
    tensors = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type != "ConvInteger":
            continue
        name = node.input[1].removesuffix("_quantized")
        weight = floats[name]
        amax = np.abs(weight).reshape(len(weight), -1).max(axis=1)
        scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
        q = np.clip(np.round(weight / scale.reshape(-1, 1, 1, 1)), -127, 127).astype(np.int8)
        tensors[node.input[1]].CopyFrom(numpy_helper.from_array(q, node.input[1]))
        scale_name = f"{name}_scale"
        tensors[scale_name].CopyFrom(numpy_helper.from_array(scale.reshape(-1, 1, 1), scale_name))
    onnx.save(model, str(out))


def gemms_as_matmuls(model) -> int:
    """Every Gemm with a constant weight (no transA, alpha = beta = 1) as MatMul (+ Add of its
    bias), in place: ORT's MatMulNBits quantizer takes MatMul only. How many it rewrote."""
    from onnx import helper

    weights = {t.name: t for t in model.graph.initializer}
    nodes, rewritten = [], 0
    for node in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        plain = not attrs.get("transA") and attrs.get("alpha", 1.0) == attrs.get("beta", 1.0) == 1.0
        if node.op_type != "Gemm" or node.input[1] not in weights or not plain:
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(weights[node.input[1]])
        name = f"{node.input[1]}_in_out"
        model.graph.initializer.append(
            numpy_helper.from_array(
                np.ascontiguousarray(weight.T if attrs.get("transB") else weight), name
            )
        )
        product = f"{node.output[0]}_product" if len(node.input) > 2 else node.output[0]
        nodes.append(helper.make_node("MatMul", [node.input[0], name], [product]))
        if len(node.input) > 2:
            nodes.append(helper.make_node("Add", [product, node.input[2]], [node.output[0]]))
        rewritten += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return rewritten


def nbits_linears(in_path: Path, out_path: Path) -> int:
    """In place of `quantize_float_linears`: every MatMul / Gemm with a constant float weight
    as ORT's MatMulNBits, 8 bits, symmetric blocks of 128 along the input, int8 compute
    (accuracy level 4): the weight-only kernel ORT tunes for LLM decoding, few rows."""
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    model = onnx.load(str(in_path))
    gemms_as_matmuls(model)
    config = DefaultWeightOnlyQuantConfig(
        block_size=128, is_symmetric=True, accuracy_level=4, bits=8
    )
    quantizer = MatMulNBitsQuantizer(model, algo_config=config)
    quantizer.process()
    quantizer.model.save_model_to_file(str(out_path), use_external_data_format=False)
    return sum(n.op_type == "MatMulNBits" for n in onnx.load(str(out_path)).graph.node)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="294m", help="a variant or model name (294m, ...)")
    parser.add_argument("--images", type=int, default=32, help="evaluation photos")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument(
        "--pointwise-ratios",
        type=float,
        nargs="*",
        default=[0.25, 1.0, 2.0],
        help="thresholds of the float 1x1 convolution rewrite to compare with the shipped one",
    )
    args = parser.parse_args()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)

        def export(precision: str, folder: str) -> Path:
            path, _ = export_checked(
                "onnx", model=args.model, precision=precision, out=tmp / folder, ort_format=False
            )
            return path / "model.onnx"

        files = {"fp32": export("fp32", "fp32")}
        prep = Preprocessing.from_dict(Manifest.load(files["fp32"].parent).preprocessing)
        photos = preprocess_batch(resolve_images(None, "evaluation", args.images), prep)
        photos = photos.astype(np.float32)
        with (
            mock.patch.object(quant, "quantize_float_linears", static_only),
            mock.patch.object(onnx_target, "pointwise_as_matmul", static_only),
        ):
            files["int8, static QDQ only (session 24)"] = export("int8", "int8-static")
        with mock.patch.object(onnx_target, "pointwise_as_matmul", static_only):
            files["int8, + dynamic linears (session 25)"] = export("int8", "int8-linears")
        shipped = pointwise.MIN_WEIGHT_TO_INPUT
        for ratio in sorted({*args.pointwise_ratios, shipped}):
            label = f"int8, + pointwise convolutions at weight >= {ratio:g}x input"
            if ratio == shipped:
                files[f"{label} (shipped)"] = export("int8", "int8")
                continue
            rewrite = functools.partial(pointwise.pointwise_as_matmul, ratio=ratio)
            with mock.patch.object(onnx_target, "pointwise_as_matmul", rewrite):
                files[label] = export("int8", f"int8-pointwise-{ratio:g}")
        every = tmp / "dynamic-all.onnx"
        quantize_dynamic(str(files["fp32"]), str(every), weight_type=QuantType.QInt8)
        files["dynamic, every op (ConvInteger, per-tensor)"] = every
        per_channel_convs(files["fp32"], every, tmp / "dynamic-pc.onnx")
        files["dynamic, convolutions per-channel"] = tmp / "dynamic-pc.onnx"
        quant.quantize_float_linears(files["fp32"], tmp / "dynamic-linears.onnx")
        files["dynamic, MatMul / Gemm only"] = tmp / "dynamic-linears.onnx"

        with mock.patch.object(quant, "quantize_float_linears", nbits_linears):
            files["int8, its linears as MatMulNBits 8-bit instead"] = export("int8", "int8-nbits")
        nbits_linears(files["fp32"], tmp / "nbits-linears.onnx")
        files["MatMulNBits 8-bit, MatMul / Gemm only"] = tmp / "nbits-linears.onnx"

        sessions = {label: Session(path) for label, path in files.items()}
        logits = {
            label: np.concatenate([s.run(photos[i : i + 1]) for i in range(len(photos))])
            for label, s in sessions.items()
        }
        times = interleaved(sessions, photos[:1], args.runs, args.warmup)
        sizes = {label: path.stat().st_size / 1e6 for label, path in files.items()}
        floats = {label: float_modules(path) for label, path in files.items()}
    ref = logits["fp32"]
    rows = [
        {
            "variant": label,
            "float_modules": floats.get(label),
            "sqnr_db": None if label == "fp32" else round(sqnr_db(ref, out), 2),
            "top1_agreement": float(np.mean(out.argmax(1) == ref.argmax(1))),
            "mb": round(sizes[label], 2),
            "median_ms": round(times[label]["median"], 3),
            "speedup": round(times["fp32"]["median"] / times[label]["median"], 3),
        }
        for label, out in logits.items()
    ]
    print_table(
        f"{args.model} on ONNX Runtime {ort.__version__}, 1 thread, {args.images} evaluation "
        f"photos, median of {args.runs} interleaved runs",
        ["variant", "float modules", "SQNR vs fp32", "top-1 agree", "MB", "ms", "vs fp32"],
        [
            [r["variant"], "-" if r["float_modules"] is None else str(r["float_modules"]),
             "-" if r["sqnr_db"] is None else f"{r['sqnr_db']:.2f} dB",
             f"{r['top1_agreement']:.2f}", f"{r['mb']:.1f}", f"{r['median_ms']:.2f}",
             f"{r['speedup']:.2f}x"]
            for r in rows
        ],
    )  # fmt: skip
    out = RESULTS / f"onnx_dynamic_{args.model}.json"
    out.write_text(json.dumps({"machine": machine(), "runs": args.runs, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
