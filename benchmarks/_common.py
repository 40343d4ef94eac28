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


def pt2e_graph_sqnr(
    kind: str, module, photos: np.ndarray, score: np.ndarray, ref, float_modules: str = ""
) -> float:
    """SQNR against `ref` of `module`'s converted PT2E int8 graph on `score`, quantised as
    the `kind` export ("executorch": XNNPACKQuantizer, else litert-torch's) would with
    `float_modules` (a module-path regex) float, calibrated on `photos`."""
    import torch

    from mfdeploy.export import executorch, tflite_int8
    from mfdeploy.metrics import sqnr_db

    example = torch.zeros(1, *photos.shape[1:])
    if kind == "executorch":
        graph = executorch.quantize_int8(module, example, photos, float_modules)
    else:
        graph = tflite_int8.quantize_pt2e(module, example, photos, float_modules)[0]
    with torch.no_grad():
        out = np.concatenate([graph(torch.from_numpy(score[i : i + 1])).numpy()
                              for i in range(len(score))])  # fmt: skip
    return sqnr_db(ref, out)


def installed_targets(targets: list[str]) -> list[str]:
    """`targets` whose runtime is installed; says which were skipped."""
    from mfdeploy.harness import bench

    kept = [t for t in targets if bench.backend_installed(bench.backend_of(t))]
    skipped = sorted(set(targets) - set(kept))
    if skipped:
        print(f"not installed, skipped: {', '.join(skipped)}")
    return kept
