"""Write one fetched photo into the cache in a form every loader reads the same way.

Cut-outs with alpha (Tux Paint stamps) are composited onto a plain white canvas, because
`convert("RGB")` would otherwise turn transparent pixels into arbitrary colours. Very large
wallpapers are downscaled so loading the set stays fast.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError

MAX_SIDE = 1024
CANVAS = 256  # stamps: 256x256 white canvas; the resize-256 / crop-224 keeps the object
STAMP_SIDE = 224


def _composite(image: Image.Image) -> Image.Image:
    image = image.convert("RGBA")
    scale = STAMP_SIDE / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    image = image.resize(size, Image.BICUBIC)
    canvas = Image.new("RGBA", (CANVAS, CANVAS), (255, 255, 255, 255))
    canvas.alpha_composite(image, ((CANVAS - size[0]) // 2, (CANVAS - size[1]) // 2))
    return canvas.convert("RGB")


def store_photo(data: bytes, target: Path, cutout: bool = False) -> bool:
    """Save `data` (an image file's bytes) at `target`; False if it is not a readable image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if cutout:
                image = _composite(image)
            elif max(image.size) > MAX_SIDE:
                image = image.convert("RGB")
                image.thumbnail((MAX_SIDE, MAX_SIDE), Image.BILINEAR)
            else:
                target.write_bytes(data)
                return True
    except (UnidentifiedImageError, OSError, ValueError):
        return False
    tmp = target.with_name(target.name + ".part")
    image.save(tmp, format="PNG" if target.suffix.lower() == ".png" else "JPEG", quality=92)
    tmp.replace(target)
    return True
