"""What every exporter shares: the manifest, calibration photos, and finishing an artifact.

Flow: `mfdeploy.models.load_source` (checkpoint -> model) -> a target's `export` (model ->
model file in a staging dir) -> `finish_artifact` (manifest + labels + sha256, then moved
into place).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from mfdeploy import __version__, derived_cache
from mfdeploy.artifact import LABELS_NAME, Manifest, TensorSpec, seal
from mfdeploy.console import progress
from mfdeploy.labels import labels_text
from mfdeploy.models import SYNTHETIC, SourceModel
from mfdeploy.models.source import export_module, module_identity
from mfdeploy.photos import resolve_images
from mfdeploy.preprocessing import Preprocessing, preprocess_batch
from mfdeploy.static_batches import run_static_batches


@contextlib.contextmanager
def output_discarded() -> Iterator[None]:
    """stdout and stderr to /dev/null for the duration, at the file descriptors (native code)
    and at sys.stdout / sys.stderr (Python `print`, also when those are not fds 1 and 2),
    Python warnings ignored: what converter packages print (absl logs, torchao's missing
    CUDA kernels, progress) is not the user's; their failures arrive as exceptions."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = os.dup(1), os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        with (
            open(os.devnull, "w", encoding="utf-8") as sink,
            contextlib.redirect_stdout(sink),
            contextlib.redirect_stderr(sink),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def tool_versions(*packages: str) -> dict[str, str]:
    versions = {"mfdeploy": __version__, "torch": torch.__version__}
    for name in packages:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    return versions


def base_manifest(
    source: SourceModel,
    *,
    target: str,
    precision: str,
    form: str,
    model_file: str,
    input_spec: TensorSpec,
    output_spec: TensorSpec,
    preprocessing: Preprocessing | None = None,
    packages: tuple[str, ...] = (),
) -> Manifest:
    prep = preprocessing or source.preprocessing
    return Manifest(
        model_family=source.family,
        model=source.name,
        variant=source.manifest_variant,
        target=target,
        precision=precision,
        form=source.form(form),
        model_file=model_file,
        input=input_spec,
        output=output_spec,
        preprocessing=prep.to_dict(),
        num_classes=source.num_classes,
        source_checkpoint=Path(source.checkpoint).name if not source.synthetic else SYNTHETIC,
        source_checkpoint_sha256=source.checkpoint_sha256,
        synthetic_weights=source.synthetic,
        tool_versions=tool_versions(*packages),
    )


def finish_artifact(staging: Path, manifest: Manifest) -> Manifest:
    """Write labels, then seal: every file's sha256 and the manifest's own, into manifest.json."""
    (staging / LABELS_NAME).write_text(labels_text(manifest.num_classes), encoding="utf-8")
    manifest.labels_file = LABELS_NAME
    return seal(staging, manifest)


#: an int8 exporter's hook for a graph check before its conversion (harness/int8_check.py):
#: called with a function of NCHW float32 photos -> the quantised graph's logits and the
#: float plan (`FloatPlan.to_dict()`); it raises to have the export redone with more float
GraphCheck = Callable[[Callable[[np.ndarray], np.ndarray], dict], None]


def module_cache_entry(store: str, suffix: str, module: torch.nn.Module, *parts: str) -> Path:
    """`derived_cache.entry` for what is derived from `module`: its `module_identity` (tree,
    settings, weights) names it, then `parts` (shapes, photos, tool versions)."""
    return derived_cache.entry(store, suffix, module_identity(module), *parts)


def run_static_batch(graph: Callable, inputs: np.ndarray, batch: int) -> np.ndarray:
    """A torch `graph` traced for a fixed `batch` over every row of numpy `inputs`
    (`run_static_batches`), its outputs as float32."""

    def run_once(chunk: np.ndarray) -> np.ndarray:
        return graph(torch.from_numpy(np.ascontiguousarray(chunk, np.float32))).float().numpy()

    with torch.no_grad():
        return run_static_batches(inputs, batch, run_once)


#: calibration photos per int8 export (every target): spread over every photo source
#: (resolve_images); the last quarter is held out to score the float set (int8_sensitivity)
DEFAULT_CALIB_COUNT = 32


def calibration_inputs(
    calib: str | Path | None, count: int | None, prep: Preprocessing
) -> np.ndarray:
    """Real photos (never the evaluation split) preprocessed exactly as at inference;
    `count` None takes DEFAULT_CALIB_COUNT."""
    paths = resolve_images(calib, "calibration", count or DEFAULT_CALIB_COUNT)
    return preprocess_batch(progress(paths, "preprocessing calibration images"), prep)


__all__ = [
    "DEFAULT_CALIB_COUNT",
    "GraphCheck",
    "SourceModel",
    "base_manifest",
    "calibration_inputs",
    "export_module",
    "finish_artifact",
    "module_cache_entry",
    "run_static_batch",
    "tool_versions",
]
