"""Classify images with the PyTorch reference model and print the top-5.

A quick check that a checkpoint loads and behaves: same preprocessing as every export.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from mfdeploy.commands.common import add_model_arguments, int_in, source_from_args
from mfdeploy.errors import MfdeployError
from mfdeploy.labels import imagenet_labels
from mfdeploy.metrics import top_k
from mfdeploy.preprocessing import load_image, preprocess

NAME = "predict"
HELP = "top-5 classes of images with the PyTorch reference model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", type=Path, help="image files")
    add_model_arguments(parser, resolution=True)
    parser.add_argument(
        "--top",
        type=int_in(1, 100_000),
        default=5,
        help="how many classes to show (1 .. the number of classes; default 5)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")


def _read(path: Path):
    try:
        return load_image(path)
    except (OSError, ValueError) as exc:
        raise MfdeployError(f"{path}: not a readable image ({exc})") from None


def run(args: argparse.Namespace) -> int:
    source = source_from_args(args)
    model, prep = source.model, source.preprocessing
    batch = np.stack([preprocess(_read(p), prep) for p in args.images])
    with torch.no_grad():
        logits = model(torch.from_numpy(batch)).numpy()
    if args.top > logits.shape[1]:
        raise MfdeployError(f"--top {args.top}: the model has only {logits.shape[1]} classes")
    labels = imagenet_labels() if logits.shape[1] == 1000 else None
    results = []
    for path, row in zip(args.images, logits):
        best = [
            {"index": i, "label": labels[i] if labels else str(i), "probability": p}
            for i, p in top_k(row, args.top)
        ]
        results.append({"image": str(path), "top": best})
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    if source.synthetic:
        print("(synthetic weights: the classes below are meaningless)")
    for result in results:
        print(result["image"])
        for entry in result["top"]:
            print(f"  {entry['probability']:.3f}  {entry['index']:4d}  {entry['label']}")
    return 0
