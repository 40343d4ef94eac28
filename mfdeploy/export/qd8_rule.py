"""When a float convolution / linear should get int8 weights with run-time activation scales
(XNNPACK's qd8 kernels, which LiteRT and ExecuTorch both run).

qd8 quantises the op's input at run time (a min / max pass and a conversion pass over the
float input), runs an int8 GEMM, and converts its int32 sums back to float. Two reasons it
pays:

- bytes (`qd8_pays`): the weights are at least `MIN_WEIGHT_TO_INPUT` (a quarter) of the
  input's elements, so int8 weights cut the memory traffic (the token path's linears on six
  tokens, the late convolutions, the head). Every qd8 pass uses it.
- arithmetic (`wide_gemm`): at least `MIN_INNER` multiply-adds per output element (K, what
  one conversion back to float is spread over) and `MIN_OUTPUTS` output channels (N: the
  multiply-adds per quantised input element of a 1x1 convolution; 48 fills three quarters
  of XNNPACK's AVX-512 VNNI qd8 GEMM tile of 64), so the int8 GEMM's speed repays the passes
  over the input however large the map. Such an op's input may be an early, wide-ranged
  activation whose run-time int8 costs dB, so only LiteRT's int8-weights takes these, where
  it measures them (tflite_wide_qd8.py).

Below both (an image stem's 3 input channels, the narrow pointwise convolutions of the first
blocks) qd8 is slower than float32. Measured, not derived, on a VNNI host (docs/int8.md,
"Which float convolutions get qd8"): the quarter ran 294m's LiteRT fastest among thresholds
0 to 2 (session 24); timing the ops it leaves float one at a time
(`benchmarks/tflite_qd8_ops.py`, session 27) showed that a small weight-to-input ratio does
not make qd8 slow, a narrow GEMM does. CPUs without int8 dot products (AVX2 without VNNI)
gain nothing from int8 GEMMs; phones' ARM64 cores (SDOT) have them, with kernels of their
own whose widths were not measured here.
"""

from __future__ import annotations

#: Weight elements per input element from which int8 weights save memory traffic.
MIN_WEIGHT_TO_INPUT = 0.25
#: Multiply-adds per output element (K) and output channels (N) from which the int8 GEMM
#: repays the run-time conversions. N >= 48 (session 28; 64 in session 27) also takes 294m's
#: N = 48 convolutions on 28x28 maps: 0.05-0.09 ms faster in three runs of
#: benchmarks/tflite_qd8_ops.py, the same ops as 64 on EfficientNet-Lite0 and
#: MobileViTv2-0.5; N = 32 (half a tile) is slower on MobileViTv2-0.5 (docs/int8.md).
MIN_INNER, MIN_OUTPUTS = 32, 48


def qd8_pays(weight_elements: int, input_elements: int, ratio: float = MIN_WEIGHT_TO_INPUT) -> bool:
    """The bytes rule, for one op (`ratio` other than the default: threshold sweeps)."""
    return weight_elements >= ratio * input_elements


def wide_gemm(weight_elements: int, outputs: int) -> bool:
    """The arithmetic rule, for one op with `outputs` output channels (its weight's first
    axis; the rest, K, is what each output sums over)."""
    return outputs >= MIN_OUTPUTS and weight_elements // max(outputs, 1) >= MIN_INNER


def kept_float_note(kept: int) -> str:
    """How a manifest says which convs / linears the bytes rule left float32."""
    return (
        f"float32 in {kept} whose weights are < {MIN_WEIGHT_TO_INPUT:g}x their input (quantising "
        f"the input at run time would cost more than the int8 GEMM saves)"
    )
