"""The labelled subset: cached photos mapped to ImageNet-1k indices (data/labelled_photos.csv).

Only unambiguous mappings are listed (the stamp or photo name names exactly one ImageNet
class); the CSV says how each was mapped. Used for a rough top-1 / top-5 figure.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

CSV_NAME = "labelled_photos.csv"


@dataclass(frozen=True)
class LabelledPhoto:
    package: str
    file: str  # name inside images/<package>/ in the cache
    index: int
    how: str

    @property
    def rel_path(self) -> str:
        return f"images/{self.package}/{self.file}"


@lru_cache(maxsize=1)
def labelled_photos() -> tuple[LabelledPhoto, ...]:
    text = resources.files("mfdeploy.data").joinpath(CSV_NAME).read_text(encoding="utf-8")
    rows = csv.DictReader(text.splitlines())
    return tuple(
        LabelledPhoto(r["package"], r["file"], int(r["imagenet_index"]), r["how_mapped"])
        for r in rows
    )


@lru_cache(maxsize=1)
def labelled_paths() -> frozenset[str]:
    return frozenset(p.rel_path for p in labelled_photos())
