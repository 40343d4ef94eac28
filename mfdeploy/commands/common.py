"""Options several commands share: which model, which weights, which input size."""

from __future__ import annotations

import argparse

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
            type=int,
            help="input size (default: the model's own, e.g. 224)",
        )


def model_from_args(args: argparse.Namespace) -> tuple[ModelFamily, str]:
    return resolve_model_args(args.model, args.variant)


def source_from_args(args: argparse.Namespace) -> SourceModel:
    entry, variant = model_from_args(args)
    return load_source(variant, args.weights, getattr(args, "resolution", None), entry.name)
