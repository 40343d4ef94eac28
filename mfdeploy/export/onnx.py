"""ONNX target: fp32 / fp16 / int8 (static QDQ) / int8-dynamic, plus the ORT Mobile format.

Opset 18: the first opset the torch dynamo exporter emits by default, with
LayerNormalization (17) as one node; ORT Mobile (1.16+) runs it, and the NNAPI / Core ML
execution-provider checks below say which nodes those providers would take.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from mfdeploy import derived_cache
from mfdeploy.artifact import Manifest, TensorSpec
from mfdeploy.console import info
from mfdeploy.errors import MfdeployError
from mfdeploy.export import onnx_quant as quant
from mfdeploy.export.common import (
    SourceModel,
    base_manifest,
    calibration_inputs,
    export_module,
    module_cache_entry,
)
from mfdeploy.export.depthwise_split import split_channel_multipliers
from mfdeploy.export.int8_sensitivity import float_plan
from mfdeploy.export.measured_subset import default_target
from mfdeploy.export.onnx_int8_dynamic import int8_dynamic
from mfdeploy.export.onnx_pointwise import pointwise_as_matmul

#: imported before staging, with signals held back (export_artifact)
CONVERTERS = ("onnx", "onnxruntime")
PRECISIONS = ("fp32", "fp16", "int8", "int8-dynamic")
#: int8-dynamic: the logits SQNR against fp32 its pointwise convolutions must keep
#: (onnx_int8_dynamic): verify's bound plus the margin the int8 search keeps over int8's
INT8_DYNAMIC_TARGET_SQNR = default_target("int8-dynamic", "onnx")
OPSET = 18
MODEL_FILE = "model.onnx"
ORT_FILE = "model.ort"
# fp16: an op type goes back to float32 while the fp16 logits' cosine to fp32 on the probe
# photos is below this (tighter than the 0.9995 acceptance threshold, for margin).
FP16_MIN_COSINE = 0.9999
FP16_SAFE_OPS = ("Max",)  # in ORT's fp16 block list, measured safe here (see to_fp16)
PACKAGES = ("onnx", "onnxruntime", "onnxscript", "onnxsim", "onnxslim")


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--dynamic-batch", action="store_true", help="ONNX: dynamic batch dimension")
    group.add_argument("--io-fp16", action="store_true", help="ONNX fp16: float16 inputs/outputs")
    group.add_argument(
        "--fp16-float-ops",
        help="ONNX fp16: comma-separated op types forced to stay float32 (on top of the ones "
        "the export-time parity check blocks)",
    )
    group.add_argument(
        "--calib-method",
        choices=quant.CALIBRATION_METHODS,
        default="minmax",
        help="ONNX int8 calibration method (default minmax)",
    )
    group.add_argument(
        "--int8-recipe",
        choices=list(quant.RECIPES),
        default=quant.DEFAULT_RECIPE,
        help="ONNX int8: which op types go int8 - conv (default: convolutions; token path, "
        "attention, norms and head stay float), linear (+ Gemm/MatMul), full (everything "
        "except Softmax/LayerNormalization)",
    )
    group.add_argument(
        "--float-ops",
        help="ONNX int8 mixed precision: comma-separated op types (Softmax, "
        "LayerNormalization, Add, ...) and/or module scopes (stem, blocks.3, "
        "blocks.3.former, head) kept in float; 'none' = only the recipe's op types",
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

    Measured on the deploy form (nodes: exporter / onnxsim / onnxslim): 26m 890 / 883 / 891,
    294m 1138 / 1128 / 1139, so onnxsim is picked; the dynamo exporter's own optimiser
    already folds most constants, so the gain is small either way. Both drop the exporter's
    node metadata, so module scopes are collected before and re-attached after.
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


#: fp32 graphs converted earlier, in the cache directory (at most CONVERSIONS_KEPT)
CONVERSION_STORE = "onnx-conversions"
CONVERSIONS_KEPT = 4


def fp32_graph(
    module: torch.nn.Module, example: torch.Tensor, dynamic_batch: bool
) -> tuple[object, dict[str, str], dict[str, int], str]:
    """The simplified, checked fp32 graph with its module scopes, node counts and simplifier,
    reused from an identical conversion made by an earlier export (any process).

    Every ONNX precision starts from this graph (fp16, int8 and its runtime check's second
    export too), and the conversion and simplification are most of an fp32 export (half a
    minute for 294m). The entry is keyed by what the exporter sees (module tree, weights,
    example shape, dynamic batch), the tools' versions and the exporting code
    (`derived_cache`).
    """
    import importlib.metadata

    versions = [importlib.metadata.version(name) for name in ("torch", *PACKAGES)]
    stored = module_cache_entry(
        CONVERSION_STORE, ".onnx", module, str(tuple(example.shape)), str(dynamic_batch),
        *versions,
    )  # fmt: skip
    with derived_cache.claimed(stored):
        return _stored_or_converted(stored, module, example, dynamic_batch)


def _stored_or_converted(
    stored: Path, module: torch.nn.Module, example: torch.Tensor, dynamic_batch: bool
) -> tuple[object, dict[str, str], dict[str, int], str]:
    """`stored` when it reads back whole, else the conversion, written there."""
    import onnx
    from google.protobuf.message import DecodeError

    sidecar = stored.with_suffix(".json")
    try:
        facts = json.loads(sidecar.read_text())
        model = onnx.load_from_string(stored.read_bytes())
    except (OSError, ValueError, DecodeError):
        pass
    else:
        info("ONNX conversion of these weights made by an earlier export: reused")
        return model, facts["scopes"], facts["node_counts"], facts["simplifier"]
    raw = torch_to_onnx(module, example, dynamic_batch)
    scopes = quant.module_scopes(raw)
    model, node_counts, simplifier = simplify(raw)
    del raw
    check(model)
    quant.annotate_scopes(model, scopes)
    facts = {"scopes": scopes, "node_counts": node_counts, "simplifier": simplifier}
    derived_cache.write(sidecar, json.dumps(facts).encode(), CONVERSIONS_KEPT)
    derived_cache.write(stored, model.SerializeToString(), CONVERSIONS_KEPT)
    return model, scopes, node_counts, simplifier


def check(model) -> None:
    import onnx

    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)


def to_fp16(model, io_fp16: bool, float_ops: tuple[str, ...] = ()):
    """float16 weights and activations with ORT's maintained converter (a copy of `model`).

    Op types in the converter's own block list and in `float_ops` stay float32 with Casts
    around them, except FP16_SAFE_OPS: the converter blocks Max by default, but on 26m the
    dynamic ReLU's Max in float16 gives the same logits (cosine 0.9999959 to fp32 either way
    on 2 calibration photos) with 2 Casts instead of 50, and ORT's CPU EP has the kernel.
    """
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    block = sorted((set(DEFAULT_OP_BLOCK_LIST) - set(FP16_SAFE_OPS)) | set(float_ops))
    with _quiet():
        converted = convert_float_to_float16(copy, keep_io_types=not io_fp16, op_block_list=block)
    return topologically_sorted(converted)


def fp16_measured(model, io_fp16: bool, forced: tuple[str, ...], probe: np.ndarray | None):
    """Convert to fp16; while the logits' cosine to fp32 on `probe` is below FP16_MIN_COSINE,
    send the op type whose node loses most SQNR (onnx_drift.local_drops) back to float32.

    Returns (model, op types of this graph that run in float32, parity on the probe).
    """
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST

    from mfdeploy.export.onnx_drift import local_drops, tensor_drift

    blocked = list(forced)
    parity: dict = {}
    for _ in range(4):
        final = to_fp16(model, io_fp16, tuple(blocked))
        if probe is None:
            break
        parity = logits_parity(model, final, probe)
        if parity["cosine"] >= FP16_MIN_COSINE:
            break
        drops = local_drops(tensor_drift(model, final, probe))
        worst = [d.op_type for d, _ in drops if d.op_type not in blocked]
        if not worst:
            break
        info(f"fp16: cosine {parity['cosine']:.6f} on the probe, keeping {worst[0]} in float32")
        blocked.append(worst[0])
    graph_ops = {n.op_type for n in model.graph.node}
    default = set(DEFAULT_OP_BLOCK_LIST) - set(FP16_SAFE_OPS)
    kept = sorted(op for op in set(blocked) | default if op in graph_ops)
    return final, kept, parity


def _entries(spec: str | None) -> tuple[str, ...]:
    return tuple(e.strip() for e in (spec or "").split(",") if e.strip())


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


def probe_inputs(calib: str | None, prep, count: int = 2) -> tuple[np.ndarray, str]:
    """A few real photos (calibration split) for export-time parity checks."""
    try:
        return calibration_inputs(calib, count, prep), "calibration photos"
    except MfdeployError:
        if calib:
            raise
        rng = np.random.default_rng(0)
        res = prep.resolution
        return rng.standard_normal((count, 3, res, res)).astype(np.float32), "seeded noise"


def logits_parity(reference, candidate, inputs: np.ndarray) -> dict[str, float]:
    """cosine / SQNR of a converted graph's logits against the fp32 graph's (ORT CPU)."""
    from mfdeploy.export.onnx_drift import run_tensors
    from mfdeploy.metrics import cosine, sqnr_db

    name = reference.graph.output[0].name
    ref = run_tensors(reference, {"input": inputs}, [name])[name]
    out = run_tensors(candidate, {"input": inputs}, [candidate.graph.output[0].name])
    cand = next(iter(out.values()))
    return {"cosine": round(cosine(ref, cand), 7), "sqnr_db": round(sqnr_db(ref, cand), 3)}


def _in_graph(plan, scopes: dict[str, str]) -> tuple[str, ...]:
    """The plan's float modules that name a scope of this graph: a convolution's batch norm
    is folded in and the fused Conv carries one of the two paths (EfficientNet's stem conv
    carries its batch norm's), so the other one has no node of its own."""
    present = set(scopes.values())
    return tuple(
        m for m in plan.float_modules if any(p == m or p.startswith(m + ".") for p in present)
    )


def export(
    source: SourceModel,
    staging: Path,
    *,
    precision: str = "fp32",
    form: str = "deploy",
    batch: int = 1,
    dynamic_batch: bool = False,
    io_fp16: bool = False,
    fp16_float_ops: str | None = None,
    calib: str | None = None,
    calib_count: int | None = None,
    calib_method: str = "minmax",
    int8_recipe: str = quant.DEFAULT_RECIPE,
    float_ops: str | None = None,
    int8_float: str | None = None,
    int8_target_sqnr: float | None = None,
    ort_format: bool = True,
) -> Manifest:
    import onnx
    import onnxruntime  # noqa: F401  (fail early when the extra is missing)

    if int8_recipe not in quant.RECIPES:
        raise MfdeployError(f"unknown int8 recipe {int8_recipe!r}")
    if calib_method not in quant.CALIBRATION_METHODS:
        raise MfdeployError(f"unknown calibration method {calib_method!r}")
    prep = source.preprocessing
    res = prep.resolution
    calibration = probe = scored = None
    if precision == "int8":  # read the photos first: bad input fails before slow work
        calibration = calibration_inputs(calib, calib_count, prep)
        probe, probe_source = calibration[:4], "calibration photos"
    elif precision == "int8-dynamic":  # to measure which pointwise convs join (none calibrated)
        scored = calibration_inputs(calib, calib_count, prep)
    elif precision == "fp16":
        probe, probe_source = probe_inputs(calib, prep)
    module, splits = export_module(source, form), 0
    if precision == "int8":
        # ONNX Runtime's int8 grouped convolution with a channel multiplier is slow: 294m's
        # int8 with lite.0 int8 39.68 ms, split 26.43 ms, fp32 26.55 ms (interleaved, docs/
        # onnx.md); in fp32 the split gains nothing, so only int8 gets it (before the search)
        module, splits = split_channel_multipliers(module)
    float_set = None
    if calibration is not None:  # int8: which modules stay float, measured on this model
        float_set = float_plan(module, calibration, int8_float, int8_target_sqnr)
        module = float_set.int8_module(module)
    # torch.export specialises a dimension of size 1, so trace a dynamic batch with 2.
    example = torch.zeros(max(batch, 2) if dynamic_batch else batch, 3, res, res)
    info(f"exporting {source.name} ({form} form) to ONNX opset {OPSET}")
    model, scopes, node_counts, simplifier = fp32_graph(module, example, dynamic_batch)
    fp32_path = staging / "model_fp32.onnx"
    onnx.save(model, str(fp32_path))
    if probe is not None and not dynamic_batch:
        probe = probe[: len(probe) - len(probe) % batch] if len(probe) >= batch else None

    extra: dict = {
        "opset": OPSET,
        "simplifier": simplifier,
        "node_counts": node_counts,
        "dynamic_batch": dynamic_batch,
        "depthwise_multiplier_splits": splits,
    }
    in_dtype = out_dtype = "float32"
    if precision == "fp32":
        final = model
    elif precision == "fp16":
        final, kept, parity = fp16_measured(model, io_fp16, _entries(fp16_float_ops), probe)
        extra["float32_ops"] = kept
        if probe is not None:
            extra["fp16_check"] = {"inputs": f"{len(probe)} {probe_source}", **parity}
        if io_fp16:
            in_dtype = out_dtype = "float16"
    elif precision == "int8":
        prepared, q_path = staging / "prepared.onnx", staging / "model_int8.onnx"
        with _quiet():
            quant.prepare(fp32_path, prepared)
        plan = quant.make_plan(
            onnx.load(str(prepared)),
            scopes,
            int8_recipe,
            quant.parse_float_ops(float_ops, int8_recipe, _in_graph(float_set, scopes)),
            calib_method,
            fuse_activations=source.entry.onnx_fuse_activations,
        )
        info(
            f"int8 static QDQ ({int8_recipe} recipe), {len(calibration)} calibration photos, "
            f"method {calib_method}"
        )
        matmul_path = staging / "model_int8_matmul.onnx"
        dynamic_path = staging / "model_int8_dynamic.onnx"
        with _quiet():
            quant.quantize_static_qdq(prepared, q_path, calibration, plan, batch)
            plan.dynamic_convs = pointwise_as_matmul(q_path, matmul_path)
            plan.dynamic_nodes = quant.quantize_float_linears(matmul_path, dynamic_path)
        info(
            f"int8 weights with run-time activation scales for the {plan.dynamic_nodes} MatMul / "
            f"Gemm layers the static recipe keeps float ({plan.dynamic_convs} of them float 1x1 "
            "convolutions rewritten as MatMul)"
        )
        final = onnx.load(str(dynamic_path))
        for path in (prepared, q_path, matmul_path, dynamic_path):
            path.unlink()
        extra.update(
            plan.to_dict(), calibration_images=len(calibration), int8_plan=float_set.to_dict()
        )
        if probe is not None:
            extra["int8_check"] = {
                "inputs": f"{len(probe)} {probe_source}",
                "against": "the float graph quantised (int8-grid weights, corrected biases)",
                **logits_parity(model, final, probe),
            }
    else:  # int8-dynamic
        q_path = staging / "model_int8.onnx"
        target = int8_target_sqnr or INT8_DYNAMIC_TARGET_SQNR
        with _quiet():
            choice = int8_dynamic(fp32_path, q_path, scored, target, staging)
        info(f"int8-dynamic: {choice.describe()}")
        final = onnx.load(str(q_path))
        q_path.unlink()
        extra.update(
            weights=f"int8 per-channel in {choice.dynamic_nodes} MatMul / Gemm layers, "
            f"{choice.kept} of them pointwise convolutions rewritten as MatMul (activations "
            "quantised at run time); the other convolutions float",
            dynamic_nodes=choice.dynamic_nodes,
            dynamic_convs=choice.kept,
            int8_dynamic_pointwise=choice.to_dict(),
        )
    fp32_path.unlink()

    batch_dim: int | str = "batch" if dynamic_batch else batch
    manifest = base_manifest(
        source,
        target="onnx",
        precision=precision,
        form=form,
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
