"""Top-1 / top-5 accuracy of a model or an exported artifact on labelled images.

Labelled images are the project's labelled subset (data/labelled_photos.csv) or a user
directory whose sub-folders are class indices ("207/") or ImageNet synsets ("n02099601/").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from mfdeploy.errors import MfdeployError
from mfdeploy.photos import IMAGE_SUFFIXES, labelled_in_cache
from mfdeploy.preprocessing import Preprocessing, preprocess_batch

BATCH = 16


@dataclass
class Accuracy:
    top1: float
    top5: float
    num_images: int
    predictions: list[int]  # top-1 index per image, in input order


@lru_cache(maxsize=1)
def _synsets() -> dict[str, int] | None:
    """wnid -> index if the package ships the synset list (imagenet1k_synsets.txt)."""
    try:
        text = resources.files("mfdeploy.data").joinpath("imagenet1k_synsets.txt").read_text()
    except (FileNotFoundError, OSError):
        return None
    return {line.split()[0]: i for i, line in enumerate(text.splitlines()) if line.strip()}


def _class_of(folder: str) -> int:
    if folder.isdigit() and 0 <= int(folder) < 1000:
        return int(folder)
    synsets = _synsets()
    if synsets is not None and folder in synsets:
        return synsets[folder]
    raise MfdeployError(
        f"sub-folder {folder!r} is neither a class index 0..999 nor a known ImageNet synset"
    )


def labelled_dir(directory: str | Path) -> list[tuple[Path, int]]:
    """(image, class index) pairs from `DIR/<class index or synset>/*.jpg`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise MfdeployError(f"{directory}: no such image directory")
    pairs = []
    for sub in sorted(p for p in directory.iterdir() if p.is_dir()):
        label = _class_of(sub.name)
        pairs += [
            (p, label)
            for p in sorted(sub.rglob("*"))
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        ]
    if not pairs:
        raise MfdeployError(
            f"{directory}: no labelled images (expected sub-folders named by class index "
            "or ImageNet synset, holding images)"
        )
    return pairs


def labelled_images(user_dir: str | Path | None) -> list[tuple[Path, int]]:
    if user_dir:
        return labelled_dir(user_dir)
    pairs = labelled_in_cache()
    if not pairs:
        raise MfdeployError(
            "the labelled photos are not in the cache; run `mfdeploy data fetch` "
            "or pass --images DIR"
        )
    return pairs


def accuracy(
    run: Callable[[np.ndarray], np.ndarray],
    pairs: list[tuple[Path, int]],
    prep: Preprocessing,
) -> Accuracy:
    """`run` maps a float32 batch (normalised, prep.layout) to logits (N, classes)."""
    hits1 = hits5 = 0
    predictions: list[int] = []
    for start in range(0, len(pairs), BATCH):
        chunk = pairs[start : start + BATCH]
        batch = preprocess_batch([p for p, _ in chunk], prep)
        logits = np.asarray(run(batch), dtype=np.float32).reshape(len(chunk), -1)
        top5 = np.argsort(-logits, axis=1, kind="stable")[:, :5]
        for (_, label), best in zip(chunk, top5):
            hits1 += int(best[0] == label)
            hits5 += int(label in best)
            predictions.append(int(best[0]))
    n = len(pairs)
    return Accuracy(hits1 / n, hits5 / n, n, predictions)
