"""ExecuTorch target: a `.pte` program whose ops all run in the XNNPACK delegate.

What each precision's model.pte contains:
- fp32: `torch.export` of the export module -> the XNNPACK rewrites of executorch_lower.py
  -> `to_edge_transform_and_lower(XnnpackPartitioner)` -> `to_executorch`; float32 I/O.
- fp16: the same with the module and its input in float16 (XNNPACK's float16 kernels);
  float16 input and output (the runtime adapter converts), GELU in its tanh form.
- int8: PT2E with ExecuTorch's XNNPACKQuantizer (int8 per-channel symmetric weights, int8
  per-tensor activations with histogram observers) calibrated on the calibration photos
  (`--calib`, `--calib-count`); ops it has no int8 pattern for stay float32 inside the
  delegate. The float modules are the measured set of int8_sensitivity.py (as every int8
  target; `--int8-float` overrides): their nodes keep float activations (their linears and
  pointwise convolutions int8 weights with run-time input scales, where qd8_rule says that
  pays), and the plan is recorded in the manifest (`extra.int8_plan`). float32 I/O.

Every artifact carries a constant method `mfdeploy_identity` (the source weights' sha256 and
the precision, as bytes) so that a `.pte` from another export is refused at open.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mfdeploy.artifact import Manifest, TensorSpec
from mfdeploy.console import info, progress
from mfdeploy.export.common import (
    GraphCheck,
    SourceModel,
    base_manifest,
    calibration_inputs,
    export_module,
    run_static_batch,
)
from mfdeploy.export.depthwise_split import split_channel_multipliers
from mfdeploy.export.int8_sensitivity import float_plan, float_regex
from mfdeploy.export.pt2e_clamps import quantise_after_clamps
from mfdeploy.export.pt2e_statistics import float_statistics
from mfdeploy.export.qd8_rule import qd8_pays
from mfdeploy.native_stderr import native_reason, native_stderr_captured

#: imported before staging, with signals held back (export_artifact)
CONVERTERS = ("executorch.exir",)
PRECISIONS = ("fp32", "fp16", "int8")
MODEL_FILE = "model.pte"
PACKAGES = ("executorch", "torchao")
IDENTITY_METHOD = "mfdeploy_identity"


def identity_bytes(checkpoint_sha256: str, precision: str) -> list[int]:
    """What `mfdeploy_identity` returns: sha256 hex + ':' + precision, as byte values."""
    return list(f"{checkpoint_sha256}:{precision}".encode())


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """ExecuTorch and torch.export print warnings and progress; keep the CLI readable."""
    logging.getLogger("executorch").setLevel(logging.ERROR)
    logging.getLogger("torch").setLevel(logging.ERROR)
    with (
        contextlib.redirect_stdout(io.StringIO()),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        yield


def quantised_filter(float_modules: str) -> Callable | None:
    """Node filter for the quantizer: True for nodes outside every float module (those get
    annotated); None when every module is int8. `float_modules` is `float_regex`'s regex."""
    if not float_modules:
        return None
    pattern = re.compile(float_modules)

    def quantised(node) -> bool:
        stack = node.meta.get("nn_module_stack", {}).values()
        return not any(pattern.search(path) for path, _ in stack)

    return quantised


def make_quantizer(float_modules: str, convolutions: bool = True):
    """XNNPACKQuantizer (per-channel, static) skipping the float modules' ops, with a ReLU6
    quantised at its own output (pt2e_clamps) and normalisation statistics left float
    (pt2e_statistics). The float modules' linears get int8 weights with their input
    quantised at run time (XNNPACK's qd8) where qd8_rule says that pays, and so do their
    pointwise convolutions (1x1, groups 1) unless `convolutions` is False."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    class ClampAwareQuantizer(XNNPACKQuantizer):
        def annotate(self, model):
            model = super().annotate(model)
            quantise_after_clamps(model, past_pads=False)
            float_statistics(model)
            return model

    quantizer = ClampAwareQuantizer().set_global(
        get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
    )
    keep = quantised_filter(float_modules)
    if keep is None:
        return quantizer
    quantizer.set_filter_function(keep)
    from torchao.quantization.pt2e.quantizer import ComposableQuantizer

    dynamic = XNNPACKQuantizer().set_global(
        get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True)
    )
    patterns = ("linear", "conv") if convolutions else ("linear",)
    dynamic.SUPPORTED_PATTERNS = [p for p in dynamic.SUPPORTED_PATTERNS if p.name in patterns]

    def qd8(node) -> bool:
        # the conv annotator asks the filter about its whole partition (the convolution, its
        # weight, its bias); those are get_attr nodes without an nn_module_stack, which `keep`
        # calls quantised, so a filter asked of them alike refused every convolution: the op
        # node decides
        if node.op != "call_function":
            return True
        return not keep(node) and _qd8_pays(node)

    dynamic.set_filter_function(qd8)
    return ComposableQuantizer([dynamic, quantizer])


def _qd8_pays(node) -> bool:
    """A linear, or a 1x1 2-D convolution with one group, whose int8 weights with run-time
    input scales pay (qd8_rule). XNNPACK's qd8 takes any non-depthwise 2-D convolution; the
    rule was measured on pointwise ones and linears, so only those."""
    conv = node.target == torch.ops.aten.conv2d.default
    if not (conv or node.target == torch.ops.aten.linear.default) or len(node.args) < 2:
        return False
    source, weight = (arg.meta.get("val") for arg in node.args[:2])
    if source is None or weight is None:
        return False
    if conv:
        groups = node.args[6] if len(node.args) > 6 else node.kwargs.get("groups", 1)
        if weight.dim() != 4 or tuple(weight.shape[2:]) != (1, 1) or groups != 1:
            return False
    return qd8_pays(weight.numel(), source.numel())


def quantize_int8(
    module: nn.Module,
    example: torch.Tensor,
    calibration: np.ndarray,
    float_modules: str,
    convolutions: bool = True,
) -> nn.Module:
    """PT2E with `make_quantizer`: prepare (the float modules' activations float, their
    linears and, with `convolutions`, pointwise convolutions qd8), calibrate, convert."""
    from executorch.backends.transforms.duplicate_dynamic_quant_chain import (
        DuplicateDynamicQuantChainPass,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = make_quantizer(float_modules, convolutions)
    graph = torch.export.export(module.eval(), (example,)).module()
    graph = prepare_pt2e(graph, quantizer)
    batch = example.shape[0]
    with torch.no_grad():
        for start in progress(range(0, len(calibration) - batch + 1, batch), "int8 calibration"):
            graph(torch.from_numpy(np.ascontiguousarray(calibration[start : start + batch])))
    graph = convert_pt2e(graph)
    # one run-time quantisation of an input read by two qd8 linears (a bridge's k and v) fails
    # in XNNPACK at run time ("Propagating input shapes failed"): give each linear its own,
    # as ExecuTorch's own LLM export does
    DuplicateDynamicQuantChainPass()(graph)
    return graph


def run_refusal(path: Path, example: torch.Tensor) -> str | None:
    """Why ExecuTorch refuses to run the lowered program at `path` on `example` (its own log
    line), or None when it runs. XNNPACK accepts some qd8 convolutions when lowering that it
    refuses at run time ("Propagating input shapes failed": in MobileViTv2, a convolution
    reading a keepdim sum or mean, and some of its attention's value projections;
    docs/int8.md), and only running it tells. The runtime's C++ log lines are captured, not
    printed: the caller reports the reason in a line of its own."""
    from executorch.runtime import Runtime

    with native_stderr_captured() as log:
        try:
            Runtime.get().load_program(path).load_method("forward").execute([example])
        except RuntimeError as error:
            failure = str(error)
        else:
            failure = None
    if failure is None:
        return None
    return native_reason(log, first=True) or failure


def dynamic_chains(graph: torch.fx.GraphModule) -> int:
    """How many run-time quantisations (choose_qparams) a converted PT2E graph computes: one
    per qd8 linear or convolution after DuplicateDynamicQuantChainPass."""
    return sum(1 for n in graph.graph.nodes if "choose_qparams" in str(n.target))


def dynamic_convolutions(graph: torch.fx.GraphModule) -> int:
    """How many convolutions of a converted PT2E graph read an input quantised at run time:
    dequantised with a scale the graph computes (choose_qparams), not a calibrated constant."""

    def run_time_scale(source) -> bool:
        return (
            isinstance(source, torch.fx.Node)
            and "dequantize" in str(source.target)
            and len(source.args) > 1
            and isinstance(source.args[1], torch.fx.Node)
            and source.args[1].op == "call_function"
        )

    return sum(
        1
        for n in graph.graph.nodes
        if n.op == "call_function" and "conv" in str(n.target) and n.args
        and run_time_scale(n.args[0])
    )  # fmt: skip


def export(
    source: SourceModel,
    staging: Path,
    *,
    precision: str = "fp32",
    form: str = "deploy",
    batch: int = 1,
    calib: str | None = None,
    calib_count: int | None = None,
    int8_float: str | None = None,
    int8_target_sqnr: float | None = None,
    int8_graph_check: GraphCheck | None = None,
) -> Manifest:
    from mfdeploy.export import executorch_lower as lower

    prep = source.preprocessing
    res = prep.resolution
    calibration = None
    if precision == "int8":  # read the photos first: bad input fails before slow work
        calibration = calibration_inputs(calib, calib_count, prep)
    import executorch.exir  # noqa: F401  (fail early when the extra is missing)

    # before the int8 search and PT2E (a traced graph has no convolution modules to split)
    module, splits = split_channel_multipliers(export_module(source, form).eval())
    shape = [batch, 3, res, res]
    example = torch.zeros(shape)
    dtype = "float32"
    extra: dict = {"backend": "xnnpack", "layout": "NCHW", "depthwise_multiplier_splits": splits}
    shown = source.form(form)  # what the manifest records (families without a deploy form)
    plan = None
    if calibration is not None:  # int8: which modules stay float, measured on this model
        plan = float_plan(module, calibration, int8_float, int8_target_sqnr)
        module = plan.int8_module(module)
    identity = {IDENTITY_METHOD: identity_bytes(source.checkpoint_sha256, precision)}

    def lowered(graph: nn.Module, x: torch.Tensor) -> dict[str, int]:
        with torch.no_grad():  # int8: adds stay where the quantizer's q / dq pattern is
            program = lower.export_for_xnnpack(graph, x, move_adds=plan is None)
        return lower.lower_to_pte(program, staging / MODEL_FILE, constant_methods=identity)

    with quiet():
        if plan is not None:
            info(
                f"int8 (PT2E, XNNPACKQuantizer) {source.name} ({shown} form), "
                f"{len(calibration)} calibration photos, {len(plan.float_modules)} float modules"
            )
            regex, module_float = float_regex(plan.float_modules), module
            module = quantize_int8(module_float, example, calibration, regex)
            if int8_graph_check is not None:  # before the lowering, the bulk of the export
                int8_graph_check(lambda x: run_static_batch(module, x, batch), plan.to_dict())
            outside = lowered(module, example)
            convolutions = dynamic_convolutions(module)
            refusal = run_refusal(staging / MODEL_FILE, example) if convolutions else None
            if refusal is not None:
                # float convolutions are no less accurate than qd8 ones: not checked again
                info(
                    f"int8: XNNPACK refused to run the program's {convolutions} qd8 "
                    f"convolutions: {refusal}. Quantised again with the float modules' "
                    "convolutions float (their linears stay qd8)"
                )
                module = quantize_int8(module_float, example, calibration, regex, False)
                outside = lowered(module, example)
                convolutions = dynamic_convolutions(module)
            dynamic = dynamic_chains(module)
            extra.update(
                calibration_images=len(calibration),
                weights="int8 per-channel symmetric",
                activations="int8 per-tensor (histogram observers)",
                int8_plan=plan.to_dict(),
                dynamic_linears=dynamic - convolutions,
                dynamic_convolutions=convolutions,
                contents="int8 convolutions, linears, adds, muls and concatenations "
                "(XNNPACKQuantizer patterns); other ops float32 inside the delegate; "
                f"{plan.describe()}; {dynamic - convolutions} linears and {convolutions} "
                "pointwise convolutions of the float modules with int8 weights and their input "
                "quantised at run time (qd8)",
            )
        elif precision == "fp16":
            info(f"lowering {source.name} ({shown} form) to ExecuTorch/XNNPACK in float16")
            extra["contents"] = "float16 weights, compute and I/O (GELU in its tanh form)"
            dtype = "float16"
            outside = lowered(copy.deepcopy(module).half(), example.half())
        else:
            info(f"lowering {source.name} ({shown} form) to ExecuTorch/XNNPACK")
            extra["contents"] = "float32 weights, compute and I/O"
            outside = lowered(module, example)
    extra["portable_ops"] = outside  # ops outside the XNNPACK delegate ({} = none)
    manifest = base_manifest(
        source,
        target="executorch",
        precision=precision,
        form=form,
        model_file=MODEL_FILE,
        input_spec=TensorSpec("input", shape, dtype, "NCHW"),
        output_spec=TensorSpec("logits", [batch, source.num_classes], dtype),
        packages=PACKAGES,
    )
    manifest.extra = extra
    return manifest
