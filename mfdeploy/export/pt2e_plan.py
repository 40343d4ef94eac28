"""The int8 float set measured on the target's own PT2E program (Core ML W8A8).

Rule: Core ML measures which modules stay float on the program coremltools' quantizer
prepared, not on a model of it. Why: that quantizer takes softmax, matmul and GELU inputs to
int8, which the eager simulation (`int8_sensitivity`) does not model, and the simulation's
float set missed 18 dB there. Only where the converted PT2E program is what the runtime
computes: litert-torch and the XNNPACK delegate fuse conv -> quantise -> relu6, so for TFLite
and ExecuTorch the PyTorch-side program is not their artifact (docs/int8.md).

How: the model is prepared once with every op annotated and calibrated on the first three
quarters of the calibration photos. Each observer is then switched between "int8 with its
calibrated parameters" and "float" by where it sits: it stays int8 when the op producing or
consuming its tensor (looking through other observers: a tensor can be observed twice in
a row) is in an int8 module or outside every candidate (the quantizer annotates those
whatever the float set), which is the program that quantizer would prepare with those
modules unannotated. The search over candidates is `int8_sensitivity`'s; each
evaluation runs the held-out photos through this switched program. Afterwards the held-out
photos calibrate too, the observers of float-only tensors are removed, and `convert_pt2e`
gives the program that ships.

Bias correction (int8_bias) is measured here on the program itself: its convolutions and
linears carry the weights its quantiser rounds (batch norms folded in by `prepare_pt2e`) to
its own grid (Core ML: -128..127, not the -127..127 the other targets share). Once the
weights' observers have their parameters, the program runs in float on the photos that set
the ranges, and each layer's mean output error from its int8 weight is measured where it
sits; its bias is then switched with its weight: corrected while the weight is int8, its own
value while float. A layer without a bias is left uncorrected.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import fx, nn

from mfdeploy.console import info, progress
from mfdeploy.export.int8_sensitivity import (
    FloatPlan,
    candidate_groups,
    fit_photos,
    held_out_split,
    parse_float_modules,
    search_with,
)

NEUTRAL_OPS = ("placeholder", "get_attr", "output")
_QRANGE = {
    torch.qint8: (-128, 127),
    torch.int8: (-128, 127),
    torch.quint8: (0, 255),
    torch.uint8: (0, 255),
}


def _module_paths(node: fx.Node) -> tuple[str, ...]:
    stack = node.meta.get("nn_module_stack") or {}
    return tuple(str(path).removeprefix("L['self'].") for path, _ in stack.values())


def _inside(paths: tuple[str, ...], roots: tuple[str, ...]) -> bool:
    return any(p == r or p.startswith(r + ".") for p in paths for r in roots)


def _producer(observer: fx.Node) -> fx.Node:
    """The op whose tensor `observer` observes, looking through observers before it (a
    tensor annotated at its producer's output and again at a consumer's input is observed
    twice in a row; an observer belongs to no module and would own nothing)."""
    node = observer.args[0]
    while node.op == "call_module":
        node = node.args[0]
    return node


def _consumers(observer: fx.Node) -> list[fx.Node]:
    """The ops reading `observer`'s tensor, looking through observers after it."""
    out = []
    for user in observer.users:
        out.extend(_consumers(user) if user.op == "call_module" else [user])
    return out


def _is_observer(module: nn.Module) -> bool:
    return hasattr(module, "calculate_qparams") and hasattr(module, "dtype")


class _Switch(nn.Module):
    """Stands in for one observer node: observe (calibration), int8 (frozen), or float."""

    def __init__(self, observer: nn.Module, constant: bool = False):
        super().__init__()
        self.observer = observer
        self.mode = "observe"
        self.params: tuple | None = None
        # a weight's observer: its int8 value is the same every run, so it is made once per
        # freeze (294m: 212 weight tensors, a third of an all-int8 run's time)
        self.constant = constant
        self._int8_value: torch.Tensor | None = None

    def freeze(self) -> None:
        self._int8_value = None
        obs = self.observer
        qrange = _QRANGE.get(obs.dtype)
        if qrange is None:  # int32 bias, dynamic placeholders: left float in the probe
            self.params = None
            return
        low = getattr(obs, "quant_min", None)
        high = getattr(obs, "quant_max", None)
        low, high = qrange if low is None or high is None else (int(low), int(high))
        try:
            scale, zero = obs.calculate_qparams()
        except (RuntimeError, ValueError, AttributeError):  # never saw data
            self.params = None
            return
        per_channel = obs.qscheme in (torch.per_channel_symmetric, torch.per_channel_affine)
        if per_channel:
            axis = int(getattr(obs, "ch_axis", 0))
            self.params = (scale.float(), zero.int(), axis, low, high)
        else:  # read out once, not on every call
            scalar = (float(scale.float().reshape(-1)[0]), int(zero.int().reshape(-1)[0]))
            self.params = (*scalar, None, low, high)

    def quantise(self, x: torch.Tensor) -> torch.Tensor:
        """`x` on this observer's frozen int8 grid (as float)."""
        scale, zero, axis, low, high = self.params
        if axis is None:
            return torch.fake_quantize_per_tensor_affine(x, scale, zero, low, high)
        return torch.fake_quantize_per_channel_affine(x, scale, zero, axis, low, high)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "observe":
            getattr(self.observer, "activation_post_process", self.observer)(x)
            return x
        if self.mode == "float" or self.params is None:
            return x
        if self.constant and self._int8_value is not None:
            return self._int8_value
        value = self.quantise(x)
        if self.constant:
            self._int8_value = value
        return value


#: program ops with a weight (argument 1) and an optional bias (argument 2), and the
#: dimension of their output that holds the output channels
WEIGHTED_OPS = {
    torch.ops.aten.conv1d.default: 1,
    torch.ops.aten.conv2d.default: 1,
    torch.ops.aten.linear.default: -1,
}


class _Layer:
    """A convolution / linear of the program: its weight's switch and its bias, which is
    corrected for the int8 weight while that switch is int8 (see the module doc)."""

    def __init__(self, node: fx.Node, switch: _Switch, weight: torch.Tensor, bias: torch.Tensor):
        self.node = node
        self.switch = switch
        self.weight = weight
        self.bias = bias  # the program's own copy, set in place
        self.original = bias.detach().clone()
        self.corrected: torch.Tensor | None = None

    @property
    def int8(self) -> bool:
        return self.switch.mode == "int8" and self.switch.params is not None

    def apply(self) -> bool:
        """Set the bias for the weight's mode; whether it is the corrected one."""
        corrected = self.corrected is not None and self.int8
        self.bias.data = self.corrected if corrected else self.original
        return corrected


def _owner(graph: fx.GraphModule, target: str) -> tuple[nn.Module, str]:
    """The submodule holding a get_attr target, and the attribute's name there."""
    owner_path, _, name = target.rpartition(".")
    return (graph.get_submodule(owner_path) if owner_path else graph), name


def _own_copy(graph: fx.GraphModule, target: str) -> torch.Tensor:
    """The program's tensor at `target` replaced by a copy it alone holds: torch.export
    shares the exported module's parameters, which a corrected bias must not change."""
    owner, name = _owner(graph, target)
    value = getattr(owner, name).detach().clone()
    buffer = name in owner._buffers
    delattr(owner, name)
    if buffer:
        owner.register_buffer(name, value)
        return value
    owner.register_parameter(name, nn.Parameter(value, requires_grad=False))
    return getattr(owner, name)


def _layers(graph: fx.GraphModule) -> list[_Layer]:
    """The program's convolutions / linears whose weight is observed and whose bias is a
    tensor of the program."""
    layers = []
    for node in graph.graph.nodes:
        if node.op != "call_function" or node.target not in WEIGHTED_OPS or len(node.args) < 3:
            continue
        observed, bias = node.args[1], node.args[2]
        if not (isinstance(observed, fx.Node) and observed.op == "call_module"):
            continue
        switch = graph.get_submodule(observed.target)
        source = observed.args[0]
        if not (isinstance(switch, _Switch) and switch.constant and source.op == "get_attr"):
            continue
        if not (isinstance(bias, fx.Node) and bias.op == "get_attr"):
            continue
        weight = getattr(*_owner(graph, str(source.target))).detach()
        layers.append(_Layer(node, switch, weight, _own_copy(graph, str(bias.target))))
    return layers


class _ErrorMeans(fx.Interpreter):
    """Runs the program and sums, per layer, what its int8 weight changes in its output
    (its op on the same input with the weight's rounding error and no bias)."""

    def __init__(self, graph: fx.GraphModule, layers: list[_Layer]):
        super().__init__(graph)
        self.deltas = {layer.node: layer.switch.quantise(layer.weight) - layer.weight
                       for layer in layers}  # fmt: skip
        self.sums: dict[fx.Node, torch.Tensor] = {}
        self.batch, self.images = 0, 0  # the batch being run, and its images before padding

    def measure(self, batch: torch.Tensor, images: int) -> None:
        """Add the errors of `batch`'s first `images` images (the rest pads it)."""
        self.batch, self.images = len(batch), images
        self.run(batch)

    def run_node(self, node: fx.Node):
        out = super().run_node(node)
        delta = self.deltas.get(node)
        if delta is not None:
            args, kwargs = self.fetch_args_kwargs_from_env(node)
            error = node.target(args[0], delta, None, *args[3:], **kwargs)
            error = error.movedim(WEIGHTED_OPS[node.target], -1)
            if self.images < self.batch and error.shape[0] == self.batch:
                error = error[: self.images]  # padding left out
            mean = error.reshape(-1, error.shape[-1]).mean(0) * self.images
            self.sums[node] = self.sums.get(node, 0) + mean
        return out


class ProgramProbe:
    """A prepared PT2E program whose observers follow a float set (see the module doc)."""

    def __init__(self, prepared: fx.GraphModule, batch: int):
        self.graph = prepared
        self.batch = batch
        self.switches: list[tuple[fx.Node, str, _Switch, list[tuple[str, ...]]]] = []
        self._stale = True  # observers saw photos since their parameters were frozen
        for index, node in enumerate(list(prepared.graph.nodes)):
            if node.op != "call_module":
                continue
            observer = prepared.get_submodule(node.target)
            if not _is_observer(observer):
                continue
            members = [_producer(node), *_consumers(node)]
            owners = [_module_paths(m) for m in members if m.op not in NEUTRAL_OPS]
            switch = _Switch(observer, constant=node.args[0].op == "get_attr")
            name = f"_probe_switch_{index}"
            prepared.add_submodule(name, switch)
            self.switches.append((node, node.target, switch, owners))
            node.target = name
        prepared.recompile()
        self.layers = _layers(prepared)

    def run(self, images: np.ndarray) -> np.ndarray:
        """Logits for `images` (padded to whole batches, padding dropped)."""
        outs = []
        with torch.no_grad():
            for start in range(0, len(images), self.batch):
                chunk = torch.from_numpy(np.ascontiguousarray(images[start : start + self.batch]))
                short = self.batch - len(chunk)
                if short:
                    chunk = torch.cat([chunk, chunk[-1:].expand(short, *chunk.shape[1:])])
                out = self.graph(chunk)
                out = out if isinstance(out, torch.Tensor) else out[0]
                outs.append(out[: len(chunk) - short].numpy())
        return np.concatenate(outs)

    def calibrate(self, images: np.ndarray, label: str) -> None:
        for _, _, switch, _ in self.switches:
            switch.mode = "observe"
        for start in progress(range(0, len(images), self.batch), label):
            self.run(images[start : start + self.batch])
        self._stale = True

    def _int8(self, owners: list[tuple[str, ...]], float_roots: tuple[str, ...]) -> bool:
        return any(not _inside(paths, float_roots) for paths in owners)

    def _freeze(self) -> None:
        if self._stale:
            for _, _, switch, _ in self.switches:
                switch.freeze()
            self._stale = False

    def correct_biases(self, images: np.ndarray) -> None:
        """Measure each layer's mean int8-weight error on `images` (the program in float, so
        each layer sees float inputs) and keep the bias that removes it, for while the
        weight is int8."""
        self._freeze()
        for _, _, switch, _ in self.switches:
            switch.mode = "float"
        for layer in self.layers:
            layer.apply()  # float: the original biases
        layers = [layer for layer in self.layers if layer.switch.params is not None]
        means = _ErrorMeans(self.graph, layers)
        with torch.no_grad():
            for start in range(0, len(images), self.batch):
                chunk = images[start : start + self.batch]
                padded = np.concatenate([chunk, np.repeat(chunk[-1:], self.batch - len(chunk), 0)])
                means.measure(torch.from_numpy(np.ascontiguousarray(padded)), len(chunk))
        for layer in layers:
            error = means.sums[layer.node] / len(images)
            layer.corrected = layer.original - error.to(layer.original.dtype)

    def set_float(self, float_roots: tuple[str, ...]) -> int:
        """Switch to int8 / float by `float_roots`, freezing the observers' parameters first
        if they saw photos since (convert_pt2e computes its own: no freeze before `finish`);
        each layer's bias follows its weight. Returns how many biases are corrected."""
        self._freeze()
        for _, _, switch, owners in self.switches:
            switch.mode = "int8" if self._int8(owners, float_roots) else "float"
        return sum(layer.apply() for layer in self.layers)

    def finish(self, float_roots: tuple[str, ...]) -> tuple[fx.GraphModule, int]:
        """The prepared program with the observers of float-only tensors removed and every
        other observer back in place, ready for `convert_pt2e`, its biases set for
        `float_roots`; and how many of them are corrected."""
        corrected = self.set_float(float_roots)
        graph = self.graph
        for node, target, _switch, owners in self.switches:
            delattr(graph, node.target)
            if self._int8(owners, float_roots):
                node.target = target
            else:
                node.replace_all_uses_with(node.args[0])
                graph.graph.erase_node(node)
        graph.graph.lint()
        graph.recompile()
        return graph, corrected


def plan_on_program(
    module: nn.Module,
    prepared: fx.GraphModule,
    calibration: np.ndarray,
    *,
    batch: int,
    spec: str | None,
    target_sqnr: float,
) -> tuple[fx.GraphModule, FloatPlan]:
    """Calibrate `prepared` (`module` exported with every op annotated) on `calibration`,
    choose the float set on it (or take `spec`, --int8-float), correct the biases of the
    layers it keeps int8, and return it ready for `convert_pt2e` with the plan."""
    probe = ProgramProbe(prepared, batch)
    given = parse_float_modules(spec, module)
    if given is not None:
        probe.calibrate(calibration, "int8 calibration")
        probe.correct_biases(fit_photos(calibration))
        plan = FloatPlan(float_modules=given, chosen_by="given" if given else "none")
        graph, corrected = probe.finish(given)
        plan.record_corrected(corrected)
        return graph, plan
    groups = candidate_groups(module)
    fit, score = held_out_split(calibration)
    probe.calibrate(fit, "int8 calibration")
    probe.correct_biases(fit)

    def logits_with(active: set[str]) -> np.ndarray:
        probe.set_float(tuple(p for n in groups if n not in active for p in groups[n]))
        return probe.run(score)

    plan = search_with(
        module, groups, (fit, score), logits_with, target_sqnr, "target program (PT2E)"
    )
    info(f"int8: {plan.describe()}")
    probe.set_float(plan.float_modules)  # the held-out photos calibrate the shipped biases
    probe.calibrate(score, "int8 calibration (held-out photos)")
    graph, corrected = probe.finish(plan.float_modules)
    plan.record_corrected(corrected)
    return graph, plan
