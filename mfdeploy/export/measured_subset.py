"""Which of some optional quantised ops join a file, measured: the rule both run-time-scale
precisions use (LiteRT int8-weights' wide GEMMs, ONNX int8-dynamic's pointwise convolutions).

Rule: all candidates join if the file with all of them keeps `target_db` against fp32 on the
scored photos; otherwise each is scored alone, and they join cheapest in accuracy first, as
many as keep the target (a binary search on how many, so a file is built per step rather
than per candidate). Which ones hold depends on the weights, so it is measured, not listed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from mfdeploy.console import info, progress
from mfdeploy.export.int8_sensitivity import DEFAULT_TARGET_SQNR as INT8_TARGET_SQNR
from mfdeploy.metrics import default_thresholds

#: photos the choice is measured on, evenly spread over the calibration photos given
SCORED_PHOTOS = 8

#: (candidates that join) -> the file's logits SQNR against fp32, in dB
Score = Callable[[Sequence[str]], float]


def spread(photos: np.ndarray, count: int = SCORED_PHOTOS) -> np.ndarray:
    """Up to `count` photos evenly spread over `photos` (they come grouped by source)."""
    index = np.unique(np.linspace(0, len(photos) - 1, min(len(photos), count)).round())
    return photos[index.astype(np.int64)]


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


__all__ = ["SCORED_PHOTOS", "Score", "default_target", "measured_subset", "spread"]
