"""`mfdeploy verify`: parity passes on good artifacts, fails (exit 1) on corrupted weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from mfdeploy.artifact import Manifest, seal
from mfdeploy.errors import MfdeployError
from mfdeploy.metrics import METRICS, SQNR_CAP_DB, compare_logits, parse_overrides
from tests.conftest import FIXTURES, WEIGHTS_26M
from tests.harness_helpers import ALL_TARGETS, export_fp32, run_cli

VERIFY_KEYS = {
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


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("verify")


@pytest.fixture(scope="module")
def torch_artifact(artifacts) -> Path:
    return export_fp32("pytorch", artifacts)


@pytest.mark.parametrize("target", ALL_TARGETS)
def test_verify_fp32_passes_with_every_field(target, exported, capsys):
    artifact = exported(target, "fp32")
    argv = ["verify", str(artifact), "--json", "--num-images", "16", "--weights", str(WEIGHTS_26M)]
    code, out, _ = run_cli(argv, capsys)
    result = json.loads(out)  # exactly one JSON object on stdout
    assert code == 0, result
    assert set(result) == VERIFY_KEYS
    assert set(result["metrics"]) == set(METRICS)
    assert result["target"] == target and result["precision"] == "fp32"
    assert result["passed"] is True
    assert result["num_inputs"] > 4  # evaluation photos + random inputs
    assert result["metrics"]["max_abs"] <= result["thresholds"]["max_abs"]


def _corrupt_copy(artifact: Path, dest: Path, key_prefix: str) -> Path:
    """Same artifact with one conv weight perturbed and the manifest's sha updated to match."""
    import shutil

    shutil.copytree(artifact, dest)
    manifest = Manifest.load(dest)
    model_file = dest / manifest.model_file
    state = load_file(str(model_file))
    key = next(k for k in state if k.startswith(key_prefix) and k.endswith("weight"))
    state[key] = state[key] + np.random.default_rng(0).normal(0, 0.5, state[key].shape).astype(
        state[key].dtype
    )
    save_file(state, str(model_file))
    seal(dest, manifest)
    return dest


def test_verify_fails_on_corrupted_weights(torch_artifact, tmp_path, capsys):
    bad = _corrupt_copy(torch_artifact, tmp_path / "bad", "features.2.conv")
    code, out, _ = run_cli(["verify", str(bad), "--json"], capsys)
    result = json.loads(out)
    assert code == 1
    assert result["passed"] is False
    assert result["metrics"]["max_abs"] > result["thresholds"]["max_abs"]


def test_per_layer_locates_the_corrupted_block(torch_artifact, tmp_path, capsys):
    bad = _corrupt_copy(torch_artifact, tmp_path / "bad", "features.2.conv")
    code, out, _ = run_cli(["verify", str(bad), "--json", "--per-layer"], capsys)
    rows = {r["block"]: r["sqnr_db"] for r in json.loads(out)["per_layer"]}
    assert code == 1
    # Everything before block 2's Mobile path is untouched; the drift starts there.
    for clean in (
        "stem",
        "block0.mobile",
        "block1.mobile",
        "block1.bridge_out",
        "block2.bridge_in",
        "block2.former",
    ):
        assert rows[clean] == SQNR_CAP_DB, clean
    assert rows["block2.mobile"] < 60.0
    assert rows["head"] < SQNR_CAP_DB
    worst = json.loads(out)["per_layer"][0]
    assert worst["sqnr_db"] == min(v for v in rows.values() if v is not None)


def test_per_layer_clean_artifact_is_exact(torch_artifact, capsys):
    code, out, _ = run_cli(["verify", str(torch_artifact), "--per-layer"], capsys)
    assert code == 0
    assert "block1.former" in out and "PASS" in out


def test_wrong_weights_is_bad_input(torch_artifact, capsys):
    official = FIXTURES / "mobile_former_26m.safetensors"
    code, _, err = run_cli(["verify", str(torch_artifact), "--weights", str(official)], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "not the ones" in err


def test_threshold_override_can_fail_a_good_artifact(torch_artifact, capsys):
    code, out, _ = run_cli(
        ["verify", str(torch_artifact), "--json", "--threshold", "mean_abs=-1"], capsys
    )
    assert code == 1 and json.loads(out)["thresholds"]["mean_abs"] == -1.0


@pytest.mark.parametrize(
    "argv", [["verify", "/nonexistent"], ["verify", ".", "--threshold", "x=1"]]
)
def test_bad_input_exit_2(argv, capsys):
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and "Traceback" not in err


def test_metrics_on_known_drift():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((8, 1000)).astype(np.float32)
    noise = rng.standard_normal(ref.shape).astype(np.float32) * 0.1  # 20 dB below the signal
    m = compare_logits(ref, ref + noise)
    assert 19.0 < m["sqnr_db"] < 21.0
    assert 0.99 < m["cosine"] < 1.0
    assert compare_logits(ref, -ref)["top1_agreement"] == 0.0
    with pytest.raises(MfdeployError):
        parse_overrides(["cosine"])


def test_static_batch_runs_in_padded_chunks():
    from mfdeploy.static_batches import run_static_batches

    seen = []

    def fn(x):
        seen.append(len(x))
        return x.reshape(len(x), -1).sum(axis=1, keepdims=True)

    inputs = np.arange(5 * 3, dtype=np.float32).reshape(5, 3)
    out = run_static_batches(inputs, 2, fn)
    assert seen == [2, 2, 2]  # the last chunk is padded to the static batch
    np.testing.assert_array_equal(out[:, 0], inputs.sum(axis=1))
