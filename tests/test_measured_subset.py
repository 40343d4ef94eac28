"""measured_subset's search and FileScores' files, on stand-in files (no converter)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mfdeploy.export.measured_subset import FileScores, measured_subset

PHOTOS = np.zeros((4, 1), np.float32)
REFERENCE = np.array([[1.0, -2.0, 3.0]], np.float32)
#: how far each candidate moves the logits when it joins (SQNR alone: a 40 dB, b 28 dB,
#: c 16 dB; a + b 26 dB)
ERROR = {"a": 0.0216, "b": 0.0861, "c": 0.343}


def _logits(path: Path, photos: np.ndarray) -> np.ndarray:
    chosen = json.loads(path.read_text()) if path.name != "fp32" else []
    return np.repeat(REFERENCE + sum(ERROR[name] for name in chosen), len(photos), axis=0)


class _Builds:
    """A `build` writing the chosen names as the file; records every call."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, chosen, path: Path) -> str:
        self.calls.append(list(chosen))
        path.write_text(json.dumps(list(chosen)))
        return f"made {','.join(chosen)}"


def _scores(tmp_path: Path, builds: _Builds, keep_at_db: float | None) -> FileScores:
    (tmp_path / "fp32").write_text("[]")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return FileScores(tmp_path / "fp32", PHOTOS, _logits, builds, scratch, ".x", keep_at_db)


def test_the_cheapest_candidates_that_keep_the_target_join_and_their_file_is_not_built_again(
    tmp_path,
):
    builds = _Builds()
    scores = _scores(tmp_path, builds, keep_at_db=24.0)
    kept, reached = measured_subset(["c", "b", "a"], scores, 24.0, "int8-weights", "test ops")
    assert kept == ["a", "b"] and 24.0 <= reached < 27.0
    out = tmp_path / "chosen.x"
    assert scores.write(kept, out) == "made a,b"  # what build returned for the kept file
    assert json.loads(out.read_text()) == ["a", "b"]
    assert builds.calls[-1] == ["a", "b"]  # written from the search's file, not built again
    assert scores.built == len(builds.calls)
    assert not list((tmp_path / "scratch").iterdir())  # every candidate file removed


def test_a_set_no_scored_file_has_is_built_when_written(tmp_path):
    builds = _Builds()
    scores = _scores(tmp_path, builds, keep_at_db=24.0)
    assert scores(["a"]) > 24.0 and scores(["c"]) < 24.0
    out = tmp_path / "chosen.x"
    scores.write(["c"], out)  # the kept file is a's
    assert builds.calls[-1] == ["c"] and json.loads(out.read_text()) == ["c"]
    assert not list((tmp_path / "scratch").iterdir())


def test_without_a_keep_bound_no_file_outlives_its_score(tmp_path):
    builds = _Builds()
    scores = _scores(tmp_path, builds, keep_at_db=None)
    kept, _ = measured_subset(["a", "b"], scores, 20.0, "int8-weights", "test ops")
    assert kept == ["a", "b"] and not list((tmp_path / "scratch").iterdir())
    scores.write(kept, tmp_path / "chosen.x")
    assert builds.calls == [["a", "b"], ["a", "b"]]
