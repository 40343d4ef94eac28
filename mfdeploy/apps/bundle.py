"""Put an exported artifact into a demo app: model, manifest, labels, sample photo, golden.

Each app declares where it reads its bundle in ONE contract file (Kotlin `BundleContract.kt`,
Swift `BundleContract.swift`, the web page's `bundle_contract.json`); this module parses that
file instead of keeping its own list of names, so the app code and the bundler cannot drift
apart. An app running several targets has one slot (bundle directory, model name) per
target: JSON `slots` for the web page, `X_TARGET` / `X_MODEL` / ... constants beside the
unprefixed first slot in Kotlin (Android: LiteRT first, then ExecuTorch); each slot's
bundle is written and replaced on its own, so the slots coexist.

The bundle directory is written by `staged_directory`: everything (including the golden,
computed by running the copied model on its Python runtime) is staged beside it and moved
into place only when complete; any refusal happens before anything is written, so the app's
previous bundle is left as it was.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import MISSING, dataclass
from pathlib import Path

from mfdeploy.apps.golden import make_golden
from mfdeploy.artifact import (
    MANIFEST_NAME,
    Manifest,
    is_artifact_dir,
    open_artifact,
    plain_name,
    staged_directory,
)
from mfdeploy.console import info
from mfdeploy.errors import MfdeployError
from mfdeploy.labels import parse_labels
from mfdeploy.preprocessing import Preprocessing, load_image, resize_short_side
from mfdeploy.runtimes import open_runtime

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class AppSpec:
    name: str
    default_dir: str  # project directory name, in the working directory or the repository
    contract_file: str  # relative to the project root
    constant: str | None  # regex: (name, "value") of one string constant; None: a JSON file


_KOTLIN_CONST = r'const\s+val\s+([A-Z][A-Z0-9_]*)\s*(?::\s*String)?\s*=\s*"([^"]*)"'
_SWIFT_CONST = r'static\s+let\s+([a-z][A-Za-z0-9]*)\s*(?::\s*String)?\s*=\s*"([^"]*)"'

APPS: dict[str, AppSpec] = {
    "android": AppSpec(
        "android",
        "android_demo",
        "app/src/main/java/org/mfdeploy/demo/core/BundleContract.kt",
        _KOTLIN_CONST,
    ),
    "ios": AppSpec(
        "ios",
        "ios_demo",
        "MobileFormerCore/Sources/MobileFormerCore/BundleContract.swift",
        _SWIFT_CONST,
    ),
    "web": AppSpec("web", "web_demo", "bundle_contract.json", None),
}


@dataclass(frozen=True)
class Contract:
    """The app's bundle contract (values from its contract file)."""

    target: str  # the artifact target this slot runs ("tflite" / "executorch" / "coreml")
    bundle_dir: str  # where the slot's bundle goes, relative to the project root
    model: str
    manifest: str
    labels: str
    golden: str
    sample_image: str  # the resized sample written into the bundle
    sample_source: str  # the committed photo it is made from, relative to the project root
    io_dtype: str | None = None  # the only input / output dtype the app feeds (None: any)

    @property
    def bundle_files(self) -> tuple[str, ...]:
        return (self.model, self.manifest, self.labels, self.golden, self.sample_image)


def _snake(name: str) -> str:
    """bundleDir / BUNDLE_DIR -> bundle_dir."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def read_contract(app: str, project: Path, target: str | None = None) -> Contract:
    """The app's contract; for an app with one slot per target (web, Android), `target`'s
    slot (default: the first one). A target without a slot is refused here, with the slots
    the app has in the message."""
    spec = app_spec(app)
    path = project / spec.contract_file
    if not path.is_file():
        raise MfdeployError(
            f"{project} is not the {app} demo app (no {spec.contract_file}); "
            f"pass --project PATH/{spec.default_dir}"
        )
    if spec.constant is None:
        values = _json_contract(app, path, target)
    else:
        values = _const_contract(app, path, spec.constant, target)
    fields = Contract.__dataclass_fields__
    missing = [f for f, d in fields.items() if d.default is MISSING and f not in values]
    if missing:
        raise MfdeployError(f"{path}: contract constants missing: {', '.join(missing)}")
    contract = Contract(**{f: values[f] for f in fields if f in values})
    for name in contract.bundle_files:
        try:
            plain_name(name, "bundle file")
        except MfdeployError as exc:
            raise MfdeployError(f"{path}: {exc}") from None
    return contract


def contract_targets(app: str, project: Path) -> list[str]:
    """The targets the app has a slot for, first (the default) first."""
    read_contract(app, project)  # the project is the app, its first slot complete
    spec = app_spec(app)
    path = project / spec.contract_file
    if spec.constant is None:
        return list(json.loads(path.read_text("utf-8"))["slots"])
    return list(_const_slots(_constants(path, spec.constant)))


# What belongs to one slot (one engine's bundle); everything else is shared by all slots.
SLOT_FIELDS = ("target", "bundle_dir", "asset_dir", "model", "io_dtype")


def _constants(path: Path, pattern: str) -> dict[str, str]:
    """A source contract's string constants, names in snake case (BUNDLE_DIR -> bundle_dir)."""
    return {_snake(k): v for k, v in re.findall(pattern, path.read_text("utf-8"))}


def _const_slots(consts: dict[str, str]) -> dict[str, str]:
    """{target: name prefix}: `target` opens the first slot (unprefixed names), each
    `x_target` another slot whose `x_model`, `x_bundle_dir`, ... replace the unprefixed ones.

    Constants only, so the app's own contract file stays the single list of names and the
    Python side needs no Kotlin / Swift parser beyond one regex.
    """
    slots = {consts["target"]: ""} if "target" in consts else {}
    for name, value in consts.items():
        if name.endswith("_target"):
            slots.setdefault(value, name[: -len("target")])
    return slots


def _const_contract(app: str, path: Path, pattern: str, target: str | None) -> dict[str, str]:
    """A Kotlin / Swift contract: the shared constants plus `target`'s slot (see _const_slots)."""
    consts = _constants(path, pattern)
    slots = _const_slots(consts)
    if not slots:
        raise MfdeployError(f"{path}: contract constants missing: target")
    name = target or next(iter(slots))
    if name not in slots:
        raise _no_slot(app, name, list(slots))
    prefix = slots[name]
    if not prefix:
        return consts
    values = {k: v for k, v in consts.items() if k not in SLOT_FIELDS}
    values.update({k[len(prefix) :]: v for k, v in consts.items() if k.startswith(prefix)})
    return values


def _no_slot(app: str, target: str, slots: list[str]) -> MfdeployError:
    article = "an" if target[:1] in tuple("aeiou") else "a"
    return MfdeployError(
        f"{article} {target} artifact: the {app} app runs {' or '.join(slots)} models "
        f"(export with --target {' or --target '.join(slots)})"
    )


def _json_contract(app: str, path: Path, target: str | None) -> dict[str, str]:
    """A JSON contract: shared string entries plus `slots`, one {bundle_dir, model, ...} per
    target the app runs; an artifact of a target without a slot is refused here."""
    try:
        data = json.loads(path.read_text("utf-8"))
        slots = data["slots"]
        name = target or next(iter(slots))
    except (ValueError, KeyError, TypeError, StopIteration):
        raise MfdeployError(f"{path}: not a contract (a JSON object with slots)") from None
    if name not in slots:
        raise _no_slot(app, name, list(slots))
    shared = {k: v for k, v in data.items() if isinstance(v, str)}
    return {**shared, **slots[name], "target": name}


def bundle_destination(project: Path, contract: Contract) -> Path:
    """The contract's bundle directory, which must lie inside the app project.

    The contract file is part of a checkout anyone may edit: an absolute path or a '..'
    there would make `bundle` replace a directory anywhere on the machine.
    """
    rel = Path(contract.bundle_dir)
    if not contract.bundle_dir or rel.is_absolute() or ".." in rel.parts:
        raise MfdeployError(
            f"the {contract.target} app's bundle directory {contract.bundle_dir!r} must be a "
            "relative path inside the project (no '..')"
        )
    final = project / rel
    root = project.resolve()
    resolved = final.resolve()
    if resolved == root or root not in resolved.parents:
        raise MfdeployError(
            f"the bundle directory {contract.bundle_dir!r} leads out of the project {project} "
            "(a symlink?)"
        )
    return final


def app_spec(app: str) -> AppSpec:
    if app not in APPS:
        raise MfdeployError(f"unknown app {app!r}; choose one of: {', '.join(APPS)}")
    return APPS[app]


def default_project(app: str) -> Path:
    """./android_demo (./ios_demo, ./web_demo) if present, else the one in this repository."""
    name = app_spec(app).default_dir
    here = Path.cwd() / name
    return here if here.is_dir() else REPO_ROOT / name


def check_artifact(app: str, artifact: Path, manifest: Manifest, contract: Contract) -> None:
    """Refuse what the app cannot run or an artifact that is not what its manifest says."""
    if manifest.target != contract.target:
        raise MfdeployError(
            f"{artifact} is a {manifest.target} artifact; the {app} app runs "
            f"{contract.target} models (export with --target {contract.target})"
        )
    if manifest.model_file != contract.model:
        raise MfdeployError(
            f"{artifact}: model file {manifest.model_file!r}, "
            f"the {app} app loads {contract.model!r}"
        )
    for kind, tensor in (("input", manifest.input), ("output", manifest.output)):
        if contract.io_dtype and tensor.dtype != contract.io_dtype:
            hint = "--float-io" if contract.target == "tflite" else "a precision with float32 I/O"
            raise MfdeployError(
                f"{artifact}: {tensor.dtype} {kind}; the {app} app feeds {contract.target} models "
                f"{contract.io_dtype} tensors only (export with {hint})"
            )
    if manifest.input.shape[0] != 1 or len(manifest.input.shape) != 4:
        raise MfdeployError(
            f"{artifact}: input shape {manifest.input.shape}; the app feeds one image "
            "(export with --batch 1)"
        )
    coreml = manifest.extra.get("coreml", {})
    if coreml.get("input_kind", "tensor") != "tensor" or coreml.get("classifier"):
        raise MfdeployError(
            f"{artifact}: the iOS app feeds a float tensor and reads logits; "
            "export without --image-input / --classifier"
        )
    open_artifact(artifact)  # every file and the manifest's content against their sha256
    labels = artifact / manifest.labels_file
    if not labels.is_file():
        raise MfdeployError(f"{artifact}: incomplete artifact, {manifest.labels_file} is missing")
    count = len(read_labels(labels))
    if count != manifest.num_classes:
        raise MfdeployError(
            f"{labels}: {count} labels for a model with {manifest.num_classes} classes"
        )


def read_labels(path: Path) -> list[str]:
    return list(parse_labels(path.read_text("utf-8")))


def _copy(src: Path, dst: Path) -> None:
    if src.is_dir():  # .mlpackage
        shutil.copytree(src, dst)
    else:
        shutil.copy2(src, dst)


def write_sample(source: Path, manifest: Manifest, dest: Path) -> None:
    """The sample photo resized exactly as `preprocess` resizes it (no crop), as PNG.

    PNG without colour profile: decoders on Android and iOS return its pixels unchanged.
    """
    prep = Preprocessing.from_dict(manifest.preprocessing)
    resize_short_side(load_image(source), prep).save(dest, format="PNG")


def _is_previous_bundle(contract: Contract) -> Callable[[Path], bool]:
    def owned(path: Path) -> bool:
        return is_artifact_dir(path, contract.manifest)

    return owned


def bundle(
    app: str, artifact: str | Path, project: str | Path | None = None, force: bool = False
) -> Path:
    """Copy an artifact into the app, with a sample photo and its golden file.

    The destination is refused (before anything is written) when it leads out of the project,
    holds the artifact itself, or exists without being a previous bundle (unless `force`).
    """
    artifact = Path(artifact)
    project = Path(project) if project else default_project(app)
    manifest = Manifest.load(artifact)
    contract = read_contract(app, project, manifest.target)  # the target's slot
    check_artifact(app, artifact, manifest, contract)
    source = project / contract.sample_source
    if not source.is_file():
        raise MfdeployError(f"{project}: the sample photo {contract.sample_source} is missing")

    final = bundle_destination(project, contract)
    with staged_directory(
        final,
        force=force,
        inputs=(artifact, source),
        owned=_is_previous_bundle(contract),
        flag="bundle directory",
    ) as staging:
        info(f"copying {manifest.model_file} ({manifest.target} {manifest.precision})")
        _copy(artifact / manifest.model_file, staging / contract.model)
        shutil.copy2(artifact / MANIFEST_NAME, staging / contract.manifest)
        shutil.copy2(artifact / manifest.labels_file, staging / contract.labels)
        # Every other sealed file too (e.g. ONNX's model.ort): the bundle stays the whole
        # artifact, so the app, or anyone, can re-check its seal.
        for name in sorted(set(manifest.files) - {manifest.model_file, manifest.labels_file}):
            _copy(artifact / name, staging / name)
        # The staged copy is itself a sealed artifact: opening it re-checks every sha256
        # (before the sample and golden, which are the bundle's, not the artifact's, files).
        runtime = open_runtime(staging)
        write_sample(source, manifest, staging / contract.sample_image)
        info(f"golden: {contract.sample_image} on {runtime.info().runtime}")
        golden = make_golden(
            staging / contract.sample_image,
            manifest,
            runtime,
            read_labels(staging / contract.labels),
        )
        text = json.dumps(golden, indent=2) + "\n"
        (staging / contract.golden).write_text(text, encoding="utf-8")
    info(f"bundled {manifest.model} ({manifest.target} {manifest.precision}) for {app}")
    return final
