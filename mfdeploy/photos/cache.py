"""The photo cache on disk: where it lives, its manifest, and the split rule."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mfdeploy.errors import MfdeployError
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
    """The cache's photo list; a corrupt manifest is bad input with the way out named."""
    path = (root or cache_dir()) / MANIFEST_NAME
    if not path.is_file():
        return []
    try:
        photos = json.loads(path.read_text(encoding="utf-8"))["photos"]
        keys = ("path", "split", "package", "version", "licence")
        if not isinstance(photos, list) or not all(
            isinstance(p, dict) and all(isinstance(p.get(k), str) for k in keys) for p in photos
        ):
            raise ValueError("unexpected photo entries")
        if any(not _inside(p["path"]) for p in photos):
            raise ValueError("a photo path leads out of the cache")
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise MfdeployError(
            f"{path}: corrupt photo-cache manifest ({exc}); run `mfdeploy data fetch` again"
        ) from None
    return photos


def _inside(rel_path: str) -> bool:
    parts = Path(rel_path).parts
    return bool(parts) and not Path(rel_path).is_absolute() and ".." not in parts
