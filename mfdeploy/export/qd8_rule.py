"""When a float convolution / linear should get int8 weights with run-time activation scales
(XNNPACK's qd8 kernels, which LiteRT and ExecuTorch both run).

qd8 quantises the op's input at run time (a min / max pass and a conversion pass over the
float input), then runs an int8 GEMM. Rule: give an op int8 weights where its weight
elements are at least `MIN_WEIGHT_TO_INPUT` (a quarter) of its input elements. Below that
(an image stem's 3 input channels, the first pointwise convolutions on the largest maps) the
run-time pass over the input costs more than the int8 GEMM saves; above it the int8 GEMM
wins on a CPU with int8 dot-product instructions, as phones' ARM64 cores (SDOT) and x86 with
VNNI have.

Measured, not derived: the threshold that ran 294m's LiteRT int8 fastest among 0, 1/4, 1/2,
1 and 2 on a VNNI host (docs/int8.md, "The qd8 threshold"). The earlier 2 counted bytes
moved (qd8 reads the input twice and writes an int8 copy: less traffic than float32 only
when W > 2 I), which holds where int8 GEMMs run no faster than float32 ones (AVX2 without
VNNI).
"""

from __future__ import annotations

#: Weight elements per input element from which qd8 is faster than float32 (above).
MIN_WEIGHT_TO_INPUT = 0.25


def qd8_pays(weight_elements: int, input_elements: int, ratio: float = MIN_WEIGHT_TO_INPUT) -> bool:
    """The rule above, for one op (`ratio` other than the default: threshold sweeps)."""
    return weight_elements >= ratio * input_elements
