"""MobileViTv2 deploy-form layouts (and the reference form), exported to TFLite (litert-torch,
NHWC input as the product's exporter does) and ONNX (dynamo exporter, opset 18, simplified),
checked against PyTorch and timed on LiteRT (XNNPACK) and ONNX Runtime.

    .venv/bin/python benchmarks/mobilevitv2_layouts.py [--widths 050 100] [--runs 60]
        [--threads 1] [--resolution 256] [--forms reference deploy rejected:softmax-exp ...]
        [--keep DIR [--reuse]]   # keep the exports in DIR; --reuse: time them again only

Until the model registry knows MobileViTv2, this calls the converters directly. Per width and
form: max |logits - PyTorch float32| on two seeded inputs (synthetic weights), op count,
TRANSPOSE count, highest tensor rank, XNNPACK partitions (graph_audit), and the median latency
of batch-1 runs taken in interleaved rounds (each round opens every form in turn, 10 warm-up
runs, then its share of the timed runs), so that load from elsewhere falls on all forms alike.
Prints the table and writes benchmarks/results/mobilevitv2_layouts.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mfdeploy.console import print_table
from mfdeploy.harness.inspect import audit
from mfdeploy.models.mobilevitv2 import PATCH, create_mobilevitv2
from mfdeploy.models.mobilevitv2_deploy import MobileViTv2Layout, to_deploy_mobilevitv2

RESULTS = Path(__file__).parent / "results" / "mobilevitv2_layouts.json"
# The reference form fails the rank rule (rank-6 unfold / fold). Deploy layouts kept in the
# product (MobileViTv2Layout) and the ones measured and rejected (built here only):
FORMS = [
    "reference",
    "deploy",  # features=nhwc: the product default, for LiteRT
    "deploy:features=nchw",  # one-hot conv unfold: the product layout for ONNX Runtime
    "rejected:nchw-shuffle",
    "rejected:softmax-exp",
]


class ShuffleUnfold(nn.Module):
    """Rejected: pixel_unshuffle viewed as (B, C, P, N). litert-torch decomposes it into 4
    TRANSPOSE per block and keeps the residual stream channels-first (a transpose pair around
    every residual add); the ONNX exporter decomposes it through rank 6."""

    def __init__(self, unfold: nn.Module) -> None:
        super().__init__()
        self.c, self.n = unfold.c, unfold.h * unfold.w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(x, PATCH).reshape(-1, self.c, PATCH * PATCH, self.n)


class ShuffleFold(nn.Module):
    def __init__(self, fold: nn.Module) -> None:
        super().__init__()
        self.shape = (-1, fold.c * PATCH * PATCH, fold.h, fold.w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(x.reshape(self.shape), PATCH)


def exp_softmax_forward(attn: nn.Module):
    """Rejected: the softmax written out, exp(q - max_N q), the score-weighted sum divided by
    the sum of the exponentials once per (d, P): fewer ops on LiteRT, no faster."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        q, n = attn.query(x), attn.axis
        e = torch.exp(q - q.amax(dim=n, keepdim=True))
        pooled = (x * e).sum(dim=n, keepdim=True) / e.sum(dim=n, keepdim=True)
        return attn.out(F.relu(attn.value(x)) * attn.key(pooled))

    return forward


def rejected(model: nn.Module, name: str, resolution: int) -> nn.Module:
    if name == "nchw-shuffle":
        deploy = to_deploy_mobilevitv2(model, resolution, MobileViTv2Layout("nchw"))
        for block in deploy.blocks:
            if hasattr(block, "unfold"):
                block.unfold, block.fold = ShuffleUnfold(block.unfold), ShuffleFold(block.fold)
        return deploy
    if name == "softmax-exp":
        deploy = to_deploy_mobilevitv2(model, resolution)
        for module in deploy.modules():
            if hasattr(module, "query"):
                module.forward = exp_softmax_forward(module)
        return deploy
    raise SystemExit(f"unknown rejected form {name!r}")


def build(model: nn.Module, form: str, resolution: int) -> nn.Module:
    """The form as a module; each deploy or rejected form is first checked exact in float64."""
    if form == "reference":
        return model
    kind, _, spec = form.partition(":")
    if kind == "deploy":
        make = lambda m: to_deploy_mobilevitv2(m, resolution, MobileViTv2Layout.parse(spec))  # noqa: E731
    elif kind == "rejected":
        make = lambda m: rejected(m, spec, resolution)  # noqa: E731
    else:
        raise SystemExit(f"unknown form {form!r}")
    exact = copy.deepcopy(model).double()
    x = torch.rand(2, 3, resolution, resolution, dtype=torch.float64)
    with torch.no_grad():
        error = float((make(exact)(x) - exact(x)).abs().max())
    if error > 1e-9:
        raise SystemExit(f"{form}: not the reference function (float64 max |diff| {error:.1e})")
    return make(model)


def export_tflite(module: nn.Module, resolution: int, path: Path) -> None:
    from mfdeploy.export.tflite import NHWCInput, torch_to_tflite

    torch_to_tflite(NHWCInput(module), torch.zeros(1, resolution, resolution, 3), path)


def export_onnx(module: nn.Module, resolution: int, path: Path) -> None:
    import onnx

    from mfdeploy.export.onnx import simplify, torch_to_onnx

    model = torch_to_onnx(module.eval(), torch.zeros(1, 3, resolution, resolution), False)
    onnx.save(simplify(model)[0], str(path))


class TFLiteRunner:
    def __init__(self, path: Path, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]

    def __call__(self, x: np.ndarray) -> np.ndarray:  # x: NCHW, one image
        self.interpreter.set_tensor(self.input, np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output).copy()


class OnnxRunner:
    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.name = self.session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.name: x})[0]


RUNNERS = {
    "litert": (".tflite", export_tflite, TFLiteRunner),
    "onnxruntime": (".onnx", export_onnx, OnnxRunner),
}


def interleaved(
    paths: dict[str, Path], runner, threads: int, x: np.ndarray, runs: int, rounds: int
) -> dict[str, dict]:
    samples: dict[str, list[float]] = {form: [] for form in paths}
    for _ in range(rounds):
        for form, path in paths.items():
            run = runner(path, threads)
            for _ in range(10):
                run(x)
            for _ in range(max(1, runs // rounds)):
                start = time.perf_counter()
                run(x)
                samples[form].append((time.perf_counter() - start) * 1000.0)
            del run
    return {
        f: {"median": float(np.median(v)), "min": float(np.min(v)), "runs": len(v)}
        for f, v in samples.items()
    }


def measure(args: argparse.Namespace, width: str, workdir: Path) -> list[dict]:
    model = create_mobilevitv2(width, weights="synthetic")
    r = args.resolution
    gen = torch.Generator().manual_seed(0)
    inputs = torch.rand(2, 1, 3, r, r, generator=gen)
    with torch.no_grad():
        expected = [model(x).numpy() for x in inputs]
    rows = []
    for runtime, (suffix, export, runner) in RUNNERS.items():
        paths: dict[str, Path] = {}
        for form in args.forms:
            name = re.sub(r"[^A-Za-z0-9=]+", "-", form)
            paths[form] = workdir / f"{width}-{r}-{name}{suffix}"
            if not (args.reuse and paths[form].is_file()):
                export(build(model, form, r), r, paths[form])
        latency = {}
        for n in args.threads:
            latency[n] = interleaved(paths, runner, n, inputs[0].numpy(), args.runs, args.rounds)
        for form, path in paths.items():
            report = audit(path)
            run = runner(path, 1)
            error = max(float(np.abs(run(x.numpy()) - e).max()) for x, e in zip(inputs, expected))
            for n in args.threads:
                rows.append(
                    {
                        "width": width,
                        "resolution": r,
                        "runtime": runtime,
                        "form": form,
                        "threads": n,
                        "max_abs_vs_torch": error,
                        "ops": sum(report.ops.values()),
                        "transposes": report.ops.get("TRANSPOSE", report.ops.get("Transpose", 0)),
                        "max_rank": report.max_rank,
                        "xnnpack_partitions": report.xnnpack_partitions,
                        "op_histogram": report.ops,
                        "latency_ms": latency[n][form],
                    }
                )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", nargs="+", default=["050", "100"])
    parser.add_argument("--forms", nargs="+", default=FORMS)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep", type=Path, help="write the exported models here (kept)")
    parser.add_argument(
        "--reuse", action="store_true", help="time the models already in --keep (no export)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for width in args.widths:
            rows += measure(args, width, args.keep or Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"command": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=1)
        + "\n"
    )
    print_table(
        f"MobileViTv2 forms at {args.resolution}x{args.resolution}, batch 1 (median ms)",
        ["width", "runtime", "form", "thr", "max|d|", "ops", "transp", "rank", "xnn", "ms"],
        [
            [
                r["width"],
                r["runtime"],
                r["form"],
                r["threads"],
                f"{r['max_abs_vs_torch']:.1e}",
                r["ops"],
                r["transposes"],
                r["max_rank"],
                r["xnnpack_partitions"] if r["xnnpack_partitions"] is not None else "-",
                f"{r['latency_ms']['median']:.2f}",
            ]
            for r in rows
        ],
    )


if __name__ == "__main__":
    main()
