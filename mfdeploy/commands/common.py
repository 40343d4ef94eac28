"""Options several commands share: which model, which weights, which input size."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from mfdeploy.models import ModelFamily, SourceModel, families, load_source
from mfdeploy.models.registry import resolve_model_args


def _model_help() -> str:
    parts = []
    for entry in families().values():
        weights = "synthetic" if entry.default_weights == "synthetic" else "trained"
        names = ", ".join(entry.model_name(v) for v in entry.variants[:2])
        more = ", ..." if len(entry.variants) > 2 else ""
        parts.append(f"{entry.name} ({names}{more}; default weights {weights})")
    return "model family or model name: " + "; ".join(parts) + " (default: the first)"


def add_model_arguments(parser: argparse.ArgumentParser, resolution: bool = False) -> None:
    """--model, --variant, --weights (and --resolution)."""
    parser.add_argument("--model", help=_model_help())
    parser.add_argument(
        "--variant",
        help="variant within --model (e.g. 26m ... 508m; default the model's own); without "
        "--model it may name any registered model (`mfdeploy variants` lists them)",
    )
    parser.add_argument(
        "--weights",
        help="checkpoint (.pth/.pth.tar/.pt/.safetensors); default: the model's default "
        "weights (seeded synthetic, or trained weights a package ships)",
    )
    if resolution:
        parser.add_argument(
            "--resolution",
            type=int_in(MIN_RESOLUTION, MAX_RESOLUTION),
            help=f"input size, {MIN_RESOLUTION}..{MAX_RESOLUTION} (default: the model's own, "
            "e.g. 224)",
        )


# The smallest input the models' five stride-2 stages reduce to at least one pixel; the
# largest is far beyond any mobile input and catches typos before gigabytes are allocated.
MIN_RESOLUTION = 32
MAX_RESOLUTION = 2048
MAX_THREADS = 256
MAX_BATCH = 256


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in low..high, else the usual one-line usage error (exit 2).

    Numbers are checked where they enter, so 0 or -1 never reaches an exporter or a runtime
    (a batch of 0 wrote a model with an empty input; 0 threads crashed LiteRT).
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low or (high is not None and value > high):
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"{value} is out of range ({bound})")
        return value

    parse.__name__ = "integer"
    return parse


def float_in(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a finite number in low..high (exit 2 with one line otherwise)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low <= value <= high:  # also refuses nan
            raise argparse.ArgumentTypeError(f"{text} is out of range ({low:g}..{high:g})")
        return value

    parse.__name__ = "number"
    return parse


def int_list_in(low: int, high: int) -> Callable[[str], list[int]]:
    """An argparse type: a comma list of integers in low..high ("1,2")."""
    one = int_in(low, high)

    def parse(text: str) -> list[int]:
        values = [one(v.strip()) for v in text.split(",") if v.strip()]
        if not values:
            raise argparse.ArgumentTypeError("expected a comma list of integers")
        return values

    parse.__name__ = "integer list"
    return parse


def threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=int_in(1, MAX_THREADS),
        help=f"runtime threads, 1..{MAX_THREADS} (default: the runtime's own)",
    )


def model_from_args(args: argparse.Namespace) -> tuple[ModelFamily, str]:
    return resolve_model_args(args.model, args.variant)


def source_from_args(args: argparse.Namespace) -> SourceModel:
    entry, variant = model_from_args(args)
    return load_source(variant, args.weights, getattr(args, "resolution", None), entry.name)


def add_timing_arguments(parser: argparse.ArgumentParser) -> None:
    """--runs and --warmup of a latency measurement (defaults: mfdeploy.harness.timing)."""
    from mfdeploy.harness.timing import DEFAULT_RUNS, DEFAULT_WARMUP

    parser.add_argument(
        "--runs",
        type=int_in(1, 100_000),
        default=DEFAULT_RUNS,
        help=f"timed runs (default {DEFAULT_RUNS})",
    )
    parser.add_argument(
        "--warmup",
        type=int_in(0, 100_000),
        default=DEFAULT_WARMUP,
        help=f"warm-up runs (default {DEFAULT_WARMUP})",
    )
