"""read_chart: a candlestick image -> pixel candles -> prices (when the axis is known) -> ChartSignal.

Price levels are never invented. With an ``AxisMapping`` (pixel row -> price) the
recovered bars are real prices and ``analyze_ohlc`` gives the same signal as CSV
input. Without one the bars stay in *relative units* (0 at the panel's bottom, 100
at its top, shifted by +100 so TA-Lib sees positive prices): trend, RSI and
candlestick patterns are scale-free and are reported, but the signal is HOLD with
no levels, and its reasoning says which way the numbers lean.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pandas as pd

from ...config import BuiltinConfig
from ...errors import PriceDataError
from ...schemas import ChartSignal, Indicators
from .axis import AxisMapping, AxisResult, Recognizer, read_axis
from .digitize import Digitized, PixelBar, decode_rgb, digitize_rgb
from .guard import DEFAULT_THRESHOLD, score_digitized

_RELATIVE_OFFSET = 100.0


@dataclass
class ChartReading:
    """What was read from one chart image."""

    bars: list[PixelBar]
    prices: Optional[np.ndarray]  # (n, 4) open/high/low/close, real prices or None
    relative: np.ndarray  # (n, 4) in relative units (see the module docstring)
    axis: Optional[AxisMapping]
    axis_reason: Optional[str]
    guard_score: float
    guard_factors: dict[str, float]
    patterns: list[str] = field(default_factory=list)
    signal: Optional[ChartSignal] = None
    warnings: list[str] = field(default_factory=list)
    digitized: Optional[Digitized] = None
    axis_labels: tuple = ()

    def to_ohlc_frame(self) -> pd.DataFrame:
        """The OHLC contract frame of the real prices (synthetic consecutive business days).

        Raises ``PriceDataError`` when the price axis was not read.
        """
        if self.prices is None:
            raise PriceDataError(
                f"the chart's price axis was not read ({self.axis_reason}): only relative units are known"
            )
        return _frame(self.prices)

    def to_dict(self) -> dict:
        return {
            "bars": len(self.bars),
            "axis": None if self.axis is None else vars(self.axis),
            "axis_labels": [vars(label) for label in self.axis_labels],
            "axis_reason": self.axis_reason,
            "units": "price" if self.prices is not None else "relative",
            "ohlc": (self.prices if self.prices is not None else self.relative).round(6).tolist(),
            "pixel_ohlc": [[b.open, b.high, b.low, b.close] for b in self.bars],
            "guard_score": self.guard_score,
            "guard_factors": self.guard_factors,
            "patterns": self.patterns,
            "signal": None if self.signal is None else self.signal.model_dump(),
            "warnings": self.warnings,
        }


def _frame(values: np.ndarray) -> pd.DataFrame:
    index = pd.bdate_range("2000-01-03", periods=len(values), name="date").as_unit("ns")
    o, h, l, c = (values[:, i] for i in range(4))
    frame = pd.DataFrame(
        {"open": o, "high": np.maximum.reduce([h, o, c]), "low": np.minimum.reduce([l, o, c]),
         "close": c, "volume": np.zeros(len(values))},
        index=index,
    )
    return frame.astype(float)


def read_chart(
    image: bytes,
    *,
    ocr: bool = True,
    axis: Optional[AxisMapping] = None,
    cfg: Optional[BuiltinConfig] = None,
    max_pixels: int = 40_000_000,
    recognizer: Optional[Recognizer] = None,
    guard_threshold: float = DEFAULT_THRESHOLD,
) -> ChartReading:
    """Read a candlestick chart image; see the module docstring.

    The price axis is read with OCR when ``ocr`` is true and no ``axis`` mapping
    (pixel row -> price) is given; without a mapping levels are ``None``. Prices
    are also withheld when the guard score is below ``guard_threshold``: what was
    read may be a volume panel or something else, and its labels not prices. Raises
    ``ImageError`` for unreadable images; a chart with too few bars for the
    indicators gives a reading whose ``signal`` is None and says so in ``warnings``.
    """
    cfg = cfg or BuiltinConfig()
    rgb, scale = decode_rgb(image, max_pixels)
    d = digitize_rgb(rgb, scale)
    score, factors = score_digitized(d)
    rows = np.array([[b.open, b.high, b.low, b.close] for b in d.bars], dtype=float).reshape(-1, 4)
    top, height = d.panel.top * d.scale, max(1.0, d.panel.height * d.scale)
    relative = _RELATIVE_OFFSET + (top + height - rows) / height * 100.0
    found = _axis(rgb, d, ocr, axis, recognizer)
    if found.mapping is not None and axis is None and score < guard_threshold:
        found = AxisResult(None, f"axis not used: the bars read do not look enough like candles "
                                 f"(guard score {score:.2f} < {guard_threshold:.2f})", found.labels, found.side)
    prices, reason = None, found.reason
    if found.mapping is not None and rows.size:
        prices = found.mapping.price(rows)
        if not np.isfinite(prices).all() or (prices <= 0).any():
            prices, reason = None, "the axis mapping gives non-positive prices"
    reading = ChartReading(d.bars, prices, relative, found.mapping if prices is not None else None, reason,
                           score, factors, warnings=list(d.warnings), digitized=d, axis_labels=found.labels)
    _analyse(reading, cfg)
    return reading


def _axis(rgb: np.ndarray, d: Digitized, ocr: bool, axis: Optional[AxisMapping],
          recognizer: Optional[Recognizer]) -> AxisResult:
    if axis is not None:
        return AxisResult(axis, None)
    if not ocr:
        return AxisResult(None, "price-axis OCR is off")
    if len(d.bars) < 2:
        return AxisResult(None, "no candles, so no axis to read")
    if d.scale != 1.0:
        return AxisResult(None, "the image was downscaled to be read: its axis labels are not read")
    w = rgb.shape[1]
    p, half = d.panel, d.spacing
    right = p.right if p.right < w - 5 else int(d.bars[-1].x + half)
    left = p.left if p.left > 5 else int(d.bars[0].x - half)
    return read_axis(rgb, (p.top, p.bottom, left, right), recognizer)


def _analyse(reading: ChartReading, cfg: BuiltinConfig) -> None:
    from ..analysis import analyze_ohlc, detect_patterns

    if len(reading.bars) < 2:
        reading.warnings.append("no candles were read: nothing to analyse")
        return
    frame = _frame(reading.prices if reading.prices is not None else reading.relative)
    try:
        signal = analyze_ohlc(frame, cfg)
    except PriceDataError as exc:  # too few bars for the indicators: the patterns are still read
        reading.patterns = [name for name, _ in detect_patterns(frame, cfg.pattern_lookback)]
        reading.warnings.append(f"no signal: {exc}")
        return
    reading.patterns = list(signal.patterns)  # the same scan as ``detect_patterns``, done once
    reading.signal = signal if reading.prices is not None else _without_levels(signal)


def _without_levels(signal: ChartSignal) -> ChartSignal:
    """HOLD with no levels: the axis was not read, so no price may be quoted."""
    lean = {"BUY": "bullish", "SELL": "bearish"}.get(signal.action, "neutral")
    note = f"Price axis not read: levels withheld (relative units lean {lean}). "
    return ChartSignal(
        action="HOLD",
        confidence=0.0 if signal.action != "HOLD" else signal.confidence,
        trend=signal.trend,
        patterns=signal.patterns,
        reasoning=(note + signal.reasoning)[:800],
        indicators=Indicators(rsi=signal.indicators.rsi if signal.indicators else None),
    )
