"""Where MobileViTv2's PT2E int8 graph loses the dB the eager simulation does not see, and
what `export/pt2e_statistics.py` (statistics computed in float) gives back.

    PYTHONPATH=. .venv/bin/python benchmarks/mobilevitv2_pt2e_gap.py \
        [--model mobilevitv2_050] [--calib-count 16] [--no-parts]

1. "parts": the model prepared with ExecuTorch's XNNPACKQuantizer as an export prepares it
   (the measured float set unannotated, pt2e_clamps, no statistics pass), calibrated on all
   the calibration photos as an export does; every observer is then switched int8 / float
   (pt2e_plan.ProgramProbe) by the tensor it quantises, traced back through layout ops
   (permute / reshape / transpose share their input's parameters). "modelled" is what the
   eager simulation (int8_sensitivity._Simulator) also quantises: weights, convolution /
   linear inputs, Standardise / Unfold outputs. Each other class is scored added to the
   modelled ones and removed from everything.
2. "graph": the converted PT2E graph (convert_pt2e) with both quantizers, without and with
   the statistics pass, for the measured float set and all int8 ("none"), beside the
   simulation's figure for the same set.

SQNR of the logits against float32 PyTorch on the held-out quarter of the calibration photos
(the figure the export's graph check uses). Prints the tables.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import torch
from _common import pt2e_graph_sqnr

from mfdeploy.console import print_table
from mfdeploy.export import executorch, source_model, tflite_int8
from mfdeploy.export import int8_sensitivity as sens
from mfdeploy.export import pt2e_statistics as stats
from mfdeploy.export.common import calibration_inputs, export_module
from mfdeploy.export.pt2e_plan import ProgramProbe, _module_paths
from mfdeploy.metrics import sqnr_db

A = torch.ops.aten
LAYOUT = {A.permute.default, A.reshape.default, A.transpose.int, A.view.default}
MODELLED = ("weight", "model input", "norm output", "silu output", "pooled sum (key input)",
            "relu(v)*k (out input)", "global pool", "reduce conv out (unfold)",
            "conv out = next conv's input")  # fmt: skip
NORM_STATS = ("norm mean", "norm x-m", "norm (x-m)^2", "norm variance", "norm var+eps",
              "norm rsqrt", "constant")  # fmt: skip


def _root(node):
    while node.op == "call_module" or (node.op == "call_function" and node.target in LAYOUT):
        node = node.args[0]
    return node


def _consumers(node) -> set:
    out = set()
    for user in node.users:
        if user.op == "call_module" or user.target in LAYOUT:
            out |= _consumers(user)
        else:
            out.add(user.target)
    return out


def tensor_class(observer) -> str:  # noqa: C901 (one branch per class)
    node = _root(observer.args[0])
    if node.op == "get_attr":
        return "weight" if "weight" in node.target else "constant"
    if node.op == "placeholder":
        return "model input"
    paths = _module_paths(node)
    leaf = paths[-1].split(".")[-1] if paths else ""
    op, users = node.target, _consumers(node)
    if leaf.startswith("norm"):
        if op == A.mul.Tensor:
            rsqrt = any(_root(a).target == A.rsqrt.default for a in node.all_input_nodes)
            return "norm output" if rsqrt else "norm (x-m)^2"
        if op == A.mean.dim:
            return "norm variance" if A.add.Tensor in users else "norm mean"
        return {A.sub.Tensor: "norm x-m", A.add.Tensor: "norm var+eps",
                A.rsqrt.default: "norm rsqrt"}.get(op, f"norm {op}")  # fmt: skip
    if op in (A.conv2d.default, A.linear.default):
        if "reduce" in leaf:
            return "reduce conv out (unfold)"
        if users & {A.conv2d.default, A.linear.default}:
            return "conv out = next conv's input"
        if users == {"output"}:
            return "logits (classifier output)"
        named = {A.silu.default: "silu", A.softmax.int: "softmax", A.relu.default: "relu",
                 A.add.Tensor: "residual add", A.mul.Tensor: "mul",
                 A.mean.dim: "global pool"}  # fmt: skip
        return "conv out before " + ", ".join(sorted(named.get(u, "other") for u in users))
    if op == A.mul.Tensor:
        return "x*scores (summed)" if A.sum.dim_IntList in users else "relu(v)*k (out input)"
    return {A.softmax.int: "softmax output", A.sum.dim_IntList: "pooled sum (key input)",
            A.relu.default: "relu(value)", A.add.Tensor: "residual add",
            A.silu.default: "silu output", A.mean.dim: "global pool"}.get(op, str(op))  # fmt: skip


def prepared_xnnpack(module, example, float_modules: str):
    """The program ExecuTorch's int8 export prepares, without the statistics pass."""
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    quantizer = executorch.make_quantizer(float_modules)
    executorch.float_statistics = lambda gm: 0
    try:
        return prepare_pt2e(torch.export.export(module, (example,)).module(), quantizer)
    finally:
        executorch.float_statistics = stats.float_statistics


def parts(module, example, photos, score, ref, float_modules: str) -> list[list[str]]:
    probe = ProgramProbe(prepared_xnnpack(module, example, float_modules), 1)
    classes = defaultdict(list)
    for node, _, switch, _ in probe.switches:
        classes[tensor_class(node)].append(switch)
    probe.calibrate(photos, "int8 calibration")

    def score_with(int8: set[str]) -> float:
        probe.set_float(())
        for name, switches in classes.items():
            for switch in switches:
                switch.mode = "int8" if name in int8 else "float"
        return sqnr_db(ref, probe.run(score))

    every, modelled = set(classes), set(MODELLED) & set(classes)
    rows = [["everything", "", f"{score_with(every):.1f}", ""],
            ["modelled by the simulation", "", f"{score_with(modelled):.1f}", ""]]  # fmt: skip
    for name in sorted(every - modelled, key=lambda c: score_with(modelled | {c})):
        rows.append([name, str(len(classes[name])), f"{score_with(modelled | {name}):.1f}",
                     f"{score_with(every - {name}):.1f}"])  # fmt: skip
    stats_classes = set(NORM_STATS) | {"x*scores (summed)"}
    rows.append(["norm statistics + x*scores (the pass)", "",
                 f"{score_with(modelled | stats_classes):.1f}",
                 f"{score_with(every - stats_classes):.1f}"])  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mobilevitv2_050")
    parser.add_argument("--calib-count", type=int, default=16)
    parser.add_argument("--sets", nargs="+", default=["auto", "none"])
    parser.add_argument("--no-parts", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    source = source_model(None, args.model)
    base = export_module(source, "deploy").eval()
    photos = calibration_inputs(None, args.calib_count, source.preprocessing)
    score = sens.held_out_split(photos)[1]
    ref = sens.logits_of(source.model.eval(), torch.from_numpy(score))
    example = torch.zeros(1, *photos.shape[1:])
    measured = sens.float_plan(base, photos, None)
    rows = []
    for spec in args.sets:
        plan = measured if spec == "auto" else sens.float_plan(base, photos, spec)
        module = plan.int8_module(base)
        regex = sens.float_regex(plan.float_modules)
        simulated = measured.planned_sqnr_db if spec == "auto" else measured.all_int8_sqnr_db
        label = ",".join(plan.float_modules) or "none"
        if spec == "auto" and not args.no_parts:
            print_table(
                f"{source.name}, float {label}: XNNPACKQuantizer's PT2E program, observers "
                f"switched by the tensor they quantise (SQNR dB, {len(score)} held-out photos)",
                ["tensor class", "observers", "modelled + this", "everything but this"],
                parts(module, example, photos, score, ref, regex),
            )
        row = [label, f"{simulated:.1f}"]
        original = stats.float_statistics
        for kind in ("executorch", "tflite"):
            for on in (False, True):
                patched = original if on else (lambda gm: 0)
                executorch.float_statistics = tflite_int8.float_statistics = patched
                try:
                    row.append(f"{pt2e_graph_sqnr(kind, module, photos, score, ref, regex):.1f}")
                finally:
                    executorch.float_statistics = tflite_int8.float_statistics = original
        rows.append(row)
    print_table(
        f"{source.name}: converted PT2E graph vs the eager simulation (SQNR dB, "
        f"{len(score)} held-out of {len(photos)} calibration photos)",
        ["float set", "simulation", "XNNPACK", "XNNPACK + stats pass", "litert-torch",
         "litert-torch + stats pass"],
        rows,
    )  # fmt: skip


if __name__ == "__main__":
    main()
