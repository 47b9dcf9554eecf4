"""The statistics behind ``finetune eval``: pure Python, no numpy, each checkable by hand.

* ``wilson_interval``: the Wilson score interval of a proportion (better than the
  normal approximation at small n or near 0 / 1, never outside [0, 1]).
* ``mcnemar_exact``: the exact (binomial) McNemar test for two classifiers on the
  same rows; only the discordant rows count.
* ``macro_f1``: F1 per class, averaged; an invalid answer (``None``) is a miss for
  the true class and a false positive for no class.
* ``expected_calibration_error``: ECE with equal-width confidence bins.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Optional, Sequence

Z95 = 1.959963984540054  # two-sided 95 %


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for ``successes`` out of ``n``; (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant rows (1.0 when there are none)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def macro_f1(truth: Sequence[str], predicted: Sequence[Optional[str]]) -> float:
    """Macro-averaged F1 over the classes that occur in ``truth`` or among the valid predictions."""
    classes = sorted(set(truth) | {p for p in predicted if p is not None})
    if not classes:
        return 0.0
    scores = []
    for cls in classes:
        tp = sum(t == cls and p == cls for t, p in zip(truth, predicted))
        fp = sum(t != cls and p == cls for t, p in zip(truth, predicted))
        fn = sum(t == cls and p != cls for t, p in zip(truth, predicted))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return sum(scores) / len(scores)


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = 10
) -> Optional[float]:
    """Σ |bin| / n · |accuracy(bin) − mean confidence(bin)|, bins (i/B, (i+1)/B], 0 in the first."""
    n = len(confidences)
    if n == 0:
        return None
    groups: dict[int, list[tuple[float, bool]]] = {}
    for conf, ok in zip(confidences, correct):
        # 1e-9: 0.7 * 10 is 7.000000000000001 in floats, and 0.7 belongs to (0.6, 0.7]
        index = min(bins - 1, max(0, math.ceil(conf * bins - 1e-9) - 1))
        groups.setdefault(index, []).append((conf, ok))
    total = 0.0
    for members in groups.values():
        mean_conf = sum(c for c, _ in members) / len(members)
        accuracy = sum(ok for _, ok in members) / len(members)
        total += len(members) / n * abs(accuracy - mean_conf)
    return total


def percentile(values: Sequence[float], q: float) -> Optional[float]:
    """Linear-interpolated percentile (numpy's default), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def majority(labels: Sequence[str]) -> tuple[str, int]:
    """The most frequent label and its count; ties go to the alphabetically first label."""
    counts = Counter(labels)
    best = max(sorted(counts), key=lambda label: counts[label])
    return best, counts[best]
