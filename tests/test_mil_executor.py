"""The MIL executor, op by op, against PyTorch on random inputs.

Each case builds a one-op MIL program with coremltools' Builder, runs it in the executor and
compares with the PyTorch function of the same meaning. `OP_CASES` lists the op types covered;
tests/test_coreml_target.py checks that every op type in the exported 26m programs is here,
so a wrong executor cannot hide a wrong conversion.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

ct = pytest.importorskip("coremltools")
from coremltools.converters.mil import Builder as mb  # noqa: E402
from coremltools.converters.mil.mil import types  # noqa: E402

from mfdeploy.runtimes.mil_executor import MilExecutor, UnsupportedMilOp  # noqa: E402

RNG = np.random.default_rng(0)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def run_one(build, *inputs: np.ndarray, opset=None, fp16: bool = False) -> np.ndarray:
    """Build `build(*vars)` as a program, execute it, return its (only) output."""
    dtype = types.fp16 if fp16 else types.fp32
    specs = [mb.TensorSpec(shape=x.shape, dtype=dtype) for x in inputs]

    opset = opset or ct.target.iOS17
    if len(inputs) == 1:

        @mb.program(input_specs=specs, opset_version=opset)
        def program(x):
            return build(x)

    else:

        @mb.program(input_specs=specs, opset_version=opset)
        def program(x, y):
            return build(x, y)

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
}  # fmt: skip
