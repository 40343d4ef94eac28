"""Bad input across every command, as a careless or hostile user types it (issue 17).

Each case runs `mfdeploy.cli.main` in a scratch workspace (the working directory) and
asserts: exit code 2, exactly one line on stderr, no traceback, and the workspace unchanged
byte for byte (names, contents, modes, mtimes): nothing written, nothing destroyed.
Add a case here for every bad-input bug found.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from mfdeploy.artifact import Manifest, seal
from mfdeploy.cli import main
from tests.conftest import ROOT, WEIGHTS_26M

Setup = Callable[[Path, "Sources"], None]
SAMPLE = ROOT / "android_demo" / "sample" / "chelsea.png"


class Sources:
    """Artifacts the cases copy into their workspace (exported once per session)."""

    def __init__(self, exported) -> None:
        self._exported = exported

    def artifact(self, target: str = "pytorch") -> Path:
        return self._exported(target, "fp32")


@pytest.fixture(scope="module")
def sources(exported) -> Sources:
    return Sources(exported)


# ------------------------------------------------------------------ workspace helpers
def copy_artifact(name: str = "art", target: str = "pytorch") -> Setup:
    def setup(ws: Path, src: Sources) -> None:
        if not (ws / name).exists():
            shutil.copytree(src.artifact(target), ws / name)
        # verify finds the checkpoint an artifact came from beside it (in its parent)
        if not (ws / WEIGHTS_26M.name).exists():
            shutil.copy2(WEIGHTS_26M, ws / WEIGHTS_26M.name)

    return setup


def edit_manifest(change: Callable[[dict], None], name: str = "art", reseal: bool = False) -> Setup:
    """Copy the pytorch artifact and edit its manifest.json (resealed if asked)."""

    def setup(ws: Path, src: Sources) -> None:
        copy_artifact(name)(ws, src)
        path = ws / name / "manifest.json"
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))
        if reseal:
            seal(ws / name, Manifest.from_dict(data))

    return setup


def flip_byte(file: str, name: str = "art", target: str = "pytorch") -> Setup:
    def setup(ws: Path, src: Sources) -> None:
        copy_artifact(name, target)(ws, src)
        path = ws / name / file
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))

    return setup


def chain(*steps: Setup) -> Setup:
    def setup(ws: Path, src: Sources) -> None:
        for step in steps:
            step(ws, src)

    return setup


def write(rel: str, content: bytes | str) -> Setup:
    def setup(ws: Path, src: Sources) -> None:
        path = ws / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content)
        else:
            path.write_bytes(content)

    return setup


def symlink(rel: str, to: str) -> Setup:
    def setup(ws: Path, src: Sources) -> None:
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).symlink_to(to)

    return setup


def fixture_weights(rel: str) -> Setup:
    def setup(ws: Path, src: Sources) -> None:
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(WEIGHTS_26M, ws / rel)

    return setup


def weights_with(rel: str, value: float) -> Setup:
    """The 26m fixture weights with one tensor filled with `value` (NaN, inf)."""

    def setup(ws: Path, src: Sources) -> None:
        from safetensors.torch import load_file

        state = load_file(str(WEIGHTS_26M))
        key = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
        state[key] = torch.full_like(state[key], value)
        save_file(state, str(ws / rel))

    return setup


def evil_pickle(rel: str) -> Setup:
    def setup(ws: Path, src: Sources) -> None:
        class Evil:
            def __reduce__(self):
                return (os.system, (f"touch {ws / 'PWNED'}",))

        torch.save({"state_dict": Evil()}, ws / rel)

    return setup


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims width x height (8-bit gray) with a tiny IDAT: a decompression bomb
    is refused from its header, so the pixels are never needed."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def fake_tflite(name: str = "tfl") -> Setup:
    """The pytorch artifact relabelled as a sealed tflite one: enough for `bundle` to reach its
    destination checks (it is refused before any runtime opens it)."""

    def setup(ws: Path, src: Sources) -> None:
        copy_artifact(name)(ws, src)
        folder = ws / name
        (folder / "model.safetensors").rename(folder / "model.tflite")
        manifest = Manifest.load(folder)
        manifest.target, manifest.model_file = "tflite", "model.tflite"
        seal(folder, manifest)

    return setup


ANDROID_CONTRACT = "app/src/main/java/org/mfdeploy/demo/core/BundleContract.kt"


def android_project(bundle_dir: str | None = None, name: str = "proj", **consts: str) -> Setup:
    """A minimal Android app: its contract file (BUNDLE_DIR etc. replaceable) + sample photo."""

    def setup(ws: Path, src: Sources) -> None:
        project = ws / name
        contract = (ROOT / "android_demo" / ANDROID_CONTRACT).read_text()
        if bundle_dir is not None:
            consts["BUNDLE_DIR"] = bundle_dir.replace("{ws}", str(ws))
        for key, value in consts.items():
            contract, n = _replace_const(contract, key, value)
            assert n == 1, key
        (project / ANDROID_CONTRACT).parent.mkdir(parents=True)
        (project / ANDROID_CONTRACT).write_text(contract)
        (project / "sample").mkdir()
        shutil.copy2(ROOT / "android_demo" / "sample" / "chelsea.png", project / "sample")

    return setup


def _replace_const(text: str, key: str, value: str) -> tuple[str, int]:
    import re

    pattern = rf'(const\s+val\s+{key}\s*(?::\s*String)?\s*=\s*)"[^"]*"'
    return re.subn(pattern, lambda m: f'{m.group(1)}"{value}"', text)


def victim(rel: str = "victim") -> Setup:
    """A directory of the user's that no command may touch."""
    return write(f"{rel}/precious.txt", "the user's own data\n")


# ------------------------------------------------------------------ the cases
@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    expect: str  # a piece of the one error line
    setup: Setup | None = None
    env: dict[str, str] = field(default_factory=dict)


def case(*argv: str, expect: str, setup: Setup | None = None, **env: str) -> Case:
    return Case(tuple(argv), expect, setup, env)


EXPORT = ("export", "--target", "pytorch", "--variant", "26m")
TAMPERED = "does not match the manifest"
EDITED = "was edited"

CASES: dict[str, Case] = {
    # ---- export: outputs never destroy what mfdeploy did not write
    "export --out existing dir": case(
        *EXPORT, "--out", "victim", expect="not an mfdeploy artifact", setup=victim()
    ),
    "export --out existing file": case(
        *EXPORT, "--out", "notes.txt", expect="not an mfdeploy artifact",
        setup=write("notes.txt", "mine"),
    ),
    "export --out .": case(*EXPORT, "--out", ".", expect="working", setup=victim()),
    "export --out cwd absolute": case(*EXPORT, "--out", "{ws}", expect="working", setup=victim()),
    "export --out parent of cwd": case(*EXPORT, "--out", "..", expect="working"),
    "export --out holds --weights": case(
        *EXPORT, "--weights", "ck/w.safetensors", "--out", "ck", expect="holds an input",
        setup=fixture_weights("ck/w.safetensors"),
    ),
    "export --out holds --weights, --force": case(
        *EXPORT, "--weights", "ck/w.safetensors", "--out", "ck", "--force",
        expect="holds an input", setup=fixture_weights("ck/w.safetensors"),
    ),
    "export --out is --weights": case(
        *EXPORT, "--weights", "w.safetensors", "--out", "w.safetensors", "--force",
        expect="holds an input", setup=fixture_weights("w.safetensors"),
    ),
    "export --out artifact holding --weights": case(
        *EXPORT, "--weights", "art/w.safetensors", "--out", "art", expect="holds an input",
        setup=chain(copy_artifact(), fixture_weights("art/w.safetensors")),
    ),
    "export --out holds --calib": case(
        "export", "--target", "onnx", "--variant", "26m", "--precision", "int8",
        "--calib", "photos", "--out", "photos", "--force", expect="holds an input",
        setup=write("photos/a.png", png_header(64, 64)),
    ),
    "export --out under a file": case(
        *EXPORT, "--out", "notes.txt/sub/a", expect="cannot write", setup=write("notes.txt", "x")
    ),
    "export --out symlink to a dir": case(
        *EXPORT, "--out", "link", expect="not an mfdeploy artifact",
        setup=chain(victim(), symlink("link", "victim")),
    ),
    # ---- export: numbers and names
    "export --batch 0": case(*EXPORT, "--batch", "0", "--out", "a", expect="--batch"),
    "export --batch -1": case(*EXPORT, "--batch", "-1", "--out", "a", expect="--batch"),
    "export --batch huge": case(*EXPORT, "--batch", "100000", "--out", "a", expect="--batch"),
    "export --batch abc": case(*EXPORT, "--batch", "abc", "--out", "a", expect="--batch"),
    "export --resolution 0": case(*EXPORT, "--resolution", "0", "--out", "a", expect="--resol"),
    "export --resolution -224": case(
        *EXPORT, "--resolution", "-224", "--out", "a", expect="--resolution"
    ),
    "export --resolution huge": case(
        *EXPORT, "--resolution", "1000000", "--out", "a", expect="--resolution"
    ),
    "export --resolution x": case(*EXPORT, "--resolution", "x", "--out", "a", expect="--resol"),
    "export --calib-count 0": case(
        "export", "--target", "onnx", "--variant", "26m", "--precision", "int8",
        "--calib-count", "0", "--out", "a", expect="--calib-count",
    ),
    "export --calib-count -3": case(
        "export", "--target", "onnx", "--variant", "26m", "--precision", "int8",
        "--calib-count", "-3", "--out", "a", expect="--calib-count",
    ),
    "export --int8-float unknown module": case(
        "export", "--target", "onnx", "--variant", "26m", "--precision", "int8",
        "--calib-count", "4", "--int8-float", "blocks.99", "--out", "a",
        expect="no module 'blocks.99'",
    ),
    "export --int8-target-sqnr nan": case(
        "export", "--target", "onnx", "--variant", "26m", "--precision", "int8",
        "--int8-target-sqnr", "nan", "--out", "a", expect="--int8-target-sqnr",
    ),
    "export --int8-target-sqnr 0": case(
        "export", "--target", "onnx", "--variant", "26m", "--precision", "int8",
        "--int8-target-sqnr", "0", "--out", "a", expect="out of range",
    ),
    "export --int8-float on pytorch": case(
        *EXPORT, "--int8-float", "none", "--out", "a", expect="does not take --int8-float"
    ),
    "export --precision int3": case(*EXPORT, "--precision", "int3", "--out", "a", expect="int3"),
    "export --target bogus": case(
        "export", "--target", "bogus", "--variant", "26m", "--out", "a", expect="--target"
    ),
    "export --variant 999m": case(
        "export", "--target", "pytorch", "--variant", "999m", "--out", "a", expect="999m"
    ),
    "export other target's option": case(
        *EXPORT, "--layout", "nchw", "--out", "a", expect="does not take"
    ),
    # ---- export: checkpoints
    "export --weights missing": case(
        *EXPORT, "--weights", "nope.pth", "--out", "a", expect="no such checkpoint"
    ),
    "export --weights garbage": case(
        *EXPORT, "--weights", "junk.pth", "--out", "a", expect="not a PyTorch checkpoint",
        setup=write("junk.pth", b"\x00garbage" * 100),
    ),
    "export --weights garbage safetensors": case(
        *EXPORT, "--weights", "junk.safetensors", "--out", "a", expect="safetensors",
        setup=write("junk.safetensors", b"{}}" * 10),
    ),
    "export --weights code pickle": case(
        *EXPORT, "--weights", "evil.pth", "--out", "a", expect="refused for safety",
        setup=evil_pickle("evil.pth"),
    ),
    "export --weights NaN": case(
        *EXPORT, "--weights", "nan.safetensors", "--out", "a", expect="non-finite",
        setup=weights_with("nan.safetensors", float("nan")),
    ),
    "export --weights inf": case(
        *EXPORT, "--weights", "inf.safetensors", "--out", "a", expect="non-finite",
        setup=weights_with("inf.safetensors", float("inf")),
    ),
    "export --weights another model": case(
        *EXPORT, "--weights", "other.safetensors", "--out", "a", expect="does not fit",
        setup=lambda ws, src: save_file({"x": torch.zeros(2)}, str(ws / "other.safetensors")),
    ),
    # ---- predict
    "predict --top 0": case(
        "predict", "--variant", "26m", "--top", "0", "img.png", expect="--top",
        setup=write("img.png", png_header(64, 64)),
    ),
    "predict --top -1": case(
        "predict", "--variant", "26m", "--top", "-1", "img.png", expect="--top",
        setup=write("img.png", png_header(64, 64)),
    ),
    "predict --top beyond classes": case(
        "predict", "--variant", "26m", "--top", "5000", "cat.png", expect="only 1000 classes",
        setup=lambda ws, src: shutil.copy2(SAMPLE, ws / "cat.png"),
    ),
    "predict bomb 20000x20000": case(
        "predict", "--variant", "26m", "bomb.png", expect="decompression bomb",
        setup=write("bomb.png", png_header(20000, 20000)),
    ),
    "predict bomb 10000x10000": case(
        "predict", "--variant", "26m", "big.png", expect="decompression bomb",
        setup=write("big.png", png_header(10000, 10000)),
    ),
    "predict text file": case(
        "predict", "--variant", "26m", "bad.jpg", expect="not a readable image",
        setup=write("bad.jpg", "nope"),
    ),
    "predict empty file": case(
        "predict", "--variant", "26m", "empty.png", expect="not a readable image",
        setup=write("empty.png", b""),
    ),
    "predict truncated png": case(
        "predict", "--variant", "26m", "cut.png", expect="not a readable image",
        setup=lambda ws, src: (ws / "cut.png").write_bytes(
            SAMPLE.read_bytes()[:2000]
        ),
    ),
    "predict missing file": case(
        "predict", "--variant", "26m", "missing.png", expect="not a readable image"
    ),
    "predict a directory": case(
        "predict", "--variant", "26m", "victim", expect="not a readable image", setup=victim()
    ),
    "predict --resolution 0": case(
        "predict", "--variant", "26m", "--resolution", "0", "x.png", expect="--resolution"
    ),
    "predict --weights NaN": case(
        "predict", "--variant", "26m", "--weights", "nan.safetensors", "x.png",
        expect="non-finite", setup=weights_with("nan.safetensors", float("nan")),
    ),
    # ---- verify: the seal
    "verify flipped model byte": case(
        "verify", "art", expect=TAMPERED, setup=flip_byte("model.safetensors")
    ),
    "verify artifact_sha256 null + flipped byte": case(
        "verify", "art", expect=EDITED,
        setup=chain(
            flip_byte("model.safetensors"),
            edit_manifest(lambda m: m.update(artifact_sha256=None)),
        ),
    ),
    "verify manifest_sha256 null": case(
        "verify", "art", expect="not sealed",
        setup=edit_manifest(lambda m: m.update(manifest_sha256=None)),
    ),
    "verify manifest_sha256 empty": case(
        "verify", "art", expect="not sealed",
        setup=edit_manifest(lambda m: m.update(manifest_sha256="")),
    ),
    "verify files emptied": case(
        "verify", "art", expect="not sealed", setup=edit_manifest(lambda m: m.update(files={}))
    ),
    "verify labels rewritten": case(
        "verify", "art", expect=TAMPERED, setup=flip_byte("labels.txt")
    ),
    "verify precision fp32 -> int8": case(
        "verify", "art", expect=EDITED,
        setup=edit_manifest(lambda m: m.update(precision="int8")),
    ),
    "verify unlisted file added": case(
        "verify", "art", expect="not one of the artifact's sealed files",
        setup=chain(copy_artifact(), write("art/extra.bin", b"x")),
    ),
    "verify model file missing": case(
        "verify", "art", expect="model.safetensors is missing",
        setup=chain(copy_artifact(), lambda ws, s: (ws / "art/model.safetensors").unlink()),
    ),
    "verify model is a symlink": case(
        "verify", "art", expect="symlink",
        setup=chain(
            copy_artifact(),
            lambda ws, s: (ws / "art/model.safetensors").rename(ws / "model.safetensors"),
            symlink("art/model.safetensors", "../model.safetensors"),
        ),
    ),
    "verify manifest is a symlink": case(
        "verify", "art", expect="symlink",
        setup=chain(
            copy_artifact(),
            lambda ws, s: (ws / "art/manifest.json").rename(ws / "m.json"),
            symlink("art/manifest.json", "../m.json"),
        ),
    ),
    "verify model_file absolute": case(
        "verify", "art", expect="not a plain file name",
        setup=edit_manifest(lambda m: m.update(model_file="/etc/passwd"), reseal=False),
    ),
    "verify model_file ..": case(
        "verify", "art", expect="not a plain file name",
        setup=edit_manifest(lambda m: m.update(model_file="../secret.txt")),
    ),
    "verify labels_file ..": case(
        "verify", "art", expect="not a plain file name",
        setup=edit_manifest(lambda m: m.update(labels_file="../../secret.txt")),
    ),
    "verify input.shape abc": case(
        "verify", "art", expect="input.shape",
        setup=edit_manifest(lambda m: m["input"].update(shape="abc")),
    ),
    "verify input.shape [0,3,224,224]": case(
        "verify", "art", expect="input.shape",
        setup=edit_manifest(lambda m: m["input"].update(shape=[0, 3, 224, 224])),
    ),
    "verify preprocessing.resolution x": case(
        "verify", "art", expect="resolution",
        setup=edit_manifest(lambda m: m["preprocessing"].update(resolution="x")),
    ),
    "verify preprocessing.std 0": case(
        "verify", "art", expect="std",
        setup=edit_manifest(lambda m: m["preprocessing"].update(std=[0, 0, 0])),
    ),
    "verify num_classes 0": case(
        "verify", "art", expect="num_classes",
        setup=edit_manifest(lambda m: m.update(num_classes=0)),
    ),
    "verify NaN in manifest extra": case(
        "verify", "art", expect=EDITED,
        setup=edit_manifest(lambda m: m["extra"].update(x=float("nan"))),
    ),
    "verify input.scale NaN": case(
        "verify", "art", expect="input.scale",
        setup=edit_manifest(lambda m: m["input"].update(scale=float("nan"))),
    ),
    "verify unknown manifest field": case(
        "verify", "art", expect="unknown fields",
        setup=edit_manifest(lambda m: m.update(surprise=1)),
    ),
    "verify schema version 1": case(
        "verify", "art", expect="re-export",
        setup=edit_manifest(lambda m: m.update(schema_version=1)),
    ),
    "verify manifest not JSON": case(
        "verify", "art", expect="not valid JSON",
        setup=chain(copy_artifact(), write("art/manifest.json", "{nope")),
    ),
    "verify manifest a list": case(
        "verify", "art", expect="JSON object",
        setup=chain(copy_artifact(), write("art/manifest.json", "[]")),
    ),
    "verify no artifact": case("verify", "nowhere", expect="not an artifact"),
    "verify a file": case(
        "verify", "notes.txt", expect="not an artifact", setup=write("notes.txt", "x")
    ),
    # ---- verify: options
    "verify --threads 0": case(
        "verify", "art", "--threads", "0", expect="--threads", setup=copy_artifact()
    ),
    "verify --num-images -1": case(
        "verify", "art", "--num-images", "-1", expect="--num-images", setup=copy_artifact()
    ),
    "verify --threshold cosine=nan": case(
        "verify", "art", "--threshold", "cosine=nan", expect="finite", setup=copy_artifact()
    ),
    "verify --threshold max_abs=inf": case(
        "verify", "art", "--threshold", "max_abs=inf", expect="finite", setup=copy_artifact()
    ),
    "verify --threshold bogus": case(
        "verify", "art", "--threshold", "bogus=1", expect="bad threshold", setup=copy_artifact()
    ),
    "verify --threshold cosine=abc": case(
        "verify", "art", "--threshold", "cosine=abc", expect="not a number", setup=copy_artifact()
    ),
    "verify --images missing": case(
        "verify", "art", "--images", "nope", expect="no such image directory", setup=copy_artifact()
    ),
    "verify --images empty": case(
        "verify", "art", "--images", "victim", expect="no images found",
        setup=chain(copy_artifact(), victim()),
    ),
    "verify --weights missing": case(
        "verify", "art", "--weights", "nope.safetensors", expect="no such checkpoint",
        setup=copy_artifact(),
    ),
    # ---- the photo cache and $MFDEPLOY_CACHE
    "verify, MFDEPLOY_CACHE is a file": case(
        "verify", "art", expect="is a file",
        setup=chain(copy_artifact(), write("cachefile", "x")), MFDEPLOY_CACHE="{ws}/cachefile",
    ),
    "data info, MFDEPLOY_CACHE is a file": case(
        "data", "info", expect="is a file", setup=write("cachefile", "x"),
        MFDEPLOY_CACHE="{ws}/cachefile",
    ),
    "data info, corrupt photo manifest": case(
        "data", "info", expect="corrupt photo-cache manifest",
        setup=write("cache/photos/manifest.json", "{"), MFDEPLOY_CACHE="{ws}/cache",
    ),
    "data info, photo manifest wrong shape": case(
        "data", "info", expect="corrupt photo-cache manifest",
        setup=write("cache/photos/manifest.json", '{"photos": [1, 2]}'),
        MFDEPLOY_CACHE="{ws}/cache",
    ),
    "verify, photo path leaving the cache": case(
        "verify", "art", expect="corrupt photo-cache manifest",
        setup=chain(
            copy_artifact(),
            write(
                "cache/photos/manifest.json",
                json.dumps({"photos": [{"path": "../../etc/passwd", "split": "evaluation",
                                        "package": "p", "version": "1", "licence": "x"}]}),
            ),
        ),
        MFDEPLOY_CACHE="{ws}/cache",
    ),
    "data bogus": case("data", "bogus", expect="invalid choice"),
    # ---- bench
    "bench --threads 0": case("bench", "--backend", "torch", "--threads", "0", expect="--threads"),
    "bench --threads 1,x": case("bench", "--backend", "torch", "--threads", "1,x", expect="--thr"),
    "bench --threads ,": case("bench", "--backend", "torch", "--threads", ",", expect="--threads"),
    "bench --runs 0": case("bench", "--backend", "torch", "--runs", "0", expect="--runs"),
    "bench --warmup -1": case("bench", "--backend", "torch", "--warmup", "-1", expect="--warmup"),
    "bench --backend bogus": case("bench", "--backend", "bogus", expect="--backend"),
    "bench --precision int3": case(
        "bench", "--backend", "torch", "--variant", "26m", "--precision", "int3",
        expect="no precision",
    ),
    "bench --artifact flipped byte": case(
        "bench", "--artifact", "art", expect=TAMPERED, setup=flip_byte("model.safetensors")
    ),
    "bench --artifact precision edited": case(
        "bench", "--artifact", "art", expect=EDITED,
        setup=edit_manifest(lambda m: m.update(precision="int8")),
    ),
    "bench --artifact model_file absolute": case(
        "bench", "--artifact", "art", expect="not a plain file name",
        setup=edit_manifest(lambda m: m.update(model_file="/etc/hostname")),
    ),
    # ---- inspect
    "inspect missing": case("inspect", "nowhere", expect="no such file"),
    "inspect unknown file type": case(
        "inspect", "notes.txt", expect="cannot inspect", setup=write("notes.txt", "x")
    ),
    "inspect flipped onnx byte": case(
        "inspect", "onx", expect=TAMPERED, setup=flip_byte("model.onnx", "onx", "onnx")
    ),
    "inspect flipped model.ort byte": case(
        "inspect", "onx", expect=TAMPERED, setup=flip_byte("model.ort", "onx", "onnx")
    ),
    "inspect model_file absolute": case(
        "inspect", "art", expect="not a plain file name",
        setup=edit_manifest(lambda m: m.update(model_file="/etc/hostname")),
    ),
    "inspect manifest edited": case(
        "inspect", "art", expect=EDITED, setup=edit_manifest(lambda m: m.update(form="reference2"))
    ),
    # ---- evaluate
    "evaluate synthetic weights": case(
        "evaluate", "--variant", "26m", expect="accuracy needs trained weights"
    ),
    "evaluate --threads 0": case("evaluate", "art", "--threads", "0", expect="--threads"),
    "evaluate flipped byte": case(
        "evaluate", "art", expect=TAMPERED, setup=flip_byte("model.safetensors")
    ),
    "evaluate labels_file absolute": case(
        "evaluate", "art", expect="not a plain file name",
        setup=edit_manifest(lambda m: m.update(labels_file="/etc/hostname")),
    ),
    "evaluate --images missing": case(
        "evaluate", "art", "--images", "nope", expect="nope", setup=copy_artifact()
    ),
    # ---- report / variants
    "report --threads 0": case("report", "--variant", "26m", "--threads", "0", expect="--thr"),
    "report --runs 0": case("report", "--variant", "26m", "--runs", "0", expect="--runs"),
    "report --warmup -1": case("report", "--variant", "26m", "--warmup", "-1", expect="--warm"),
    "variants --resolution 0": case("variants", "--resolution", "0", expect="--resolution"),
    "variants --model bogus": case("variants", "--model", "bogus", expect="bogus"),
    # ---- bundle: destination inside the app project, artifact sealed
    "bundle pytorch artifact": case(
        "bundle", "--app", "android", "art", "--project", "proj", expect="pytorch artifact",
        setup=chain(copy_artifact(), android_project()),
    ),
    "bundle --app bogus": case("bundle", "--app", "bogus", "art", expect="--app"),
    "bundle missing project": case(
        "bundle", "--app", "android", "tfl", "--project", "nope", expect="not the android demo",
        setup=fake_tflite(),
    ),
    "bundle absolute bundle dir": case(
        "bundle", "--app", "android", "tfl", "--project", "proj", expect="relative path",
        setup=chain(fake_tflite(), victim(), android_project("{ws}/victim")),
    ),
    "bundle .. bundle dir": case(
        "bundle", "--app", "android", "tfl", "--project", "proj", expect="relative path",
        setup=chain(fake_tflite(), victim(), android_project("../victim")),
    ),
    "bundle bundle dir through a symlink": case(
        "bundle", "--app", "android", "tfl", "--project", "proj", expect="leads out",
        setup=chain(
            fake_tflite(), victim(), android_project("out/x"), symlink("proj/out", "../victim")
        ),
    ),
    "bundle bundle dir is the project": case(
        "bundle", "--app", "android", "tfl", "--project", "proj", expect="leads out",
        setup=chain(fake_tflite(), android_project(".")),
    ),
    "bundle golden name with ..": case(
        "bundle", "--app", "android", "tfl", "--project", "proj", expect="not a plain file name",
        setup=chain(fake_tflite(), android_project(GOLDEN="../../golden.json")),
    ),
    "bundle over a non-bundle dir": case(
        "bundle", "--app", "android", "tfl", "--project", "proj", expect="not an mfdeploy",
        setup=chain(fake_tflite(), android_project("assets"), victim("proj/assets")),
    ),
    "bundle artifact inside its destination": case(
        "bundle", "--app", "android", "proj/assets", "--project", "proj", "--force",
        expect="holds an input",
        setup=chain(android_project("assets"), fake_tflite("proj/assets")),
    ),
    "bundle flipped labels": case(
        "bundle", "--app", "android", "tfl", "--project", "proj", expect=TAMPERED,
        setup=chain(fake_tflite(), android_project(), lambda ws, s: _flip(ws / "tfl/labels.txt")),
    ),
    "bundle unsealed": case(
        "bundle", "--app", "android", "tfl", "--project", "proj", expect="not sealed",
        setup=chain(
            fake_tflite(), android_project(),
            lambda ws, s: _edit_json(ws / "tfl/manifest.json", manifest_sha256=None),
        ),
    ),
}  # fmt: skip


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[0] ^= 0x01
    path.write_bytes(bytes(data))


def _edit_json(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under root: type, mode, size, mtime and content hash (symlinks: target)."""
    state: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            path = Path(folder, name)
            info = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                state[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                state[rel] = ("dir", info.st_mode)
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                state[rel] = ("file", info.st_mode, info.st_size, info.st_mtime_ns, digest)
    return state


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_exit_2_and_touches_nothing(
    name, sources, tmp_path, monkeypatch, capfd
):
    item = CASES[name]
    ws = tmp_path / "ws"
    ws.mkdir()
    if item.setup:
        item.setup(ws, sources)
    for key, value in item.env.items():
        monkeypatch.setenv(key, value.replace("{ws}", str(ws)))
    monkeypatch.setenv("MFDEPLOY_BENCH_CACHE", str(tmp_path / "bench-cache"))
    monkeypatch.chdir(ws)
    argv = [a.replace("{ws}", str(ws)) for a in item.argv]
    before = snapshot(tmp_path)
    capfd.readouterr()
    code = main(argv)
    out, err = capfd.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith("mfdeploy"), err
    assert item.expect in lines[0], err
    assert snapshot(tmp_path) == before
    assert not (ws / "PWNED").exists()


def test_there_are_at_least_60_cases():
    assert len(CASES) >= 60
