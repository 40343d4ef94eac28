"""Image -> normalised input tensor, exactly as the released checkpoints were evaluated.

Every stage (calibration, verification, golden files for the apps) goes through
`preprocess`, so PyTorch, exported artifacts and apps all see the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from mfdeploy.errors import MfdeployError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_CROP_PCT = 0.875


@dataclass(frozen=True)
class Preprocessing:
    """Resize the short side, centre-crop, scale pixels, normalise per channel.

    `pixel_scale` maps 0..255 to the range mean/std are given in (1/255 for ImageNet
    mean/std; 1.0 for models normalised on raw 0..255 pixels).
    """

    resolution: int = 224
    crop_pct: float = DEFAULT_CROP_PCT
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    pixel_scale: float = 1.0 / 255.0
    layout: str = field(default="NCHW")

    @property
    def resize(self) -> int:
        return int(round(self.resolution / self.crop_pct))

    def to_dict(self) -> dict:
        data = asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        data["resize"] = self.resize
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        for key in ("mean", "std"):
            if key in known:
                known[key] = tuple(float(v) for v in known[key])
        return cls(**known)


_RESAMPLE = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}


def resize_short_side(image: Image.Image, prep: Preprocessing) -> Image.Image:
    """RGB image with its short side resized to prep.resize (unchanged if it already is).

    The other side is `int(round(long * resize / short))` (round half to even), never
    below prep.resize. PIL returns an exact copy when the size does not change, which is
    why the demo apps ship a sample photo already at this size: their own resize is then
    skipped and their crop + normalisation reproduce `preprocess` bit for bit.
    """
    image = image.convert("RGB")
    w, h = image.size
    short = prep.resize
    if w <= h:
        size = (short, max(short, int(round(h * short / w))))
    else:
        size = (max(short, int(round(w * short / h))), short)
    return image.resize(size, _RESAMPLE[prep.interpolation])


def center_crop(image: Image.Image, prep: Preprocessing) -> Image.Image:
    """The centred prep.resolution square; the offsets round down ((size - res) // 2)."""
    left = (image.size[0] - prep.resolution) // 2
    top = (image.size[1] - prep.resolution) // 2
    return image.crop((left, top, left + prep.resolution, top + prep.resolution))


def resize_and_crop(image: Image.Image, prep: Preprocessing) -> Image.Image:
    """RGB image, short side resized to prep.resize, centre-cropped to prep.resolution."""
    return center_crop(resize_short_side(image, prep), prep)


def normalize(pixels: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """HWC uint8 pixels -> float32 CHW (or HWC for NHWC layouts), normalised."""
    mean = np.asarray(prep.mean, dtype=np.float32)
    std = np.asarray(prep.std, dtype=np.float32)
    x = (pixels.astype(np.float32) * np.float32(prep.pixel_scale) - mean) / std
    return x if prep.layout == "NHWC" else np.ascontiguousarray(x.transpose(2, 0, 1))


def preprocess(image: Image.Image, prep: Preprocessing | None = None) -> np.ndarray:
    """One image -> float32 array of shape (3, R, R) (or (R, R, 3) for NHWC)."""
    prep = prep or Preprocessing()
    return normalize(np.asarray(resize_and_crop(image, prep)), prep)


def load_image(path: str | Path) -> Image.Image:
    with Image.open(path) as image:
        image.load()
        return image.convert("RGB")


def preprocess_batch(paths: Iterable[Path], prep: Preprocessing | None = None) -> np.ndarray:
    """Images -> one NCHW batch; a file that is not a readable image is bad input."""
    batch = []
    for path in paths:
        try:
            batch.append(preprocess(load_image(path), prep))
        except (OSError, ValueError) as exc:
            raise MfdeployError(f"{path}: not a readable image ({exc})") from None
    return np.stack(batch)
