"""Manifest, atomic artifact writing, and the runtime interface (PyTorch adapter)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from mfdeploy.artifact import Manifest, path_sha256, staged_directory
from mfdeploy.errors import ManifestError, MfdeployError
from mfdeploy.export import export_artifact
from mfdeploy.models import create_model
from mfdeploy.runtimes import open_runtime
from tests.conftest import FIXTURES, max_abs


@pytest.fixture(scope="module")
def torch_artifact(tmp_path_factory):
    out = tmp_path_factory.mktemp("art") / "a26"
    weights = FIXTURES / "mobile_former_26m.safetensors"
    path, manifest = export_artifact("pytorch", "26m", weights=weights, out=out)
    return path, manifest


def test_manifest_fields_and_round_trip(torch_artifact):
    path, manifest = torch_artifact
    loaded = Manifest.load(path)
    assert loaded == manifest
    assert loaded.variant == "26m" and loaded.target == "pytorch"
    assert loaded.input.shape == [1, 3, 224, 224] and loaded.input.layout == "NCHW"
    assert loaded.output.shape == [1, 1000]
    assert loaded.preprocessing["mean"] == [0.485, 0.456, 0.406]
    assert loaded.source_checkpoint == "mobile_former_26m.safetensors"
    assert len(loaded.source_checkpoint_sha256) == 64
    assert loaded.artifact_sha256 == path_sha256(path / loaded.model_file)
    assert "torch" in loaded.tool_versions and "mfdeploy" in loaded.tool_versions
    assert len((path / loaded.labels_file).read_text().splitlines()) == 1000


def test_runtime_interface_reproduces_the_model(torch_artifact, fixture_inputs):
    path, _ = torch_artifact
    runtime = open_runtime(path, threads=1)
    info = runtime.info()
    assert info.runtime == "pytorch" and info.threads == 1 and info.init_ms > 0
    reference = create_model("26m", weights=FIXTURES / "mobile_former_26m.safetensors")
    with torch.no_grad():
        expected = reference(torch.from_numpy(fixture_inputs)).numpy()
    assert max_abs(runtime.run(fixture_inputs), expected) < 1e-5


def test_tampered_artifact_is_refused(torch_artifact, tmp_path):
    import shutil

    path, manifest = torch_artifact
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    with open(copy / manifest.model_file, "r+b") as handle:
        handle.seek(-4, 2)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(ManifestError, match="does not match the manifest"):
        open_runtime(copy)


def test_manifest_errors(tmp_path):
    with pytest.raises(ManifestError, match="no manifest.json"):
        Manifest.load(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.load(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(ManifestError, match="schema version"):
        Manifest.load(tmp_path)


def test_staged_directory_leaves_nothing_on_failure(tmp_path):
    final = tmp_path / "out"
    with pytest.raises(RuntimeError), staged_directory(final) as staging:
        (staging / "half.bin").write_bytes(b"x")
        raise RuntimeError("converter crashed")
    assert list(tmp_path.iterdir()) == []


def test_staged_directory_replaces_previous(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    (final / "manifest.json").write_text(json.dumps({"schema_version": 1, "target": "onnx"}))
    with staged_directory(final) as staging:
        (staging / "new.txt").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_staged_directory_refuses_what_it_did_not_write(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    (final / "notes.txt").write_text("mine")
    with pytest.raises(MfdeployError, match="not an mfdeploy artifact"), staged_directory(final):
        pass
    assert (final / "notes.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    with staged_directory(final, force=True) as staging:
        (staging / "new.txt").write_text("new")
    assert [p.name for p in final.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_unwritable_out_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(MfdeployError, match="cannot write"):
        export_artifact("pytorch", "26m", out=blocker / "sub" / "a")


def test_cli_export_and_bad_precision(tmp_path):
    out = tmp_path / "cli"
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "mfdeploy",
            "export",
            "--target",
            "pytorch",
            "--variant",
            "26m",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr
    assert Manifest.load(out).synthetic_weights is True
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "mfdeploy",
            "export",
            "--target",
            "pytorch",
            "--variant",
            "26m",
            "--precision",
            "int3",
            "--out",
            str(tmp_path / "bad"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "precision" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()


def test_runtime_run_contract_is_float32_logits(torch_artifact):
    runtime = open_runtime(torch_artifact[0])
    out = runtime.run(np.zeros((2, 3, 224, 224), np.float32))
    assert out.shape == (2, 1000) and out.dtype == np.float32
