"""int8 for the ONNX target: static QDQ recipes (which ops go int8, which stay float) and
dynamic quantisation, both with onnxruntime.quantization.

Rule of the default recipe: only convolutions go int8 statically (where the MACs are); the
token path's Gemm / MatMul layers, softmax and layer norms keep float activations (they run
on a handful of tokens, and static int8 costs them far more accuracy than it saves: measured
in docs/onnx.md with `benchmarks/onnx_int8_recipes.py`). Which modules stay float on top of
that is measured per export (export/int8_sensitivity.py) and passed in as module scopes.
The linears left float then get int8 weights with run-time activation scales
(`quantize_float_linears`).
"""

from __future__ import annotations

import ast
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mfdeploy.console import progress
from mfdeploy.errors import MfdeployError
from mfdeploy.export.onnx_drift import SCOPE_KEY

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
# recipe -> (op types quantised, () = all the quantiser supports; default float entries)
RECIPES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "conv": (("Conv",), ()),
    "linear": (("Conv", "Gemm", "MatMul"), ()),
    "full": ((), ("Softmax", "LayerNormalization")),
}
DEFAULT_RECIPE = "conv"
#: op types quantised at run time (int8 weights, run-time activation scales) where the
#: static recipe left them float, and the whole of the int8-dynamic precision
DYNAMIC_OP_TYPES = ("MatMul", "Gemm")


@dataclass
class Int8Plan:
    """What a static int8 export quantised and what it kept in float (goes to the manifest)."""

    recipe: str
    calibration_method: str
    quantized_op_types: list[str]
    float_op_types: list[str] = field(default_factory=list)
    float_scopes: list[str] = field(default_factory=list)
    float_nodes: list[str] = field(default_factory=list)
    quantized_nodes: int = 0  # nodes of the quantised op types not excluded by scope
    dynamic_nodes: int = 0  # float MatMul / Gemm given int8 weights and run-time scales
    dynamic_convs: int = 0  # of those, float 1x1 convolutions rewritten as MatMul
    weights: str = "int8 per-channel symmetric"
    activations: str = "uint8 per-tensor asymmetric"

    def to_dict(self) -> dict:
        return asdict(self)


def module_scopes(model) -> dict[str, str]:
    """node output name -> module path ("blocks.3.former.fc1"), from the torch exporter's
    node metadata; collected before simplification (which drops node metadata)."""
    scopes = {}
    for node in model.graph.node:
        for prop in node.metadata_props:
            if prop.key == "pkg.torch.onnx.name_scopes":
                try:
                    parts = [p for p in ast.literal_eval(prop.value)[:-1] if p]
                except (ValueError, SyntaxError):
                    break
                for name in node.output:
                    scopes[name] = parts[-1] if parts else ""
                break
    return scopes


def annotate_scopes(model, scopes: dict[str, str]) -> int:
    """Store each node's module path as compact node metadata (read by drift reports)."""
    count = 0
    for node in model.graph.node:
        scope = next((scopes[o] for o in node.output if scopes.get(o)), None)
        if scope:
            prop = node.metadata_props.add()
            prop.key, prop.value = SCOPE_KEY, scope
            count += 1
    return count


def node_module(node, scopes: dict[str, str]) -> str:
    for prop in node.metadata_props:
        if prop.key == SCOPE_KEY:
            return prop.value
    return next((scopes[o] for o in node.output if scopes.get(o)), "")


def _in_scope(module: str, scope: str) -> bool:
    return module == scope or module.startswith(scope + ".")


def parse_float_ops(
    spec: str | None, recipe: str, default_scopes: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """--float-ops: comma-separated op types and/or module scopes; 'none' = nothing extra.

    Without --float-ops the default recipe keeps `default_scopes` (the model's) float too.
    """
    if spec is None:
        scopes = tuple(default_scopes) if recipe == DEFAULT_RECIPE else ()
        return RECIPES[recipe][1] + scopes
    if spec.strip().lower() == "none":
        return ()
    return tuple(entry.strip() for entry in spec.split(",") if entry.strip())


FUSED_ACTIVATIONS = ("Clip", "Relu")


def _examples(modules: dict[str, str], count: int = 6) -> str:
    """A few module paths of this graph, top level first, for an error message."""
    names = sorted({m for m in modules.values() if m}, key=lambda m: (m.count("."), m))
    return ", ".join(names[:count])


def _with_fused_activations(
    model, op_types: list[str], excluded: set[str], float_types: list[str]
) -> tuple[list[str], set[str]]:
    """Quantise a ReLU / ReLU6 that directly follows a quantised Conv, and no other.

    Otherwise the Conv output is quantised before the clip, on the range of the raw
    pre-activation (EfficientNet-Lite0's depthwise convs: hundreds), and the [0, 6] that
    survives the clip is left a handful of levels (docs/onnx.md has the measurements).
    """
    producers = {out: node for node in model.graph.node for out in node.output}

    def follows_quantized_conv(node) -> bool:
        src = producers.get(node.input[0]) if node.input else None
        return src is not None and src.op_type in op_types and src.name not in excluded

    extra = [t for t in FUSED_ACTIVATIONS if t not in op_types and t not in float_types]
    fused = {n.name for n in model.graph.node if n.op_type in extra and follows_quantized_conv(n)}
    if not fused or "Conv" not in op_types:
        return op_types, excluded
    types = {n.op_type for n in model.graph.node if n.name in fused}
    others = {n.name for n in model.graph.node if n.op_type in types and n.name not in fused}
    return sorted(set(op_types) | types), excluded | others


def make_plan(
    model,
    scopes: dict[str, str],
    recipe: str,
    float_entries: tuple[str, ...],
    method: str,
    fuse_activations: bool = False,
) -> Int8Plan:
    """Split --float-ops into op types and module scopes, and list the nodes they exclude."""
    if recipe not in RECIPES:
        raise MfdeployError(f"unknown int8 recipe {recipe!r}; choose one of: {', '.join(RECIPES)}")
    if method not in CALIBRATION_METHODS:
        raise MfdeployError(
            f"unknown calibration method {method!r}; "
            f"choose one of: {', '.join(CALIBRATION_METHODS)}"
        )
    graph_ops = {n.op_type for n in model.graph.node}
    modules = {n.name: node_module(n, scopes) for n in model.graph.node}
    float_types = [e for e in float_entries if e in graph_ops]
    float_scopes = [e for e in float_entries if e not in graph_ops]
    for scope in float_scopes:
        if not any(_in_scope(m, scope) for m in modules.values()):
            raise MfdeployError(
                f"--float-ops: {scope!r} is neither an op type of this graph nor a module "
                f"(op types: {', '.join(sorted(graph_ops))}; modules e.g. {_examples(modules)})"
            )
    wanted = RECIPES[recipe][0] or tuple(sorted(graph_ops))
    op_types = sorted(set(wanted) - set(float_types))
    excluded = {
        n.name
        for n in model.graph.node
        if n.op_type in op_types and any(_in_scope(modules[n.name], s) for s in float_scopes)
    }
    if fuse_activations:
        op_types, excluded = _with_fused_activations(model, op_types, excluded, float_types)
    quantized = sum(1 for n in model.graph.node if n.op_type in op_types) - len(excluded)
    excluded = sorted(excluded)
    return Int8Plan(
        recipe=recipe,
        calibration_method=method,
        quantized_op_types=op_types,
        float_op_types=sorted(float_types),
        float_scopes=float_scopes,
        float_nodes=excluded,
        quantized_nodes=quantized,
    )


class CalibrationReader:
    """onnxruntime CalibrationDataReader over preprocessed photos, in a fixed order."""

    def __init__(self, images: np.ndarray, input_name: str, batch: int):
        self.items = [images[i : i + batch] for i in range(0, len(images) - batch + 1, batch)]
        if not self.items:
            raise MfdeployError(f"need at least {batch} calibration images for batch {batch}")
        self.input_name = input_name
        self.iterator = iter(progress(self.items, "int8 calibration"))

    def get_next(self) -> dict[str, np.ndarray] | None:
        item = next(self.iterator, None)
        return None if item is None else {self.input_name: item}

    def rewind(self) -> None:
        self.iterator = iter(self.items)


def prepare(fp32_path: Path, out_path: Path) -> None:
    """ORT's quantisation pre-processing (shape inference + graph clean-up)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(fp32_path), str(out_path), skip_symbolic_shape=True)


def quantize_static_qdq(
    prepared_path: Path,
    out_path: Path,
    calibration: np.ndarray,
    plan: Int8Plan,
    batch: int = 1,
) -> None:
    """Static QDQ: per-channel symmetric int8 weights, uint8 activations, per `plan`.

    uint8 (not int8) activations: ONNX Runtime's x86 CPU EP fuses every DQ -> Conv -> Q into
    QLinearConv (and residual adds into QLinearAdd) only for u8 x s8; with int8 activations
    it converts what it can to uint8 and leaves a convolution whose input is shared with a
    float op (a residual add) as DequantizeLinear + float Conv. Measured on
    EfficientNet-Lite0: 48 of 48 convolutions fused instead of 34, 10.45 instead of 12.67
    ms (fp32 11.27), the same SQNR (docs/onnx.md). NNAPI's QUANT8_ASYMM is uint8 as well.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    quantize_static(
        str(prepared_path),
        str(out_path),
        CalibrationReader(calibration, "input", batch),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=plan.quantized_op_types,
        nodes_to_exclude=plan.float_nodes,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=methods[plan.calibration_method],
        extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
    )


def quantize_float_linears(in_path: Path, out_path: Path) -> int:
    """Give every MatMul / Gemm with a constant float weight int8 per-channel weights and
    activations quantised at run time (ORT's DynamicQuantizeLinear + MatMulInteger); returns
    how many it quantised.

    The int8 export runs it after the static pass, on the linears its recipe left float: the
    token path's layers see a handful of tokens, where run-time scales cost little accuracy
    and the int8 weights are most of the file and a quarter of the memory traffic. Layers
    whose weight the static pass quantised (QDQ) have no constant float weight and are left
    alone. Convolutions are never quantised this way: ORT's ConvInteger takes per-tensor
    weights only and runs many times slower than its float convolution (docs/onnx.md,
    "Dynamic int8").
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    def integer_nodes(path: Path) -> int:
        return sum(n.op_type == "MatMulInteger" for n in onnx.load(str(path)).graph.node)

    # it warns on the root logger that a QDQ input "may be quantized already": it is, by design
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(
            str(in_path),
            str(out_path),
            op_types_to_quantize=list(DYNAMIC_OP_TYPES),
            per_channel=True,
            weight_type=QuantType.QInt8,
        )
    finally:
        root.setLevel(level)
    return integer_nodes(out_path) - integer_nodes(in_path)
