"""PT2E annotation: statistics (a mean / sum kept for broadcasting) and what is computed from
them stay float; only the tensors they feed into int8 ops are quantised.

Rule: a reduction with `keepdim=True` (mean, sum) is a statistic. It, the product that only
it averages, and every op downstream whose tensor inputs are all statistics or constants
(centring x - mean, variance + eps, rsqrt, (x - mean) * rsqrt, layout ops) lose their int8
annotation; an annotated op that also reads an ordinary tensor keeps its output annotation
and reads the statistic in float. Convolutions and linears are never changed: they quantise
their input, so a normalisation's output is quantised once, where it is consumed.

Why: both quantizers annotate every mul and add, and a mean shares its input's parameters.
A normalisation written in Mean / Sub / Mul / Rsqrt (MobileViTv2's GroupNorm(1), which has no
TFLite builtin) then quantised (x - mean)^2 on the grid of its largest square and the
variance on that grid too (step 0.26 for a variance near 1: a gain error per sample); the
separable attention's x * softmax scores were quantised one product at a time at the scale
of the largest before the sum over 256 patches (most products round to 0). MobileViTv2-0.5,
its measured float set: PT2E graph 15.6 dB (XNNPACKQuantizer) where the eager simulation,
which quantises none of these, said 23.5; 19.0 dB with this pass (litert-torch's quantizer
16.0 -> 19.5; benchmarks/mobilevitv2_pt2e_gap.py, docs/int8.md).
"""

from __future__ import annotations

import torch
from torch.fx import GraphModule, Node

from mfdeploy.export.pt2e_clamps import ANNOTATION, PRODUCERS

_aten = torch.ops.aten
REDUCTIONS = frozenset({_aten.mean.dim, _aten.sum.dim_IntList})
PRODUCTS = frozenset({_aten.mul.Tensor})
NEVER_FLOAT = PRODUCERS | {_aten.conv_transpose2d.input}


def _keepdim(node: Node) -> bool:
    if len(node.args) > 2:
        return bool(node.args[2])
    return bool(node.kwargs.get("keepdim", False))


def _statistic(node: Node) -> bool:
    return node.op == "call_function" and node.target in REDUCTIONS and _keepdim(node)


def _tensor_inputs(node: Node) -> list[Node]:
    return [a for a in node.all_input_nodes if a.op != "get_attr"]


def float_statistics(gm: GraphModule) -> int:
    """Remove the int8 annotation of statistics and what is computed from them alone (module
    doc; in place, after the quantizer's own annotation). Returns how many nodes changed."""
    floating: set[Node] = set()
    changed = 0
    for node in gm.graph.nodes:  # topological order
        if node.op != "call_function" or node.target in NEVER_FLOAT:
            continue
        inputs = _tensor_inputs(node)
        annotation = node.meta.get(ANNOTATION)
        product_of_statistic = (
            node.target in PRODUCTS and node.users and all(_statistic(u) for u in node.users)
        )
        from_statistics = bool(inputs) and all(a in floating for a in inputs)
        if _statistic(node) or product_of_statistic or from_statistics:
            floating.add(node)
            if annotation is not None:
                del node.meta[ANNOTATION]
                changed += 1
            continue
        if annotation is None:
            if any(a in floating for a in inputs):  # unannotated (sub, rsqrt): stays float
                floating.add(node)
            continue
        read_float = [a for a in annotation.input_qspec_map if a in floating]
        for a in read_float:  # an int8 op reading a statistic: reads it in float
            del annotation.input_qspec_map[a]
        changed += bool(read_float)
    # a shared spec naming a node that lost its annotation would not prepare
    for node in gm.graph.nodes:
        annotation = node.meta.get(ANNOTATION)
        if annotation is None:
            continue
        for key, spec in list(annotation.input_qspec_map.items()):
            if _shares_float(spec, floating):
                del annotation.input_qspec_map[key]
        if _shares_float(annotation.output_qspec, floating):
            annotation.output_qspec = None
    return changed


def _shares_float(spec, floating: set[Node]) -> bool:
    edge = getattr(spec, "edge_or_node", None)
    if edge is None:
        return False
    target = edge if isinstance(edge, Node) else edge[0]
    return target in floating
