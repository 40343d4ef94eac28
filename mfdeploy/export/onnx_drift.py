"""Per-tensor drift between two ONNX graphs of the same model (fp32 vs fp16 / int8 QDQ).

Why: a low logits SQNR says *that* a quantised model drifted, not *where*. Both graphs come
from the same fp32 export, so the float tensors they share keep their names (the fp16
converter and the QDQ quantiser add nodes around them, they do not rename them). Exposing
every shared tensor as a graph output and running both on ONNX Runtime gives the SQNR of
each tensor, in graph order; the int8 recipe's float ops and `mfdeploy verify --per-layer`
are both chosen from this list.

Caveat: exposing a tensor as an output stops ORT from fusing across it (e.g. DQ->Conv->Q
into QLinearConv), so drift is measured on the QDQ graph as written (fake-quant numerics).
Judge a recipe by its logits on the unmodified artifact; use this list to find the culprit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mfdeploy.export.onnx_values import inferred_values
from mfdeploy.metrics import sqnr_db

SCOPE_KEY = "mfdeploy.module"  # node metadata key holding the module path
EXACT_DB = 140.0  # float32 rounding level: SQNR above this counts as exact


@dataclass
class TensorDrift:
    tensor: str
    op_type: str  # op that produces the tensor in the reference graph
    node: str
    scope: str  # module path recorded by the torch exporter ("" if unknown)
    shape: list[int]
    sqnr_db: float
    upstream: list[str]  # nearest measured tensors this one is computed from

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _load(model: Any):
    import onnx

    return onnx.load(str(model)) if isinstance(model, (str, Path)) else model


def node_scope(node) -> str:
    """Module path of a node: mfdeploy's own annotation (set at export), else the torch
    dynamo exporter's name scopes, else ''."""
    for prop in node.metadata_props:
        if prop.key == SCOPE_KEY:
            return prop.value
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            # a repr of a list such as "['', 'blocks.3', 'blocks.3.former', 'add_7']"
            parts = [p.strip().strip("'\"") for p in prop.value.strip("[]").split(",")]
            parts = [p for p in parts[:-1] if p]
            return parts[-1] if parts else ""
    return ""


def float_tensors(model) -> dict[str, tuple[Any, list[int]]]:
    """name -> (producing node, shape) for every float / float16 node output of the graph."""
    import onnx

    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16}
    values = inferred_values(model)
    result = {}
    for node in model.graph.node:
        for name in node.output:
            value = values.get(name)
            if value is not None and value.elem_type in floats:
                result[name] = (node, value.dims or [])
    return result


def with_outputs(model, names: list[str]):
    """A copy of `model` whose graph also outputs `names` (types left to the runtime)."""
    import onnx

    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    present = {o.name for o in exposed.graph.output}
    for name in names:
        if name not in present:
            exposed.graph.output.append(onnx.ValueInfoProto(name=name))
    return exposed


def _static_batch(session) -> int | None:
    dim = session.get_inputs()[0].shape[0]
    return dim if isinstance(dim, int) and dim > 0 else None


def run_tensors(model, feeds: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    """Values of the named tensors (as float32) on ORT CPU, stacked over the batch.

    A model with a static batch size is fed chunk by chunk (the batch must divide evenly).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(
        with_outputs(model, names).SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    wanted = {i.name: i.type for i in session.get_inputs()}
    cast = {
        k: v.astype(np.float16 if "float16" in wanted[k] else np.float32) for k, v in feeds.items()
    }
    total = len(next(iter(cast.values())))
    step = _static_batch(session) or total
    chunks = [
        session.run(names, {k: v[i : i + step] for k, v in cast.items()})
        for i in range(0, total, step)
    ]
    return {
        n: np.concatenate([np.asarray(c[j], dtype=np.float32) for c in chunks])
        for j, n in enumerate(names)
    }


def consumer_views(model) -> dict[str, str]:
    """tensor name -> the tensor its consumers really read in this graph.

    In a QDQ graph `t -> QuantizeLinear -> DequantizeLinear -> consumers`, consumers read the
    DequantizeLinear output (quantisation error and clamping included; the quantiser may
    also have folded a Relu into that clamp, leaving `t` as the pre-activation value).
    In a float16 graph with a Cast back to float, the tensor itself is what is read.
    """
    produced = {o for n in model.graph.node for o in n.output}
    by_input: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            by_input.setdefault(name, []).append(node)
    views = {}
    for name in produced:
        view = name
        for q in by_input.get(name, []):
            if q.op_type != "QuantizeLinear":
                continue
            dq = [n for n in by_input.get(q.output[0], []) if n.op_type == "DequantizeLinear"]
            if dq:
                view = dq[0].output[0]
                break
        views[name] = view
    return views


def tensor_drift(
    reference: Any, candidate: Any, inputs: np.ndarray, input_name: str = "input"
) -> list[TensorDrift]:
    """SQNR (dB) of every float tensor shared by both graphs, in the reference's graph order.

    `reference` / `candidate`: ONNX paths or ModelProtos; `inputs`: a batch the graphs accept.
    """
    ref_model, cand_model = _load(reference), _load(candidate)
    ref_tensors = float_tensors(ref_model)
    seen = consumer_views(cand_model)
    names = [n for n in ref_tensors if n in seen]
    feeds = {input_name: inputs}
    ref_values = run_tensors(ref_model, feeds, names)
    cand_values = run_tensors(cand_model, feeds, sorted({seen[n] for n in names}))
    producers = {o: n for n in ref_model.graph.node for o in n.output}
    measured = set(names)
    memo: dict[str, frozenset] = {}

    def upstream_of(tensor: str) -> frozenset:
        if tensor not in memo:
            found: set[str] = set()
            for i in producers[tensor].input:
                if i in measured:
                    found.add(i)
                elif i in producers:
                    found |= upstream_of(i)
            memo[tensor] = frozenset(found)
        return memo[tensor]

    drift = []
    for name in names:
        node, shape = ref_tensors[name]
        if ref_values[name].shape != cand_values[seen[name]].shape:
            continue
        drift.append(
            TensorDrift(
                tensor=name,
                op_type=node.op_type,
                node=node.name,
                scope=node_scope(node),
                shape=shape,
                sqnr_db=round(sqnr_db(ref_values[name], cand_values[seen[name]]), 3),
                upstream=sorted(upstream_of(name)),
            )
        )
    return drift


def worst(drift: list[TensorDrift], count: int = 10) -> list[TensorDrift]:
    return sorted(drift, key=lambda d: d.sqnr_db)[:count]


def local_drops(drift: list[TensorDrift]) -> list[tuple[TensorDrift, float]]:
    """Each tensor with the SQNR (dB) its own node lost, largest loss first.

    Accumulated SQNR mostly falls along the graph; the loss of a node is the SQNR of its
    least-drifted measured input minus the SQNR of its output (inputs that are weights or
    the graph input count as exact). The nodes that lose most are the ones to keep in float.
    """
    by_name = {d.tensor: d.sqnr_db for d in drift}
    drops = []
    for d in drift:
        upstream = [by_name[i] for i in d.upstream if i in by_name]
        base = max(upstream) if upstream else EXACT_DB
        drops.append((d, float(min(base, EXACT_DB) - min(d.sqnr_db, EXACT_DB))))
    return sorted(drops, key=lambda item: -item[1])
