"""ONNX target: fp32 / fp16 / int8 (static QDQ) / int8-dynamic, plus the ORT Mobile format.

Opset 18: the first opset the torch dynamo exporter emits by default, with
LayerNormalization (17) as one node; ORT Mobile (1.16+) runs it, and the NNAPI / Core ML
execution-provider checks below say which nodes those providers would take.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import warnings
from pathlib import Path

import numpy as np
import torch

from mfdeploy.artifact import Manifest, TensorSpec
from mfdeploy.console import info, progress
from mfdeploy.errors import MfdeployError
from mfdeploy.export.common import SourceModel, base_manifest, calibration_inputs, export_module

PRECISIONS = ("fp32", "fp16", "int8", "int8-dynamic")
OPSET = 18
MODEL_FILE = "model.onnx"
ORT_FILE = "model.ort"
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
DEFAULT_CALIB_COUNT = 32
# Kept out of int8 by default: measured with `benchmarks/onnx_int8_recipes.py` (see README).
DEFAULT_FLOAT_OPS = ("Softmax", "LayerNormalization")
PACKAGES = ("onnx", "onnxruntime", "onnxscript", "onnxsim", "onnxslim")


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--dynamic-batch", action="store_true", help="ONNX: dynamic batch dimension")
    group.add_argument("--io-fp16", action="store_true", help="ONNX fp16: float16 inputs/outputs")
    group.add_argument(
        "--calib-method",
        choices=CALIBRATION_METHODS,
        default="minmax",
        help="ONNX int8 calibration method (default minmax)",
    )
    group.add_argument(
        "--float-ops",
        help="ONNX int8: comma-separated op types kept in float "
        f"(default {','.join(DEFAULT_FLOAT_OPS)}; 'none' quantises everything)",
    )


def _quiet():
    """Silence converter chatter (it goes to stdout/stderr and warnings)."""
    import logging

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    return stack


def torch_to_onnx(module: torch.nn.Module, example: torch.Tensor, dynamic_batch: bool):
    """The dynamo exporter (torch.export underneath), with its own graph optimiser."""
    import onnx

    dynamic_shapes = ({0: torch.export.Dim("batch", min=1, max=1024)},) if dynamic_batch else None
    with _quiet():
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            opset_version=OPSET,
            input_names=["input"],
            output_names=["logits"],
            dynamic_shapes=dynamic_shapes,
            optimize=True,
            verbose=False,
        )
    buffer = io.BytesIO()
    with _quiet():
        program.save(buffer)
    return onnx.load_from_string(buffer.getvalue())


def simplify(model):
    """Run onnxsim and onnxslim, keep whichever leaves fewer nodes (ties: onnxsim).

    Measured on 26m deploy form: exporter 884 nodes, onnxsim 877, onnxslim 885: the dynamo
    exporter's optimiser already folds most constants, so the gain is small either way.
    """
    candidates = [("none", model)]
    with _quiet(), contextlib.suppress(Exception):
        import onnxsim

        simplified, ok = onnxsim.simplify(model)
        if ok:
            candidates.append(("onnxsim", simplified))
    with _quiet(), contextlib.suppress(Exception):
        import onnxslim

        candidates.append(("onnxslim", onnxslim.slim(model)))
    name, best = min(candidates[::-1], key=lambda c: len(c[1].graph.node))
    return best, {n: len(m.graph.node) for n, m in candidates}, name


def check(model) -> None:
    import onnx

    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)


def to_fp16(model, io_fp16: bool):
    """float16 weights and activations with ORT's maintained converter.

    Nothing is blocked: measured on 26m, every op in float16 keeps cosine >= 0.9999 and
    the same top-1 (tests/test_onnx_target.py); the converter itself keeps Resize-style
    ops it knows to be unsafe in float32.
    """
    from onnxruntime.transformers.float16 import convert_float_to_float16

    with _quiet():
        converted = convert_float_to_float16(model, keep_io_types=not io_fp16)
    return topologically_sorted(converted)


def topologically_sorted(model):
    """Reorder nodes so each comes after its inputs' producers (the fp16 converter appends
    its Cast nodes at the end, which ONNX checkers and the mobile EP analysis reject)."""
    graph = model.graph
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise MfdeployError("ONNX graph has a cycle or a missing input after conversion")
        for node in ready:
            ordered.append(node)
            available.update(node.output)
        pending = [n for n in pending if not any(n is r for r in ready)]
    del graph.node[:]
    graph.node.extend(ordered)
    return model


class _Reader:
    """onnxruntime CalibrationDataReader over preprocessed photos, one image per batch."""

    def __init__(self, batches: np.ndarray, input_name: str, batch: int):
        self.items = [batches[i : i + batch] for i in range(0, len(batches) - batch + 1, batch)]
        self.input_name = input_name
        self.iterator = iter(progress(self.items, "int8 calibration"))

    def get_next(self):
        item = next(self.iterator, None)
        return None if item is None else {self.input_name: item}

    def rewind(self) -> None:
        self.iterator = iter(self.items)


def _float_ops(spec: str | None) -> tuple[str, ...]:
    if spec is None:
        return DEFAULT_FLOAT_OPS
    if spec.strip().lower() == "none":
        return ()
    return tuple(op.strip() for op in spec.split(",") if op.strip())


def quantize_int8(
    fp32_path: Path,
    out_path: Path,
    calibration: np.ndarray,
    batch: int,
    method: str,
    float_ops: tuple[str, ...],
) -> list[str]:
    """Static QDQ: per-channel symmetric int8 weights, int8 activations. Returns op types."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = out_path.with_name("prepared.onnx")
    with _quiet():
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
    op_types = sorted({n.op_type for n in onnx.load(str(prepared)).graph.node} - set(float_ops))
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    with _quiet():
        quantize_static(
            str(prepared),
            str(out_path),
            _Reader(calibration, "input", batch),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=op_types,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[method],
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
        )
    prepared.unlink()
    return op_types


def quantize_dynamic_int8(fp32_path: Path, out_path: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(str(fp32_path), str(out_path), weight_type=QuantType.QInt8)


def save_ort_format(model_path: Path, ort_path: Path) -> None:
    """The flatbuffer ORT Mobile loads, with the portable (basic) optimisations applied."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(ort_path)
    options.add_session_config_entry("session.save_model_format", "ORT")
    ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


def mobile_ep_support(model_path: Path) -> dict:
    """Which nodes the NNAPI (Android) and Core ML (iOS) execution providers would take."""
    import logging

    import onnx
    from onnxruntime.tools.mobile_helpers import usability_checker as checker

    logging.getLogger("onnxruntime").setLevel(logging.ERROR)
    model = onnx.shape_inference.infer_shapes(onnx.load(str(model_path)))
    result = {}
    checks = {
        "nnapi": lambda m: checker.check_nnapi_partitions(m, require_fixed_input_sizes=True),
        "coreml_mlprogram": lambda m: checker.check_coreml_partitions(
            m, True, "coreml_supported_mlprogram_ops.md"
        ),
    }
    for name, run in checks.items():
        try:
            with _quiet():
                part = run(model)
            result[name] = {
                "nodes": part.num_nodes,
                "supported_nodes": part.num_supported_nodes,
                "partitions": part.num_partitions,
                "unsupported_ops": sorted(part.unsupported_ops),
                "suitability": part.suitability().name,
            }
        except Exception as exc:  # the checker is advisory: never fail an export on it
            result[name] = {"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}
    return result


def add_metadata(model, manifest: Manifest) -> None:
    prep = manifest.preprocessing
    entries = {
        "model": manifest.model,
        "variant": manifest.variant or "",
        "labels_file": manifest.labels_file,
        "mean": ",".join(str(v) for v in prep["mean"]),
        "std": ",".join(str(v) for v in prep["std"]),
        "pixel_scale": str(prep["pixel_scale"]),
        "input_layout": manifest.input.layout or "NCHW",
        "source_checkpoint_sha256": manifest.source_checkpoint_sha256 or "",
        "mfdeploy_version": manifest.tool_versions.get("mfdeploy", ""),
        "precision": manifest.precision,
    }
    del model.metadata_props[:]
    for key, value in entries.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value


def export(
    source: SourceModel,
    staging: Path,
    *,
    precision: str = "fp32",
    form: str = "deploy",
    batch: int = 1,
    dynamic_batch: bool = False,
    io_fp16: bool = False,
    calib: str | None = None,
    calib_count: int | None = None,
    calib_method: str = "minmax",
    float_ops: str | None = None,
    ort_format: bool = True,
) -> Manifest:
    import onnx
    import onnxruntime  # noqa: F401  (fail early when the extra is missing)

    if calib_method not in CALIBRATION_METHODS:
        raise MfdeployError(f"unknown calibration method {calib_method!r}")
    prep = source.preprocessing
    res = prep.resolution
    calibration = None
    if precision == "int8":  # read the photos first: bad input fails before slow work
        calibration = calibration_inputs(calib, calib_count or DEFAULT_CALIB_COUNT, prep)
    module = export_module(source, form)
    # torch.export specialises a dimension of size 1, so trace a dynamic batch with 2.
    example = torch.zeros(max(batch, 2) if dynamic_batch else batch, 3, res, res)
    info(f"exporting {source.name} ({form} form) to ONNX opset {OPSET}")
    model = torch_to_onnx(module, example, dynamic_batch)
    model, node_counts, simplifier = simplify(model)
    check(model)
    fp32_path = staging / "model_fp32.onnx"
    onnx.save(model, str(fp32_path))

    extra: dict = {
        "opset": OPSET,
        "simplifier": simplifier,
        "node_counts": node_counts,
        "dynamic_batch": dynamic_batch,
    }
    in_dtype = out_dtype = "float32"
    if precision == "fp32":
        final = model
    elif precision == "fp16":
        final = to_fp16(model, io_fp16)
        extra["float32_ops"] = []
        if io_fp16:
            in_dtype = out_dtype = "float16"
    elif precision == "int8":
        ops = _float_ops(float_ops)
        q_path = staging / "model_int8.onnx"
        info(f"int8 static QDQ, {len(calibration)} calibration photos, method {calib_method}")
        quantized = quantize_int8(fp32_path, q_path, calibration, batch, calib_method, ops)
        final = onnx.load(str(q_path))
        q_path.unlink()
        extra.update(
            calibration_images=len(calibration),
            calibration_method=calib_method,
            float_op_types=list(ops),
            quantized_op_types=quantized,
            weights="int8 per-channel symmetric",
            activations="int8 per-tensor asymmetric",
        )
    else:  # int8-dynamic
        q_path = staging / "model_int8.onnx"
        quantize_dynamic_int8(fp32_path, q_path)
        final = onnx.load(str(q_path))
        q_path.unlink()
        extra.update(weights="int8 (dynamic quantisation: activations quantised at run time)")
    fp32_path.unlink()

    batch_dim: int | str = "batch" if dynamic_batch else batch
    manifest = base_manifest(
        source,
        target="onnx",
        precision=precision,
        form=form if source.family == "mobile_former" else "reference",
        model_file=MODEL_FILE,
        input_spec=TensorSpec("input", [batch_dim, 3, res, res], in_dtype, "NCHW"),
        output_spec=TensorSpec("logits", [batch_dim, source.num_classes], out_dtype),
        packages=PACKAGES,
    )
    add_metadata(final, manifest)
    model_path = staging / MODEL_FILE
    onnx.save(final, str(model_path))
    if ort_format:
        save_ort_format(model_path, staging / ORT_FILE)
        extra["ort_file"] = ORT_FILE
    extra["mobile_execution_providers"] = mobile_ep_support(model_path)
    manifest.extra = extra
    return manifest
