"""What int8 can gain on this CPU at all: fp32 against int8 on single-kind stacks of layers,
on LiteRT / XNNPACK and on ONNX Runtime's CPU EP, timed interleaved in one process.

    PYTHONPATH=. .venv/bin/python benchmarks/int8_kernels.py [--runs 60] [--warmup 10]
        [--threads 1] [--kernels pointwise conv3x3 depthwise linear narrow16 narrow24 narrow48]

A whole network's int8 speed-up is bounded by its kernels': if XNNPACK's int8 GEMM on this
CPU does only as many multiply-accumulates per second as its fp32 GEMM, no choice of float
modules makes a model 1.5x faster. LiteRT gets each stack through the project's own TFLite
paths: `torch_to_tflite` (fp32), `full_integer_int8` with nothing kept float (int8 I/O,
calibrated on seeded random inputs: ranges do not change the kernels' speed) and
`dynamic_range_int8` (int8-weights: activations quantised at run time, XNNPACK's qd8
kernels), each checked to run in one XNNPACK partition. ONNX Runtime gets the dynamo export
and onnxruntime's `quantize_static` (QDQ, per-channel symmetric int8 weights) with int8
activations (s8s8) and with uint8 ones (u8s8, what `mfdeploy export --target onnx` ships),
each run as the project's adapter runs it (`session.x64quantprecision` = 1: exact int16 sums
on x86 without VNNI, docs/onnx.md), and u8s8 once more in a default session ("u8s8-fast":
16-bit sums that saturate). 1 thread everywhere. Prints MACs, median ms and GMAC/s per
artifact and the speed-up over fp32 on the same runtime; writes
benchmarks/results/int8_kernels.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from runtimes import interleaved
from torch import nn

from mfdeploy.console import print_table
from mfdeploy.export.tflite import (
    NHWCInput,
    dynamic_range_int8,
    full_integer_int8,
    torch_to_tflite,
)
from mfdeploy.harness.inspect import xnnpack_partitions
from mfdeploy.harness.report import machine

OUT = Path(__file__).parent / "results" / "int8_kernels.json"
CALIBRATION_INPUTS = 8


class Stack(nn.Module):
    """`depth` copies of one layer, each followed by ReLU6 (fused by both converters)."""

    def __init__(self, make: callable, depth: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(make() for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.clamp(layer(x), 0.0, 6.0)
        return x


class Narrow(Stack):
    """`depth` 1x1 convolutions alternating wide -> narrow -> wide (e.g. 96 -> 24 -> 96), each
    followed by ReLU6: the narrow GEMMs of a mobile network's early blocks."""

    def __init__(self, wide: int, narrow: int, depth: int) -> None:
        sizes = iter([(wide, narrow) if i % 2 == 0 else (narrow, wide) for i in range(depth)])
        super().__init__(lambda: nn.Conv2d(*next(sizes), 1), depth)


class Tokens(nn.Module):
    """Linear layers on a (1, tokens, width) sequence, fed as an NCHW (1, width, tokens, 1)
    image so the same NHWC wrapper serves every stack."""

    def __init__(self, width: int, depth: int) -> None:
        super().__init__()
        self.stack = Stack(lambda: nn.Linear(width, width), depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stack(x.flatten(2).transpose(1, 2))


#: name -> (module factory, NCHW input shape, multiply-accumulates per run)
KERNELS = {
    "pointwise": (lambda: Stack(lambda: nn.Conv2d(192, 192, 1), 8), (1, 192, 28, 28),
                  8 * 28 * 28 * 192 * 192),
    "conv3x3": (lambda: Stack(lambda: nn.Conv2d(64, 64, 3, padding=1), 4), (1, 64, 56, 56),
                4 * 56 * 56 * 64 * 64 * 9),
    "depthwise": (lambda: Stack(lambda: nn.Conv2d(144, 144, 3, padding=1, groups=144), 8),
                  (1, 144, 56, 56), 8 * 56 * 56 * 144 * 9),
    "linear": (lambda: Tokens(512, 4), (1, 512, 196, 1), 4 * 196 * 512 * 512),
    # Mobile-Former 294m's narrow pointwise convolutions (N or K of 16, 24, 48)
    "narrow16": (lambda: Narrow(32, 16, 8), (1, 32, 112, 112), 8 * 112 * 112 * 32 * 16),
    "narrow24": (lambda: Narrow(96, 24, 8), (1, 96, 56, 56), 8 * 56 * 56 * 96 * 24),
    "narrow48": (lambda: Narrow(192, 48, 8), (1, 192, 28, 28), 8 * 28 * 28 * 192 * 48),
}  # fmt: skip


def export_tflite(name: str, folder: Path) -> tuple[Path, Path, Path]:
    """fp32, int8 and int8-weights (qd8) .tflite of kernel stack `name` (NHWC input, like
    every artifact)."""
    make, shape, _ = KERNELS[name]
    torch.manual_seed(0)
    module = NHWCInput(make().eval())
    nhwc = (shape[0], shape[2], shape[3], shape[1])
    example = torch.randn(nhwc)
    rng = np.random.default_rng(0)
    calibration = rng.standard_normal((CALIBRATION_INPUTS, *nhwc[1:])).astype(np.float32)
    fp32, int8 = folder / f"{name}-fp32.tflite", folder / f"{name}-int8.tflite"
    torch_to_tflite(module, example, fp32)
    full_integer_int8(module, example, calibration, int8, float_modules="", float_io=False)
    weights = folder / f"{name}-int8-weights.tflite"
    dynamic_range_int8(fp32, weights, ratio=0.0)  # every layer, whatever its shape
    return fp32, int8, weights


def export_onnx(name: str, folder: Path) -> dict[str, Path]:
    """fp32, s8s8 and u8s8 QDQ .onnx of kernel stack `name` (NCHW input)."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from mfdeploy.export.onnx import torch_to_onnx
    from mfdeploy.export.onnx_quant import CalibrationReader, prepare

    make, shape, _ = KERNELS[name]
    torch.manual_seed(0)
    fp32, prepared = folder / f"{name}-fp32.onnx", folder / f"{name}-prepared.onnx"
    onnx.save(torch_to_onnx(make().eval(), torch.randn(shape), dynamic_batch=False), fp32)
    prepare(fp32, prepared)
    rng = np.random.default_rng(0)
    calibration = rng.standard_normal((CALIBRATION_INPUTS, *shape[1:])).astype(np.float32)
    paths = {"fp32": fp32}
    for label, activations in (("s8s8", QuantType.QInt8), ("u8s8", QuantType.QUInt8)):
        paths[label] = folder / f"{name}-{label}.onnx"
        quantize_static(
            str(prepared), str(paths[label]), CalibrationReader(calibration, "input", 1),
            quant_format=QuantFormat.QDQ, per_channel=True, activation_type=activations,
            weight_type=QuantType.QInt8, extra_options={"WeightSymmetric": True},
        )  # fmt: skip
    return paths


class OrtSession:
    """An onnxruntime session on a fixed zero input; `run` ignores its argument, so
    `runtimes.interleaved` times it like the LiteRT runners."""

    def __init__(self, path: Path, threads: int, shape: tuple[int, ...], exact: bool) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        if exact:
            options.add_session_config_entry("session.x64quantprecision", "1")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.feed = {self.session.get_inputs()[0].name: np.zeros(shape, np.float32)}

    def run(self, _batch: None) -> None:
        self.session.run(None, self.feed)


def open_interpreter(path: Path, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    return interpreter


class LiteRtRunner:
    """A LiteRT interpreter on a fixed zero input, with the `run` `interleaved` calls."""

    def __init__(self, path: Path, threads: int) -> None:
        self.interpreter = open_interpreter(path, threads)

    def run(self, _batch: None) -> None:
        self.interpreter.invoke()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernels", nargs="+", choices=sorted(KERNELS), default=list(KERNELS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    interpreters, macs, partitions = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.kernels:
            print(f"exporting {name} (fp32, int8)", flush=True)
            precisions = ("fp32", "int8", "int8-weights")
            for precision, path in zip(precisions, export_tflite(name, Path(tmp)), strict=True):
                key = f"{name} {precision}"
                interpreters[key] = LiteRtRunner(path, args.threads)
                partitions[key] = xnnpack_partitions(open_interpreter(path, args.threads))
            onnx_paths = export_onnx(name, Path(tmp))
            for label, path in onnx_paths.items():
                interpreters[f"{name} ort-{label}"] = OrtSession(
                    path, args.threads, KERNELS[name][1], exact=True
                )
            interpreters[f"{name} ort-u8s8-fast"] = OrtSession(
                onnx_paths["u8s8"], args.threads, KERNELS[name][1], exact=False
            )
            macs[name] = KERNELS[name][2]
        print(f"timing {len(interpreters)} models interleaved, {args.runs} runs", flush=True)
        times = interleaved(interpreters, None, args.runs, args.warmup)
        ms = {key: t["median"] for key, t in times.items()}
    rows, records = [], []
    for name in args.kernels:
        for runtime, base, variants in (
            ("LiteRT", f"{name} fp32", (f"{name} int8", f"{name} int8-weights")),
            (
                "ONNX Runtime",
                f"{name} ort-fp32",
                (f"{name} ort-s8s8", f"{name} ort-u8s8", f"{name} ort-u8s8-fast"),
            ),
        ):
            for key in (base, *variants):
                gmacs = macs[name] / ms[key] / 1e6
                rows.append([
                    name, runtime, key.split(" ", 1)[1].removeprefix("ort-"),
                    f"{macs[name] / 1e6:.0f}M", f"{ms[key]:.2f}", f"{gmacs:.1f}",
                    f"{ms[base] / ms[key]:.2f}x", str(partitions.get(key, "")),
                ])  # fmt: skip
                records.append(
                    {"kernel": name, "runtime": runtime, "artifact": key, "macs": macs[name],
                     "ms": ms[key], "speed_up": ms[base] / ms[key],
                     "xnnpack_partitions": partitions.get(key)}
                )  # fmt: skip
    print_table(
        f"{args.threads} thread(s), median of {args.runs} interleaved runs",
        ["stack", "runtime", "precision", "MACs", "ms", "GMAC/s", "vs fp32",
         "XNNPACK partitions"],
        rows,
    )  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {"machine": machine(), "threads": args.threads,
              "runs": args.runs, "kernels": records}  # fmt: skip
    args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
