"""TFLite / LiteRT target via litert-torch (no TensorFlow needed).

What each precision's model.tflite contains:
- fp32: `litert_torch.convert` of the export module; float32 weights, compute and I/O.
- fp16: the fp32 model with float16 weights (AI Edge Quantizer's float-casting recipe):
  weights stored as float16 and DEQUANTIZE'd to float32, compute in float32 (XNNPACK
  may run float16 kernels where the device supports them); float32 I/O.
- int8-weights: dynamic-range quantisation (int8 per-channel weights of FULLY_CONNECTED /
  CONV_2D, activations quantised at run time: XNNPACK's qd8 kernels) with AI Edge Quantizer,
  where qd8_rule says it pays: weights at least a quarter of the input, and the wide GEMMs
  measured to keep the logits at `--int8-target-sqnr` (default 22 dB) against fp32 on
  calibration photos (tflite_wide_qd8.py; nothing is calibrated); depthwise convolutions
  stay float (a hybrid DEPTHWISE_CONV_2D runs outside XNNPACK); float32 I/O.
- int8: static full-integer quantisation through litert-torch's PT2E path (tflite_int8.py):
  int8 per-channel symmetric weights and int8 per-tensor activations calibrated on real
  photos (`--calib DIR`, `--calib-count N`; default the project's calibration split) for
  every CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED and MUL outside the float modules.
  Stays float32 (DEQUANTIZE -> float op -> QUANTIZE): ops litert-torch's quantizer has no
  int8 pattern for (add, softmax, layer norm, batch matmul) and the float modules, measured
  per model on the calibration photos (int8_sensitivity.py; `--int8-float` overrides).
  Ops XNNPACK takes only in float (GELU, MAXIMUM, ...) that the converter made int8 become
  DEQUANTIZE -> float op -> QUANTIZE (`float_islands`): the whole graph is one XNNPACK
  partition. The CONV_2D / FULLY_CONNECTED ops left float (the float modules) then get
  int8 weights with activations quantised at run time (the int8-weights recipe, XNNPACK's
  qd8 kernels): every convolution and linear carries int8 weights, and on 294m's synthetic
  weights the file halves (docs/int8.md, "int8 weights in the float modules").
  Input and output tensors are int8 with scale / zero point in the manifest (the output
  range is the calibration logits' range widened 3x); `--float-io` keeps float32 input and
  output.

Layout: `--layout nhwc` (default) gives the model an NHWC input, as Android camera / bitmap
buffers are; the input permute is absorbed by litert-torch's layout pass. Every precision:
depthwise convolutions with a channel multiplier are split into a channel repeat and a
multiplier-1 depthwise convolution where that is cheaper in XNNPACK (depthwise_split.py).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import logging
import os
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mfdeploy import derived_cache
from mfdeploy.artifact import Manifest, TensorSpec
from mfdeploy.console import info
from mfdeploy.errors import MfdeployError
from mfdeploy.export.common import (
    GraphCheck,
    SourceModel,
    base_manifest,
    calibration_inputs,
    export_module,
    module_cache_entry,
    output_discarded,
    run_static_batch,
)
from mfdeploy.export.depthwise_split import split_channel_multipliers
from mfdeploy.export.int8_sensitivity import float_plan, float_regex
from mfdeploy.export.measured_subset import default_target
from mfdeploy.export.qd8_rule import MIN_WEIGHT_TO_INPUT, kept_float_note
from mfdeploy.export.tflite_qd8 import float_ops, qd8_scopes
from mfdeploy.export.tflite_wide_qd8 import choose_wide

#: imported before staging, with signals held back (export_artifact)
CONVERTERS = ("litert_torch",)
PRECISIONS = ("fp32", "fp16", "int8-weights", "int8")
MODEL_FILE = "model.tflite"
LAYOUTS = ("nhwc", "nchw")
PACKAGES = ("litert-torch", "ai-edge-litert", "ai-edge-quantizer")
# Hybrid DEPTHWISE_CONV_2D (float input, int8 weights) is not an XNNPACK op: it would run in
# LiteRT's reference kernels, outside the delegate (docs/int8.md), so it stays float.
DYNAMIC_RANGE_OPS = ("FULLY_CONNECTED", "CONV_2D")
#: int8-weights: the logits SQNR against fp32 its wide qd8 GEMMs must keep (tflite_wide_qd8):
#: verify's LiteRT int8-weights bound plus the margin the int8 search keeps over int8's
INT8_WEIGHTS_TARGET_SQNR = default_target("int8-weights", "tflite")
# int8 logits: the calibration range widened 3x about its centre (top logits must not clip).
OUTPUT_RANGE_MARGIN = 3.0


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--layout", choices=LAYOUTS, default="nhwc", help="TFLite input layout (default nhwc)"
    )
    group.add_argument(
        "--float-io",
        action="store_true",
        help="TFLite int8: float32 input and output (default: int8, scale/zero point in the "
        "manifest)",
    )


class NHWCInput(nn.Module):
    """Takes NHWC images and feeds the NCHW module (the converter folds the permute)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.permute(0, 3, 1, 2))


@contextlib.contextmanager
def quiet():
    """litert-torch and the quantizer print progress and absl logs; keep the CLI readable."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("absl").setLevel(logging.ERROR)
    with output_discarded():
        yield


#: fp32 flatbuffers converted earlier, in the cache directory (at most CONVERSIONS_KEPT)
CONVERSION_STORE = "tflite-conversions"
CONVERSIONS_KEPT = 4


def torch_to_tflite(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    """Convert with litert-torch, reusing an identical conversion made earlier (any process).

    The conversion is most of a float export (a minute for 294m); fp16 and int8-weights are
    seconds-long rewrites of the same fp32 flatbuffer, so a run exporting several precisions
    of one model (the main job's parallel workers, the tests, a user exporting fp16 after
    fp32) converts it once. The entry is keyed by what the converter sees (the module tree:
    its repr, classes and settings; its weights; the example's shape), the converter's and
    torch's versions and the exporting code (`derived_cache`).
    """
    import litert_torch

    stored = module_cache_entry(
        CONVERSION_STORE, ".tflite", module, str(tuple(example.shape)),
        importlib.metadata.version("litert-torch"), torch.__version__,
    )  # fmt: skip
    with derived_cache.claimed(stored):
        with contextlib.suppress(OSError):
            shutil.copyfile(stored, path)
            info("litert-torch conversion of these weights made by an earlier export: reused")
            return
        with quiet():
            litert_torch.convert(module.eval(), (example,)).export(str(path))
        derived_cache.write(stored, path.read_bytes(), CONVERSIONS_KEPT)


def float16_weights(fp32_path: Path, out_path: Path) -> None:
    from ai_edge_quantizer import algorithm_manager, quantizer

    q = quantizer.Quantizer(str(fp32_path))
    q.add_weight_only_config(
        regex=".*",
        operation_name="*",
        num_bits=16,
        algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING,
    )
    with quiet():
        q.quantize().export_model(str(out_path), overwrite=True)


def dynamic_range_int8(
    fp32_path: Path,
    out_path: Path,
    ratio: float = MIN_WEIGHT_TO_INPUT,
    scopes: Sequence[str] | None = None,
) -> tuple[int, int]:
    """int8 weights, activations quantised at run time, for the float convs / linears whose
    weights are >= `ratio` x their input (where that is faster: tflite_qd8.py), or for
    those named in `scopes` (`FloatOp.scope` names: the int8-weights export's measured
    choice, and benchmarks timing single ops); returns (ops given int8 weights, float convs
    / linears left float32)."""
    from ai_edge_quantizer import quantizer

    if scopes is None:
        chosen, candidates = qd8_scopes(fp32_path, ratio)
    else:
        named, ops = set(scopes), list(float_ops(fp32_path))
        chosen, candidates = [op.scope for op in ops if op.scope in named], len(ops)
    if not chosen:
        shutil.copyfile(fp32_path, out_path)
        return 0, candidates
    scope = "^(?:" + "|".join(re.escape(name) for name in chosen) + ")$"
    q = quantizer.Quantizer(str(fp32_path))
    for op in DYNAMIC_RANGE_OPS:  # BATCH_MATMUL's constant operands must stay float
        q.add_dynamic_config(regex=scope, operation_name=op, num_bits=8)
    with quiet():
        q.quantize().export_model(str(out_path), overwrite=True)
    return len(chosen), candidates - len(chosen)


def qd8_builder(fp32_path: Path) -> Callable[[Sequence[str], Path], None]:
    """A `tflite_wide_qd8.Build`: the int8-weights file of `fp32_path` with these scopes."""

    def build(scopes: Sequence[str], out_path: Path) -> None:
        dynamic_range_int8(fp32_path, out_path, scopes=scopes)

    return build


def full_integer_int8(
    module: nn.Module,
    example: torch.Tensor,
    calibration: np.ndarray,
    path: Path,
    *,
    float_modules: str,
    float_io: bool,
    check: Callable[[Callable[[np.ndarray], np.ndarray]], None] | None = None,
) -> tuple[dict, dict, dict]:
    """PT2E static int8 (see tflite_int8.py). Returns input and output dtype / quant params
    and what to record in the manifest. `check(run)`, before the conversion, gets a
    function of NCHW photos -> the quantised graph's logits (it may raise)."""
    import litert_torch
    from litert_torch.quantize.quant_config import QuantConfig

    from mfdeploy.export import tflite_int8 as q8

    batch = example.shape[0]
    with quiet():
        graph, quantizer = q8.quantize_pt2e(module, example, calibration, float_modules)
        logits = run_static_batch(graph, calibration, batch)
    if check is not None:  # outside `quiet`: it reports
        nhwc = isinstance(module, NHWCInput)
        check(lambda x: run_static_batch(graph, x.transpose(0, 2, 3, 1) if nhwc else x, batch))
    with quiet():
        edge = litert_torch.convert(graph, (example,), quant_config=QuantConfig(quantizer))
        edge.export(str(path))
    islands = q8.float_islands(path)
    # Used only where the converted model's end is float (a float first / last layer).
    input_quant = q8.affine_int8(float(calibration.min()), float(calibration.max()))
    output_quant = q8.affine_int8(float(logits.min()), float(logits.max()), OUTPUT_RANGE_MARGIN)
    inp, out = q8.set_io_types(path, "float32" if float_io else "int8", input_quant, output_quant)
    # Last (it writes the weights as buffers after the flatbuffer, which the edits above do
    # not read): the float modules' convolutions and linears get int8 weights, dynamic
    # activations.
    dynamic = path.with_name(f"{path.stem}_qd8{path.suffix}")
    qd8, kept = dynamic_range_int8(path, dynamic)
    dynamic.replace(path)
    extra = {
        "calibration_images": len(calibration),
        "weights": "int8 per-channel symmetric",
        "activations": "int8 per-tensor (histogram observers)",
        "float_modules": float_modules,
        "xnnpack_float_islands": islands,
        "float_module_weights": (
            f"int8 per-channel, activations quantised at run time (qd8) in {qd8} convs / "
            f"linears; {kept_float_note(kept)}"
        ),
    }
    return inp, out, extra


def export(
    source: SourceModel,
    staging: Path,
    *,
    precision: str = "fp32",
    form: str = "deploy",
    batch: int = 1,
    layout: str = "nhwc",
    calib: str | None = None,
    calib_count: int | None = None,
    float_io: bool = False,
    int8_float: str | None = None,
    int8_target_sqnr: float | None = None,
    int8_graph_check: GraphCheck | None = None,
) -> Manifest:
    if layout not in LAYOUTS:
        raise MfdeployError(f"unknown layout {layout!r}; choose nhwc or nchw")
    prep = source.preprocessing
    res = prep.resolution
    calibration = scored = None
    if precision == "int8":  # read the photos first: bad input fails before slow work
        calibration = calibration_inputs(calib, calib_count, prep)
    elif precision == "int8-weights":  # to measure which wide GEMMs get qd8 (none calibrated)
        scored = calibration_inputs(calib, calib_count, prep)
    import litert_torch  # noqa: F401  (fail early when the extra is missing)

    # before the int8 search, so it measures (and the quantizer sees) what is converted
    module, splits = split_channel_multipliers(export_module(source, form))
    plan = None
    if calibration is not None:  # int8: which modules stay float, measured on this model
        plan = float_plan(module, calibration, int8_float, int8_target_sqnr)
        module = plan.int8_module(module)
    shape = [batch, 3, res, res]
    if layout == "nhwc":
        module, shape = NHWCInput(module), [batch, res, res, 3]
        if calibration is not None:
            calibration = np.ascontiguousarray(calibration.transpose(0, 2, 3, 1))
        if scored is not None:
            scored = np.ascontiguousarray(scored.transpose(0, 2, 3, 1))
    final = staging / MODEL_FILE
    extra: dict = {"layout": layout.upper(), "depthwise_multiplier_splits": splits}
    in_spec = TensorSpec("input", shape, "float32", layout.upper())
    out_spec = TensorSpec("logits", [batch, source.num_classes], "float32")
    if precision == "int8":
        float_modules = float_regex(plan.float_modules)
        info(
            f"int8 full-integer (PT2E) {source.name} ({form} form, {layout.upper()} input), "
            f"{len(calibration)} calibration photos, {len(plan.float_modules)} float modules"
        )
        inp, out, int8_extra = full_integer_int8(
            module,
            torch.zeros(shape),
            calibration,
            final,
            float_modules=float_modules,
            float_io=float_io,
            check=None
            if int8_graph_check is None
            else (lambda run: int8_graph_check(run, plan.to_dict())),
        )
        for spec, end in ((in_spec, inp), (out_spec, out)):
            spec.dtype = end["dtype"]
            if end["quant"] is not None:
                spec.scale, spec.zero_point = end["quant"]
        extra.update(int8_extra, int8_plan=plan.to_dict())
        extra["contents"] = (
            f"int8 per-channel weights and int8 activations (static, calibrated); "
            f"{in_spec.dtype} input, {out_spec.dtype} output; float32 where litert-torch's "
            f"quantizer has no int8 pattern (add, softmax, layer norm, batch matmul), for "
            f"the ops XNNPACK runs only in float (GELU, MAXIMUM, ...) and in the float "
            f"modules ({plan.describe()}), whose convolutions and linears have int8 weights "
            f"(activations quantised at run time)"
        )
        return _manifest(source, precision, form, in_spec, out_spec, extra)
    info(f"converting {source.name} ({form} form, {layout.upper()} input) with litert-torch")
    fp32_path = staging / "model_fp32.tflite"
    torch_to_tflite(module, torch.zeros(shape), fp32_path)
    if precision == "fp32":
        fp32_path.rename(final)
        extra["contents"] = "float32 weights and compute"
    elif precision == "fp16":
        float16_weights(fp32_path, final)
        fp32_path.unlink()
        extra["contents"] = "float16 weights, DEQUANTIZE to float32, float32 compute"
    else:  # int8-weights
        target = int8_target_sqnr or INT8_WEIGHTS_TARGET_SQNR
        wide = choose_wide(fp32_path, scored, target, qd8_builder(fp32_path), staging, final)
        info(f"int8-weights: {wide.describe()}")
        qd8, kept = len(wide.scopes), wide.float_ops - len(wide.scopes)
        fp32_path.unlink()
        ops = " / ".join(DYNAMIC_RANGE_OPS)
        extra["int8_weights_wide_gemms"] = wide.to_dict()
        extra["contents"] = (
            f"int8 per-channel weights for {qd8} of the {qd8 + kept} {ops} ops, activations "
            f"quantised dynamically at run time (dynamic range): those whose weights are >= "
            f"{MIN_WEIGHT_TO_INPUT:g}x their input, and {wide.describe()}; the other {kept} "
            "float32 (quantising the input at run time would cost more than the int8 GEMM "
            "saves, or, for a wide one, too much accuracy)"
        )
    return _manifest(source, precision, form, in_spec, out_spec, extra)


def _manifest(source, precision, form, in_spec, out_spec, extra) -> Manifest:
    manifest = base_manifest(
        source,
        target="tflite",
        precision=precision,
        form=form,
        model_file=MODEL_FILE,
        input_spec=in_spec,
        output_spec=out_spec,
        packages=PACKAGES,
    )
    manifest.extra = extra
    return manifest
