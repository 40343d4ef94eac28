"""A depthwise convolution with a channel multiplier k, four ways, on LiteRT: the model's own.

    PYTHONPATH=. .venv/bin/python benchmarks/depthwise_multiplier.py [--model 294m]
        [--runs 300]

XNNPACK has depthwise kernels for k = 1 only; a TFLite DEPTHWISE_CONV_2D with k > 1 runs as a
grouped IGEMM ("grouped"). The exporters split the cheap ones into a 1x1 channel repeat and a
multiplier-1 depthwise convolution ("repeat", `export/depthwise_split.py`, where its rule
says the repeat is cheap). Two more ways compute the same outputs: k multiplier-1 depthwise
convolutions on the input, concatenated ("concat": output channels in the order m * C + c,
not PyTorch's c * k + m, so the next op's weights would have to be permuted to match), and a
dense convolution with zeros outside each group ("dense"). Each of the model's multiplier
convolutions (its deploy form's, at the model's resolution) is converted alone, every way,
with litert-torch and timed interleaved at 1 thread (median ms). Prints the table and writes
benchmarks/results/depthwise_multiplier.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
from pathlib import Path

import torch
from int8_kernels import LiteRtRunner
from runtimes import interleaved
from torch import nn

from mfdeploy.console import print_table
from mfdeploy.export.depthwise_split import (
    DepthwiseWithMultiplier,
    has_channel_multiplier,
    multiplies_channels,
)
from mfdeploy.export.tflite import quiet
from mfdeploy.models import load_source
from mfdeploy.models.source import export_module

OUT = Path(__file__).parent / "results" / "depthwise_multiplier.json"


class NHWC(nn.Module):
    """NHWC in and out, as the exported model holds its maps (no transposes to time)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class Concat(nn.Module):
    """k multiplier-1 depthwise convolutions, output m * C + c = filter c * k + m."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        c, k = conv.in_channels, conv.out_channels // conv.in_channels
        self.parts = nn.ModuleList()
        for m in range(k):
            part = nn.Conv2d(c, c, conv.kernel_size, conv.stride, conv.padding, groups=c)
            part.weight.data = conv.weight.data[m::k].clone()
            part.bias.data = conv.bias.data[m::k].clone()
            self.parts.append(part)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([part(x) for part in self.parts], dim=1)


def dense(conv: nn.Conv2d) -> nn.Conv2d:
    """The grouped convolution as an ungrouped one, zeros outside each group."""
    c, out = conv.in_channels, conv.out_channels
    full = nn.Conv2d(c, out, conv.kernel_size, conv.stride, conv.padding)
    full.weight.data.zero_()
    k = out // c
    for o in range(out):
        full.weight.data[o, o // k] = conv.weight.data[o, 0]
    full.bias.data = conv.bias.data.clone()
    return full


def multiplier_convs(model: nn.Module, resolution: int) -> list[tuple[str, nn.Conv2d, tuple]]:
    """(name, convolution, NCHW input shape) of each depthwise convolution with k > 1."""
    found: list[tuple[str, nn.Conv2d, tuple]] = []
    hooks = [
        module.register_forward_hook(
            lambda m, args, out, name=name: found.append((name, m, tuple(args[0].shape)))
        )
        for name, module in model.named_modules()
        if multiplies_channels(module)
    ]
    with torch.no_grad():
        model(torch.zeros(1, 3, resolution, resolution))
    for hook in hooks:
        hook.remove()
    return found


def check_same(conv: nn.Conv2d, way: nn.Module, shape: tuple) -> None:
    """`way` computes `conv`'s outputs (in the concat's channel order for Concat)."""
    x = torch.randn(shape, dtype=torch.float64)
    with torch.no_grad():
        want = copy.deepcopy(conv).double()(x)
        got = copy.deepcopy(way).double()(x)
    if isinstance(way, Concat):
        k = conv.out_channels // conv.in_channels
        want = torch.cat([want[:, m::k] for m in range(k)], dim=1)
    if not torch.allclose(want, got, atol=1e-9):
        raise SystemExit(f"error: {type(way).__name__} is not the same convolution")


def convert(module: nn.Module, shape: tuple, path: Path) -> None:
    import litert_torch

    n, c, h, w = shape
    with quiet():
        litert_torch.convert(NHWC(module).eval(), (torch.randn(n, h, w, c),)).export(str(path))


def time_files(paths: dict[str, Path], runs: int) -> dict[str, float]:
    """Median ms per file, interleaved, each timed run after an untimed one of the same file."""
    timed = interleaved({way: LiteRtRunner(path, 1) for way, path in paths.items()}, None, runs,
                        warmup=0, settle=1)  # fmt: skip
    return {way: result["median"] for way, result in timed.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="294m")
    parser.add_argument("--runs", type=int, default=300, help="timed runs per file (>= 50)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    source = load_source(args.model)
    resolution = source.preprocessing.resolution
    convs = multiplier_convs(export_module(source, "deploy"), resolution)
    if not convs:
        raise SystemExit(f"error: {args.model} has no depthwise convolution with a multiplier")
    ways = {"grouped": lambda m: m, "repeat": DepthwiseWithMultiplier, "concat": Concat,
            "dense": dense}  # fmt: skip
    rows, results = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, conv, shape in convs:
            paths = {}
            for way, build in ways.items():
                module = build(conv)
                check_same(conv, module, shape)
                paths[way] = Path(tmp) / f"{way}.tflite"
                convert(module, shape, paths[way])
            ms = time_files(paths, args.runs)
            k = conv.out_channels // conv.in_channels
            split = "repeat" if has_channel_multiplier(conv) else "grouped"  # the exporters' rule
            results.append({"module": name, "input": shape, "k": k, "stride": conv.stride[0],
                            "exporters_take": split, "ms": ms})  # fmt: skip
            fastest = min(ms, key=ms.get)
            rows.append(
                [name, "x".join(map(str, shape[1:])), k, conv.stride[0], split]
                + [f"{ms[way]:.3f}" for way in ways]
                + [fastest]
            )
            print(f"{name}: done", flush=True)
    print_table(
        f"{args.model}: multiplier depthwise convolutions on LiteRT, 1 thread, median of "
        f"{args.runs} interleaved runs (ms)",
        ["module", "input CxHxW", "k", "stride", "exporters take", *ways, "fastest"],
        rows,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": args.model, "convs": results}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
