"""W8A8 for Core ML: coremltools.optimize.torch's PT2E `CoreMLQuantizer`, calibrated in PyTorch.

Activation calibration through a converted model needs Core ML's runtime (macOS); calibrating
the PyTorch graph does not: `prepare_pt2e` inserts observers (fake-quantize modules), the real
calibration photos run through it, `convert_pt2e` writes quantize / dequantize pairs, and
`ct.convert` turns them into the iOS 17 `quantize` / `dequantize` ops (int8 weights are
stored as int8 constants).

Compatibility: torch >= 2.11 removed `torch.ao.quantization.quantizer` (PT2E moved to
torchao), and coremltools 9.0's CoreMLQuantizer still imports it (apple/coremltools#2823).
`_import_coreml_quantizer` maps those module names onto their torchao equivalents
before importing it, and points its observer / fake-quantize classes at torchao's (torchao's
`prepare_pt2e` only recognises its own). The annotation rules are coremltools' own.

Speed: the quantizer traces each of its annotation patterns (a tiny conv -> bn -> act,
add -> relu, ... module) with torch.export on every `annotate`; `_memoise_pattern_graphs`
keeps those graphs for the process, so a second W8A8 export in it (tests, the main job's
export workers) does not trace them again. Most of those patterns pair a conv / linear / add /
mul / matmul with one of 15 activations (two minutes of tracing on the first export);
`_only_activations_in` leaves out the activations the program does not contain, whose
patterns cannot match it, so the annotation is the same.
"""

from __future__ import annotations

import contextlib
import copy
import sys
import types
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from mfdeploy.console import info
from mfdeploy.errors import MfdeployError
from mfdeploy.export.int8_sensitivity import DEFAULT_TARGET_SQNR, FloatPlan
from mfdeploy.export.pt2e_plan import plan_on_program

ACTIVATION_OBSERVER = "min_max"
QUANTIZATION_SCHEME = "symmetric"


def _install_torchao_aliases() -> None:
    """Let coremltools' quantizer modules import on torch >= 2.11 (see module docstring)."""
    import torchao.quantization.pt2e.quantizer as tq
    import torchao.quantization.pt2e.quantizer.quantizer as tqq
    import torchao.quantization.pt2e.utils as tutils
    from torchao.quantization.pt2e.quantizer.utils import get_module_name_filter
    from torchao.testing.pt2e import _xnnpack_quantizer_utils as xnn_utils

    xnn = types.ModuleType("torch.ao.quantization.quantizer.xnnpack_quantizer")
    xnn._get_module_name_filter = get_module_name_filter
    pt2e = types.ModuleType("torch.ao.quantization.pt2e")
    pt2e.utils = tutils
    aliases = {
        "torch.ao.quantization.quantizer": tq,
        "torch.ao.quantization.quantizer.quantizer": tqq,
        "torch.ao.quantization.quantizer.xnnpack_quantizer": xnn,
        "torch.ao.quantization.quantizer.xnnpack_quantizer_utils": xnn_utils,
        "torch.ao.quantization.pt2e": pt2e,
        "torch.ao.quantization.pt2e.utils": tutils,
    }
    for name, module in aliases.items():
        sys.modules.setdefault(name, module)


#: traced annotation patterns of this process, by `_pattern_key`
_PATTERN_GRAPHS: dict[tuple, Any] = {}


def _pattern_key(pattern: nn.Module, example_inputs: tuple, is_cuda: bool) -> tuple | None:
    """What a pattern's traced graph depends on: its forward's code, the values it closes
    over (the op and activation functions, in-place flags) and the example inputs' shapes and
    dtypes. None when a closed-over value cannot be a key (then it is traced as before)."""
    forward = type(pattern).forward
    cells = tuple(cell.cell_contents for cell in forward.__closure__ or ())
    inputs = tuple((tuple(t.shape), t.dtype) for t in example_inputs)
    key = (forward.__code__, cells, inputs, is_cuda)
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _memoise_pattern_graphs(utils: types.ModuleType) -> None:
    """Wrap coremltools' pattern tracer (`utils._get_aten_graph_module`, looked up at call
    time by its pattern builders) with the per-process memo; each call gets its own deep copy,
    since the pattern matcher rewrites the graph's output node in place."""
    traced: Callable = utils._get_aten_graph_module
    if getattr(traced, "memoised", False):
        return

    def memoised(pattern: nn.Module, example_inputs: tuple, is_cuda: bool = False) -> Any:
        key = _pattern_key(pattern, example_inputs, is_cuda)
        if key is None:
            return traced(pattern, example_inputs, is_cuda)
        if key not in _PATTERN_GRAPHS:
            _PATTERN_GRAPHS[key] = traced(pattern, example_inputs, is_cuda)
        with warnings.catch_warnings():  # torch deprecates LeafSpec's copy hook: ours, not
            warnings.simplefilter("ignore", FutureWarning)  # the user's (114 lines for 294m)
            return copy.deepcopy(_PATTERN_GRAPHS[key])

    memoised.memoised = True
    utils._get_aten_graph_module = memoised


def _activation_pattern(fn: Callable, inplace: bool) -> nn.Module:
    """A one-op pattern module; `fn` and `inplace` are closure values, part of its memo key."""

    class Pattern(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return fn(x, inplace=True) if inplace else fn(x)

    return Pattern()


@contextlib.contextmanager
def _only_activations_in(graph: torch.fx.GraphModule):
    """Narrow coremltools' activation lists (module globals its pattern builders read at call
    time) to the activations whose traced ops occur in `graph`, for the `with` block.

    Each activation is traced alone with the quantizer's own tracer, so its ops are spelled
    as in the patterns; one whose ops are all absent from the graph cannot match any pattern
    there, so dropping it changes no annotation, only the tracing time.
    """
    from coremltools.optimize.torch.quantization import _coreml_quantizer_utils as utils

    present = {node.target for node in graph.graph.nodes if node.op == "call_function"}
    example = (torch.randn(1, 4, 4, 4),)

    def occurs(fn: Callable, inplace_options: tuple[bool, ...]) -> bool:
        for inplace in inplace_options:
            traced = utils._get_aten_graph_module(_activation_pattern(fn, inplace), example)
            if any(n.target in present for n in traced.graph.nodes if n.op == "call_function"):
                return True
        return False

    saved = utils._supported_activations, utils._supported_activations_no_inplace
    utils._supported_activations = tuple(fn for fn in saved[0] if occurs(fn, (False, True)))
    utils._supported_activations_no_inplace = tuple(fn for fn in saved[1] if occurs(fn, (False,)))
    try:
        yield
    finally:
        utils._supported_activations, utils._supported_activations_no_inplace = saved


def _import_coreml_quantizer():
    try:
        import torch.ao.quantization.quantizer  # noqa: F401
    except ImportError:
        try:
            _install_torchao_aliases()
        except ImportError as exc:
            raise MfdeployError(
                f"int8 W8A8 needs torchao with this torch ({torch.__version__}): {exc}"
            ) from None
        import torchao.quantization.pt2e as tao
        from coremltools.optimize.torch.quantization import _annotation_config, quantization_config

        observers = types.SimpleNamespace(
            FakeQuantize=tao.FakeQuantize,
            MinMaxObserver=tao.MinMaxObserver,
            MovingAverageMinMaxObserver=tao.MovingAverageMinMaxObserver,
            PerChannelMinMaxObserver=tao.PerChannelMinMaxObserver,
            MovingAveragePerChannelMinMaxObserver=tao.MovingAveragePerChannelMinMaxObserver,
        )
        _annotation_config._aoquant = observers
        quantization_config._aoquant = observers
    from coremltools.optimize.torch.quantization import (
        LinearQuantizerConfig,
        _coreml_quantizer_utils,
    )
    from coremltools.optimize.torch.quantization._coreml_quantizer import CoreMLQuantizer

    _memoise_pattern_graphs(_coreml_quantizer_utils)

    return CoreMLQuantizer, LinearQuantizerConfig


def _pt2e():
    try:
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    except ImportError:
        from torch.ao.quantization.quantize_pt2e import convert_pt2e, prepare_pt2e
    return prepare_pt2e, convert_pt2e


def quantizer_config() -> Any:
    """coremltools' quantizer annotating every op it can: int8 per-channel symmetric
    weights, int8 activations (which modules stay float is decided on the prepared program,
    `pt2e_plan`, by removing observers)."""
    coreml_quantizer, config_cls = _import_coreml_quantizer()
    config = {
        "global_config": {
            "quantization_scheme": QUANTIZATION_SCHEME,
            "activation_dtype": torch.quint8,
            "weight_dtype": torch.qint8,
            "weight_per_channel": True,
            "activation_observer": ACTIVATION_OBSERVER,
        },
    }
    return coreml_quantizer(config_cls.from_dict(config))


def quantize_w8a8(
    module: nn.Module,
    calibration: np.ndarray,
    *,
    batch: int = 1,
    float_spec: str | None = None,
    target_sqnr: float = DEFAULT_TARGET_SQNR,
) -> tuple[nn.Module, dict, FloatPlan]:
    """PT2E W8A8 of `module`, calibrated on `calibration` (N, 3, R, R) normalised photos;
    the float modules measured on this quantizer's own program (`pt2e_plan`) unless
    `float_spec` (--int8-float) names them."""
    prepare_pt2e, convert_pt2e = _pt2e()
    example = torch.from_numpy(np.ascontiguousarray(calibration[:batch], np.float32))
    if len(example) < batch:
        example = example.repeat(batch, 1, 1, 1)[:batch]
    graph = torch.export.export(module.eval(), (example,)).module()
    info("int8: annotating the program for coremltools' quantizer")
    quantizer = quantizer_config()
    with _only_activations_in(graph):
        prepared = prepare_pt2e(graph, quantizer)
    prepared, plan = plan_on_program(
        module, prepared, calibration, batch=batch, spec=float_spec, target_sqnr=target_sqnr
    )
    converted = convert_pt2e(prepared)
    details = {
        "quantizer": "coremltools.optimize.torch CoreMLQuantizer (PT2E)",
        "weights": "int8 per-channel symmetric",
        "activations": f"int8 per-tensor symmetric, {ACTIVATION_OBSERVER} observer",
        "calibration_images": int(len(calibration)),
        "float_modules": list(plan.float_modules),
    }
    return converted, details, plan
