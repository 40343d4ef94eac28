"""Which of some optional quantised ops join a file, measured: the rule both run-time-scale
precisions use (LiteRT int8-weights' wide GEMMs, ONNX int8-dynamic's pointwise convolutions).

Rule: all candidates join if the file with all of them keeps `target_db` against fp32 on the
scored photos; otherwise each is scored alone, and they join cheapest in accuracy first, as
many as keep the target (a binary search on how many, so a file is built per step rather
than per candidate). Which ones hold depends on the weights, so it is measured, not listed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from mfdeploy.console import info, progress
from mfdeploy.export.int8_sensitivity import DEFAULT_TARGET_SQNR as INT8_TARGET_SQNR
from mfdeploy.metrics import default_thresholds, sqnr_db

#: photos the choice is measured on, evenly spread over the calibration photos given
SCORED_PHOTOS = 8

#: (candidates that join) -> the file's logits SQNR against fp32, in dB
Score = Callable[[Sequence[str]], float]


def spread(photos: np.ndarray, count: int = SCORED_PHOTOS) -> np.ndarray:
    """Up to `count` photos evenly spread over `photos` (they come grouped by source)."""
    index = np.unique(np.linspace(0, len(photos) - 1, min(len(photos), count)).round())
    return photos[index.astype(np.int64)]


class FileScores:
    """A `Score` on files: each call `build`s the file with the chosen candidates into
    `scratch`, scores its logits (`logits(path, photos)`) against the fp32 file's, and removes
    it, except the latest file that scored `keep_at_db` or more, which `write` hands on when
    it is asked for those candidates: the search returns a set whose file it has just built
    and scored, and a quantisation pass is seconds on a large model. `built` counts the
    files."""

    def __init__(
        self,
        fp32_path: Path,
        photos: np.ndarray,
        logits: Callable[[Path, np.ndarray], np.ndarray],
        build: Callable[[Sequence[str], Path], object],
        scratch: Path,
        suffix: str,
        keep_at_db: float | None = None,
    ) -> None:
        self.photos, self.logits, self.build = photos, logits, build
        self.scratch, self.suffix, self.keep_at_db = scratch, suffix, keep_at_db
        self.reference = logits(fp32_path, photos)
        self.built = 0
        self._kept: tuple[tuple[str, ...], Path, object] | None = None  # (chosen, file, build's)

    def __call__(self, chosen: Sequence[str]) -> float:
        path = self.scratch / f"candidate-{self.built}{self.suffix}"
        self.built += 1
        made = self.build(chosen, path)
        try:
            sqnr = sqnr_db(self.reference, self.logits(path, self.photos))
        except BaseException:
            path.unlink()
            raise
        if self.keep_at_db is not None and sqnr >= self.keep_at_db:
            self.discard()
            self._kept = (tuple(chosen), path, made)
        else:
            path.unlink()
        return sqnr

    def write(self, chosen: Sequence[str], out_path: Path) -> object:
        """The file with `chosen` at `out_path` (the kept one if it has exactly these, else
        built now); returns what `build` returned for it."""
        if self._kept is not None and self._kept[0] == tuple(chosen):
            _, path, made = self._kept
            self._kept = None
            path.replace(out_path)
            return made
        self.discard()
        return self.build(chosen, out_path)

    def discard(self) -> None:
        """Remove the kept file, if any."""
        if self._kept is not None:
            self._kept[1].unlink(missing_ok=True)
            self._kept = None


@dataclass
class MeasuredChoice:
    """What `measured_subset` chose, for the manifest and the export log."""

    kind: str  # the candidates and their rule, for the log: "wide GEMMs (K >= 32, N >= 48)"
    candidates: int
    kept: int
    sqnr_db: float | None  # the chosen file's logits against the fp32 file's (None: none)
    target_db: float
    photos: int
    files_built: int

    def to_dict(self) -> dict:
        # the counts: not the log's wording, nor what a subclass adds
        record = {f.name: getattr(self, f.name) for f in fields(MeasuredChoice) if f.name != "kind"}
        if self.sqnr_db is not None:
            record["sqnr_db"] = round(self.sqnr_db, 2)
        return record

    def describe(self) -> str:
        if not self.candidates:
            return f"no {self.kind} to measure"
        held = f"{self.sqnr_db:.1f} dB" if self.sqnr_db is not None else "-"
        return (
            f"{self.kept} of {self.candidates} {self.kind} measured to keep {held} >= "
            f"{self.target_db:g} dB against fp32 on {self.photos} calibration photos"
        )


def default_target(precision: str, target: str) -> float:
    """The SQNR a precision's choice keeps by default: its verify bound plus the margin the
    int8 search keeps over int8's."""
    bound = default_thresholds(precision, target)["sqnr_db"]
    return bound + INT8_TARGET_SQNR - default_thresholds("int8", target)["sqnr_db"]


def measured_subset(
    candidates: Sequence[str], score: Score, target_db: float, precision: str, kind: str
) -> tuple[list[str], float]:
    """(the candidates that join, the SQNR of the file with them) by the module's rule;
    `precision` and `kind` ("int8-weights", "wide GEMMs") name them in the log."""
    every = score(list(candidates))
    if every >= target_db:
        return list(candidates), every
    info(
        f"{precision}: the {len(candidates)} {kind} all quantised keep {every:.1f} dB < "
        f"{target_db:g} dB; measuring each"
    )
    alone = {name: score([name]) for name in progress(list(candidates), kind)}
    order = sorted(candidates, key=lambda name: -alone[name])  # cheapest in accuracy first
    fits, fails, reached = 0, len(order), None  # order[:fits] holds (assumed for 0)
    while fails - fits > 1:
        middle = (fits + fails) // 2
        sqnr = score(order[:middle])
        if sqnr >= target_db:
            fits, reached = middle, sqnr
        else:
            fails = middle
    if reached is None:
        reached = score([])
    return order[:fits], reached


__all__ = [
    "SCORED_PHOTOS",
    "FileScores",
    "MeasuredChoice",
    "Score",
    "default_target",
    "measured_subset",
    "spread",
]
