"""What the benchmark scripts share: fixture weights and the evaluation inputs.

Benchmarks import the product (mfdeploy) for models, metrics, photos and quantizers, and
this module for the rest; none imports the tests. Run them from the repository root as
`.venv/bin/python benchmarks/NAME.py` (this folder is then on sys.path).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mfdeploy.photos import resolve_images
from mfdeploy.preprocessing import Preprocessing, preprocess_batch

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
#: the committed 26m fixture first, then the shared official weights (developers' machines)
FIXTURE_DIRS = (ROOT / "tests" / "fixtures", ROOT.parent / "shared" / "reference" / "official")
RANDOM_INPUTS = 4


def fixture_weights(variant: str) -> str:
    """The authors' weights of `variant` where a fixture has them, else "synthetic"."""
    for folder in FIXTURE_DIRS:
        path = folder / f"mobile_former_{variant}.safetensors"
        if path.is_file():
            return str(path)
    return "synthetic"


def evaluation_inputs(
    prep: Preprocessing, count: int | None = None, randoms: int = RANDOM_INPUTS
) -> np.ndarray:
    """Evaluation photos (never calibration ones) plus seeded random inputs, NCHW float32."""
    photos = preprocess_batch(resolve_images(None, "evaluation", count), prep)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((randoms, *photos.shape[1:])).astype(np.float32)
    return np.concatenate([photos.astype(np.float32), noise])
