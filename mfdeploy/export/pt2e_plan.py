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
consuming its tensor is in an int8 module or outside every candidate (the quantizer
annotates those whatever the float set), which is the program that quantizer would prepare
with those modules unannotated. The search over candidates is `int8_sensitivity`'s; each
evaluation runs the held-out photos through this switched program. Afterwards the held-out
photos calibrate too, the observers of float-only tensors are removed, and `convert_pt2e`
gives the program that ships.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import fx, nn

from mfdeploy.console import info, progress
from mfdeploy.export.int8_sensitivity import (
    FloatPlan,
    candidate_groups,
    candidate_macs,
    held_out_split,
    logits_of,
    parse_float_modules,
    search_float_set,
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "observe":
            getattr(self.observer, "activation_post_process", self.observer)(x)
            return x
        if self.mode == "float" or self.params is None:
            return x
        if self.constant and self._int8_value is not None:
            return self._int8_value
        scale, zero, axis, low, high = self.params
        if axis is None:
            value = torch.fake_quantize_per_tensor_affine(x, scale, zero, low, high)
        else:
            value = torch.fake_quantize_per_channel_affine(x, scale, zero, axis, low, high)
        if self.constant:
            self._int8_value = value
        return value


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
            members = [node.args[0], *node.users]
            owners = [_module_paths(m) for m in members if m.op not in NEUTRAL_OPS]
            switch = _Switch(observer, constant=node.args[0].op == "get_attr")
            name = f"_probe_switch_{index}"
            prepared.add_submodule(name, switch)
            self.switches.append((node, node.target, switch, owners))
            node.target = name
        prepared.recompile()

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

    def set_float(self, float_roots: tuple[str, ...]) -> None:
        """Switch to int8 / float by `float_roots`, freezing the observers' parameters first
        if they saw photos since (convert_pt2e computes its own: no freeze before `finish`)."""
        if self._stale:
            for _, _, switch, _ in self.switches:
                switch.freeze()
            self._stale = False
        for _, _, switch, owners in self.switches:
            switch.mode = "int8" if self._int8(owners, float_roots) else "float"

    def finish(self, float_roots: tuple[str, ...]) -> fx.GraphModule:
        """The prepared program with the observers of float-only tensors removed and every
        other observer back in place, ready for `convert_pt2e`."""
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
        return graph


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
    choose the float set on it (or take `spec`, --int8-float), and return it ready for
    `convert_pt2e` with the plan."""
    probe = ProgramProbe(prepared, batch)
    given = parse_float_modules(spec, module)
    if given is not None:
        probe.calibrate(calibration, "int8 calibration")
        plan = FloatPlan(float_modules=given, chosen_by="given" if given else "none")
        return probe.finish(given), plan
    groups = candidate_groups(module)
    fit, score = held_out_split(calibration)
    probe.calibrate(fit, "int8 calibration")
    reference = logits_of(module.eval(), torch.from_numpy(score))
    signal = float(np.mean(reference.astype(np.float64) ** 2))
    names = list(groups)

    def noise_of(active: set[str]) -> float:
        probe.set_float(tuple(p for n in names if n not in active for p in groups[n]))
        out = probe.run(score)
        return float(np.mean((out.astype(np.float64) - reference) ** 2))

    macs = candidate_macs(module, groups, torch.from_numpy(fit[:1]))
    plan = search_float_set(groups, macs, noise_of, signal, target_sqnr)
    plan.calibration_images, plan.held_out_images = len(fit), len(score)
    plan.measured_on = "target program (PT2E)"
    info(f"int8: {plan.describe()}")
    probe.calibrate(score, "int8 calibration (held-out photos)")
    return probe.finish(plan.float_modules), plan
