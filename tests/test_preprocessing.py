"""Preprocessing on real photographs (scikit-image's bundled photos)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mfdeploy.preprocessing import Preprocessing, preprocess, resize_and_crop

skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module", params=["astronaut", "chelsea", "coffee"])
def photo(request) -> Image.Image:
    return Image.fromarray(getattr(skimage_data, request.param)())


@pytest.mark.parametrize("resolution", [224, 160, 256])
def test_shape_dtype_and_resize_rule(photo, resolution):
    prep = Preprocessing(resolution=resolution)
    x = preprocess(photo, prep)
    assert x.shape == (3, resolution, resolution) and x.dtype == np.float32
    assert prep.resize == round(resolution / 0.875)


def test_matches_an_independent_numpy_computation(photo):
    """Resize (PIL bilinear) -> centre crop -> /255 -> (x - mean) / std, written out by hand."""
    w, h = photo.size
    scale = 256 / min(w, h)
    size = (round(w * scale), round(h * scale))
    resized = np.asarray(photo.convert("RGB").resize(size, Image.BILINEAR), dtype=np.float64)
    top, left = (size[1] - 224) // 2, (size[0] - 224) // 2
    crop = resized[top : top + 224, left : left + 224] / 255.0
    expected = ((crop - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]).transpose(2, 0, 1)
    assert np.abs(preprocess(photo) - expected).max() < 1e-5


def test_real_photo_statistics_are_plausible(photo):
    x = preprocess(photo)
    # Normalised natural images: values within the ImageNet-normalised pixel range, spread out.
    assert x.min() >= (0 - 0.485) / 0.229 - 1e-5 and x.max() <= (1 - 0.406) / 0.225 + 1e-5
    assert 0.3 < x.std() < 2.0


def test_crop_is_centred_on_a_marked_pixel():
    image = np.zeros((300, 500, 3), dtype=np.uint8)
    image[140:160, 240:260] = 255  # a white square in the middle
    crop = np.asarray(resize_and_crop(Image.fromarray(image), Preprocessing()))
    bright = np.argwhere(crop[..., 0] > 128)
    centre = bright.mean(axis=0)
    assert np.allclose(centre, [111.5, 111.5], atol=1.5)


def test_nhwc_layout_and_custom_normalisation(photo):
    nchw = preprocess(photo)
    nhwc = preprocess(photo, Preprocessing(layout="NHWC"))
    assert np.array_equal(nhwc.transpose(2, 0, 1), nchw)
    raw = preprocess(photo, Preprocessing(mean=(127.0,) * 3, std=(128.0,) * 3, pixel_scale=1.0))
    assert raw.min() >= -127 / 128 - 1e-6 and raw.max() <= 1.0


def test_round_trip_through_dict():
    prep = Preprocessing(resolution=192, mean=(0.5, 0.5, 0.5))
    assert Preprocessing.from_dict(prep.to_dict()) == prep
