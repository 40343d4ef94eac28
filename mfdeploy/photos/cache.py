"""The photo cache on disk: where it lives, its manifest, and the split rule."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mfdeploy.paths import cache_root

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
MANIFEST_NAME = "manifest.json"


def cache_dir() -> Path:
    return cache_root() / "photos"


def is_photo(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def split_of(rel_path: str) -> str:
    """Hash of the cache-relative path: stable across runs and machines; 1 in 3 evaluates.

    Labelled photos always go to evaluation, so accuracy is never measured on
    calibration data (see labelled.py)."""
    from mfdeploy.photos.labelled import labelled_paths

    if rel_path in labelled_paths():
        return "evaluation"
    digest = hashlib.sha256(rel_path.encode()).digest()
    return "evaluation" if digest[0] % 3 == 0 else "calibration"


def read_manifest(root: Path | None = None) -> list[dict]:
    path = (root or cache_dir()) / MANIFEST_NAME
    if not path.is_file():
        return []
    return json.loads(path.read_text())["photos"]
