"""Is this image a candlestick price chart at all? A score in [0, 1] and a typed refusal.

The score is built from what the digitizer found, each factor in [0, 1]:

* **count** — a run of evenly spaced candle slots: 0 at 8 bars, 1 from 20;
* **regularity** — slot centres on the fitted grid (rms residual 1 up to 0.06 of the
  spacing, 0 from 0.10), less what whole-pixel centroids add by themselves
  (``PIXEL_JITTER`` px rms, taken off in quadrature): on a chart of under 3 px per
  bar that alone is 0.07 spacings, and such charts were refused;
* **continuity** — each bar opens near where the previous one closed: the median
  gap over the median bar range is 1 up to 0.35, 0 from 0.60. This is what tells
  candles from text, photos and noise, whose "bars" are unrelated blobs;
* **not a bar chart** — the bars do not all end on one baseline;
* **background** — a chart is mostly plain background: 1 from 30 % of the image
  in the background colour, 0 up to 15 % (noise and busy photos have next to none;
  the least among rendered charts is about 40 %).

The product is the score. Measured on rendered charts and offline negatives
(``evaluate_guard``); ``check_is_candlestick_chart`` refuses below a threshold.
"""

from __future__ import annotations

from typing import Optional

from ...errors import NotAChartError
from .digitize import Digitized, digitize

DEFAULT_THRESHOLD = 0.5
PIXEL_JITTER = 0.2  # px rms of candle centroids on an exact grid, from whole pixels, blur and JPEG


def _clip(value: float) -> float:
    return max(0.0, min(1.0, value))


def score_digitized(d: Digitized) -> tuple[float, dict[str, float]]:
    """(score, factors) for one digitizer result."""
    n = len(d.bars)
    if n == 0:
        return 0.0, {"count": 0.0, "regularity": 0.0, "continuity": 0.0, "not_bar_chart": 0.0, "background": 0.0}
    spacing = d.spacing / d.scale if d.scale > 0 else d.spacing  # in the pixels analysed
    jitter = PIXEL_JITTER / spacing if spacing > 0 else 0.0
    residual = max(d.fit_residual**2 - jitter**2, 0.0) ** 0.5
    factors = {
        "count": _clip((n - 8) / 12.0),
        "regularity": _clip((0.10 - residual) / 0.04),
        "continuity": _clip((0.60 - d.continuity) / 0.25),
        "not_bar_chart": _clip((0.9 - d.baseline_share) / 0.3),
        "background": _clip((d.background_share - 0.15) / 0.15),
    }
    score = 1.0
    for value in factors.values():
        score *= value
    return round(score, 4), factors


def guard_score(image: bytes, digitized: Optional[Digitized] = None) -> float:
    """How much ``image`` looks like a candlestick chart, 0 to 1 (see the module docstring)."""
    return score_digitized(digitized if digitized is not None else digitize(image))[0]


def check_is_candlestick_chart(
    image: bytes, threshold: float = DEFAULT_THRESHOLD, digitized: Optional[Digitized] = None
) -> float:
    """Return the guard score, or raise ``NotAChartError`` when it is below ``threshold``."""
    d = digitized if digitized is not None else digitize(image)
    score, factors = score_digitized(d)
    if score < threshold:
        weakest = min(factors, key=factors.get)
        raise NotAChartError(
            f"not a candlestick chart: score {score:.2f} < {threshold:.2f} "
            f"({len(d.bars)} candle-like bar(s), weakest sign: {weakest} {factors[weakest]:.2f}): "
            "pass a candlestick chart image, or lower the guard threshold if this one is"
        )
    return score
