"""Calibration: temperature scaling and the expected calibration error (numpy only).

Temperature scaling (Guo et al. 2017) divides the logits by one number ``T``
fitted to minimise the negative log-likelihood on held-out rows; it changes no
prediction, only how confident they are. ECE bins predictions by their top
probability and averages ``|accuracy - confidence|`` over the bins, weighted by
how many predictions fall in each: 0 means "70 % confident" is right 70 % of
the time.
"""

from __future__ import annotations

import numpy as np

DEFAULT_BINS = 15


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    probs = softmax(np.asarray(logits, dtype=np.float64) / temperature)
    return float(-np.mean(np.log(probs[np.arange(len(labels)), labels] + 1e-12)))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, lo: float = 0.05, hi: float = 20.0) -> float:
    """The ``T`` minimising NLL(logits / T), by golden-section search on log T (NLL is unimodal in T)."""
    labels = np.asarray(labels, dtype=np.int64)
    a, b = np.log(lo), np.log(hi)
    ratio = (np.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    for _ in range(80):
        if nll(logits, labels, np.exp(c)) < nll(logits, labels, np.exp(d)):
            b, d = d, c
            c = b - ratio * (b - a)
        else:
            a, c = c, d
            d = a + ratio * (b - a)
    return float(np.exp((a + b) / 2))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = DEFAULT_BINS) -> float:
    """Top-label ECE with ``bins`` equal-width confidence bins."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return 0.0
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for k in range(bins):
        in_bin = which == k
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> list[dict]:
    """Per-bin counts, mean confidence and accuracy, for a reliability table."""
    probs = np.asarray(probs, dtype=np.float64)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for k in range(bins):
        in_bin = which == k
        if in_bin.any():
            rows.append({
                "bin": f"{edges[k]:.1f}-{edges[k + 1]:.1f}",
                "n": int(in_bin.sum()),
                "confidence": round(float(confidence[in_bin].mean()), 4),
                "accuracy": round(float(correct[in_bin].mean()), 4),
            })
    return rows
