"""The MIL executor, op by op, against PyTorch on random inputs.

Each case builds a one-op MIL program with coremltools' Builder, runs it in the executor and
compares with the PyTorch function of the same meaning; the ops that coremltools also defines
(its `value_inference`) are checked against that definition bit for bit. `OP_CASES` lists
the op types covered; tests/test_coreml_target.py checks that every op type in the exported
26m programs is here, so a wrong executor cannot hide a wrong conversion.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

ct = pytest.importorskip("coremltools")
from coremltools.converters.mil import Builder as mb  # noqa: E402
from coremltools.converters.mil.mil import types  # noqa: E402

from mfdeploy.runtimes.mil_executor import (  # noqa: E402
    IMPLEMENTED,
    VALUE_INFERENCE,
    MilExecutor,
    UnsupportedMilOp,
)

RNG = np.random.default_rng(0)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def build_program(build, specs, opset=None):
    """`build(*vars)` as a program with one input per TensorSpec."""
    opset = opset or ct.target.iOS17
    if len(specs) == 1:

        @mb.program(input_specs=specs, opset_version=opset)
        def program(x):
            return build(x)

    elif len(specs) == 2:

        @mb.program(input_specs=specs, opset_version=opset)
        def program(x, y):
            return build(x, y)

    else:

        @mb.program(input_specs=specs, opset_version=opset)
        def program(x, y, z):
            return build(x, y, z)

    return program


def run_one(build, *inputs: np.ndarray, opset=None, fp16: bool = False) -> np.ndarray:
    """Build `build(*vars)` as a program, execute it, return its (only) output."""
    dtype = types.fp16 if fp16 else types.fp32
    specs = [mb.TensorSpec(shape=x.shape, dtype=dtype) for x in inputs]
    program = build_program(build, specs, opset)
    executor = MilExecutor(program)
    feeds = {name: x for name, x in zip(executor.input_names, inputs)}
    (out,) = executor.run(feeds).values()
    return out


def close(out: np.ndarray, ref: torch.Tensor | np.ndarray, atol: float = 1e-5) -> None:
    ref = ref.detach().numpy() if isinstance(ref, torch.Tensor) else ref
    assert out.shape == ref.shape
    np.testing.assert_allclose(out.astype(np.float64), ref.astype(np.float64), atol=atol, rtol=0)


T = torch.from_numpy


# --------------------------------------------------------------------------- conv
@pytest.mark.parametrize(
    ("cin", "cout", "k", "stride", "groups", "pad_type"),
    [
        (3, 8, 3, 2, 1, "custom"),  # stem
        (8, 8, 3, 1, 8, "custom"),  # depthwise
        (8, 16, 3, 2, 8, "custom"),  # depthwise with channel multiplier
        (8, 12, 1, 1, 4, "valid"),  # grouped pointwise (26m)
        (6, 6, 3, 2, 6, "same"),
        (4, 5, 3, 1, 1, "valid"),
    ],
)
def test_conv(cin, cout, k, stride, groups, pad_type):
    x, w, b = rand(2, cin, 11, 11), rand(cout, cin // groups, k, k), rand(cout)
    pad = [k // 2] * 4

    def build(v):
        extra = {"pad": pad} if pad_type == "custom" else {}
        return mb.conv(
            x=v, weight=w, bias=b, strides=[stride] * 2, pad_type=pad_type, groups=groups, **extra
        )

    out = run_one(build, x)
    torch_pad = k // 2 if pad_type in ("custom", "same") else 0
    if pad_type == "same" and stride == 2:  # same padding, odd input: symmetric here
        torch_pad = (k - 1) // 2
    ref = F.conv2d(T(x), T(w), T(b), stride=stride, padding=torch_pad, groups=groups)
    close(out, ref, atol=1e-4)


def test_conv_fp16_computes_in_float16():
    x, w, b = rand(1, 4, 9, 9), rand(6, 4, 3, 3), rand(6)
    out = run_one(
        lambda v: mb.conv(
            x=v,
            weight=w.astype(np.float16),
            bias=b.astype(np.float16),
            pad_type="custom",
            pad=[1, 1, 1, 1],
        ),
        x.astype(np.float16),
        fp16=True,
    )
    assert out.dtype == np.float16
    ref = F.conv2d(T(x), T(w), T(b), padding=1)
    close(out, ref, atol=0.05)


# ------------------------------------------------------------------ dense / attention
def test_linear():
    x, w, b = rand(2, 6, 16), rand(10, 16), rand(10)
    close(run_one(lambda v: mb.linear(x=v, weight=w, bias=b), x), F.linear(T(x), T(w), T(b)))


@pytest.mark.parametrize(("tx", "ty"), [(False, False), (False, True), (True, False)])
def test_matmul(tx, ty):
    a, b = rand(2, 3, 5, 7), rand(2, 3, 7, 4)
    a_in = np.swapaxes(a, -1, -2).copy() if tx else a
    b_in = np.swapaxes(b, -1, -2).copy() if ty else b
    out = run_one(lambda x, y: mb.matmul(x=x, y=y, transpose_x=tx, transpose_y=ty), a_in, b_in)
    close(out, T(a) @ T(b), atol=1e-4)


@pytest.mark.parametrize("axis", [-1, 2])
def test_softmax(axis):
    x = rand(2, 3, 4, 5) * 4
    close(run_one(lambda v: mb.softmax(x=v, axis=axis), x), torch.softmax(T(x), dim=axis))


def test_layer_norm():
    x, g, b = rand(2, 6, 16) * 3 + 1, rand(16), rand(16)
    out = run_one(lambda v: mb.layer_norm(x=v, axes=[-1], gamma=g, beta=b, epsilon=1e-5), x)
    close(out, F.layer_norm(T(x), (16,), T(g), T(b), 1e-5), atol=1e-5)


def test_layer_norm_fp16():
    x, g, b = rand(1, 6, 16) * 3, rand(16), rand(16)
    out = run_one(
        lambda v: mb.layer_norm(
            x=v, axes=[-1], gamma=g.astype(np.float16), beta=b.astype(np.float16)
        ),
        x.astype(np.float16),
        fp16=True,
    )
    assert out.dtype == np.float16
    close(out, F.layer_norm(T(x), (16,), T(g), T(b)), atol=0.02)


def test_batch_norm():
    x, mean, var = rand(2, 5, 4, 4), rand(5), np.abs(rand(5)) + 0.1
    g, b = rand(5), rand(5)
    out = run_one(
        lambda v: mb.batch_norm(x=v, mean=mean, variance=var, gamma=g, beta=b, epsilon=1e-5), x
    )
    ref = F.batch_norm(T(x), T(mean), T(var), T(g), T(b), training=False, eps=1e-5)
    close(out, ref, atol=1e-5)


def test_reduce_mean():
    x = rand(2, 8, 5, 5)
    out = run_one(lambda v: mb.reduce_mean(x=v, axes=[-2, -1], keep_dims=True), x)
    close(out, T(x).mean(dim=(-2, -1), keepdim=True))


@pytest.mark.parametrize("axes, keep", [([1], False), ([-2, -1], True)])
def test_reduce_sum(axes, keep):
    x = rand(2, 8, 5, 6)
    out = run_one(lambda v: mb.reduce_sum(x=v, axes=axes, keep_dims=keep), x)
    close(out, T(x).sum(dim=tuple(axes), keepdim=keep))


@pytest.mark.parametrize("kind", ["avg_pool", "max_pool"])
def test_pooling(kind):
    x = rand(2, 4, 9, 9)
    op = getattr(mb, kind)
    out = run_one(
        lambda v: op(x=v, kernel_sizes=[3, 3], strides=[2, 2], pad_type="custom", pad=[1] * 4), x
    )
    if kind == "avg_pool":
        ref = F.avg_pool2d(T(x), 3, 2, 1, count_include_pad=True)
    else:
        ref = F.max_pool2d(T(x), 3, 2, 1)
    close(out, ref)


# ------------------------------------------------------------------- activations
ACTIVATIONS = {
    "relu": (lambda v: mb.relu(x=v), F.relu),
    "relu6": (lambda v: mb.relu6(x=v), F.relu6),
    "sigmoid_hard": (lambda v: mb.sigmoid_hard(x=v, alpha=1 / 6, beta=0.5), F.hardsigmoid),
    "thresholded_relu": (
        lambda v: mb.thresholded_relu(x=v, alpha=0.5),
        lambda t: torch.where(t > 0.5, t, torch.zeros_like(t)),
    ),
    "gelu": (lambda v: mb.gelu(x=v, mode="EXACT"), F.gelu),
    "silu": (lambda v: mb.silu(x=v), F.silu),
}


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation(name):
    build, ref = ACTIVATIONS[name]
    x = rand(2, 5, 7) * 4
    close(run_one(build, x), ref(T(x)), atol=1e-5)


def test_silu_saturates_without_nan():
    x = np.array([[-1000.0, -100.0, 0.0, 100.0, 1000.0]], np.float32)
    out = run_one(lambda v: mb.silu(x=v), x)
    assert np.isfinite(out).all()
    close(out, F.silu(T(x)), atol=1e-6)


# ------------------------------------------------------------------- elementwise
BINARY = {
    "add": (mb.add, torch.add),
    "sub": (mb.sub, torch.sub),
    "mul": (mb.mul, torch.mul),
    "maximum": (mb.maximum, torch.maximum),
    "real_div": (mb.real_div, torch.div),
}


@pytest.mark.parametrize("name", list(BINARY))
def test_binary_broadcasting(name):
    build, ref = BINARY[name]
    a, b = rand(2, 4, 3, 3), rand(1, 4, 1, 1) + (3.0 if name == "real_div" else 0.0)
    close(run_one(lambda x, y: build(x=x, y=y), a, b), ref(T(a), T(b)), atol=1e-6)


def test_binary_fp16_stays_fp16_and_overflows_like_fp16():
    a = np.full((1, 4), 60000, np.float16)
    out = run_one(lambda x, y: mb.add(x=x, y=y), a, a, fp16=True)
    assert out.dtype == np.float16
    assert np.isinf(out).all()  # 120000 does not fit in float16: the executor must show it


# ----------------------------------------------------------------------- shapes
def test_reshape():
    x = rand(2, 12, 5)
    close(run_one(lambda v: mb.reshape(x=v, shape=[-1, 3, 4, 5]), x), T(x).reshape(-1, 3, 4, 5))


def test_transpose():
    x = rand(2, 3, 4, 5)
    out = run_one(lambda v: mb.transpose(x=v, perm=[0, 2, 3, 1]), x)
    close(out, T(x).permute(0, 2, 3, 1))


def test_slice_by_index():
    x = rand(2, 6, 8)
    out = run_one(
        lambda v: mb.slice_by_index(
            x=v, begin=[0, 0, 2], end=[2, 1, 8], stride=[1, 1, 2], end_mask=[True, False, True]
        ),
        x,
    )
    close(out, T(x)[:, 0:1, 2::2])


def test_concat():
    a, b = rand(2, 3, 4), rand(2, 5, 4)
    out = run_one(lambda x, y: mb.concat(values=[x, y], axis=1), a, b)
    close(out, torch.cat([T(a), T(b)], dim=1))


def test_cast_to_fp16_and_back():
    x = rand(2, 7) * 1000
    half = run_one(lambda v: mb.cast(x=v, dtype="fp16"), x)
    assert half.dtype == np.float16
    close(half, T(x).half().float().numpy().astype(np.float16), atol=0)


# ------------------------------------------------------------------ quantisation
def test_constexpr_affine_dequantize():
    q = RNG.integers(-128, 128, size=(6, 5)).astype(np.int8)
    scale = (RNG.random(6) * 0.1 + 0.01).astype(np.float32)
    zp = np.zeros(6, np.int8)

    def build(v):
        w = mb.constexpr_affine_dequantize(quantized_data=q, zero_point=zp, scale=scale, axis=0)
        return mb.linear(x=v, weight=w)

    x = rand(2, 5)
    ref_w = T(q.astype(np.float32)) * T(scale)[:, None]
    close(run_one(build, x, opset=ct.target.iOS16), F.linear(T(x), ref_w), atol=1e-5)


def test_quantize_dequantize_per_tensor():
    x = rand(2, 4, 5) * 3
    scale, zp = np.float32(0.05), np.uint8(128)

    def build(v):
        q = mb.quantize(input=v, scale=scale, zero_point=zp, output_dtype="uint8")
        return mb.dequantize(input=q, scale=scale, zero_point=zp)

    ref = torch.fake_quantize_per_tensor_affine(T(x), float(scale), int(zp), 0, 255)
    close(run_one(build, x), ref, atol=1e-6)


def test_quantize_per_channel_int8():
    x = rand(2, 4, 5) * 3
    scale = np.array([0.01, 0.02, 0.03, 0.04], np.float32)
    zp = np.zeros(4, np.int8)

    def build(v):
        q = mb.quantize(input=v, scale=scale, zero_point=zp, axis=1, output_dtype="int8")
        return mb.dequantize(input=q, scale=scale, zero_point=zp, axis=1)

    ref = torch.fake_quantize_per_channel_affine(
        T(x), T(scale), torch.zeros(4, dtype=torch.int32), 1, -128, 127
    )
    close(run_one(build, x), ref, atol=1e-6)


# ------------------------------ ops implemented here against coremltools' own definition
# coremltools' value_inference of an op is its numpy definition: the independent oracle. The
# executor's native result must equal it bit for bit (NaN payloads and signed zeros too).
def native_and_reference(build, *inputs: np.ndarray, opset=None):
    """Run `build` natively; then its last op again through coremltools' value_inference on
    the same values, cast to the declared dtype as the executor stores every result."""
    specs = [
        mb.TensorSpec(shape=x.shape, dtype=types.numpy_type_to_builtin_type(x.dtype))
        for x in inputs
    ]
    executor = MilExecutor(build_program(build, specs, opset))
    op = executor._ops[-1]
    with np.errstate(all="ignore"):
        values = executor.run(dict(zip(executor.input_names, inputs)), keep_all=True)
        # the native implementation took the call (no hand-over to value_inference)
        assert IMPLEMENTED[op.op_type](op, executor._inputs(op, values)) is not VALUE_INFERENCE
        reference = executor._value_inference(op, values)
    native = values[op.outputs[0].name]
    return native, np.asarray(reference).astype(native.dtype)


def same_bits(out: np.ndarray, ref: np.ndarray) -> None:
    assert (out.dtype, out.shape) == (ref.dtype, ref.shape)
    assert np.array_equal(out, ref, equal_nan=out.dtype.kind == "f")
    if out.dtype.kind == "f":
        unsigned = np.dtype(f"u{out.dtype.itemsize}")
        assert np.array_equal(out.view(unsigned), ref.view(unsigned))


def with_specials(x: np.ndarray) -> np.ndarray:
    """x (float16 / float32) with signed zeros, infinities, NaNs of both signs, subnormals and
    the largest finite values written over its first elements."""
    info = np.finfo(x.dtype)
    nan = np.array(np.nan, x.dtype)
    specials = np.array(
        [0.0, -0.0, np.inf, -np.inf, info.max, -info.max, info.smallest_subnormal, 6.0, -6.0],
        x.dtype,
    )
    specials = np.concatenate([specials, [nan, -nan]]).astype(x.dtype)
    out = x.copy().reshape(-1)
    n = min(out.size, specials.size)
    out[:n] = specials[:n]
    return out.reshape(x.shape)


def rand_as(dtype, *shape: int, scale: float = 3.0) -> np.ndarray:
    if np.dtype(dtype).kind == "i":
        return RNG.integers(-50, 50, size=shape).astype(dtype)
    return with_specials((rand(*shape) * scale).astype(dtype))


NATIVE_BINARY = {
    "add": mb.add,
    "sub": mb.sub,
    "mul": mb.mul,
    "real_div": mb.real_div,
    "maximum": mb.maximum,
    "minimum": mb.minimum,
}
SHAPE_PAIRS = [((2, 4, 3, 3), (2, 4, 3, 3)), ((2, 4, 3, 3), (1, 4, 1, 1)), ((5, 1), (1, 7))]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.int32])
@pytest.mark.parametrize("shapes", SHAPE_PAIRS, ids=["same", "channel", "both-ways"])
@pytest.mark.parametrize("name", list(NATIVE_BINARY))
def test_binary_matches_value_inference(name, shapes, dtype):
    a, b = rand_as(dtype, *shapes[0]), rand_as(dtype, *shapes[1])
    if dtype == np.int32 and name == "real_div":
        b[b == 0] = 7
    same_bits(*native_and_reference(lambda x, y: NATIVE_BINARY[name](x=x, y=y), a, b))


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("name", list(NATIVE_BINARY))
def test_binary_with_constant_matches_value_inference(name, dtype):
    a, c = rand_as(dtype, 3, 8), np.array(-2.5, dtype)
    same_bits(*native_and_reference(lambda x: NATIVE_BINARY[name](x=x, y=c), a))
    same_bits(*native_and_reference(lambda x: NATIVE_BINARY[name](x=c, y=x), a))


def test_float16_arithmetic_rounds_once_and_overflows():
    """Ties and overflow: the float16 result is the float32 result rounded once (to nearest,
    ties to even), as value_inference's float16 loop gives."""
    step = np.float16(2.0**-10)  # float16 ulp at 1
    a = np.array([1, 1, 1 + 2 * float(step), 60000, -60000, 65504], np.float16)
    b = np.array([step / 2, step * 1.5, step / 2, 6000, -6000, 16], np.float16)
    for build in (mb.add, mb.sub, mb.mul, mb.real_div):
        native, reference = native_and_reference(lambda x, y, f=build: f(x=x, y=y), a, b)
        same_bits(native, reference)
    native, _ = native_and_reference(lambda x, y: mb.add(x=x, y=y), a, b)
    assert native[0] == 1 and native[1] == 1 + 2 * float(step)  # tie to even, then up
    assert native[2] == 1 + 2 * float(step)  # tie to even (down)
    assert np.isposinf(native[3]) and np.isneginf(native[4])


def all_float16() -> np.ndarray:
    return np.arange(1 << 16, dtype=np.uint16).view(np.float16)


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_float16_extremum_every_bit_pattern(name):
    """Every float16 against zeros of both signs, NaNs of both signs, infinities, subnormals,
    ...: which operand wins a -0 / +0 tie and which NaN comes out follow numpy's float16
    loop in value_inference."""
    y = np.array(
        [0, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0xBC00, 0x4600, 0x7BFF, 0xFBFF]
        + [0x7C00, 0xFC00, 0x7C01, 0xFC01, 0x7E00, 0xFE00, 0x7FFF, 0xFFFF],
        np.uint16,
    ).view(np.float16)
    x = all_float16().reshape(-1, 1)
    build = NATIVE_BINARY[name]
    same_bits(*native_and_reference(lambda a, b: build(x=a, y=b), x, y.reshape(1, -1)))
    same_bits(*native_and_reference(lambda a, b: build(x=a, y=b), y.reshape(1, -1), x))


@pytest.mark.parametrize("name", ["relu", "relu6"])
def test_relu_every_float16_bit_pattern(name):
    build = getattr(mb, name)
    same_bits(*native_and_reference(lambda v: build(x=v), all_float16().reshape(256, 256)))


@pytest.mark.parametrize("name", ["relu", "relu6"])
def test_relu_float32_matches_value_inference(name):
    build = getattr(mb, name)
    same_bits(*native_and_reference(lambda v: build(x=v), rand_as(np.float32, 4, 9, scale=8)))


@pytest.mark.parametrize(
    ("in_shape", "shape", "opset"),
    [
        ((2, 12, 5), [-1, 3, 4, 5], None),
        ((2, 12, 5), [0, -1], None),  # iOS 17: 0 is right-aligned: 5, then 24 / 1
        ((2, 50), [1, 0, -1, 0], None),  # iOS 17: a 0 past x's rank is 1
        ((4, 3, 2), [0, 0, -1], None),
        ((2, 12, 5), [0, 6, -1], ct.target.iOS15),  # iOS 15: 0 copies the same axis
        ((6,), [2, 3], None),
        ((1, 6, 4, 48), [1, 6, 192], None),
    ],
)
@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_reshape_matches_value_inference(in_shape, shape, opset, dtype):
    x = rand_as(dtype, *in_shape)
    native, reference = native_and_reference(lambda v: mb.reshape(x=v, shape=shape), x, opset=opset)
    same_bits(native, reference)


@pytest.mark.parametrize("perm", [[0, 2, 3, 1], [3, 2, 1, 0], [0, -1, 1, 2]])
def test_transpose_matches_value_inference(perm):
    x = rand_as(np.float16, 2, 3, 4, 5)
    same_bits(*native_and_reference(lambda v: mb.transpose(x=v, perm=perm), x))


SLICES = {
    "plain": dict(begin=[0, 1, 2], end=[2, 5, 8]),
    "negative": dict(begin=[-2, -5, -7], end=[-1, -1, 8]),
    "strides": dict(begin=[0, 0, 1], end=[2, 6, 8], stride=[1, 2, 3]),
    "reverse": dict(begin=[1, 5, -1], end=[0, 0, 0], stride=[-1, -2, -1]),
    "masks": dict(
        begin=[1, 3, 5], end=[0, 1, 2], begin_mask=[True, False, True], end_mask=[True, True, False]
    ),
    "reverse-masks": dict(
        begin=[0, 0, 0],
        end=[0, 0, 0],
        stride=[1, -1, -3],
        begin_mask=[True] * 3,
        end_mask=[True] * 3,
    ),
    "squeeze": dict(begin=[1, 0, 0], end=[2, 1, 8], squeeze_mask=[True, False, False]),
    "squeeze-negative": dict(
        begin=[0, -1, 0],
        end=[2, 0, 8],
        end_mask=[True, False, True],
        squeeze_mask=[False, True, False],
    ),
    "squeeze-begin-mask": dict(
        begin=[1, 4, 2],
        end=[2, 5, 8],
        begin_mask=[False, True, False],
        squeeze_mask=[False, True, True],
    ),
    "mobile-former": dict(begin=[0, 0, 0], end=[1, 1, 192], end_mask=[True, False, True]),
}


@pytest.mark.parametrize("case", list(SLICES))
@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_slice_by_index_matches_value_inference(case, dtype):
    x = rand_as(dtype, 2, 6, 192 if case == "mobile-former" else 8)
    kwargs = SLICES[case]
    same_bits(*native_and_reference(lambda v: mb.slice_by_index(x=v, **kwargs), x))


def test_slice_squeezing_every_axis_is_left_to_coremltools():
    x = rand(2, 6)
    kwargs = dict(begin=[1, -2], end=[2, 6], squeeze_mask=[True, True])
    program = build_program(lambda v: mb.slice_by_index(x=v, **kwargs), [mb.TensorSpec(x.shape)])
    executor = MilExecutor(program)
    op = executor._ops[-1]
    assert IMPLEMENTED["slice_by_index"](op, executor._inputs(op, {"x": x})) is VALUE_INFERENCE
    (out,) = executor.run({"x": x}).values()
    assert out == x[1, -2]


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_concat_matches_value_inference(axis, dtype):
    a, b, c = rand_as(dtype, 2, 3, 4), rand_as(dtype, 2, 3, 4), rand_as(dtype, 2, 3, 4)
    build = lambda x, y, z: mb.concat(values=[x, y, z], axis=axis)  # noqa: E731
    same_bits(*native_and_reference(build, a, b, c))


def test_concat_interleave_follows_the_op_documentation():
    """coremltools' value_inference ignores interleave: its docstring's example is the
    reference."""
    a = np.array([[1, 2], [3, 4], [5, 6]], np.float32)
    b = np.array([[7, 8], [9, 10], [11, 12]], np.float32)
    out = run_one(lambda x, y: mb.concat(values=[x, y], axis=0, interleave=True), a, b)
    np.testing.assert_array_equal(out, [[1, 2], [7, 8], [3, 4], [9, 10], [5, 6], [11, 12]])
    out = run_one(lambda x, y: mb.concat(values=[x, y], axis=-1, interleave=True), a, b)
    np.testing.assert_array_equal(out, [[1, 7, 2, 8], [3, 9, 4, 10], [5, 11, 6, 12]])


@pytest.mark.parametrize(
    ("pad", "mode", "value"),
    [
        ([1, 2], "constant", 0.0),
        ([0, 1, 2, 0], "constant", -1.5),
        ([1, 1, 0, 2, 3, 1], "constant", 0.0),
        ([2, 1, 1, 3], "reflect", 0.0),
        ([2, 1, 1, 3], "replicate", 0.0),
    ],
)
@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_pad_matches_value_inference(pad, mode, value, dtype):
    x = rand_as(dtype, 2, 5, 6)
    pads = np.array(pad, np.int32)

    def build(v):
        return mb.pad(x=v, pad=pads, mode=mode, constant_val=dtype(value))

    same_bits(*native_and_reference(build, x))


# ------------------------------------------------ conv: the fast paths, bit for bit
def taps_reference(x: np.ndarray, w: np.ndarray, stride: int, dilation: int) -> np.ndarray:
    """Depthwise conv of the padded x as the plain sum over kernel taps, in row-major order."""
    c, _, kh, kw = w.shape
    oh = (x.shape[2] - (kh - 1) * dilation - 1) // stride + 1
    ow = (x.shape[3] - (kw - 1) * dilation - 1) // stride + 1
    out = np.zeros((x.shape[0], c, oh, ow), np.float32)
    for i in range(kh):
        for j in range(kw):
            r, q = i * dilation, j * dilation
            tap = x[:, :, r : r + stride * oh : stride, q : q + stride * ow : stride]
            out += tap * w[None, :, 0, i, j, None, None]
    return out


@pytest.mark.parametrize(
    ("c", "size", "k", "stride", "dilation"),
    [
        (8, 11, 3, 1, 1),  # long rows
        (64, 5, 3, 1, 1),  # more channels than row length
        (6, 12, 5, 1, 2),  # dilated
        (8, 11, 3, 2, 1),  # strided
        (300, 9, 3, 1, 1),  # several channel blocks
    ],
)
def test_depthwise_conv_is_the_plain_tap_sum(c, size, k, stride, dilation):
    x, w, bias = rand(2, c, size, size), rand(c, 1, k, k), rand(c)
    p = dilation * (k - 1) // 2
    out = run_one(
        lambda v: mb.conv(
            x=v, weight=w, bias=bias, strides=[stride] * 2, dilations=[dilation] * 2,
            pad_type="custom", pad=[p] * 4, groups=c,
        ),
        x,
    )  # fmt: skip
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    same_bits(out, taps_reference(padded, w, stride, dilation) + bias[None, :, None, None])


@pytest.mark.parametrize("groups", [1, 4])
def test_pointwise_conv_is_one_matmul(groups):
    x, w = rand(2, 8, 6, 7), rand(12, 8 // groups, 1, 1)
    out = run_one(lambda v: mb.conv(x=v, weight=w, groups=groups), x)
    cols = x.reshape(2, groups, 8 // groups, 42)
    ref = np.matmul(w.reshape(1, groups, 12 // groups, 8 // groups), cols).reshape(2, 12, 6, 7)
    same_bits(out, ref)


# --------------------------------------------------------------------- failures
def test_unknown_op_is_a_clear_error():
    x = rand(1, 4, 6, 6)

    @mb.program(input_specs=[mb.TensorSpec(shape=x.shape)], opset_version=ct.target.iOS17)
    def program(v):
        return mb.instance_norm(x=v, epsilon=1e-5)

    with pytest.raises(UnsupportedMilOp, match="instance_norm"):
        MilExecutor(program)


def test_keep_all_returns_every_intermediate():
    x = rand(1, 8)

    @mb.program(input_specs=[mb.TensorSpec(shape=x.shape)], opset_version=ct.target.iOS17)
    def program(v):
        hidden = mb.relu(x=v, name="hidden")
        return mb.mul(x=hidden, y=2.0, name="doubled")

    values = MilExecutor(program).run({"v": x}, keep_all=True)
    close(values["hidden"], np.maximum(x, 0))
    close(values["doubled"], 2 * np.maximum(x, 0))


#: op types the cases above check (plus const, which is the stored value itself)
OP_CASES = {
    "const", "conv", "linear", "matmul", "softmax", "layer_norm", "batch_norm", "reduce_mean",
    "reduce_sum", "avg_pool", "max_pool", *ACTIVATIONS, *BINARY, "reshape", "transpose",
    "slice_by_index", "concat", "cast", "constexpr_affine_dequantize", "quantize", "dequantize",
    *NATIVE_BINARY, "pad",
}  # fmt: skip
