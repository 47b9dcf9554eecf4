"""Check a vision model's ChartSignal against what the reader recovered from the same chart.

``ground_vlm_signal`` lists disagreements, one short sentence each:

* a level (entry, stop, target) outside the chart's visible price range (with a
  2 % margin), when the axis was read;
* an entry far from the last close (more than 3 ATR), when the axis was read;
* a stop or target on the wrong side of the entry for the action;
* a named candlestick pattern that TA-Lib does not find on the recovered bars
  (looking back ``lookback`` bars; only patterns the builtin scan knows are checked);
* a trend opposite to the one the recovered prices show.

``grounded_confidence`` lowers the model's confidence by ``penalty`` per
disagreement (never below 0). The caller records both in the decision's meta.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ...schemas import ChartSignal

_MARGIN = 0.02
_MAX_ATR_FROM_CLOSE = 3.0


def _known_patterns() -> set[str]:
    from ..analysis import _DIRECTIONAL, _NEUTRAL

    names = {n for pair in _DIRECTIONAL.values() for n in pair if n} | set(_NEUTRAL.values())
    return {n.lower() for n in names}


def ground_vlm_signal(signal: ChartSignal, reading: Any, lookback: int = 5) -> list[str]:
    """Disagreements between ``signal`` (from a vision model) and ``reading`` (a ``ChartReading``)."""
    notes: list[str] = []
    notes += _sides(signal)
    if reading.prices is not None and len(reading.prices):
        notes += _levels(signal, reading)
    notes += _patterns(signal, reading, lookback)
    if reading.signal is not None and {signal.trend, reading.signal.trend} == {"uptrend", "downtrend"}:
        notes.append(f"trend {signal.trend} but the chart's prices show a {reading.signal.trend}")
    return notes


def grounded_confidence(signal: ChartSignal, notes: list[str], penalty: float = 0.15) -> float:
    """The model's confidence lowered by ``penalty`` per disagreement."""
    return round(max(0.0, signal.confidence - penalty * len(notes)), 3)


def _sides(signal: ChartSignal) -> list[str]:
    entry, stop, target = signal.entry_price, signal.stop_loss, signal.take_profit
    if entry is None or signal.action == "HOLD":
        return []
    notes = []
    below, above = (stop, target) if signal.action == "BUY" else (target, stop)
    if below is not None and below >= entry:
        notes.append(f"{'stop' if signal.action == 'BUY' else 'target'} {below:g} is not below the entry {entry:g}")
    if above is not None and above <= entry:
        notes.append(f"{'target' if signal.action == 'BUY' else 'stop'} {above:g} is not above the entry {entry:g}")
    return notes


def _levels(signal: ChartSignal, reading: Any) -> list[str]:
    d = reading.digitized
    edges = reading.axis.price(np.array([d.panel.top, d.panel.bottom]) * d.scale)
    low, high = float(min(edges)), float(max(edges))
    span = high - low
    notes = []
    for name, value in (("entry", signal.entry_price), ("stop", signal.stop_loss), ("target", signal.take_profit)):
        if value is not None and not (low - _MARGIN * span <= value <= high + _MARGIN * span):
            notes.append(f"{name} {value:g} is outside the chart's visible prices {low:.4g}-{high:.4g}")
    close = float(reading.prices[-1, 3])
    atr = _atr(reading.prices)
    if signal.entry_price is not None and atr > 0 and abs(signal.entry_price - close) > _MAX_ATR_FROM_CLOSE * atr:
        notes.append(f"entry {signal.entry_price:g} is {abs(signal.entry_price - close) / atr:.1f} ATR from "
                     f"the last close {close:.4g}")
    return notes


def _atr(prices: np.ndarray, period: int = 14) -> float:
    high, low, close = prices[:, 1], prices[:, 2], prices[:, 3]
    prev = np.r_[close[0], close[:-1]]
    true_range = np.maximum(high - low, np.maximum(np.abs(high - prev), np.abs(low - prev)))
    return float(np.mean(true_range[-period:]))


def _patterns(signal: ChartSignal, reading: Any, lookback: int) -> list[str]:
    if not signal.patterns or len(reading.bars) < 3:
        return []
    from ..analysis import detect_patterns
    from .read import _frame

    values = reading.prices if reading.prices is not None else reading.relative
    seen = {name.lower() for name, _ in detect_patterns(_frame(values), lookback)}
    known = _known_patterns()
    missing = [p for p in signal.patterns if p.lower() in known and p.lower() not in seen]
    return [f"pattern '{p}' is not on the last {lookback} bars of the chart" for p in missing]


def check(signal: ChartSignal, reading: Optional[Any]) -> tuple[list[str], float]:
    """(disagreements, grounded confidence); no reading (chart not digitized) means no checks."""
    if reading is None or len(reading.bars) < 2:
        return [], signal.confidence
    notes = ground_vlm_signal(signal, reading)
    return notes, grounded_confidence(signal, notes)
