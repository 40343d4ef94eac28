"""PT2E annotation: a ReLU6 / hardtanh right after a convolution or linear is quantised once,
at its own output, as both quantizers already do for a ReLU.

Rule: when a convolution's or linear's only user is a clamp (relu6, hardtanh), the int8
output annotation moves from the convolution to the clamp (past the pads after it, for
litert-torch: `quantise_after_clamps`).

Why: XNNPACKQuantizer and litert-torch's quantizer fuse only conv -> ReLU; before a ReLU6
they quantise the convolution's raw output (EfficientNet-Lite0's stem: int8 range -76..58,
a step of 0.52) and then the ReLU6 keeps 12 of its levels. The converters fold conv -> quantise ->
ReLU6 into one op with the ReLU6's step where the pattern is plain, so the artifact was
better than its own PT2E graph (EfficientNet-Lite0 all int8: graph 5.0 dB on the held-out
photos, its LiteRT artifact 18.9 dB in verify), and worse where it is not (a pad between the
ReLU6 and the next quantisation, as after EfficientNet-Lite0's stem: docs/int8.md).
Annotated at the clamp, the graph and every artifact quantise the same tensor: the clamp's
output, [0, 6].
"""

from __future__ import annotations

import torch
from torch.fx import GraphModule, Node

ANNOTATION = "quantization_annotation"
_aten = torch.ops.aten
CLAMPS = frozenset({_aten.relu6.default, _aten.hardtanh.default, _aten.hardtanh_.default})
PRODUCERS = frozenset({_aten.conv2d.default, _aten.conv1d.default, _aten.linear.default})
PADS = frozenset({_aten.pad.default, _aten.constant_pad_nd.default})


def quantise_after_clamps(gm: GraphModule, past_pads: bool) -> int:
    """Move the output annotation of every conv / linear whose only user is a clamp onto
    that clamp (in place, after the quantizer's own annotation); how many moved.

    Pads right after the clamp differ by converter. `past_pads` (litert-torch): the
    annotation goes to the last of them, where conv -> clamp -> pad -> quantise converts to
    one convolution (quantised before the pad, LiteRT kept an int8 PAD and a transpose pair
    around each: EfficientNet-Lite0's int8 4.1 instead of 2.7 ms). Otherwise (ExecuTorch,
    whose XNNPACK lowering needs the quantise right after conv -> clamp): at the clamp, and
    a pad before a float consumer (a float module's first convolution) shares it, so the
    float side reads a dequantised tensor: the lowering folds such a pad into the float
    convolution's padding, then refuses that convolution's int8 input with float weights.
    """
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation

    moved = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target not in CLAMPS:
            continue
        producer = node.args[0]
        if not isinstance(producer, Node) or producer.target not in PRODUCERS:
            continue
        annotation = producer.meta.get(ANNOTATION)
        if len(producer.users) != 1 or annotation is None or annotation.output_qspec is None:
            continue
        if node.meta.get(ANNOTATION) is not None:  # the quantizer decided already
            continue
        end = _last_pad(node) if past_pads else node
        end.meta[ANNOTATION] = QuantizationAnnotation(
            output_qspec=annotation.output_qspec, _annotated=True
        )
        annotation.output_qspec = None
        if not past_pads:
            _share_before_float(node)
        moved += 1
    return moved


def _unannotated_pad(node: Node) -> bool:
    return node.target in PADS and node.meta.get(ANNOTATION) is None


def _last_pad(clamp: Node) -> Node:
    """The last of the unannotated pads that follow `clamp` alone (or `clamp`)."""
    end = clamp
    while len(end.users) == 1 and _unannotated_pad(next(iter(end.users))):
        end = next(iter(end.users))
    return end


def _share_before_float(clamp: Node) -> None:
    """An unannotated pad after `clamp` with a consumer that does not quantise it shares the
    clamp's int8 parameters (see `quantise_after_clamps`)."""
    from torchao.quantization.pt2e.quantizer import (
        QuantizationAnnotation,
        SharedQuantizationSpec,
    )

    def quantises(user: Node, producer: Node) -> bool:
        annotation = user.meta.get(ANNOTATION)
        return annotation is not None and producer in annotation.input_qspec_map

    for pad in [u for u in clamp.users if _unannotated_pad(u)]:
        if not all(quantises(user, pad) for user in pad.users):
            shared = SharedQuantizationSpec(clamp)
            pad.meta[ANNOTATION] = QuantizationAnnotation(
                input_qspec_map={clamp: shared}, output_qspec=shared, _annotated=True
            )
