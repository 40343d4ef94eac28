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
"""

from __future__ import annotations

import sys
import types
from typing import Any

import numpy as np
import torch
from torch import nn

from mfdeploy.console import progress
from mfdeploy.errors import MfdeployError

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
    from coremltools.optimize.torch.quantization import LinearQuantizerConfig
    from coremltools.optimize.torch.quantization._coreml_quantizer import CoreMLQuantizer

    return CoreMLQuantizer, LinearQuantizerConfig


def _pt2e():
    try:
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    except ImportError:
        from torch.ao.quantization.quantize_pt2e import convert_pt2e, prepare_pt2e
    return prepare_pt2e, convert_pt2e


def _class_names(kind: object) -> set[str]:
    """A module class's name and its base classes' names (a subclass of a listed class, such
    as a layout variant of a bridge, is that class too)."""
    if isinstance(kind, type):
        return {k.__name__ for k in kind.__mro__}
    return {str(kind).rsplit(".", 1)[-1].strip("'>")}


def _in_float_module(node, float_modules: tuple[str, ...]) -> bool:
    """Inside a module whose class (or a base class) or module path (e.g. "_conv_stem",
    "head", "blocks.3.former") is listed."""
    stack = node.meta.get("nn_module_stack") or {}
    names = set().union(*(_class_names(kind) for _, kind in stack.values()))
    paths = {str(path).removeprefix("L['self'].") for path, _ in stack.values()}
    return bool((names | paths).intersection(float_modules))


def quantizer_config(float_modules: tuple[str, ...] = ()) -> Any:
    """int8 per-channel symmetric weights, int8 activations; ops inside `float_modules`
    (module class names or paths) stay float.

    coremltools' own module_type/name configs re-run every pattern matcher per entry (minutes
    per entry on this graph), so the global annotation runs once and the annotations of nodes
    inside the float modules are dropped afterwards: those ops then see float inputs.
    """
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

    class MixedPrecisionQuantizer(coreml_quantizer):
        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            model = super().annotate(model)
            if float_modules:
                for node in model.graph.nodes:
                    if _in_float_module(node, float_modules):
                        node.meta.pop("quantization_annotation", None)
            return model

    return MixedPrecisionQuantizer(config_cls.from_dict(config))


def quantize_w8a8(
    module: nn.Module,
    calibration: np.ndarray,
    *,
    batch: int = 1,
    float_modules: tuple[str, ...] = (),
) -> tuple[nn.Module, dict]:
    """PT2E W8A8 of `module`, calibrated on `calibration` (N, 3, R, R) normalised photos."""
    prepare_pt2e, convert_pt2e = _pt2e()
    quantizer = quantizer_config(float_modules)
    example = torch.from_numpy(np.ascontiguousarray(calibration[:batch], np.float32))
    if len(example) < batch:
        example = example.repeat(batch, 1, 1, 1)[:batch]
    graph = torch.export.export(module.eval(), (example,)).module()
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for start in progress(range(0, len(calibration), batch), "calibrating W8A8"):
            chunk = torch.from_numpy(np.ascontiguousarray(calibration[start : start + batch]))
            if len(chunk) < batch:
                chunk = torch.cat([chunk, chunk[-1:].repeat(batch - len(chunk), 1, 1, 1)])
            prepared(chunk)
    converted = convert_pt2e(prepared)
    info = {
        "quantizer": "coremltools.optimize.torch CoreMLQuantizer (PT2E)",
        "weights": "int8 per-channel symmetric",
        "activations": f"int8 per-tensor symmetric, {ACTIVATION_OBSERVER} observer",
        "calibration_images": int(len(calibration)),
        "float_modules": list(float_modules),
    }
    return converted, info
