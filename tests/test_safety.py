"""Outputs, seals, signals, permissions and image modes (issue 17), beyond the bad-input table."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mfdeploy.artifact import Manifest, open_artifact, path_sha256, staged_directory
from mfdeploy.errors import MfdeployError
from mfdeploy.export import export_artifact
from mfdeploy.preprocessing import load_image
from tests.conftest import ROOT, WEIGHTS_26M


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): path_sha256(p) for p in root.rglob("*") if p.is_file()}


def test_reexport_is_byte_identical(exported, tmp_path):
    first = exported("pytorch", "fp32")
    again, _ = export_artifact("pytorch", "26m", weights=WEIGHTS_26M, out=tmp_path / "again")
    assert tree(again) == tree(first)  # model, labels and manifest (seal included)


def test_existing_artifact_kept_when_the_new_one_fails(exported, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(exported("pytorch", "fp32"), out)
    before = tree(out)
    with pytest.raises(RuntimeError), staged_directory(out) as staging:
        (staging / "model.bin").write_bytes(b"half")
        raise RuntimeError("converter crashed")
    assert tree(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_existing_file_replaced_only_with_force_and_nothing_left(tmp_path):
    out = tmp_path / "notes.txt"
    out.write_text("mine")
    with pytest.raises(MfdeployError, match="not an mfdeploy artifact"):
        export_artifact("pytorch", "26m", out=out)
    assert out.read_text() == "mine"
    export_artifact("pytorch", "26m", out=out, force=True)
    open_artifact(out)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]  # no .notes.txt.old-PID


def test_artifact_modes_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        out, _ = export_artifact("pytorch", "26m", out=tmp_path / "a")
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o750
    for path in out.iterdir():
        assert path.stat().st_mode & 0o777 == 0o640, path


def test_seal_covers_every_file(exported):
    folder = exported("pytorch", "fp32")
    manifest = Manifest.load(folder)
    assert set(manifest.files) == {p.name for p in folder.iterdir()} - {"manifest.json"}
    assert manifest.files[manifest.model_file] == manifest.artifact_sha256
    assert manifest.manifest_sha256 == manifest.content_sha256()
    assert manifest.schema_version == 2


@pytest.mark.parametrize(
    ("sig", "code", "word"), [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interr")]
)
def test_signal_during_export_leaves_the_previous_artifact_and_no_staging(
    sig, code, word, exported, tmp_path
):
    """SIGTERM (a cancelled CI job) cleans up like Ctrl-C: the staging directory is removed
    and the artifact already at --out stays as it was. The export starts with SIGINT's
    default action, as from a terminal: a test run started in the background by a shell
    without job control ignores SIGINT, and its children inherit that."""
    out = tmp_path / "out"
    shutil.copytree(exported("pytorch", "fp32"), out)
    before = tree(out)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "mfdeploy", "export", "--target", "onnx", "--variant", "26m"]
    proc = subprocess.Popen(
        [*argv, "--out", str(out)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 600
    while not list(tmp_path.glob(".out.*")) and proc.poll() is None:
        assert time.monotonic() < deadline, "no staging directory appeared"
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == code, err
    assert word in err.strip().splitlines()[-1]
    assert "Traceback" not in err
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert tree(out) == before


def _gray16(values: np.ndarray) -> Image.Image:
    return Image.fromarray(values.astype(np.uint16))  # mode I;16


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (64, 1))
    path = tmp_path / "gray16.png"
    _gray16(ramp).save(path)
    assert Image.open(path).mode.startswith("I")  # read back as 16-bit, not 8-bit
    rgb = np.asarray(load_image(path))
    assert rgb.dtype == np.uint8 and rgb.shape == (64, 256, 3)
    expected = np.round(ramp / 257.0).astype(np.uint8)
    assert np.array_equal(rgb[..., 0], expected)
    assert (rgb == 255).mean() < 0.01  # convert("RGB") left 99.6 % at 255


def test_float_and_32_bit_images_keep_their_range(tmp_path):
    data = np.linspace(0.0, 1.0, 64 * 64, dtype=np.float32).reshape(64, 64)
    path = tmp_path / "f.tif"
    Image.fromarray(data, mode="F").save(path)
    rgb = np.asarray(load_image(path))
    assert rgb.min() == 0 and rgb.max() == 255 and len(np.unique(rgb)) > 200
    eight = Image.fromarray(np.arange(256, dtype=np.int32).reshape(16, 16), mode="I")
    eight.save(tmp_path / "i.tif")
    assert np.array_equal(np.asarray(load_image(tmp_path / "i.tif"))[..., 1].ravel(), range(256))


def test_apps_accept_the_schema_mfdeploy_writes():
    """The apps accept exactly the manifest schema mfdeploy writes."""
    kotlin = ROOT / "android_demo/app/src/main/java/org/mfdeploy/demo/core/ModelManifest.kt"
    swift = ROOT / "ios_demo/MobileFormerCore/Sources/MobileFormerCore/ModelManifest.swift"
    from mfdeploy.artifact import SCHEMA_VERSION

    assert f"SCHEMA_VERSION = {SCHEMA_VERSION}" in kotlin.read_text()
    assert f"schemaVersion = {SCHEMA_VERSION}" in swift.read_text()


def test_old_schema_artifacts_are_refused_with_a_re_export_hint(exported, tmp_path):
    folder = tmp_path / "old"
    shutil.copytree(exported("pytorch", "fp32"), folder)
    data = json.loads((folder / "manifest.json").read_text())
    for key in ("files", "manifest_sha256"):
        data.pop(key)
    data["schema_version"] = 1
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(MfdeployError, match="re-export"):
        open_artifact(folder)
    export_artifact("pytorch", "26m", weights=WEIGHTS_26M, out=folder)  # replaced in place
    open_artifact(folder)


def test_an_interrupt_inside_an_import_is_a_cancel_not_a_missing_extra(tmp_path, monkeypatch):
    """Ctrl-C / SIGTERM landing while a converter is imported leaves a half-imported package
    whose next import fails: that ImportError must surface as the interrupt (exit 130 / 143),
    not as "the target needs a package"."""
    from mfdeploy import export as export_pkg

    def export(source, staging, **options):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise ImportError("cannot import name 'x' from partially initialized module") from None

    module = export_pkg.target_module("onnx")
    monkeypatch.setattr(module, "export", export)
    with pytest.raises(KeyboardInterrupt):
        export_pkg.export_artifact("onnx", "26m", out=tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


def test_a_signal_during_converter_imports_is_acted_on_after_them():
    """A native extension's initialisation must not see the interrupt (nanobind aborts on
    it): the signal is noted and raised only when the imports are done."""
    from mfdeploy.export import _signals_deferred

    def interrupt(_signum, _frame):
        raise KeyboardInterrupt

    finished_inside = []
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        with pytest.raises(KeyboardInterrupt), _signals_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the handler would have run here
            finished_inside.append(True)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert finished_inside == [True]


def test_converter_native_output_is_discarded_and_restored(capfd):
    """Native writes to fds 1 and 2 vanish while a converter runs; they work again after."""
    from mfdeploy.export.common import output_discarded

    with output_discarded():
        os.write(1, b"native stdout\n")
        os.write(2, b"native stderr\n")
    os.write(2, b"native after\n")
    assert capfd.readouterr() == ("", "native after\n")


def test_converter_python_output_is_discarded_whatever_sys_stdout_is(capsys):
    """A replaced sys.stdout (capsys here; a caller's buffer) is not fd 1: prints to it vanish
    too (`bench --json` reads stdout as JSON lines), and it is restored after."""
    from mfdeploy.export.common import output_discarded

    with output_discarded():
        print("python stdout")
        print("python stderr", file=sys.stderr)
    print("after")
    assert capsys.readouterr() == ("after\n", "")
