"""Execute a saved Core ML ML program in numpy, op by op, on any OS (no `MLModel.predict`).

Core ML's own runtime exists only on Apple platforms. To check the *converted program* (not
the PyTorch model it came from) on Linux, this module loads the `.mlpackage` back into a MIL
program with coremltools' milproto loader and evaluates its operations in program order.

Semantics:
- The ops listed in `IMPLEMENTED` are evaluated by numpy code in this module:
  - the compute-heavy ops coremltools gives no `value_inference` (conv, linear, matmul,
    softmax, layer_norm, batch_norm, pooling, reductions, cast, quantize / dequantize, classify)
    and the activations it leaves without one (gelu, silu);
  - the frequent cheap ops that do have one (add / sub / mul / real_div / maximum / minimum,
    relu / relu6, reshape, transpose, slice_by_index, concat, pad): going through coremltools
    costs far more per call (input checks, type machinery) than these ops themselves. They
    give bit for bit what coremltools' definition gives (tests/test_mil_executor.py checks
    each against its `value_inference`). A call using a feature handled only there (reshape of
    a symbolically shaped x, a slice squeezing every axis, rank-0 concat inputs, non-array
    operands, ...) is handed to coremltools. One deliberate difference: coremltools'
    `value_inference` of concat ignores `interleave`; here it follows the op's documentation.
- Every other op whose coremltools class defines `value_inference` (constexpr dequantisation,
  other elementwise and shape ops, ...) is run through it: coremltools' own numpy definition
  of the op, fed with the runtime values.
- Every op's result is stored in the dtype the program declares for it, so a float16
  program keeps float16 values between ops (an fp16 overflow shows up as inf exactly where
  the program would overflow).
- Elementwise ops compute in the dtype of their inputs. float16 add / sub / mul / real_div
  give the float32 result rounded once to float16: numpy's float16 loops widen each element
  to float32, compute, and round (for + - * / that is the correctly rounded float16 result:
  float32 has 24 >= 2 * 11 + 2 significand bits, so rounding twice is innocuous); widening
  whole arrays first gives the same bits but was measured slower, numpy's float16 <-> float32
  casts being no faster than those loops. maximum / minimum / relu / relu6 select one of
  their inputs, exact in any precision; on float16 they work on the bit patterns (numpy's
  float16 comparisons are slow) and keep numpy's float16 rules: on a -0 / +0 tie the first
  operand, NaNs propagated. matmul / conv / linear / softmax / layer_norm / reductions
  accumulate in float32 (numpy has no fast float16 GEMM, and Core ML's CPU and GPU backends
  also accumulate wider) and round the result; their float16 constant inputs (weights,
  biases) are widened to float32 once, when the program is opened.
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
def _windows(kh: int, kw: int, strides, dilations, oh: int, ow: int) -> list[tuple[slice, slice]]:
    """Per kernel tap (i, j), in row-major order: the rows and columns of the padded input
    that it meets."""
    return [
        (
            slice(i * dilations[0], i * dilations[0] + strides[0] * oh, strides[0]),
            slice(j * dilations[1], j * dilations[1] + strides[1] * ow, strides[1]),
        )
        for i in range(kh)
        for j in range(kw)
    ]


def _depthwise(x: np.ndarray, w: np.ndarray, strides, dilations, oh: int, ow: int) -> np.ndarray:
    """Depthwise conv of the padded x: out = the sum over the kernel taps, in row-major order,
    of tap * weight. Every output element gets the same products added in the same order
    however the work is cut, which only serves speed:

    - stride 1: tap (i, j) of output row r, column q reads flat element (r + i * d0) * W +
      q + j * d1 of a channel's flattened image (W its padded width), so a tap is one
      contiguous run of oh * W elements; the W - ow columns past each output row are dropped
      at the end (x carries a spare row so that the last run stays inside it);
    - channels go in blocks small enough for the running sum to stay in the CPU cache.
    """
    b, c, rows, width = x.shape
    kh, kw = w.shape[2:]
    taps = [(i, j) for i in range(kh) for j in range(kw)]
    flat = strides == [1, 1]
    if flat:
        n = oh * width
        src = x.reshape(b, c, rows * width)
        starts = [i * dilations[0] * width + j * dilations[1] for i, j in taps]
        cut = [(slice(s, s + n),) for s in starts]
        shape: tuple[int, ...] = (b, c, n)
    else:
        src = x
        cut = _windows(kh, kw, strides, dilations, oh, ow)
        shape = (b, c, oh, ow)
    scales = w[:, 0].reshape(c, kh * kw, *(1,) * (len(shape) - 2))
    out = np.zeros(shape, dtype=np.float32)
    block = max(1, (1 << 15) // (b * math.prod(shape[2:])))  # ~128 KiB of running sum
    product = np.empty((b, min(block, c), *shape[2:]), dtype=np.float32)
    for first in range(0, c, block):
        channels = slice(first, first + block)
        acc, prod = out[:, channels], product[:, : min(block, c - first)]
        for k, where in enumerate(cut):
            acc += np.multiply(src[(slice(None), channels, *where)], scales[channels, k], out=prod)
    if flat:  # drop the columns past each output row
        out = out.reshape(b, c, oh, width)[..., :ow]
    return np.ascontiguousarray(out)


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
    c = x.shape[1]
    depthwise = groups == c and w.shape[:2] == (c, 1)
    # stride-1 depthwise runs each tap over the flattened image: one spare row keeps the last
    # tap's run inside the array
    spare = 1 if depthwise and strides == [1, 1] else 0
    if top or bottom or left or right or spare:
        x = np.pad(x, ((0, 0), (0, 0), (top, bottom + spare), (left, right)))
    b, c, h, wd = x.shape
    h -= spare
    oh = (h - (kh - 1) * dilations[0] - 1) // strides[0] + 1
    ow = (wd - (kw - 1) * dilations[1] - 1) // strides[1] + 1
    if depthwise:
        out = _depthwise(x, w, strides, dilations, oh, ow)
    else:  # grouped im2col: (B, G, Cin/G * kh * kw, OH*OW)
        cout = w.shape[0]
        cin_g, cout_g = c // groups, cout // groups
        wg = w.reshape(groups, cout_g, cin_g * kh * kw)
        if kh == kw == 1 and strides == [1, 1]:  # pointwise: the column matrix is x itself
            cols = np.ascontiguousarray(x.reshape(b, groups, cin_g, h * wd))
        else:
            windows = _windows(kh, kw, strides, dilations, oh, ow)
            taps = np.stack([x[:, :, rows, cols] for rows, cols in windows], axis=2)
            cols = taps.reshape(b, groups, cin_g, kh * kw, oh * ow).reshape(b, groups, -1, oh * ow)
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


# ------------------------------------------- cheap ops coremltools also defines (value_inference)
class _ValueInference:
    """Returned by an op implementation for a call it leaves to coremltools' value_inference."""

    def __repr__(self) -> str:
        return "VALUE_INFERENCE"


VALUE_INFERENCE: Any = _ValueInference()

_HALF = np.dtype(np.float16)


def _arrays(*values: Any) -> bool:
    return all(isinstance(value, np.ndarray) for value in values)


def _arithmetic(fn: Callable[[Any, Any], Any]) -> OpFn:
    """x (fn) y with numpy broadcasting: the numpy operation coremltools' elementwise_binary
    applies, without its per-call overhead.

    float16 operands use numpy's float16 loop, which widens each element to float32, computes
    and rounds once to float16: for + - * / that is the correctly rounded float16 result
    (float32 has 24 >= 2 * 11 + 2 significand bits, so rounding twice is innocuous). Widening
    the whole arrays first and rounding the float32 result gives the same bits but was
    measured slower: numpy's separate float16 <-> float32 casts cost more than the fused loop.
    """

    def run(op, v: Values) -> Any:
        x, y = v["x"], v["y"]
        if not _arrays(x, y):
            return VALUE_INFERENCE
        return fn(x, y)

    return run


def _half_key(bits: np.ndarray) -> np.ndarray:
    """float16 bit patterns (as int16) -> int16 keys ordered like the values (-0 and +0 -> 0).

    Meaningless for NaNs, which the callers test separately.
    """
    sign = bits >> 15  # 0 or -1: sign-magnitude to two's complement
    return ((bits & np.int16(0x7FFF)) ^ sign) - sign


def _half_isnan(bits: np.ndarray) -> np.ndarray:
    return (bits & np.int16(0x7FFF)) > np.int16(0x7C00)


def _bit_select(take_x: np.ndarray, x: Any, y: Any) -> np.ndarray:
    """int16 bits: x where take_x else y (branch-free: np.where is slow on random masks)."""
    mask = -take_x.astype(np.int16)  # all ones where take_x
    return y ^ ((x ^ y) & mask)


def _half_select(x: np.ndarray, y: np.ndarray, keep_x: Callable[..., np.ndarray]) -> np.ndarray:
    """numpy's float16 maximum / minimum loop: x where `keep_x(x, y)` holds (on a tie, so -0
    against +0, x) or x is NaN, else y (y's NaN when only y is NaN), computed on the bit
    patterns instead of numpy's slow float16 comparisons."""
    xb, yb = x.view(np.int16), y.view(np.int16)
    keep = keep_x(_half_key(xb), _half_key(yb))
    keep &= ~_half_isnan(yb)
    keep |= _half_isnan(xb)
    return _bit_select(keep, xb, yb).view(np.float16)


def _extremum(fn: Callable[[Any, Any], Any], keep_x: Callable[..., np.ndarray]) -> OpFn:
    def run(op, v: Values) -> Any:
        x, y = v["x"], v["y"]
        if not _arrays(x, y):
            return VALUE_INFERENCE
        if x.dtype == _HALF and y.dtype == _HALF:
            return _half_select(x, y, keep_x)
        return fn(x, y)

    return run


#: float16 bit patterns as int16: -0 is -32768, the smallest negative subnormal -32767, -inf
#: -1024 (negative NaNs lie above it, up to -1); 6.0 is 0x4600 and +inf 0x7C00
_HALF_NEG_ZERO, _HALF_NEG_INF, _HALF_SIX, _HALF_INF = -32768, -1024, 0x4600, 0x7C00


def _half_relu_bits(x: np.ndarray) -> np.ndarray:
    """numpy's float16 maximum(x, 0) as int16 bits: +0 for x < 0; -0 and NaNs are kept."""
    bits = x.view(np.int16)
    negative = (bits > _HALF_NEG_ZERO) & (bits <= _HALF_NEG_INF)
    return _bit_select(negative, np.int16(0), bits)


def _relu(op, v: Values) -> Any:
    x = v["x"]
    if not _arrays(x):
        return VALUE_INFERENCE
    if x.dtype == _HALF:
        return _half_relu_bits(x).view(np.float16)
    return np.maximum(x, 0)


def _relu6(op, v: Values) -> Any:
    x = v["x"]
    if not _arrays(x):
        return VALUE_INFERENCE
    if x.dtype == _HALF:  # then numpy's float16 minimum(., 6): NaNs are kept
        bits = _half_relu_bits(x)
        above = (bits > _HALF_SIX) & (bits <= _HALF_INF)
        return _bit_select(above, np.int16(_HALF_SIX), bits).view(np.float16)
    low = np.maximum(x, 0)  # coremltools: np.minimum(np.maximum(x, 0), 6)
    return np.minimum(low, 6, out=low) if isinstance(low, np.ndarray) else np.minimum(low, 6)


def _ios17_reshape() -> type:
    from coremltools.converters.mil.mil.ops.defs.iOS17.tensor_transformation import reshape

    return reshape


def _reshape(op, v: Values) -> Any:
    """Reshape to `shape`: one -1 takes the remaining size; a 0 copies the matching dim of x
    (iOS 15/16: same position, len(shape) == rank(x); iOS 17+: right-aligned, 1 past x's
    rank)."""
    x, shape = v["x"], v["shape"]
    if not _arrays(x, shape) or shape.ndim != 1 or x.shape != tuple(op.x.shape):
        return VALUE_INFERENCE  # symbolic (flexible) shapes: coremltools' own rules
    target = [int(s) for s in shape]
    if 0 in target:
        if isinstance(op, _ios17_reshape()):
            padded = (1,) * max(len(target) - x.ndim, 0) + x.shape
            target = [padded[i - len(target)] if s == 0 else s for i, s in enumerate(target)]
        elif len(target) == x.ndim:
            target = [x.shape[i] if s == 0 else s for i, s in enumerate(target)]
        else:
            return VALUE_INFERENCE
    if any(s < -1 for s in target) or target.count(-1) > 1:
        return VALUE_INFERENCE
    if -1 in target:
        known = math.prod(s for s in target if s != -1)
        if known == 0 or x.size % known:
            return VALUE_INFERENCE
        target[target.index(-1)] = x.size // known
    if math.prod(target) != x.size:
        return VALUE_INFERENCE
    return x.reshape(target)


def _transpose(op, v: Values) -> Any:
    x, perm = v["x"], v["perm"]
    if not _arrays(x, perm) or perm.shape != (x.ndim,):
        return VALUE_INFERENCE
    return np.transpose(x, [int(p) for p in perm])


def _slice_by_index(op, v: Values) -> Any:
    """x[begin:end:stride] per axis; begin_mask / end_mask drop a bound, squeeze_mask takes the
    single element at begin (at 0 with begin_mask) and removes the axis."""
    x, begin, end = v["x"], v["begin"], v["end"]
    if not _arrays(x, begin, end):
        return VALUE_INFERENCE
    rank = x.ndim

    def per_axis(key: str, default: int | bool) -> list:
        value = v.get(key)
        return [default] * rank if value is None else np.asarray(value).tolist()

    begins, ends = begin.tolist(), end.tolist()
    strides = per_axis("stride", 1)
    begin_mask, end_mask = per_axis("begin_mask", False), per_axis("end_mask", False)
    squeeze = per_axis("squeeze_mask", False)
    if rank == 0 or any(
        not isinstance(a, list) or len(a) != rank
        for a in (begins, ends, strides, begin_mask, end_mask, squeeze)
    ):
        return VALUE_INFERENCE
    if all(squeeze) or 0 in strides:  # a scalar result / an invalid stride
        return VALUE_INFERENCE
    index: list[int | slice] = []
    for axis in range(rank):
        first = None if begin_mask[axis] else int(begins[axis])
        if squeeze[axis]:
            first = first or 0
            if not -x.shape[axis] <= first < x.shape[axis]:
                return VALUE_INFERENCE
            index.append(first)
        else:
            last = None if end_mask[axis] else int(ends[axis])
            index.append(slice(first, last, int(strides[axis])))
    return x[tuple(index)]


def _concat(op, v: Values) -> Any:
    """Values joined along axis; with interleave (equal shapes), element i of every input in
    turn: out[0::n] = values[0], out[1::n] = values[1], ... along the axis (coremltools'
    value_inference ignores interleave, the op's documentation defines it)."""
    values, axis = v["values"], v["axis"]
    if not values or not _arrays(axis, *values) or any(a.ndim == 0 for a in values):
        return VALUE_INFERENCE
    rank = values[0].ndim
    axis = int(axis)
    if not -rank <= axis < rank:
        return VALUE_INFERENCE
    if v.get("interleave") is not None and bool(v["interleave"]):
        shape = values[0].shape
        if any(a.shape != shape for a in values):
            return VALUE_INFERENCE
        axis %= rank
        joined = list(shape)
        joined[axis] *= len(values)
        return np.stack(values, axis=axis + 1).reshape(joined)
    return np.concatenate(values, axis=axis)


def _pad(op, v: Values) -> Any:
    """Pad the last len(pad) / 2 axes: pad[2i] before, pad[2i + 1] after; constant (with
    constant_val, default 0), reflect or replicate (numpy's "edge")."""
    x, pad = v["x"], v["pad"]
    mode = str(v.get("mode", "constant"))
    if not _arrays(x, pad) or pad.ndim != 1 or pad.size % 2 or pad.size // 2 > x.ndim:
        return VALUE_INFERENCE
    widths = [(0, 0)] * (x.ndim - pad.size // 2) + [(int(a), int(b)) for a, b in pad.reshape(-1, 2)]
    if any(a < 0 or b < 0 for a, b in widths):
        return VALUE_INFERENCE
    if mode == "constant":
        return np.pad(x, widths, mode="constant", constant_values=v.get("constant_val", 0.0))
    if mode in ("reflect", "replicate"):
        return np.pad(x, widths, mode="reflect" if mode == "reflect" else "edge")
    return VALUE_INFERENCE


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
    "add": _arithmetic(np.add),
    "sub": _arithmetic(np.subtract),
    "mul": _arithmetic(np.multiply),
    "real_div": _arithmetic(np.true_divide),
    "maximum": _extremum(np.maximum, np.greater_equal),
    "minimum": _extremum(np.minimum, np.less_equal),
    "relu": _relu,
    "relu6": _relu6,
    "reshape": _reshape,
    "transpose": _transpose,
    "slice_by_index": _slice_by_index,
    "concat": _concat,
    "pad": _pad,
}

#: ops whose implementation here reads each float input as float32 (`_accumulator`), so a
#: float16 constant input can be widened once, when the program is opened, not on every call
WIDENS_INPUTS = frozenset(
    {
        "conv", "linear", "matmul", "softmax", "layer_norm", "batch_norm", "reduce_mean",
        "reduce_sum", "reduce_max", "avg_pool", "max_pool", "silu",
    }
)  # fmt: skip


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
        #: per op: its (name, input) pairs and its outputs' numpy dtypes, looked up once
        self._plans: dict[Any, tuple[list, list]] = {
            op: (list(op.inputs.items()), [_np_dtype(var) for var in op.outputs])
            for op in self.operations
        }
        for op in self.operations:
            if op.op_type in CONSTANT_OPS or is_constexpr(op):
                self._evaluate(op, self.constants)
            else:
                self._ops.append(op)
        #: float32 copies of the float16 constants that WIDENS_INPUTS ops read
        self._widened: Values = {}
        for op in self._ops:
            if op.op_type in WIDENS_INPUTS:
                for var in op.inputs.values():
                    value = self.constants.get(getattr(var, "name", None))
                    if isinstance(value, np.ndarray) and value.dtype == _HALF:
                        self._widened[var.name] = value.astype(np.float32)

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
        widened = self._widened if op.op_type in WIDENS_INPUTS else {}
        for key, var in self._plans[op][0]:
            if isinstance(var, (list, tuple)):
                values[key] = tuple(self._value(item, env) for item in var)
            elif var.name in widened:
                values[key] = widened[var.name]
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
            if result is VALUE_INFERENCE:
                if not has_value_inference(op):
                    raise UnsupportedMilOp(f"MIL op {op.op_type} ({op.name}): unsupported inputs")
                result = self._value_inference(op, env)
        elif has_value_inference(op):
            result = self._value_inference(op, env)
        else:
            raise UnsupportedMilOp(f"the MIL executor has no implementation for op {op.op_type}")
        results = result if isinstance(result, tuple) else (result,)
        if len(results) != len(op.outputs):
            raise MfdeployError(f"MIL executor: op {op.op_type} ({op.name}) gave wrong outputs")
        for var, value, dtype in zip(op.outputs, results, self._plans[op][1]):
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
