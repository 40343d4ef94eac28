"""The artifact contract: an exported model file plus `manifest.json` beside it.

Everything downstream (runtimes, verify, bench, the demo apps) reads the manifest rather
than guessing: input layout and normalisation, quantisation parameters, labels, and the
checkpoint the model came from.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mfdeploy.errors import ManifestError, MfdeployError

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
LABELS_NAME = "labels.txt"


@dataclass
class TensorSpec:
    name: str
    shape: list[int]
    dtype: str = "float32"
    layout: str | None = None  # "NCHW" / "NHWC" for image inputs
    scale: float | None = None  # quantisation, for integer tensors
    zero_point: int | None = None


def form_kind(form: str) -> str:
    """The kind of a form, deploy or reference; a deploy form may name a layout after a colon
    ("deploy:bridge=pixels", see mfdeploy.models.DeployLayout)."""
    return form.partition(":")[0]


@dataclass
class Manifest:
    model_family: str  # "mobile_former" | "efficientnet_lite"
    model: str  # e.g. "mobile_former_294m"
    variant: str | None
    target: str  # "pytorch" | "onnx" | "tflite" | "coreml"
    precision: str  # "fp32" | "fp16" | "int8" | ...
    form: str  # "deploy" | "reference" | "deploy:<layout>" (see form_kind)
    model_file: str
    input: TensorSpec
    output: TensorSpec
    preprocessing: dict[str, Any]
    labels_file: str = LABELS_NAME
    num_classes: int = 1000
    source_checkpoint: str | None = None
    source_checkpoint_sha256: str | None = None
    synthetic_weights: bool = False
    artifact_sha256: str | None = None
    tool_versions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / MANIFEST_NAME
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ManifestError(
                f"manifest schema version {version!r} is not supported (expected {SCHEMA_VERSION})"
            )
        try:
            fields = dict(data)
            fields["input"] = TensorSpec(**fields["input"])
            fields["output"] = TensorSpec(**fields["output"])
            return cls(**fields)
        except (KeyError, TypeError) as exc:
            raise ManifestError(f"manifest is missing or has unknown fields ({exc})") from None

    @classmethod
    def load(cls, directory: str | Path) -> Manifest:
        path = Path(directory)
        if path.is_file() and path.name == MANIFEST_NAME:
            path = path.parent
        manifest_path = path / MANIFEST_NAME
        if not manifest_path.is_file():
            raise ManifestError(f"{path}: not an artifact directory (no {MANIFEST_NAME})")
        try:
            data = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{manifest_path}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ManifestError(f"{manifest_path}: expected a JSON object")
        return cls.from_dict(data)


def path_sha256(path: str | Path) -> str:
    """sha256 of a file, or of a directory tree (relative names and contents, sorted)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def path_size(path: str | Path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def verify_artifact_hash(directory: str | Path, manifest: Manifest) -> None:
    model_path = Path(directory) / manifest.model_file
    if not model_path.exists():
        raise ManifestError(f"{directory}: incomplete artifact, {manifest.model_file} is missing")
    actual = path_sha256(model_path)
    if manifest.artifact_sha256 and actual != manifest.artifact_sha256:
        raise ManifestError(
            f"{model_path}: sha256 {actual[:12]}… does not match the manifest "
            f"({manifest.artifact_sha256[:12]}…)"
        )


@contextlib.contextmanager
def staged_directory(final: str | Path) -> Iterator[Path]:
    """Yield a temp dir beside `final`; move it into place only if the block succeeds.

    An interrupted or failed export leaves neither a half-written artifact nor a temp dir.
    A previous artifact at `final` is replaced.
    """
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    except OSError as exc:
        raise MfdeployError(f"cannot write to {final.parent}: {exc.strerror or exc}") from None
    try:
        yield staging
        if final.exists():
            backup = final.with_name(f".{final.name}.old-{os.getpid()}")
            final.rename(backup)
            staging.rename(final)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
