"""Real photographs for int8 calibration and parity checks, and user image directories.

The project's own set is split deterministically into calibration and evaluation photos
that never overlap. This first version uses the photos bundled in scikit-image's wheel.
"""

from __future__ import annotations

from pathlib import Path

from mfdeploy.errors import MfdeployError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
SPLITS = ("calibration", "evaluation")

# Natural photographs inside scikit-image's wheel (name -> licence as documented there).
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


def _split_of(index: int) -> str:
    """Every third photo (in name order) is for evaluation, the rest for calibration."""
    return "evaluation" if index % 3 == 2 else "calibration"


def _skimage_photos() -> list[Path]:
    try:
        import skimage
    except ImportError:
        return []
    folder = Path(skimage.__file__).parent / "data"
    return [folder / name for name in _SKIMAGE_PHOTOS if (folder / name).is_file()]


def project_images(split: str) -> list[Path]:
    """The project's photos for one split, in a stable order."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    photos = sorted(_skimage_photos(), key=lambda p: p.name)
    return [p for i, p in enumerate(photos) if _split_of(i) == split]


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
    """A user's directory if given, else the project's photos for `split`; at most `limit`."""
    paths = images_in(user_dir) if user_dir else project_images(split)
    if not paths:
        raise MfdeployError(f"no {split} photos available; pass a directory of images")
    if limit is not None:
        if limit < 1:
            raise MfdeployError("the number of images must be at least 1")
        paths = paths[:limit]
    return paths
