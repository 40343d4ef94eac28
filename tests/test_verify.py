"""`mfdeploy verify`: parity verdicts, JSON contract, and refusals."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from safetensors.torch import load_file, save_file

from mfdeploy.artifact import Manifest, path_sha256
from mfdeploy.export import TARGETS, export_artifact
from tests.conftest import FIXTURES

WEIGHTS = FIXTURES / "mobile_former_26m.safetensors"
FIELDS = {
    "artifact",
    "target",
    "precision",
    "runtime",
    "executor",
    "num_inputs",
    "metrics",
    "thresholds",
    "passed",
}
METRICS = {"max_abs", "mean_abs", "cosine", "sqnr_db", "top1_agreement", "top5_overlap"}


def verify_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mfdeploy", "verify", *args], capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def synthetic_artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify")
    return {t: export_artifact(t, "26m", out=root / t)[0] for t in TARGETS}


@pytest.mark.parametrize("target", list(TARGETS))
def test_fp32_artifacts_pass_with_synthetic_weights(synthetic_artifacts, target):
    proc = verify_cli(str(synthetic_artifacts[target]), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) >= FIELDS and set(result["metrics"]) == METRICS
    assert result["passed"] is True and result["target"] == target
    assert result["num_inputs"] >= 5


def test_checkpoint_weights_must_be_given_and_match(tmp_path):
    path, _ = export_artifact("pytorch", "26m", weights=WEIGHTS, out=tmp_path / "a")
    missing = verify_cli(str(path))
    assert missing.returncode == 2 and "pass --weights" in missing.stderr
    other = tmp_path / "other.safetensors"
    state = load_file(str(WEIGHTS))
    state["stem.0.weight"] = state["stem.0.weight"] * 1.01
    save_file(state, str(other))
    wrong = verify_cli(str(path), "--weights", str(other))
    assert wrong.returncode == 2 and "do not match" in wrong.stderr
    good = verify_cli(str(path), "--weights", str(WEIGHTS))
    assert good.returncode == 0, good.stdout + good.stderr


def test_corrupted_artifact_weights_fail_with_exit_1(tmp_path):
    path, manifest = export_artifact("pytorch", "26m", weights=WEIGHTS, out=tmp_path / "bad")
    model_file = path / manifest.model_file
    state = load_file(str(model_file))
    key = "features.5.conv2.0.weight"
    state[key] = state[key] * 0.5  # a deliberately broken export
    save_file(state, str(model_file))
    manifest.artifact_sha256 = path_sha256(model_file)  # consistent file, wrong numbers
    manifest.save(path)
    proc = verify_cli(str(path), "--weights", str(WEIGHTS), "--json")
    assert proc.returncode == 1
    result = json.loads(proc.stdout)
    assert result["passed"] is False and result["metrics"]["max_abs"] > 1e-3


def test_threshold_override_and_bad_values(synthetic_artifacts):
    path = str(synthetic_artifacts["pytorch"])
    strict = verify_cli(path, "--threshold", "max_abs=0", "--json")
    assert strict.returncode in (0, 1)  # 0 only if bit-exact
    assert json.loads(strict.stdout)["thresholds"]["max_abs"] == 0.0
    bad = verify_cli(path, "--threshold", "nonsense")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    unknown = verify_cli(path, "--threshold", "speed=1")
    assert unknown.returncode == 2 and "unknown threshold" in unknown.stderr


def test_not_an_artifact_and_empty_images(tmp_path, synthetic_artifacts):
    proc = verify_cli(str(tmp_path))
    assert proc.returncode == 2 and "not an artifact directory" in proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = verify_cli(str(synthetic_artifacts["pytorch"]), "--images", str(empty))
    assert proc.returncode == 2 and "no images" in proc.stderr
    assert Manifest.load(synthetic_artifacts["pytorch"]).synthetic_weights
