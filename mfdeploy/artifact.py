"""The artifact contract: an exported model file plus `manifest.json` beside it.

Everything downstream (runtimes, verify, bench, the demo apps) reads the manifest rather
than guessing: input layout and normalisation, quantisation parameters, labels, and the
checkpoint the model came from.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import math
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mfdeploy.errors import ManifestError, MfdeployError
from mfdeploy.preprocessing import Preprocessing

SCHEMA_VERSION = 2  # 2: `files` (sha256 of every file) and `manifest_sha256` seal the artifact
MANIFEST_NAME = "manifest.json"
LABELS_NAME = "labels.txt"
LAYOUTS = ("NCHW", "NHWC")


@dataclass
class TensorSpec:
    name: str
    shape: list[int]
    dtype: str = "float32"
    layout: str | None = None  # "NCHW" / "NHWC" for image inputs
    scale: float | None = None  # quantisation, for integer tensors
    zero_point: int | None = None

    @classmethod
    def from_dict(cls, data: object, where: str) -> TensorSpec:
        """A typed tensor spec; every field checked, so readers never see "abc" as a shape."""
        data = _object(data, where)
        _known(data, cls.__dataclass_fields__, where)
        shape = data.get("shape")

        # the batch dimension may be a name (a dynamic batch, e.g. "batch"); others are sizes
        def size(d: object) -> bool:
            return _is_int(d) and d >= 1

        def batch(d: object) -> bool:
            return size(d) or (isinstance(d, str) and d.isidentifier())

        if (
            not isinstance(shape, list)
            or not shape
            or not batch(shape[0])
            or not all(size(d) for d in shape[1:])
        ):
            raise ManifestError(
                f"manifest {where}.shape must be a list of integers >= 1 (the batch may be a "
                f"name), got {shape!r}"
            )
        layout = _opt(data, "layout", str, where)
        if layout is not None and layout not in LAYOUTS:
            raise ManifestError(f"manifest {where}.layout must be one of {', '.join(LAYOUTS)}")
        scale = data.get("scale")
        if scale is not None and not (_is_number(scale) and math.isfinite(scale) and scale > 0):
            raise ManifestError(
                f"manifest {where}.scale must be a finite number > 0, got {scale!r}"
            )
        zero_point = data.get("zero_point")
        if zero_point is not None and not _is_int(zero_point):
            raise ManifestError(
                f"manifest {where}.zero_point must be an integer, got {zero_point!r}"
            )
        return cls(
            name=_req(data, "name", str, where),
            shape=list(shape),
            dtype=_opt(data, "dtype", str, where) or "float32",
            layout=layout,
            scale=scale,  # as written: the content sha256 is over the parsed values
            zero_point=zero_point,
        )


def form_kind(form: str) -> str:
    """The kind of a form, deploy or reference; a deploy form may name a layout after a colon
    ("deploy:features=nchw", MobileViTv2's; see mfdeploy.models.mobilevitv2_deploy)."""
    return form.partition(":")[0]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _object(data: object, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ManifestError(f"manifest {where} must be a JSON object")
    return data


def _known(data: dict[str, Any], fields: Any, where: str) -> None:
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ManifestError(
            f"manifest {where or 'top level'} has unknown fields: {', '.join(unknown)}"
        )


def _name(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _req(data: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in data:
        raise ManifestError(f"manifest is missing {_name(where, key)!r}")
    return _opt(data, key, kind, where)


def _opt(data: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = data.get(key)
    if value is not None and (
        not isinstance(value, kind) or isinstance(value, bool) != (kind is bool)
    ):
        raise ManifestError(
            f"manifest {_name(where, key)} must be {kind.__name__}, got {type(value).__name__}"
        )
    return value


def plain_name(name: object, what: str) -> str:
    """A file name inside the artifact: no directory part, no '..', not absolute.

    Manifests may come from anywhere; a name like '/etc/passwd' or '../secret' would make
    readers open (and `bundle` copy) files outside the artifact.
    """
    if (
        not isinstance(name, str)
        or name in ("", ".", "..")
        or any(c in name for c in "/\\\0")
        or Path(name).name != name
    ):
        raise ManifestError(
            f"manifest {what} {name!r} is not a plain file name inside the artifact"
        )
    return name


_SHA256 = re.compile(r"[0-9a-f]{64}")


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
    artifact_sha256: str | None = None  # the model file's sha256 (also in `files`)
    tool_versions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    # Seal: every file of the artifact (not manifest.json) -> sha256, and the sha256 of this
    # manifest's content (every field but manifest_sha256), so an edited precision is caught.
    files: dict[str, str] = field(default_factory=dict)
    manifest_sha256: str | None = None
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    def content_sha256(self) -> str:
        """sha256 of the canonical JSON of every field except manifest_sha256."""
        data = asdict(self)
        data.pop("manifest_sha256")
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / MANIFEST_NAME
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """Typed fields with clear errors: a manifest is input like any other."""
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            hint = (
                "; re-export the artifact" if _is_int(version) and version < SCHEMA_VERSION else ""
            )
            raise ManifestError(
                f"manifest schema version {version!r} is not supported (expected "
                f"{SCHEMA_VERSION}){hint}"
            )
        _known(data, cls.__dataclass_fields__, "")
        strings = ("model_family", "model", "target", "precision", "form", "model_file")
        fields: dict[str, Any] = {k: _req(data, k, str, "") for k in strings}
        fields["variant"] = _opt(data, "variant", str, "")
        if "variant" not in data:
            raise ManifestError("manifest is missing 'variant'")
        fields["model_file"] = plain_name(fields["model_file"], "model_file")
        fields["labels_file"] = plain_name(data.get("labels_file", LABELS_NAME), "labels_file")
        fields["input"] = TensorSpec.from_dict(data.get("input"), "input")
        fields["output"] = TensorSpec.from_dict(data.get("output"), "output")
        fields["preprocessing"] = _object(data.get("preprocessing"), "preprocessing")
        try:
            Preprocessing.from_dict(fields["preprocessing"])
        except MfdeployError as exc:
            raise ManifestError(f"manifest preprocessing: {exc}") from None
        num_classes = data.get("num_classes", 1000)
        if not _is_int(num_classes) or num_classes < 1:
            raise ManifestError(
                f"manifest num_classes must be an integer >= 1, got {num_classes!r}"
            )
        fields["num_classes"] = num_classes
        for key in ("source_checkpoint", "source_checkpoint_sha256", "artifact_sha256"):
            fields[key] = _opt(data, key, str, "")
        fields["synthetic_weights"] = bool(_opt(data, "synthetic_weights", bool, ""))
        fields["tool_versions"] = _object(data.get("tool_versions", {}), "tool_versions")
        fields["extra"] = _object(data.get("extra", {}), "extra")
        files = _object(data.get("files", {}), "files")
        for name, digest in files.items():
            plain_name(name, "file")
            if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
                raise ManifestError(f"manifest files[{name!r}] is not a sha256 hex digest")
        fields["files"] = dict(files)
        fields["manifest_sha256"] = _opt(data, "manifest_sha256", str, "")
        return cls(**fields)

    @classmethod
    def load(cls, directory: str | Path) -> Manifest:
        """Parse manifest.json (not the seal: `open_artifact` checks the files too)."""
        path = Path(directory)
        if path.is_file() and path.name == MANIFEST_NAME:
            path = path.parent
        manifest_path = path / MANIFEST_NAME
        if manifest_path.is_symlink():
            raise ManifestError(f"{manifest_path}: a symlink, not part of a sealed artifact")
        if not manifest_path.is_file():
            raise ManifestError(f"{path}: not an artifact directory (no {MANIFEST_NAME})")
        try:
            data = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise ManifestError(f"{manifest_path}: not valid JSON ({exc})") from None
        except OSError as exc:
            raise ManifestError(f"{manifest_path}: unreadable ({exc.strerror or exc})") from None
        if not isinstance(data, dict):
            raise ManifestError(f"{manifest_path}: expected a JSON object")
        try:
            return cls.from_dict(data)
        except ManifestError as exc:
            raise ManifestError(f"{manifest_path}: {exc}") from None


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


def _symlinks(path: Path) -> list[Path]:
    """`path` itself if it is a symlink, else every symlink below it (not followed)."""
    if path.is_symlink():
        return [path]
    if not path.is_dir():
        return []
    found = []
    for root, dirs, files in os.walk(path, followlinks=False):
        found += [Path(root, n) for n in dirs + files if Path(root, n).is_symlink()]
    return found


def seal(directory: str | Path, manifest: Manifest) -> Manifest:
    """Hash every file of the artifact and the manifest's content; write manifest.json.

    Called last by the writer, on the complete staging directory: from then on a changed
    byte in any file, a file added or removed, or an edited field is refused by readers.
    """
    directory = Path(directory)
    names = sorted(p.name for p in directory.iterdir() if p.name != MANIFEST_NAME)
    for name in names:
        plain_name(name, "file")
        if _symlinks(directory / name):
            raise MfdeployError(f"{directory / name}: artifacts may not contain symlinks")
    manifest.files = {name: path_sha256(directory / name) for name in names}
    for name, what in ((manifest.model_file, "model_file"), (manifest.labels_file, "labels_file")):
        if plain_name(name, what) not in manifest.files:
            raise MfdeployError(f"{directory}: {what} {name} was not written")
    manifest.artifact_sha256 = manifest.files[manifest.model_file]
    manifest.manifest_sha256 = manifest.content_sha256()
    manifest.save(directory)
    return manifest


def verify_artifact_hash(
    directory: str | Path, manifest: Manifest, beside: tuple[str, ...] = ()
) -> None:
    """Refuse an artifact that is not exactly what its manifest seals.

    The manifest's own content hash, then every listed file (present, a regular file or
    a directory without symlinks, same sha256) and no unlisted file (a runtime could pick
    one up, e.g. ONNX external data), except the names in `beside` (an app bundle's golden
    and sample photo, which no runtime reads). A missing seal is refused like a wrong one:
    an unsealed artifact cannot be trusted to be what it says.
    """
    directory = Path(directory)
    if not manifest.manifest_sha256 or not manifest.files:
        raise ManifestError(f"{directory}: the manifest is not sealed (no sha256); re-export")
    if manifest.content_sha256() != manifest.manifest_sha256:
        raise ManifestError(
            f"{directory}: {MANIFEST_NAME} was edited (its content does not match its sha256)"
        )
    for name in (manifest.model_file, manifest.labels_file):
        if name not in manifest.files:
            raise ManifestError(f"{directory}: {name} is not among the manifest's sealed files")
    if manifest.artifact_sha256 != manifest.files[manifest.model_file]:
        raise ManifestError(f"{directory}: artifact_sha256 does not match the sealed model file")
    try:
        present = {p.name for p in directory.iterdir() if p.name != MANIFEST_NAME}
    except OSError as exc:
        raise ManifestError(f"{directory}: unreadable ({exc.strerror or exc})") from None
    missing = sorted(set(manifest.files) - present)
    if missing:
        raise ManifestError(f"{directory}: incomplete artifact, {missing[0]} is missing")
    unlisted = sorted(present - set(manifest.files) - set(beside))
    if unlisted:
        raise ManifestError(f"{directory}: {unlisted[0]} is not one of the artifact's sealed files")
    for name, expected in sorted(manifest.files.items()):
        path = directory / name
        links = _symlinks(path)
        if links:
            raise ManifestError(
                f"{links[0]}: a symlink; a sealed artifact holds only its own files"
            )
        actual = path_sha256(path)
        if actual != expected:
            raise ManifestError(
                f"{path}: sha256 {actual[:12]}… does not match the manifest ({expected[:12]}…)"
            )


def open_artifact(directory: str | Path, beside: tuple[str, ...] = ()) -> Manifest:
    """The manifest of a sealed artifact, after checking every hash (`verify_artifact_hash`)."""
    manifest = Manifest.load(directory)
    verify_artifact_hash(directory, manifest, beside)
    return manifest


def is_artifact_dir(path: str | Path, manifest_name: str = MANIFEST_NAME) -> bool:
    """True for a directory mfdeploy wrote: its manifest is a JSON object with a schema version
    and a target (any schema version, so an old artifact can be re-exported in place)."""
    path = Path(path)
    manifest = path / manifest_name
    if path.is_symlink() or not path.is_dir() or not manifest.is_file() or manifest.is_symlink():
        return False
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and _is_int(data.get("schema_version")) and "target" in data


def check_output(
    final: str | Path,
    *,
    force: bool = False,
    inputs: tuple[str | Path | None, ...] = (),
    owned: Callable[[Path], bool] = is_artifact_dir,
    flag: str = "--out",
) -> Path:
    """Refuse an output location whose replacement would destroy what mfdeploy did not write.

    Never the working directory, one of its parents, the home directory, a mount point, nor a path
    that is or holds an input of the run (the checkpoint being exported, calibration photos).
    An existing path must be empty or something mfdeploy wrote (`owned`), unless `force`.
    """
    final = Path(final)
    resolved = final.resolve()
    cwd = Path.cwd().resolve()
    protected = resolved == cwd or resolved in cwd.parents or resolved == Path.home().resolve()
    if protected or os.path.ismount(resolved):
        raise MfdeployError(
            f"{flag} {final}: refusing to replace the working, home or root directory "
            "or a mount point"
        )
    for item in inputs:
        if item is None:
            continue
        source = Path(item).resolve()
        if source == resolved or resolved in source.parents:
            raise MfdeployError(
                f"{flag} {final} holds an input of this run ({item}); choose another path"
            )
    if final.is_symlink() or final.exists():
        empty = final.is_dir() and not final.is_symlink() and not any(final.iterdir())
        if not (empty or owned(final) or force):
            kind = "directory" if final.is_dir() else "file"
            raise MfdeployError(
                f"{flag} {final}: an existing {kind} that is not an mfdeploy artifact (no valid "
                f"{MANIFEST_NAME}); remove it or pass --force to replace it"
            )
    return final


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def share_like_user_files(root: Path) -> None:
    """Give `root` and everything below it the modes the user's umask gives new files.

    mkdtemp makes 0700 directories and some writers make 0600 files; an artifact is an
    ordinary output, readable by whoever the user's umask lets read their files.
    """
    mask = current_umask()
    dirs, files = 0o777 & ~mask, 0o666 & ~mask
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        if path.is_dir():
            path.chmod(dirs)
        else:
            executable = path.stat().st_mode & 0o111
            path.chmod(files | (executable & ~mask))


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return result == 0


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def _replace(staging: Path, final: Path) -> None:
    """Put `staging` at `final`; an existing `final` is swapped out in one step, then removed."""
    if not (final.exists() or final.is_symlink()):
        staging.rename(final)
        return
    if _exchange(staging, final):
        _remove(staging)  # now holds the old artifact
        return
    backup = final.with_name(f".{final.name}.old-{os.getpid()}")
    final.rename(backup)
    staging.rename(final)
    _remove(backup)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT / SIGTERM while the output is swapped, so it is never half-replaced."""
    held = {signal.SIGINT, signal.SIGTERM}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, OSError, ValueError):
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def staged_directory(
    final: str | Path,
    *,
    force: bool = False,
    inputs: tuple[str | Path | None, ...] = (),
    owned: Callable[[Path], bool] = is_artifact_dir,
    flag: str = "--out",
) -> Iterator[Path]:
    """Yield a temp dir beside `final`; move it into place only if the block succeeds.

    `final` is checked first (`check_output`): nothing is written when it is refused. An
    interrupted or failed block (exception, Ctrl-C, SIGTERM) leaves no temp dir and the
    previous `final` as it was; a complete one replaces it in one rename.
    """
    final = check_output(final, force=force, inputs=inputs, owned=owned, flag=flag)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    except OSError as exc:
        raise MfdeployError(f"cannot write to {final.parent}: {exc.strerror or exc}") from None
    try:
        yield staging
        share_like_user_files(staging)
        with _signals_deferred():
            _replace(staging, final)
    except BaseException:
        _remove(staging)
        raise
