"""The runtime interface every backend implements (PyTorch, ONNX Runtime, LiteRT, Core ML).

Contract: `run` takes float32, normalised images in NCHW (what `preprocess` gives, stacked)
and returns float32 logits. Each adapter converts to its model's own input (NHWC, float16,
int8 with the manifest's scale / zero point) and back, so the harness compares like with like.
"""

from __future__ import annotations

import abc
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mfdeploy.artifact import Manifest
from mfdeploy.errors import MfdeployError


@dataclass
class RuntimeInfo:
    runtime: str  # "pytorch", "onnxruntime", "litert", "coreml"
    version: str
    threads: int | None
    executor: str  # what really ran: "cpu", "xnnpack", "coreml-runtime", "mil-executor", ...
    init_ms: float  # model load / session creation

    def to_dict(self) -> dict:
        return asdict(self)


class Runtime(abc.ABC):
    """An opened artifact, ready to run batches."""

    runtime_name: str = ""

    def __init__(self, artifact_dir: Path, manifest: Manifest, threads: int | None = None):
        self.artifact_dir = Path(artifact_dir)
        self.manifest = manifest
        self.threads = threads
        start = time.perf_counter()
        self._open()
        self.init_ms = (time.perf_counter() - start) * 1000.0

    @abc.abstractmethod
    def _open(self) -> None:
        """Load the model file and create the session / interpreter."""

    @abc.abstractmethod
    def run(self, batch: np.ndarray) -> np.ndarray:
        """float32 NCHW normalised images -> float32 logits of shape (B, classes)."""

    @abc.abstractmethod
    def info(self) -> RuntimeInfo:
        """What ran and how (for reports)."""

    def intermediates(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Optional hook for `verify --per-layer`: the block anchor tensors for `batch`.

        Keys are the anchor names of `mfdeploy.harness.layers` ("stem", "block3.former",
        "head", ...), values float32 in the reference layout. Adapters override this by
        exposing intermediate outputs (ONNX Runtime), keeping all tensors (LiteRT), or reading
        the MIL executor's values (Core ML on Linux); return only the anchors found.
        """
        raise MfdeployError(
            f"per-layer comparison is not supported by the {self.runtime_name or 'this'} runtime"
        )

    @property
    def model_path(self) -> Path:
        return self.artifact_dir / self.manifest.model_file


def to_input_layout(batch: np.ndarray, layout: str | None) -> np.ndarray:
    """NCHW -> the layout the model takes."""
    if layout == "NHWC":
        return np.ascontiguousarray(batch.transpose(0, 2, 3, 1))
    return np.ascontiguousarray(batch)


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    q = np.round(x / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return ((q.astype(np.float32) - zero_point) * scale).astype(np.float32)


def run_static_batches(batch: np.ndarray, static: int | str | None, run_once) -> np.ndarray:
    """Feed a model with a fixed batch size (from the manifest) chunk by chunk.

    A dynamic batch dimension (a name, None or -1) takes the whole batch at once; a short
    last chunk is padded with zeros and the padding's outputs dropped.
    """
    if not isinstance(static, int) or static <= 0 or static == len(batch):
        return run_once(batch)
    return np.concatenate([run_once(chunk)[:real] for chunk, real in padded_chunks(batch, static)])


def padded_chunks(batch: np.ndarray, size: int):
    """(chunk, number of real rows): chunks of exactly `size`, the last one zero-padded."""
    for start in range(0, len(batch), size):
        chunk = batch[start : start + size]
        real = len(chunk)
        if real < size:
            pad = np.zeros((size - real, *chunk.shape[1:]), dtype=chunk.dtype)
            chunk = np.concatenate([chunk, pad])
        yield chunk, real


def chunked_intermediates(
    batch: np.ndarray, static: int | str | None, run_once
) -> dict[str, np.ndarray]:
    """`run_static_batches` for `intermediates`: anchor dicts (batch first) per chunk, joined.

    An anchor missing from any chunk is left out.
    """
    size = static if isinstance(static, int) and static > 0 else len(batch)
    parts = [
        {k: v[:real] for k, v in run_once(chunk).items()}
        for chunk, real in padded_chunks(batch, size)
    ]
    common = set.intersection(*(set(p) for p in parts)) if parts else set()
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if k in common}


def mobile_former_spec(manifest: Manifest):
    """The VariantSpec of a Mobile-Former artifact (per-layer anchors exist only for those)."""
    from mfdeploy.models import get_variant

    if manifest.model_family != "mobile_former":
        raise MfdeployError(f"per-layer comparison covers Mobile-Former only, not {manifest.model}")
    return get_variant(manifest.variant or manifest.model)
