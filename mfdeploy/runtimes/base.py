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
from mfdeploy.export.scopes import Graph
from mfdeploy.static_batches import padded_chunks


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
        self._import()
        start = time.perf_counter()
        self._open()
        self.init_ms = (time.perf_counter() - start) * 1000.0

    def _import(self) -> None:  # noqa: B027 (optional: most adapters import in _open)
        """Import the runtime's Python packages. Not part of init_ms: an app's runtime is no
        Python import (ExecuTorch's bindings need torch first, seconds here)."""

    @abc.abstractmethod
    def _open(self) -> None:
        """Load the model file and create the session / interpreter."""

    @abc.abstractmethod
    def run(self, batch: np.ndarray) -> np.ndarray:
        """float32 NCHW normalised images -> float32 logits of shape (B, classes)."""

    @abc.abstractmethod
    def info(self) -> RuntimeInfo:
        """What ran and how (for reports)."""

    # ------------------------------------------------------------ named intermediate tensors
    # `verify --per-layer` (mfdeploy.harness.per_layer) maps a family's anchors onto these.
    #: LiteRT may keep feature maps NHWC inside the graph.
    maps_may_be_nhwc: bool = False

    def scoped_graph(self, structure) -> Graph:
        """The artifact's dataflow graph with the module scope of every node; `structure` is
        the exported form with the artifact's module names (for formats that name tensors
        by class, LiteRT)."""
        raise MfdeployError(
            f"per-layer comparison is not supported by the {self.runtime_name or 'this'} runtime"
        )

    def torch_module(self):
        """The PyTorch module itself, for runtimes that are PyTorch (anchors by hooks)."""
        return None

    def recorded_anchors(self) -> dict[str, str] | None:
        """anchor -> tensor name recorded at export, where the graph cannot be re-read."""
        return None

    def output_id(self) -> object | None:
        """The id of the logits tensor among the intermediate tensors (None: no logits)."""
        return None

    def tensor_values(self, chunk: np.ndarray, ids: list) -> dict[object, np.ndarray]:
        """float32 values (dequantised, in the artifact's own layout) of the tensors `ids`
        for one static-batch chunk of float32 NCHW images; ids it cannot read are left out."""
        raise MfdeployError(
            f"per-layer comparison is not supported by the {self.runtime_name or 'this'} runtime"
        )

    @property
    def model_path(self) -> Path:
        return self.artifact_dir / self.manifest.model_file


def to_input_layout(batch: np.ndarray, layout: str | None) -> np.ndarray:
    """NCHW -> the layout the model takes, contiguous."""
    return np.ascontiguousarray(input_view(batch, layout))


def input_view(batch: np.ndarray, layout: str | None) -> np.ndarray:
    """NCHW -> the layout the model takes, as a view (no copy)."""
    return batch.transpose(0, 2, 3, 1) if layout == "NHWC" else batch


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    q = np.round(x / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return ((q.astype(np.float32) - zero_point) * scale).astype(np.float32)


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
