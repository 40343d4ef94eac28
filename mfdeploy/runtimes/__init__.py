"""Open an artifact on its real runtime: `open_runtime(artifact_dir)`."""

from __future__ import annotations

import importlib
from pathlib import Path

from mfdeploy.artifact import Manifest, verify_artifact_hash
from mfdeploy.errors import MfdeployError
from mfdeploy.runtimes.base import Runtime, RuntimeInfo

# target -> (module, class, pip extra that provides it)
ADAPTERS: dict[str, tuple[str, str, str]] = {
    "pytorch": ("mfdeploy.runtimes.torch_runtime", "TorchRuntime", ""),
    "onnx": ("mfdeploy.runtimes.onnxruntime", "OnnxRuntime", "onnx"),
    "tflite": ("mfdeploy.runtimes.litert", "LiteRTRuntime", "tflite"),
    "coreml": ("mfdeploy.runtimes.coreml", "CoreMLRuntime", "coreml"),
    "executorch": ("mfdeploy.runtimes.executorch", "ExecuTorchRuntime", "executorch"),
}

__all__ = ["ADAPTERS", "Runtime", "RuntimeInfo", "open_runtime", "runtime_class"]


def runtime_class(target: str) -> type[Runtime]:
    if target not in ADAPTERS:
        raise MfdeployError(
            f"no runtime for target {target!r}; known: {', '.join(sorted(ADAPTERS))}"
        )
    module_name, class_name, extra = ADAPTERS[target]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f" (pip install 'mfdeploy[{extra}]')" if extra else ""
        raise MfdeployError(f"the {target} runtime is not installed: {exc.name}{hint}") from None
    return getattr(module, class_name)


def open_runtime(
    artifact_dir: str | Path,
    threads: int | None = None,
    beside: tuple[str, ...] = (),
    **options,
) -> Runtime:
    """Check the artifact against its manifest (every sealed file; unlisted files refused
    except the names in `beside`), then open it on the runtime its target needs."""
    artifact_dir = Path(artifact_dir)
    manifest = Manifest.load(artifact_dir)
    verify_artifact_hash(artifact_dir, manifest, beside)
    return runtime_class(manifest.target)(artifact_dir, manifest, threads=threads, **options)
