"""Golden vectors for the demo apps: what an app must compute on its bundled sample photo.

`make_golden` runs the artifact's own Python runtime (LiteRT for .tflite, the Core ML
adapter for .mlpackage) on the sample and records:

- the preprocessed input tensor in the model's layout (NCHW / NHWC, float32, before any
  int8 quantisation): sha256 of its little-endian float32 bytes, its sum, and a few exact
  values at fixed positions;
- the top-5 class indices, logits and softmax scores, with a logit tolerance (logits, not
  scores, are compared: with near-uniform outputs, as the synthetic weights give, every
  score is ~1e-3 and an absolute score tolerance would accept anything).

The sample shipped in the app is already resized (short side = the manifest's `resize`),
so an app skips its own resampling and only crops and normalises: the same float32
arithmetic as `mfdeploy.preprocessing`, hence a tensor tolerance of 1e-6 and an exact
checksum. `compare` is the check the apps' tests implement too (Kotlin `GoldenCheck`,
Swift `GoldenCheck`); the key names below are the file format both apps parse.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from mfdeploy.artifact import Manifest, path_sha256
from mfdeploy.metrics import top_k
from mfdeploy.preprocessing import Preprocessing, load_image, preprocess
from mfdeploy.runtimes.base import Runtime, to_input_layout

GOLDEN_SCHEMA = 1
TOP_K = 5
TENSOR_TOLERANCE = 1e-6
# Logit tolerance by precision, relative to the largest |logit| (at least 1). fp32 covers
# float32 kernels on another CPU (XNNPACK on ARM, Core ML CPU) against the Python runtime
# (LiteRT vs float64 here: 1e-5 relative); reduced precision leaves room for float16 kernels.
LOGIT_TOLERANCE = {"fp32": 2e-3}
DEFAULT_LOGIT_TOLERANCE = 5e-2
# Fixed sample positions as (row, col) fractions of the crop, one channel each.
SAMPLE_POINTS = ((0.0, 0.0), (0.0, 1.0), (0.5, 0.5), (1.0, 0.0), (1.0, 1.0), (0.17, 0.45))


def tensor_sha256(x: np.ndarray) -> str:
    """sha256 of a tensor's float32 little-endian bytes in C order (what the apps hash)."""
    return hashlib.sha256(np.ascontiguousarray(x, dtype="<f4").tobytes()).hexdigest()


def sample_positions(shape: list[int], layout: str | None) -> list[list[int]]:
    """Model-layout indices of the sampled values: corners, centre, one inner point."""
    if layout == "NHWC":
        _, height, width, channels = shape
    else:
        _, channels, height, width = shape
    positions = []
    for i, (fy, fx) in enumerate(SAMPLE_POINTS):
        y, x, c = round(fy * (height - 1)), round(fx * (width - 1)), i % channels
        positions.append([0, y, x, c] if layout == "NHWC" else [0, c, y, x])
    return positions


def model_input(image_path: str | Path, manifest: Manifest) -> tuple[np.ndarray, np.ndarray]:
    """(NCHW batch the runtimes take, the same tensor in the model's own layout)."""
    prep = dataclasses.replace(Preprocessing.from_dict(manifest.preprocessing), layout="NCHW")
    nchw = preprocess(load_image(image_path), prep)[None]
    return nchw, to_input_layout(nchw, manifest.input.layout)


def logit_tolerance(precision: str, logits: np.ndarray) -> float:
    scale = max(1.0, float(np.abs(logits).max()))
    return LOGIT_TOLERANCE.get(precision, DEFAULT_LOGIT_TOLERANCE) * scale


def make_golden(
    sample: Path, manifest: Manifest, runtime: Runtime, labels: list[str]
) -> dict[str, Any]:
    """The golden record for `sample` (a file inside the bundle) on an opened runtime."""
    nchw, x = model_input(sample, manifest)
    logits = runtime.run(nchw)[0]
    flat = x.reshape(-1)
    samples = []
    for pos in sample_positions(list(x.shape), manifest.input.layout):
        index = int(np.ravel_multi_index(pos, x.shape))
        samples.append({"position": pos, "index": index, "value": float(flat[index])})
    width, height = load_image(sample).size
    return {
        "schema_version": GOLDEN_SCHEMA,
        "sample_image": sample.name,
        "sample_sha256": path_sha256(sample),
        "sample_size": [width, height],
        "model": manifest.model,
        "target": manifest.target,
        "precision": manifest.precision,
        "artifact_sha256": manifest.artifact_sha256,
        "runtime": runtime.info().to_dict(),
        "input": {
            "name": manifest.input.name,
            "layout": manifest.input.layout or "NCHW",
            "shape": list(x.shape),
            "dtype": "float32",
            "sha256": tensor_sha256(x),
            "sum": float(x.astype(np.float64).sum()),
            "tolerance": TENSOR_TOLERANCE,
            "samples": samples,
        },
        "top_k": [
            {
                "index": i,
                "label": labels[i] if i < len(labels) else str(i),
                "logit": float(logits[i]),
                "score": p,
            }
            for i, p in top_k(logits, TOP_K)
        ],
        "logit_tolerance": logit_tolerance(manifest.precision, logits),
    }


def compare(golden: dict[str, Any], x: np.ndarray, logits: np.ndarray) -> list[str]:
    """What differs between a run (model-layout input, logits of one image) and the golden.

    Input: the float32 checksum equal, every sampled value within the tensor tolerance, the
    sum within tolerance x element count. Top-k: every golden class's logit within the logit
    tolerance of its golden logit, and every class in the run's top-k is a golden class or
    has a logit no higher than the lowest golden logit + tolerance (near-ties may swap).
    """
    failures = []
    spec = golden["input"]
    tol = float(spec["tolerance"])
    flat = np.asarray(x, np.float32).reshape(-1)
    if list(np.shape(x)) != list(spec["shape"]):
        return [f"input shape {list(np.shape(x))} != golden {spec['shape']}"]
    if tensor_sha256(flat) != spec["sha256"]:
        failures.append("input checksum differs from the golden")
    for s in spec["samples"]:
        if abs(float(flat[s["index"]]) - s["value"]) > tol:
            failures.append(f"input{s['position']} = {flat[s['index']]:.7g}, golden {s['value']}")
    total = float(flat.astype(np.float64).sum())
    if abs(total - spec["sum"]) > tol * flat.size:
        failures.append(f"input sum {total:.6f}, golden {spec['sum']:.6f}")
    logits = np.asarray(logits, np.float32).reshape(-1)
    tol = float(golden["logit_tolerance"])
    golden_top = {t["index"]: t["logit"] for t in golden["top_k"]}
    for index, logit in golden_top.items():
        if abs(float(logits[index]) - logit) > tol:
            failures.append(f"class {index}: logit {logits[index]:.6f}, golden {logit:.6f}")
    floor = min(golden_top.values()) + tol
    for index, _ in top_k(logits, len(golden_top)):
        if index not in golden_top and float(logits[index]) > floor:
            failures.append(
                f"class {index} ({logits[index]:.6f}) is in the top-{TOP_K}, not golden"
            )
    return failures
