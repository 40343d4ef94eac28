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


def class_labels(num_classes: int = 1000) -> tuple[str, ...]:
    """The ImageNet-1k names for a 1000-class head; "class_<i>" for any other head (a
    fine-tuned checkpoint's class names are not in it)."""
    if num_classes == 1000:
        return imagenet_labels()
    return tuple(f"class_{i}" for i in range(num_classes))


def labels_text(num_classes: int = 1000) -> str:
    return "\n".join(class_labels(num_classes)) + "\n"
