"""How close a candidate's logits are to the reference's (parity metrics and thresholds)."""

from __future__ import annotations

import numpy as np


def _as64(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def max_abs(reference: np.ndarray, candidate: np.ndarray) -> float:
    return float(np.abs(_as64(reference) - _as64(candidate)).max())


def mean_abs(reference: np.ndarray, candidate: np.ndarray) -> float:
    return float(np.abs(_as64(reference) - _as64(candidate)).mean())


def cosine(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Mean over rows of the cosine similarity of each logit vector."""
    r, c = (
        _as64(reference).reshape(len(reference), -1),
        _as64(candidate).reshape(len(candidate), -1),
    )
    num = (r * c).sum(axis=1)
    den = np.linalg.norm(r, axis=1) * np.linalg.norm(c, axis=1)
    return float(np.mean(num / np.maximum(den, 1e-30)))


def sqnr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Signal-to-quantisation-noise ratio: 10 log10(|ref|^2 / |ref - cand|^2)."""
    r, c = _as64(reference), _as64(candidate)
    noise = float(((r - c) ** 2).sum())
    signal = float((r**2).sum())
    return float("inf") if noise == 0.0 else 10.0 * np.log10(signal / noise)


def top1_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    return float(np.mean(reference.argmax(axis=1) == candidate.argmax(axis=1)))


def top5_overlap(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Mean fraction of the reference's top-5 classes also in the candidate's top-5."""
    ref5 = np.argsort(-reference, axis=1)[:, :5]
    cand5 = np.argsort(-candidate, axis=1)[:, :5]
    return float(np.mean([len(set(a) & set(b)) / 5.0 for a, b in zip(ref5, cand5)]))


def parity_metrics(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    return {
        "max_abs": max_abs(reference, candidate),
        "mean_abs": mean_abs(reference, candidate),
        "cosine": cosine(reference, candidate),
        "sqnr_db": sqnr_db(reference, candidate),
        "top1_agreement": top1_agreement(reference, candidate),
        "top5_overlap": top5_overlap(reference, candidate),
    }


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax of one logit vector, in the logits' dtype (float32 for model outputs)."""
    probs = np.exp(logits - logits.max())
    return probs / probs.sum()


def top_k(logits: np.ndarray, k: int) -> list[tuple[int, float]]:
    """(class index, softmax probability) of the k best classes, best first (ties: lower index)."""
    probs = softmax(logits)
    order = np.argsort(-probs, kind="stable")[:k]
    return [(int(i), float(probs[i])) for i in order]
