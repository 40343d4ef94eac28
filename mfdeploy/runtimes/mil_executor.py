"""Execute a saved Core ML ML program in numpy, op by op, on any OS (no `MLModel.predict`).

Core ML's own runtime exists only on Apple platforms. To check the *converted program* (not
the PyTorch model it came from) on Linux, this module loads the `.mlpackage` back into a MIL
program with coremltools' milproto loader and evaluates its operations in program order.

Semantics:
- Ops whose coremltools class defines `value_inference` (elementwise arithmetic, reshape,
  transpose, slicing, concat, activations, constexpr dequantisation, ...) are run through it:
  coremltools' own numpy definition of the op, fed with the runtime values.
- The compute-heavy ops that have none (conv, linear, matmul, softmax, layer_norm, pooling,
  reductions, cast, quantize / dequantize, classify) are implemented here, and the
  activations coremltools leaves without one (gelu, silu).
- Every op's result is stored in the dtype the program declares for it, so a float16
  program keeps float16 values between ops (an fp16 overflow shows up as inf exactly where
  the program would overflow). Elementwise ops compute in that dtype; matmul / conv / linear
  / softmax / layer_norm / reductions accumulate in float32 (numpy has no fast float16 GEMM,
  and Core ML's CPU and GPU backends also accumulate wider) and round the result.
- An op with no implementation raises `UnsupportedMilOp` naming it: never a pass-through.

`run(..., keep_all=True)` keeps every intermediate value by name (per-layer drift reports).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mfdeploy.errors import MfdeployError
from mfdeploy.export.coreml_mil import load_program

Values = dict[str, Any]
OpFn = Callable[[Any, Values], Any]

#: ops evaluated once when the program is opened (with constexpr_*: only constants in)
CONSTANT_OPS = ("const",)


class UnsupportedMilOp(MfdeployError):
    """The program contains an op this executor cannot evaluate."""


class _Held:
    """Stands in for a Var's symbolic value so that coremltools' value_inference reads it."""

    __slots__ = ("val",)

    def __init__(self, val: Any) -> None:
        self.val = val


def _np_dtype(var) -> np.dtype | None:
    from coremltools.converters.mil.mil import types

    try:
        dtype = var.dtype
    except ValueError:  # list vars (the classifier's labels) have no dtype
        return None
    if types.is_str(dtype) or types.is_dict(dtype):
        return None
    try:
        return np.dtype(types.nptype_from_builtin(dtype))
    except (TypeError, KeyError):
        return None


def _accumulator(x: np.ndarray) -> np.ndarray:
    """float16 / float32 values as float32 for a wide accumulation."""
    return np.asarray(x, dtype=np.float32)


# ---------------------------------------------------------------- ops implemented here
def _conv(op, v: Values) -> np.ndarray:
    x = _accumulator(v["x"])
    w = _accumulator(v["weight"])
    groups = int(v.get("groups", 1))
    rank = w.ndim - 2
    if rank != 2:
        raise UnsupportedMilOp(f"MIL op conv ({op.name}): only 2-D convolution is implemented")
    strides = [int(s) for s in v.get("strides", [1, 1])]
    dilations = [int(d) for d in v.get("dilations", [1, 1])]
    kh, kw = w.shape[2:]
    pad_type = str(v.get("pad_type", "valid"))
    if pad_type == "custom":
        top, bottom, left, right = (int(p) for p in v["pad"])
    elif pad_type == "valid":
        top = bottom = left = right = 0
    elif pad_type in ("same", "same_lower"):
        pads = []
        for size, k, s, d in zip(x.shape[2:], (kh, kw), strides, dilations):
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            small, big = total // 2, total - total // 2
            pads.append((big, small) if pad_type == "same_lower" else (small, big))
        (top, bottom), (left, right) = pads
    else:
        raise UnsupportedMilOp(f"MIL op conv ({op.name}): pad_type {pad_type!r}")
    x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    b, c, h, wd = x.shape
    oh = (h - (kh - 1) * dilations[0] - 1) // strides[0] + 1
    ow = (wd - (kw - 1) * dilations[1] - 1) // strides[1] + 1
    cout = w.shape[0]
    cin_g, cout_g = c // groups, cout // groups
    out = np.zeros((b, cout, oh, ow), dtype=np.float32)

    def window(i: int, j: int) -> np.ndarray:
        r0, c0 = i * dilations[0], j * dilations[1]
        return x[
            :, :, r0 : r0 + strides[0] * oh : strides[0], c0 : c0 + strides[1] * ow : strides[1]
        ]

    if groups == c and cin_g == 1 and cout == c:  # depthwise: sum over kernel taps
        for i in range(kh):
            for j in range(kw):
                out += window(i, j) * w[None, :, 0, i, j, None, None]
    else:  # grouped im2col: (B, G, Cin/G * kh * kw, OH*OW)
        taps = np.stack([window(i, j) for i in range(kh) for j in range(kw)], axis=2)
        cols = taps.reshape(b, groups, cin_g, kh * kw, oh * ow).reshape(b, groups, -1, oh * ow)
        wg = w.reshape(groups, cout_g, cin_g * kh * kw)
        out = np.matmul(wg[None], cols).reshape(b, cout, oh, ow)
    if v.get("bias") is not None:
        out = out + _accumulator(v["bias"])[None, :, None, None]
    return out


def _linear(op, v: Values) -> np.ndarray:
    out = np.matmul(_accumulator(v["x"]), _accumulator(v["weight"]).T)
    if v.get("bias") is not None:
        out = out + _accumulator(v["bias"])
    return out


def _swap_last(x: np.ndarray) -> np.ndarray:
    return np.swapaxes(x, -1, -2) if x.ndim >= 2 else x


def _matmul(op, v: Values) -> np.ndarray:
    x, y = _accumulator(v["x"]), _accumulator(v["y"])
    if v.get("transpose_x", False):
        x = _swap_last(x)
    if v.get("transpose_y", False):
        y = _swap_last(y)
    return np.matmul(x, y)


def _softmax(op, v: Values) -> np.ndarray:
    x = _accumulator(v["x"])
    axis = int(v.get("axis", -1))
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _layer_norm(op, v: Values) -> np.ndarray:
    x = _accumulator(v["x"])
    axes = tuple(int(a) for a in np.atleast_1d(v["axes"])) if v.get("axes") is not None else None
    if axes is None:
        axes = tuple(range(x.ndim))
    eps = float(v.get("epsilon", 1e-5))
    mean = x.mean(axis=axes, keepdims=True)
    var = np.square(x - mean).mean(axis=axes, keepdims=True)
    out = (x - mean) / np.sqrt(var + eps)
    if v.get("gamma") is not None:
        out = out * _accumulator(v["gamma"])
    if v.get("beta") is not None:
        out = out + _accumulator(v["beta"])
    return out


def _batch_norm(op, v: Values) -> np.ndarray:
    """Inference batch norm over axis 1 (coremltools fuses per-channel mul + add into it)."""
    x = _accumulator(v["x"])
    shape = [1, -1] + [1] * (x.ndim - 2)
    mean = _accumulator(v["mean"]).reshape(shape)
    var = _accumulator(v["variance"]).reshape(shape)
    out = (x - mean) / np.sqrt(var + float(v.get("epsilon", 1e-5)))
    if v.get("gamma") is not None:
        out = out * _accumulator(v["gamma"]).reshape(shape)
    if v.get("beta") is not None:
        out = out + _accumulator(v["beta"]).reshape(shape)
    return out


def _reduce(fn: Callable[..., np.ndarray]) -> OpFn:
    def run(op, v: Values) -> np.ndarray:
        axes = v.get("axes")
        axes = None if axes is None else tuple(int(a) for a in np.atleast_1d(axes))
        return fn(_accumulator(v["x"]), axis=axes, keepdims=bool(v.get("keep_dims", False)))

    return run


def _pool(kind: str) -> OpFn:
    def run(op, v: Values) -> np.ndarray:
        x = _accumulator(v["x"])
        if x.ndim != 4:
            raise UnsupportedMilOp(f"MIL op {op.op_type} ({op.name}): only 2-D pooling")
        kh, kw = (int(k) for k in v["kernel_sizes"])
        sh, sw = (int(s) for s in v.get("strides", [1, 1]))
        pad_type = str(v.get("pad_type", "valid"))
        if pad_type == "custom":
            top, bottom, left, right = (int(p) for p in v["pad"])
        elif pad_type == "valid":
            top = bottom = left = right = 0
        else:
            raise UnsupportedMilOp(f"MIL op {op.op_type} ({op.name}): pad_type {pad_type!r}")
        fill = -np.inf if kind == "max" else 0.0
        padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=fill)
        ones = np.pad(np.ones(x.shape[2:], np.float32), ((top, bottom), (left, right)))
        h, w = padded.shape[2:]
        oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
        taps, counts = [], []
        for i in range(kh):
            for j in range(kw):
                taps.append(padded[:, :, i : i + sh * oh : sh, j : j + sw * ow : sw])
                counts.append(ones[i : i + sh * oh : sh, j : j + sw * ow : sw])
        stack = np.stack(taps)
        if kind == "max":
            return stack.max(axis=0)
        total = stack.sum(axis=0)
        if bool(v.get("exclude_padding_from_average", False)):
            return total / np.stack(counts).sum(axis=0)
        return total / (kh * kw)

    return run


def _gelu(op, v: Values) -> np.ndarray:
    x = v["x"]
    mode = str(v.get("mode", "EXACT"))
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    if mode == "SIGMOID_APPROXIMATION":
        return x / (1 + np.exp(-1.702 * x))
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return (0.5 * x.astype(np.float64) * (1 + erf(x.astype(np.float64) / math.sqrt(2)))).astype(
        x.dtype
    )


def _silu(op, v: Values) -> np.ndarray:
    """x * sigmoid(x) (MobileViTv2's activation; coremltools gives it no value_inference),
    in float32: exp(-x) overflowing to inf for very negative x gives -0, never NaN."""
    x = _accumulator(v["x"])
    with np.errstate(over="ignore"):
        return x / (1.0 + np.exp(-x))


def _axis_shape(v: Values, x: np.ndarray, key: str) -> np.ndarray:
    """Per-axis scale / zero point broadcast against x (scalars stay scalars)."""
    value = np.asarray(v[key])
    if value.ndim == 0 or v.get("axis") is None:
        return value
    shape = [1] * x.ndim
    shape[int(v["axis"]) % x.ndim] = -1
    return value.reshape(shape)


def _quantize(op, v: Values) -> np.ndarray:
    x = _accumulator(v["input"])
    scale = _axis_shape(v, x, "scale").astype(np.float32)
    dtype = np.int8 if str(v["output_dtype"]) == "int8" else np.uint8
    zp = _axis_shape(v, x, "zero_point") if v.get("zero_point") is not None else 0
    info = np.iinfo(dtype)
    q = np.round(x / scale) + np.asarray(zp, np.float32)
    return np.clip(q, info.min, info.max).astype(dtype)


def _dequantize(op, v: Values) -> np.ndarray:
    q = v["input"].astype(np.float32)
    scale = _axis_shape(v, q, "scale").astype(np.float32)
    zp = _axis_shape(v, q, "zero_point") if v.get("zero_point") is not None else 0
    return (q - np.asarray(zp, np.float32)) * scale


def _cast(op, v: Values) -> np.ndarray:
    return np.asarray(v["x"])  # the declared output dtype is applied by the caller


def _classify(op, v: Values) -> tuple[np.ndarray, np.ndarray]:
    probs = _accumulator(v["probabilities"])
    classes = list(v["classes"])
    flat = probs.reshape(-1, probs.shape[-1]) if probs.ndim > 1 else probs[None]
    labels = np.array([classes[int(i)] for i in flat.argmax(axis=-1)], dtype=object)
    return labels, probs


IMPLEMENTED: dict[str, OpFn] = {
    "conv": _conv,
    "linear": _linear,
    "matmul": _matmul,
    "softmax": _softmax,
    "layer_norm": _layer_norm,
    "batch_norm": _batch_norm,
    "reduce_mean": _reduce(np.mean),
    "reduce_sum": _reduce(np.sum),
    "reduce_max": _reduce(np.max),
    "avg_pool": _pool("avg"),
    "max_pool": _pool("max"),
    "gelu": _gelu,
    "silu": _silu,
    "quantize": _quantize,
    "dequantize": _dequantize,
    "cast": _cast,
    "classify": _classify,
}


def has_value_inference(op) -> bool:
    from coremltools.converters.mil.mil.operation import Operation

    return type(op).value_inference is not Operation.value_inference


def is_constexpr(op) -> bool:
    """Compressed weights (int8 / LUT / sparse): decompressed once by coremltools' own code."""
    return op.op_type.startswith("constexpr_") and hasattr(op, "materialized_val_inference")


def supported(op) -> bool:
    return (
        op.op_type in IMPLEMENTED
        or op.op_type in CONSTANT_OPS
        or is_constexpr(op)
        or has_value_inference(op)
    )


class MilExecutor:
    """A MIL program ready to run: constants materialised once, ops evaluated in order."""

    def __init__(self, program, function: str = "main") -> None:
        self.program = program
        self.function = program.functions[function]
        self.operations = list(self.function.operations)
        missing = sorted({op.op_type for op in self.operations if not supported(op)})
        if missing:
            raise UnsupportedMilOp(
                f"the MIL executor has no implementation for op(s): {', '.join(missing)}"
            )
        self.input_names = list(self.function.inputs)
        self.output_names = [var.name for var in self.function.outputs]
        self.constants: Values = {}
        self._ops: list = []
        for op in self.operations:
            if op.op_type in CONSTANT_OPS or is_constexpr(op):
                self._evaluate(op, self.constants)
            else:
                self._ops.append(op)

    @classmethod
    def from_mlpackage(cls, path: str | Path) -> MilExecutor:
        return cls(load_program(path))

    def op_types(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for op in self.operations:
            counts[op.op_type] = counts.get(op.op_type, 0) + 1
        return counts

    def input_dtype(self, name: str) -> np.dtype | None:
        return _np_dtype(self.function.inputs[name])

    # ------------------------------------------------------------------ evaluation
    def _value(self, var, env: Values) -> Any:
        if var.name in env:
            return env[var.name]
        if var.name in self.constants:
            return self.constants[var.name]
        val = var.val
        if val is None:
            raise MfdeployError(f"MIL executor: value {var.name!r} is not available")
        return val

    def _inputs(self, op, env: Values) -> Values:
        values: Values = {}
        for key, var in op.inputs.items():
            if isinstance(var, (list, tuple)):
                values[key] = tuple(self._value(item, env) for item in var)
            else:
                values[key] = self._value(var, env)
        return values

    def _value_inference(self, op, env: Values) -> Any:
        """coremltools' own numpy definition of the op, fed with runtime values."""
        swapped = []
        try:
            for var in op.inputs.values():
                for item in var if isinstance(var, (list, tuple)) else (var,):
                    swapped.append((item, item._sym_val))
                    item._sym_val = _Held(self._value(item, env))
            return op.value_inference()
        finally:
            for item, old in reversed(swapped):
                item._sym_val = old

    def _evaluate(self, op, env: Values) -> None:
        if op.op_type == "const":
            result: Any = op.outputs[0].val
        elif is_constexpr(op):
            result = op.materialized_val_inference()
        elif op.op_type in IMPLEMENTED:
            result = IMPLEMENTED[op.op_type](op, self._inputs(op, env))
        elif has_value_inference(op):
            result = self._value_inference(op, env)
        else:
            raise UnsupportedMilOp(f"the MIL executor has no implementation for op {op.op_type}")
        results = result if isinstance(result, tuple) else (result,)
        if len(results) != len(op.outputs):
            raise MfdeployError(f"MIL executor: op {op.op_type} ({op.name}) gave wrong outputs")
        for var, value in zip(op.outputs, results):
            dtype = _np_dtype(var)
            if dtype is not None:
                value = np.asarray(value).astype(dtype, copy=False)
            env[var.name] = value

    def run(self, feeds: dict[str, np.ndarray], keep_all: bool = False) -> Values:
        """Inputs by name -> outputs by name (every intermediate too when keep_all)."""
        missing = [name for name in self.input_names if name not in feeds]
        if missing:
            raise MfdeployError(f"MIL executor: missing input(s) {', '.join(missing)}")
        env: Values = {}
        for name in self.input_names:
            dtype = self.input_dtype(name)
            env[name] = np.asarray(feeds[name], dtype=dtype)
        for op in self._ops:
            self._evaluate(op, env)
        if keep_all:
            return env
        return {name: env[name] for name in self.output_names}
