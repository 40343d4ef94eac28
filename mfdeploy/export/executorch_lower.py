"""Rewrites that let XNNPACK take every op of an exported graph, and the lowering itself.

ExecuTorch's XNNPACK partitioner (executorch 1.5) leaves these ATen ops to the portable
kernels, and every op it leaves out splits the graph into another delegate call:
- softmax over any axis but the last (XNNPACK's softmax is last-axis only);
- layer_norm (no XNNPACK node);
- sum over axes (no XNNPACK node), mean other than over H, W of a 4-D tensor kept 4-D;
- expand to the same shape (emitted by matmul's decomposition; XNNPACK's own
  `RemoveNoopExpandCopyPass` drops it when passed as a transform pass);
- GELU in float16 (XNNPACK's GELU is float32 only).

Each is rewritten here into ops the partitioner takes, as the same function:
- softmax(x, d) = permute(softmax(permute(x, d <-> last), last), d <-> last), a 4-D one
  through a 2-D view (XNNPACK's channels-last pass otherwise normalises a conv output over
  the wrong axis);
- mean over the normalised axes = a 4-D mean over the last two axes (XNNPACK's global average
  pooling) of x viewed as (rows, 1, 1, n); layer_norm = (x - mean) * rsqrt(var + eps) * w + b;
- sum over axes = the same 4-D mean times the element count, the summed axes moved last;
  any other mean = that 4-D mean, reshaped;
- float16 GELU = its tanh form (within float16 rounding of the erf form).
Two rewrites are for speed, not coverage: a depthwise convolution with a channel multiplier
k > 1 becomes a 1x1 channel repeat + a multiplier-1 depthwise convolution
(depthwise_split.py, shared with the TFLite exporter; the exporters split before the int8
search, `export_for_xnnpack` splits a module not split yet); a residual add of a viewed
matmul product to a 4-D map that is itself viewed in the product's shape runs in that shape
(`add_in_producer_shape`, one NHWC <-> NCHW transpose of the map fewer inside XNNPACK).
The rules are about ops and shapes only, so they hold for any model.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from pathlib import Path

import torch

from mfdeploy.export.depthwise_split import split_channel_multipliers

aten = torch.ops.aten


def _mean_rows(x4: torch.Tensor) -> torch.Tensor:
    """Mean over the last two axes of a 4-D tensor, kept (XNNPACK global average pooling)."""
    return x4.mean(dim=(2, 3), keepdim=True)


def softmax_last_axis(x: torch.Tensor, dim: int, half_to_float: bool = False):
    """softmax over a non-last axis as permute -> last-axis softmax -> permute; a 4-D
    softmax as a 2-D one over its rows, reshaped back.

    Why 2-D: XNNPACK's channels-last pass keeps a convolution's output NHWC into a 4-D
    softmax and normalises over the NHWC memory's last axis (MobileViTv2's query
    convolution -> softmax over the patches came out all ones); a reshape makes the pass
    convert the tensor back to NCHW first."""
    rank = x.dim()
    dim %= rank
    if dim == rank - 1 and rank != 4:
        return NotImplemented  # already what XNNPACK takes
    perm = list(range(rank))
    perm[dim], perm[-1] = perm[-1], perm[dim]
    moved = x.permute(perm) if dim != rank - 1 else x
    rows = torch.softmax(moved.reshape(-1, moved.shape[-1]), dim=-1).reshape(moved.shape)
    return rows.permute(perm) if dim != rank - 1 else rows


def layer_norm_4d(
    x: torch.Tensor,
    normalized_shape: Sequence[int],
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
    cudnn_enable: bool = True,
) -> torch.Tensor:
    """layer_norm with its means as 4-D means over the last two axes."""
    n = math.prod(normalized_shape)
    rows = x.numel() // n
    x4 = x.reshape(rows, 1, 1, n)
    centred = x4 - _mean_rows(x4)
    y = (centred * torch.rsqrt(_mean_rows(centred * centred) + eps)).reshape(x.shape)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def _reduce_as_mean(
    x: torch.Tensor, dims: list[int], keepdim: bool, dtype, scale_by_count: bool
) -> torch.Tensor:
    """mean (or sum: mean x element count) over sorted `dims` as a 4-D mean over the last
    axis, the reduced axes moved last."""
    rank = x.dim()
    kept = [i for i in range(rank) if i not in dims]
    count = math.prod(x.shape[i] for i in dims)
    rows = math.prod(x.shape[i] for i in kept)
    y = _mean_rows(x.permute(kept + dims).reshape(rows, 1, 1, count))
    if scale_by_count:
        y = y * float(count)
    if keepdim:
        shape = [1 if i in dims else x.shape[i] for i in range(rank)]
    else:
        shape = [x.shape[i] for i in kept]
    y = y.reshape(shape)
    return y if dtype is None else y.to(dtype)


def sum_as_mean(
    x: torch.Tensor, dims: Sequence[int] | int | None, keepdim: bool = False, dtype=None
) -> torch.Tensor:
    """sum over `dims` = (4-D mean over the summed axes, moved last) x element count."""
    rank = x.dim()
    if dims is None or (isinstance(dims, Sequence) and len(dims) == 0):
        dims = list(range(rank))
    dims = sorted({d % rank for d in ([dims] if isinstance(dims, int) else dims)})
    return _reduce_as_mean(x, dims, keepdim, dtype, scale_by_count=True)


def mean_4d(x: torch.Tensor, dims, keepdim: bool = False, dtype=None) -> torch.Tensor:
    """mean over `dims` as a 4-D mean over the last two axes (summed axes moved last)."""
    rank = x.dim()
    dims = sorted({d % rank for d in ([dims] if isinstance(dims, int) else (dims or range(rank)))})
    if rank == 4 and dims == [2, 3] and keepdim and dtype is None:
        return NotImplemented  # what XNNPACK takes
    return _reduce_as_mean(x, dims, keepdim, dtype, scale_by_count=False)


def gelu_tanh_half(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """float16 GELU in its tanh form from tanh / mul / add (XNNPACK has no float16 GELU)."""
    if x.dtype != torch.float16:
        return NotImplemented
    inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * (x * x * x))
    return 0.5 * x * (1.0 + torch.tanh(inner))


DECOMPOSITIONS = {
    aten.softmax.int: softmax_last_axis,
    aten._softmax.default: softmax_last_axis,
    aten.layer_norm.default: layer_norm_4d,
    aten.sum.dim_IntList: sum_as_mean,
    aten.mean.dim: mean_4d,
    aten.gelu.default: gelu_tanh_half,
}


_VIEWS = (aten.view.default, aten._unsafe_view.default, aten.reshape.default)


def _shape(node) -> tuple[int, ...] | None:
    val = node.meta.get("val") if isinstance(node, torch.fx.Node) else None
    return tuple(val.shape) if isinstance(val, torch.Tensor) else None


def add_in_producer_shape(graph_module: torch.fx.GraphModule) -> int:
    """a + view(c, a.shape) -> view(view(a, c.shape) + c, a.shape) when a (4-D) is already
    viewed as c's shape elsewhere; returns how many adds were moved.

    The rule and why: XNNPACK holds a convolution's output `a` NHWC; a view of `a` makes it
    convert `a` to NCHW (one transpose), and `a + view(c)` (c a matmul result, NCHW) made it
    convert view(c) to NHWC (a second transpose of the feature map) and the sum back to NCHW
    for the next view of it (a third). Added in c's shape the sum reuses a's NCHW copy and
    stays NCHW; only a later convolution converts it (once). Elementwise, so the same
    numbers bit for bit."""
    moved = 0
    order = {n: i for i, n in enumerate(graph_module.graph.nodes)}
    for node in list(graph_module.graph.nodes):
        if node.op != "call_function" or node.target != aten.add.Tensor or node.kwargs:
            continue
        if len(node.args) != 2 or not all(isinstance(x, torch.fx.Node) for x in node.args):
            continue
        for side in (0, 1):
            a, b = node.args[side], node.args[1 - side]
            shape = _shape(a)
            if shape is None or len(shape) != 4 or _shape(b) != shape or _shape(node) != shape:
                continue
            if b.target not in _VIEWS or _shape(b.args[0]) in (None, shape):
                continue
            c = b.args[0]
            if c.meta["val"].dtype != a.meta["val"].dtype:
                continue
            a_as_c = next(
                (
                    u
                    for u in a.users
                    if u.target in _VIEWS and _shape(u) == _shape(c) and order[u] < order[node]
                ),
                None,
            )
            if a_as_c is None:  # none, or only after the add: nothing to reuse
                continue
            graph = graph_module.graph
            with graph.inserting_before(node):
                pair = (a_as_c, c) if side == 0 else (c, a_as_c)
                total = graph.call_function(aten.add.Tensor, pair)
                total.meta = {**node.meta, "val": c.meta["val"]}
                back = graph.call_function(aten.view.default, (total, list(shape)))
                back.meta = dict(node.meta)
            node.replace_all_uses_with(back)
            graph.erase_node(node)
            moved += 1
            break
    if moved:
        graph_module.graph.lint()
        graph_module.recompile()
    return moved


def export_for_xnnpack(module: torch.nn.Module, example: torch.Tensor, move_adds: bool = True):
    """torch.export with the rewrites above applied (an ExportedProgram); `move_adds=False`
    leaves out `add_in_producer_shape` (for the test that compares the two)."""
    module, _ = split_channel_multipliers(module)
    program = torch.export.export(module, (example,))
    program = program.run_decompositions(dict(DECOMPOSITIONS))
    if move_adds:
        add_in_producer_shape(program.graph_module)
    return program


@contextlib.contextmanager
def shared_provenance():
    """Share fx provenance records (NodeSource) instead of deep-copying them.

    Every ExportPass re-trace wraps each node's provenance chain in a new NodeSource that
    deep-copies the chain before it; over the ~60 passes of XNNPACK lowering that copying was
    about half the lowering time (cProfile, 26m). The records are not mutated after creation,
    so sharing them is the same provenance. Restored on exit.
    """
    from torch.fx.traceback import NodeSource

    had = "__deepcopy__" in vars(NodeSource)
    saved = vars(NodeSource).get("__deepcopy__")
    NodeSource.__deepcopy__ = lambda self, memo: self
    try:
        yield
    finally:
        if had:
            NodeSource.__deepcopy__ = saved
        else:
            del NodeSource.__deepcopy__


def _graph_shape(graph_module: torch.fx.GraphModule) -> list[tuple]:
    """The graph's structure: each node's op, name, target, args and kwargs (what a retrace
    reads; node metadata is carried over by the retrace unchanged)."""
    return [
        (n.op, n.name, n.target, repr(n.args), repr(n.kwargs)) for n in graph_module.graph.nodes
    ]


def _retrace_only_if_changed(pass_type: type) -> type:
    """`pass_type` (an XNNPACK pass: edits the graph in place, then always re-traces it with
    `ExportPass.call` to regenerate metadata) re-tracing only when its edits changed the graph.

    Why: each re-trace of the 294m graph costs ~1.5 s of CPU, and most of XNNPACK's 17
    preprocess passes find nothing to rewrite in a given model (no batch norm, upsampling,
    SDPA, prelu or 1-D convolution here). An unchanged graph re-traced is the same graph, so
    the lowered program is byte-identical (tests/test_executorch_target.py checks that).
    The shim sits after `pass_type` in the MRO, so the pass's `super().call` reaches it."""
    from executorch.exir.pass_base import ExportPass
    from torch.fx.passes.infra.pass_base import PassResult

    class _RetraceIfChanged(ExportPass):
        def call(self, graph_module: torch.fx.GraphModule) -> PassResult:
            if _graph_shape(graph_module) == self._mfdeploy_before:
                return PassResult(graph_module, False)
            return super().call(graph_module)

    class Lazy(pass_type, _RetraceIfChanged):
        def call(self, graph_module: torch.fx.GraphModule) -> PassResult:
            self._mfdeploy_before = _graph_shape(graph_module)
            return super().call(graph_module)

    Lazy.__name__ = Lazy.__qualname__ = pass_type.__name__
    return Lazy


@contextlib.contextmanager
def lazy_xnnpack_retraces():
    """XNNPACK's preprocess pass manager with each pass wrapped by `_retrace_only_if_changed`
    (only passes of the ExportPass kind whose `call` ends in a re-trace); restored on exit."""
    from executorch.backends.xnnpack import _passes
    from executorch.exir.pass_base import ExportPass

    manager = _passes.XNNPACKPassManager
    original = manager.__init__

    def init(self, exported_program, passes=None) -> None:
        original(self, exported_program, passes)
        self.passes = [
            _retrace_only_if_changed(p)
            if isinstance(p, type) and issubclass(p, ExportPass) and "call" in vars(p)
            else p
            for p in self.passes
        ]

    manager.__init__ = init
    try:
        yield
    finally:
        manager.__init__ = original


def lower_to_pte(
    program, path: Path, constant_methods: dict | None = None, lazy_retraces: bool = True
) -> dict[str, int]:
    """XNNPACK-lower an ExportedProgram and write the .pte; returns the op histogram of the
    graph outside the delegates (empty: every op delegated). `lazy_retraces=False` runs
    XNNPACK's passes as shipped (the same bytes, slower; for the test that says so)."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.backends.xnnpack.utils.configs import (
        get_transform_passes,
        get_xnnpack_edge_compile_config,
        get_xnnpack_executorch_backend_config,
    )
    from executorch.exir import to_edge_transform_and_lower

    lazy = lazy_xnnpack_retraces() if lazy_retraces else contextlib.nullcontext()
    with shared_provenance(), lazy:
        edge = to_edge_transform_and_lower(
            program,
            transform_passes=get_transform_passes(),
            partitioner=[XnnpackPartitioner()],
            compile_config=get_xnnpack_edge_compile_config(),
            constant_methods=constant_methods,
        )
        outside = portable_ops(edge.exported_program().graph_module)
        program_out = edge.to_executorch(get_xnnpack_executorch_backend_config())
    path.write_bytes(program_out.buffer)
    return outside


def portable_ops(graph_module: torch.fx.GraphModule) -> dict[str, int]:
    """Ops left outside the delegates (calls, not getitem / delegate calls)."""
    counts: dict[str, int] = {}
    for node in graph_module.graph.nodes:
        if node.op != "call_function":
            continue
        name = getattr(node.target, "__name__", str(node.target))
        if name in ("getitem", "executorch_call_delegate"):
            continue
        counts[name] = counts.get(name, 0) + 1
    return counts
