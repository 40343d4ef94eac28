"""Module scopes in exported graphs: find a module's input or output tensors in any format.

Every converter here records, per node, the module it came from: ONNX node scopes
(`mfdeploy.export.onnx_drift.node_scope`), LiteRT tensor names (the torch module path, one
`Class_attribute` segment per called module), and for Core ML the torch.export graph the
program was converted from (`nn_module_stack`; MIL value names are its node names).
A module's outputs are the tensors its nodes produce that a node outside it reads (or the
graph returns); its inputs are the tensors its nodes read that are produced outside it.
Nodes with no recorded module (simplifier-made Gemm / Reshape, Q/DQ pairs) are looked
through. Of the candidates, only one whose value has the expected shape in the reference
layout (after the runtime's layout conversion) is kept. Which modules matter is the model
family's business (`ModelFamily.module_anchors`); this module knows no family.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # runtimes import this module: no torch at import
    from mfdeploy.models.anchors import ModuleAnchor

OUTSIDE = "<outside>"  # scope of nodes outside the model (wrappers): in no module
NHWC_TO_NCHW = (0, 3, 1, 2)


def to_reference(value: np.ndarray, shape: tuple, perms: dict) -> np.ndarray | None:
    """`value` in the reference layout: the one permutation of `perms[rank]` (None = as is)
    that gives `shape`; None when none does or several do (ambiguous: left out)."""
    value = np.asarray(value)
    options = perms.get(len(shape), (None,))
    fits = [p for p in options if value.ndim == len(shape) and _permuted(value.shape, p) == shape]
    if len(fits) != 1:
        return None
    out = value if fits[0] is None else value.transpose(fits[0])
    return np.ascontiguousarray(out, dtype=np.float32)


def with_nhwc(perms: dict[int, tuple]) -> dict[int, tuple]:
    """`perms` for a runtime that may keep feature maps NHWC (LiteRT). Added once: a family
    whose form is channels-last already lists it, and a repeat would count as two fits."""
    declared = tuple(perms.get(4, (None,)))
    return {**perms, 4: declared if NHWC_TO_NCHW in declared else (*declared, NHWC_TO_NCHW)}


def _permuted(shape: tuple, perm) -> tuple:
    return tuple(shape) if perm is None else tuple(shape[p] for p in perm)


def _inside(scope: str, module: str) -> bool:
    return scope == module or scope.startswith(module + ".")


@dataclass
class Node:
    scopes: frozenset  # module paths the node belongs to; empty = unknown (looked through)
    inputs: tuple
    outputs: tuple


@dataclass
class Graph:
    """A dataflow graph with a module scope per node, for locating module inputs / outputs."""

    nodes: list[Node]
    inputs: set = field(default_factory=set)  # graph inputs (activations, not weights)
    outputs: set = field(default_factory=set)

    def __post_init__(self) -> None:
        self.producer = {t: i for i, n in enumerate(self.nodes) for t in n.outputs}
        self.consumers: dict[Any, list[int]] = defaultdict(list)
        for i, node in enumerate(self.nodes):
            for t in node.inputs:
                self.consumers[t].append(i)

    def _in(self, index: int, module: str) -> bool | None:
        scopes = self.nodes[index].scopes
        return any(_inside(s, module) for s in scopes) if scopes else None

    def _leaves(self, tensor, module: str, seen: set) -> bool:
        """Does `tensor` reach a node outside `module` (or the graph output)?"""
        if tensor in self.outputs:
            return True
        for c in self.consumers.get(tensor, ()):
            inside = self._in(c, module)
            if inside is False:
                return True
            if inside is None and c not in seen:
                seen.add(c)
                if any(self._leaves(o, module, seen) for o in self.nodes[c].outputs):
                    return True
        return False

    def _only(self, index: int | None, module: str, inside: bool) -> bool:
        """Is every recorded scope of the node inside (or outside) `module`?"""
        scopes = self.nodes[index].scopes if index is not None else frozenset()
        return all(_inside(s, module) == inside for s in scopes)

    def candidates(self, module: str, where: str) -> list:
        """Outputs of `module` (last produced first) or its inputs (first produced first).

        A node fused from ops of several modules (LiteRT) belongs to each of them; tensors of
        nodes wholly inside (for inputs: wholly outside) the module come first.
        """
        if where == "out":
            found = [
                (not self._only(i, module, True), -i, t)
                for i, node in enumerate(self.nodes)
                if self._in(i, module)
                for t in node.outputs
                if self._leaves(t, module, set())
            ]
            return [t for *_, t in sorted(found, key=lambda f: f[:2])]
        found, seen = [], set()
        for i, node in enumerate(self.nodes):
            if not self._in(i, module):
                continue
            for t in node.inputs:
                p = self.producer.get(t)
                outside = self._in(p, module) is not True if p is not None else t in self.inputs
                if outside and t not in seen:
                    seen.add(t)
                    order = -1 if p is None else p
                    found.append((not self._only(p, module, False), order, t))
        return [t for *_, t in sorted(found, key=lambda f: f[:2])]


def locate(graph: Graph, anchors: list[ModuleAnchor]) -> dict[str, list]:
    """anchor -> candidate tensors, best first (the caller keeps the first of right shape)."""
    return {a.anchor: graph.candidates(a.module, a.where) for a in anchors}


def pick(
    candidates: dict[str, list], value_of, shapes: dict[str, tuple], perms
) -> dict[str, np.ndarray]:
    """For each anchor the first candidate whose value has the reference shape (converted)."""
    found = {}
    for anchor, names in candidates.items():
        for name in names:
            value = value_of(name)
            if value is None or anchor not in shapes:
                continue
            converted = to_reference(value, shapes[anchor], perms)
            if converted is not None:
                found[anchor] = converted
                break
    return found


# ------------------------------------------------------------------ scopes per format
def fx_graph(program, root_class: str) -> tuple[Graph, dict[str, tuple]]:
    """torch.export graph -> (Graph of node names, node name -> shape); scopes are module
    paths below the module of class `root_class` (the exported form, inside any wrapper)."""
    nodes, shapes, inputs = [], {}, set()
    stacks = [n.meta.get("nn_module_stack") or {} for n in program.graph.nodes]
    root = next(
        (
            fqn
            for stack in stacks
            for fqn, kind in stack.values()
            if str(kind).rsplit(".", 1)[-1].strip("'>") == root_class
        ),
        "",
    )
    for node, stack in zip(program.graph.nodes, stacks):
        val = node.meta.get("val")
        if hasattr(val, "shape"):
            shapes[node.name] = tuple(int(d) for d in val.shape)
        if node.op == "placeholder" and node.name in _user_inputs(program):
            inputs.add(node.name)
        if node.op != "call_function":
            continue
        paths = [fqn for fqn, _ in stack.values()]
        if root not in paths and (root or paths):
            scope = OUTSIDE  # a wrapper's own op (image normalisation, softmax)
        else:
            deepest = paths[-1] if paths else root
            scope = "" if deepest == root else deepest[len(root) + 1 :] if root else deepest
        nodes.append(
            Node(frozenset([scope]), tuple(a.name for a in node.all_input_nodes), (node.name,))
        )
    outputs = {a.name for n in program.graph.nodes if n.op == "output" for a in n.all_input_nodes}
    return Graph(nodes, inputs, outputs), shapes


def _user_inputs(program) -> set[str]:
    try:
        return set(program.graph_signature.user_inputs)
    except AttributeError:
        return set()


def fx_anchor_names(
    program,
    root_class: str,
    anchors: list[ModuleAnchor],
    expected: dict[str, tuple],
    perms: dict[int, tuple],
) -> dict[str, str]:
    """anchor -> torch.export node name (Core ML MIL value names are these node names)."""
    graph, shapes = fx_graph(program, root_class)
    found = {}
    for anchor, names in locate(graph, anchors).items():
        for name in names:
            if (
                name in shapes
                and to_reference(np.empty(shapes[name], np.float32), expected[anchor], perms)
                is not None
            ):
                found[anchor] = name
                break
    return found


def litert_scope_table(root) -> dict[str, str]:
    """LiteRT location path ("MobileFormerBlock_0/Former_former") -> module path.

    litert-torch names a tensor after the stack of modules whose forward produced it, one
    `Class_attribute` segment per called module (containers such as ModuleList are not
    called, so `blocks.0` is "MobileFormerBlock_0").
    """
    from torch import nn

    modules = dict(root.named_modules())
    table = {}
    for path, module in modules.items():
        if not path or isinstance(module, (nn.ModuleList, nn.ModuleDict)):
            continue
        parts = path.split(".")
        segments = []
        for depth in range(1, len(parts) + 1):
            sub = modules[".".join(parts[:depth])]
            if not isinstance(sub, (nn.ModuleList, nn.ModuleDict)):
                segments.append(f"{type(sub).__name__}_{parts[depth - 1]}")
        table["/".join(segments)] = path
    return table


def litert_scopes(name: str, table: dict[str, str], root_class: str) -> frozenset:
    """Module paths in a LiteRT tensor name (fused ops join their locations with ';').

    A location below a module the table does not know (an exporter's rewrite, such as the
    depthwise split's `repeat`, is not in the structure model) belongs to its deepest known
    ancestor."""
    scopes = set()
    for part in name.split(";"):
        segments = [s.rsplit(".", 1)[-1] for s in part.split("/") if s]
        roots = [i for i, s in enumerate(segments) if s.split("_", 1)[0] == root_class]
        if not roots:
            continue
        rest = segments[roots[-1] + 1 :]
        if not rest:
            scopes.add("")
        for n in range(len(rest), 0, -1):  # deepest known location first
            location = "/".join(rest[:n])
            if location in table:
                scopes.add(table[location])
                break
    return frozenset(scopes)
