"""int8 exports checked on their own runtime (harness/int8_check.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mfdeploy.artifact import Manifest
from mfdeploy.export.int8_sensitivity import held_out_split
from mfdeploy.harness.int8_check import checked, export_checked
from mfdeploy.harness.verify import reference_model
from mfdeploy.metrics import sqnr_db
from mfdeploy.photos import resolve_images
from mfdeploy.preprocessing import Preprocessing, preprocess_batch
from mfdeploy.runtimes import open_runtime
from tests.conftest import WEIGHTS_26M
from tests.harness_helpers import run_cli


def test_only_measured_int8_is_checked():
    assert checked("onnx", "int8", {})
    assert checked("tflite", "int8", {"int8_float": "auto"})
    assert not checked("onnx", "int8", {"int8_float": "none"})  # the user chose the set
    assert not checked("onnx", "int8", {"int8_float": "blocks.0"})
    assert not checked("onnx", "int8-dynamic", {})  # no calibration, no float set
    assert not checked("onnx", "fp16", {})


@pytest.mark.slow
def test_int8_below_bound_is_exported_again_with_more_float(tmp_path):
    """An unreachable bound: the first artifact misses it, the second keeps every candidate
    float (nothing more to raise) and is kept, both checks recorded; the figure recorded is
    the artifact's own SQNR on the held-out calibration photos, computed here apart."""
    out = tmp_path / "artifact"
    out_dir, manifest = export_checked(
        "onnx", "26m", precision="int8", weights=str(WEIGHTS_26M), out=out, bound_db=150.0
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact"]  # no staging left
    check = manifest.extra["int8_plan"]["runtime_check"]
    exports = check["exports"]
    assert len(exports) == 2 and check["passed"] is False and check["bound_db"] == 150.0
    assert exports[1]["simulated_target_db"] > exports[0]["simulated_target_db"]
    candidates = manifest.extra["int8_plan"]["candidates"]
    assert exports[0]["float_modules"] < exports[1]["float_modules"] == len(candidates)
    # the sealed manifest on disk is the one returned (re-sealed after the check)
    assert Manifest.load(out_dir).extra["int8_plan"]["runtime_check"] == check

    runtime = open_runtime(out_dir)
    prep = Preprocessing.from_dict(runtime.manifest.preprocessing)
    photos = preprocess_batch(resolve_images(None, "calibration", 32), prep).astype(np.float32)
    held_out = held_out_split(photos)[1]
    assert len(held_out) == check["held_out_photos"]
    with torch.no_grad():
        expected = reference_model(runtime.manifest, out_dir, WEIGHTS_26M)(
            torch.from_numpy(held_out)
        ).numpy()
    got = sqnr_db(expected, runtime.run(held_out))
    assert abs(got - exports[1]["sqnr_db"]) < 0.01


def test_int8_check_result_is_in_the_cli_export(tmp_path, capsys):
    out = tmp_path / "a"
    code, _, err = run_cli(
        ["export", "--target", "onnx", "--variant", "26m", "--weights", str(WEIGHTS_26M),
         "--precision", "int8", "--out", str(out)],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    check = Manifest.load(Path(out)).extra["int8_plan"]["runtime_check"]
    assert check["runtime"] == "onnxruntime" and check["held_out_photos"] == 8
    assert check["bound_db"] == 20.0 and len(check["exports"]) >= 1
    assert "int8 check:" in err


def test_the_next_target_starts_from_what_the_short_artifact_was_simulated_at():
    from mfdeploy.harness.int8_check import STEP_DB, raised_target

    # searched for 22.0 dB, planned at 22.8, measured 0.4 dB short on the runtime
    assert raised_target(22.0, 22.8, 0.4) == pytest.approx(22.8 + 0.4 + STEP_DB)
    # a plan that missed its target (every candidate tried) still raises the target
    assert raised_target(22.0, 21.0, 0.4) == pytest.approx(22.0 + 0.4 + STEP_DB)
    assert raised_target(22.0, None, 1.0) == pytest.approx(22.0 + 1.0 + STEP_DB)
