"""ImageNet-1k class names shipped with the package (index order)."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

LABELS_FILE = "imagenet1k_classes.txt"


def parse_labels(text: str) -> tuple[str, ...]:
    """A labels file: one class name per line, in index order; blank lines ignored."""
    return tuple(line.strip() for line in text.splitlines() if line.strip())


@lru_cache(maxsize=1)
def imagenet_labels() -> tuple[str, ...]:
    text = resources.files("mfdeploy.data").joinpath(LABELS_FILE).read_text(encoding="utf-8")
    labels = parse_labels(text)
    if len(labels) != 1000:
        raise RuntimeError(f"packaged {LABELS_FILE} has {len(labels)} labels, expected 1000")
    return labels


def labels_text() -> str:
    return "\n".join(imagenet_labels()) + "\n"
