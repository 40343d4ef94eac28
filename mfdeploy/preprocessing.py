"""Image -> normalised input tensor, exactly as the released checkpoints were evaluated.

Every stage (calibration, verification, golden files for the apps) goes through
`preprocess`, so PyTorch, exported artifacts and apps all see the same numbers.
"""

from __future__ import annotations

import math
import warnings
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
        """Typed and range-checked: manifests are input, and a resolution of "x" or 0, a NaN
        mean or a zero std would otherwise fail deep inside numpy or PIL."""
        if not isinstance(data, dict):
            raise MfdeployError("preprocessing must be a JSON object")
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if "resolution" in known:
            known["resolution"] = _int_in(known["resolution"], "resolution", 1, MAX_RESOLUTION)
        if "crop_pct" in known:
            known["crop_pct"] = _number_in(known["crop_pct"], "crop_pct", 0.0, 1.0, low_open=True)
        if "pixel_scale" in known:
            scale = _number_in(known["pixel_scale"], "pixel_scale", 0.0, 1.0, low_open=True)
            known["pixel_scale"] = scale
        for key in ("mean", "std"):
            if key in known:
                values = known[key]
                if not isinstance(values, (list, tuple)) or len(values) != 3:
                    raise MfdeployError(f"preprocessing {key} must be 3 numbers, got {values!r}")
                low_open = key == "std"
                known[key] = tuple(
                    _number_in(v, key, 0.0 if low_open else -1e6, 1e6, low_open) for v in values
                )
        if known.get("interpolation", "bilinear") not in _RESAMPLE:
            raise MfdeployError(
                f"preprocessing interpolation must be one of {', '.join(_RESAMPLE)}, "
                f"got {known['interpolation']!r}"
            )
        if known.get("layout", "NCHW") not in ("NCHW", "NHWC"):
            raise MfdeployError(
                f"preprocessing layout must be NCHW or NHWC, got {known['layout']!r}"
            )
        prep = cls(**known)
        if prep.resize < 1:
            raise MfdeployError("preprocessing resolution / crop_pct gives a resize below 1 pixel")
        return prep


MAX_RESOLUTION = 4096  # an input side no mobile model takes; larger is a typo


def _int_in(value: object, name: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise MfdeployError(
            f"preprocessing {name} must be an integer in {low}..{high}, got {value!r}"
        )
    return value


def _number_in(value: object, name: str, low: float, high: float, low_open: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value > high or value < low or (low_open and value == low):
        bound = f"({low}, {high}]" if low_open else f"[{low}, {high}]"
        raise MfdeployError(
            f"preprocessing {name} must be a finite number in {bound}, got {value!r}"
        )
    return float(value)


_RESAMPLE = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}


def resize_short_side(image: Image.Image, prep: Preprocessing) -> Image.Image:
    """RGB image with its short side resized to prep.resize (unchanged if it already is).

    The other side is `int(round(long * resize / short))` (round half to even), never
    below prep.resize. PIL returns an exact copy when the size does not change, which is
    why the demo apps ship a sample photo already at this size: their own resize is then
    skipped and their crop + normalisation reproduce `preprocess` bit for bit.
    """
    image = to_rgb(image)
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


# PIL's own bomb limit (about 89 MP) only warns below twice the limit; a photo larger than
# this is refused outright with a clear error instead of decoding gigabytes.
MAX_IMAGE_PIXELS = 64_000_000


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any PIL mode, keeping the full range.

    `convert("RGB")` clips 16-bit and 32-bit integer images to 255 (a 16-bit grayscale PNG
    comes out almost white) and float images likewise, so those are scaled first: 16-bit
    by 255/65535, 32-bit integer images by their own bit depth (values above 255 mean
    16-bit data), float images from 0..1 (or 0..255 when larger values occur).
    """
    if image.mode in ("RGB", "L", "P", "RGBA", "LA", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1"):
        return image.convert("RGB") if image.mode != "RGB" else image
    if image.mode == "RGBX" or image.mode == "RGBa" or image.mode == "La":
        return image.convert("RGB")
    values = np.asarray(image)
    if values.ndim != 2:
        return image.convert("RGB")
    if image.mode.startswith("I;16") or image.mode == "I":
        data = values.astype(np.float64)
        top = 255.0 if image.mode == "I" and data.max(initial=0) <= 255 else 65535.0
        data = np.clip(data, 0.0, top) * (255.0 / top)
    elif image.mode == "F":
        data = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        top = 1.0 if data.max(initial=0) <= 1.0 else 255.0
        data = np.clip(data, 0.0, top) * (255.0 / top)
    else:
        return image.convert("RGB")
    gray = Image.fromarray(np.round(data).astype(np.uint8))  # mode L
    return gray.convert("RGB")


def load_image(path: str | Path) -> Image.Image:
    """An image file as 8-bit RGB; a decompression bomb or a broken file is bad input."""
    try:
        with warnings.catch_warnings():  # refused below with one clear line instead
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(path)
        with opened as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise MfdeployError(
                    f"{path}: {width}x{height} pixels is more than the {MAX_IMAGE_PIXELS:,} "
                    "mfdeploy reads (a decompression bomb or a huge scan; downscale it)"
                )
            image.load()
            return to_rgb(image)
    except Image.DecompressionBombError as exc:
        raise MfdeployError(f"{path}: refused as a decompression bomb ({exc})") from None


def preprocess_batch(paths: Iterable[Path], prep: Preprocessing | None = None) -> np.ndarray:
    """Images -> one NCHW batch; a file that is not a readable image is bad input."""
    batch = []
    for path in paths:
        try:
            batch.append(preprocess(load_image(path), prep))
        except (OSError, ValueError, SyntaxError) as exc:
            raise MfdeployError(f"{path}: not a readable image ({exc})") from None
    return np.stack(batch)
