"""Parity metrics between reference and candidate logits, and the default pass thresholds.

Why these: max/mean abs catch fp32 conversion bugs; cosine and SQNR measure the drift of
reduced precision independent of logit scale; top-1 / top-5 say whether predictions survive.
"""

from __future__ import annotations

import math

import numpy as np

from mfdeploy.errors import MfdeployError

SQNR_CAP_DB = 200.0  # identical tensors would be +inf; capped so JSON stays a number

# Metrics where smaller is better; every other metric must be >= its threshold.
LOWER_IS_BETTER = ("max_abs", "mean_abs")
METRICS = ("max_abs", "mean_abs", "cosine", "sqnr_db", "top1_agreement", "top5_overlap")

# Default verdicts per precision (against the fp32 PyTorch reference). The fp32 bound is the
# project's fp32 parity bound; fp16 / int8 follow the target issues (ONNX / LiteRT / Core ML).
DEFAULT_THRESHOLDS: dict[str, dict[str, float]] = {
    "fp32": {"max_abs": 1e-4, "cosine": 0.99999, "top1_agreement": 1.0},
    "fp16": {"cosine": 0.999, "sqnr_db": 30.0, "top1_agreement": 0.9},
    "int8-weights": {"cosine": 0.995, "sqnr_db": 20.0},
    "int8": {"cosine": 0.98, "sqnr_db": 18.0},
}
# LiteRT's int8-weights is dynamic-range quantisation: activations are quantised at run
# time too (unlike Core ML's weight-only int8), so it is held to the int8 bounds, as ONNX's
# int8-dynamic is.
TARGET_OVERRIDES: dict[tuple[str, str], dict[str, float]] = {
    ("tflite", "int8-weights"): {"cosine": 0.98, "sqnr_db": 18.0},
}
FALLBACK_PRECISION = "int8"  # unknown precisions (e.g. a new mixed recipe) get the loosest set


def sqnr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Signal-to-quantisation-noise ratio: 10 log10(|ref|^2 / |ref - cand|^2)."""
    ref = reference.astype(np.float64)
    signal = float(np.sum(ref**2))
    noise = float(np.sum((ref - candidate.astype(np.float64)) ** 2))
    if noise <= signal * 10 ** (-SQNR_CAP_DB / 10):
        return SQNR_CAP_DB
    if signal == 0.0:
        return -SQNR_CAP_DB
    return float(10.0 * np.log10(signal / noise))


def max_abs(reference: np.ndarray, candidate: np.ndarray) -> float:
    return float(np.abs(reference.astype(np.float64) - candidate.astype(np.float64)).max())


def top1_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Fraction of rows whose arg-max class is the same."""
    return float(np.mean(reference.argmax(axis=1) == candidate.argmax(axis=1)))


def cosine(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Mean per-sample cosine similarity of the flattened rows."""
    ref = reference.reshape(len(reference), -1).astype(np.float64)
    cand = candidate.reshape(len(candidate), -1).astype(np.float64)
    denom = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    sims = np.where(denom > 0, np.sum(ref * cand, axis=1) / np.maximum(denom, 1e-300), 0.0)
    return float(np.mean(sims))


def compare_logits(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """All parity metrics for a (N, classes) pair of logits."""
    if reference.shape != candidate.shape:
        raise MfdeployError(
            f"output shape {tuple(candidate.shape)} differs from the reference "
            f"{tuple(reference.shape)}"
        )
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    k = min(5, reference.shape[1])
    top_ref = np.argsort(-reference, axis=1, kind="stable")[:, :k]
    top_cand = np.argsort(-candidate, axis=1, kind="stable")[:, :k]
    overlap = [len(set(a) & set(b)) / k for a, b in zip(top_ref, top_cand)]
    return {
        "max_abs": float(diff.max()),
        "mean_abs": float(diff.mean()),
        "cosine": cosine(reference, candidate),
        "sqnr_db": sqnr_db(reference, candidate),
        "top1_agreement": float(np.mean(top_ref[:, 0] == top_cand[:, 0])),
        "top5_overlap": float(np.mean(overlap)),
    }


def default_thresholds(precision: str, target: str | None = None) -> dict[str, float]:
    base = DEFAULT_THRESHOLDS.get(precision, DEFAULT_THRESHOLDS[FALLBACK_PRECISION])
    return base | TARGET_OVERRIDES.get((target or "", precision), {})


def parse_overrides(items: list[str] | None) -> dict[str, float]:
    """`name=value` strings from the command line -> thresholds."""
    out: dict[str, float] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or name not in METRICS:
            raise MfdeployError(
                f"bad threshold {item!r}: use name=value with name in {', '.join(METRICS)}"
            )
        try:
            out[name] = float(value)
        except ValueError:
            raise MfdeployError(f"bad threshold {item!r}: {value!r} is not a number") from None
        if not math.isfinite(out[name]):  # nan compares false: every check would fail (exit 1)
            raise MfdeployError(f"bad threshold {item!r}: must be a finite number")
    return out


def failures(metrics: dict[str, float], thresholds: dict[str, float]) -> list[str]:
    """Human-readable list of the thresholds that fail (empty means pass)."""
    failed = []
    for name, bound in thresholds.items():
        value = metrics[name]
        ok = value <= bound if name in LOWER_IS_BETTER else value >= bound
        if not ok:
            op = "<=" if name in LOWER_IS_BETTER else ">="
            failed.append(f"{name}={value:.6g} (needs {op} {bound:g})")
    return failed


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax of one logit vector, in the logits' dtype (float32 for model outputs)."""
    probs = np.exp(logits - logits.max())
    return probs / probs.sum()


def top_k(logits: np.ndarray, k: int) -> list[tuple[int, float]]:
    """(class index, softmax probability) of the k best classes, best first (ties: lower index)."""
    probs = softmax(logits)
    order = np.argsort(-probs, kind="stable")[:k]
    return [(int(i), float(probs[i])) for i in order]
