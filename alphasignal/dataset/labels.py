"""Labels of a window: what the chart shows (TA-Lib, bars up to the window's end) and the target.

* **Observed** (only bars up to and including the window's last bar): the trend
  over the window, indicator readings and states, and the candlestick patterns
  on the last ``pattern_lookback`` bars -- all from ``chart.analysis`` (TA-Lib).
  Inside and outside bars, which TA-Lib has no function for, come from the
  highs and lows.
* **Target** (the only thing that looks ahead): the close ``horizon`` bars
  later against the last close, in ATRs. BUY when it rose at least
  ``threshold_atr`` ATRs, SELL when it fell that much, else HOLD. Entry is the
  last close; stop and target are ``atr_stop_mult`` / ``atr_target_mult`` ATRs
  away. Confidence is the margin: 0.5 at the threshold rising to 1.0 at twice
  it (BUY/SELL), 1.0 for no move falling to 0.5 at the threshold (HOLD).

The target is a ``ChartSignal``; its reasoning names only observed facts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Optional

import numpy as np
import pandas as pd
import talib
from pydantic import ValidationError

from ..chart.analysis import analyze_ohlc, detect_patterns, required_bars
from ..config import BuiltinConfig, DatasetConfig
from ..schemas import Action, ChartSignal
from .windows import Series, Window

HISTORY_BARS = 250  # indicator history before the window's end: EMA-based readings settle well within it
BB_PERIOD, BB_DEV, VOLUME_AVG = 20, 2.0, 20
MAX_PATTERNS = 12


@dataclass(frozen=True)
class SeriesIndicators:
    """Causal indicators over a whole series (value at bar i uses bars <= i only)."""

    bb_upper: np.ndarray
    bb_middle: np.ndarray
    bb_lower: np.ndarray
    volume_avg: np.ndarray

    @classmethod
    def of(cls, series: Series) -> "SeriesIndicators":
        close = series.frame["close"].to_numpy(np.float64)
        upper, middle, lower = talib.BBANDS(close, BB_PERIOD, BB_DEV, BB_DEV)
        volume = series.frame["volume"].to_numpy(np.float64)
        return cls(upper, middle, lower, talib.SMA(volume, VOLUME_AVG))


@dataclass(frozen=True)
class Labels:
    """Everything known about one window: the target and what it was derived from."""

    target: ChartSignal
    patterns: tuple[tuple[str, int], ...]
    states: dict[str, str]
    readings: dict[str, Optional[float]]
    forward_return: float  # (close[end + horizon] / close[end]) - 1
    forward_atr: float  # the same move in ATRs

    @property
    def action(self) -> Action:
        return self.target.action


@lru_cache(maxsize=64)
def analysis_config(length: int, cfg: DatasetConfig) -> BuiltinConfig:
    """The builtin analysis with its trend measured over the window (``sma_slow`` = window length)."""
    return BuiltinConfig(
        sma_fast=min(20, length // 2),
        sma_slow=length,
        atr_period=cfg.atr_period,
        pattern_lookback=cfg.pattern_lookback,
        atr_stop_mult=cfg.atr_stop_mult,
        atr_target_mult=cfg.atr_target_mult,
    )


def warmup_bars(cfg: DatasetConfig) -> int:
    """History the labels need before a window's end (the analysis' warm-up)."""
    return max(required_bars(analysis_config(w, cfg)) for w in cfg.windows)


def label_window(win: Window, ind: SeriesIndicators, cfg: DatasetConfig) -> Labels:
    """The labels of ``win``; only the target reads bars after ``win.end``."""
    frame = win.series.frame
    history = frame.iloc[max(0, win.end + 1 - win.length - HISTORY_BARS): win.end + 1]
    observed = analyze_ohlc(history, analysis_config(win.length, cfg))
    readings = _readings(observed, ind, frame, win.end)
    patterns = tuple(detect_patterns(history, cfg.pattern_lookback)) + _range_bars(history, cfg.pattern_lookback)
    patterns = patterns[:MAX_PATTERNS]
    states = _states(readings, observed)
    close = frame["close"].to_numpy(np.float64)
    entry, later = float(close[win.end]), float(close[win.end + win.horizon])
    atr = readings["atr"] or 0.0
    move = (later - entry) / atr if atr > 0 else 0.0
    target = _target(move, entry, atr, observed.trend, patterns, states, win, cfg)
    return Labels(target, patterns, states, readings, later / entry - 1.0, move)


# ------------------------------------------------------------------- observed


def _readings(observed: ChartSignal, ind: SeriesIndicators, frame: pd.DataFrame, end: int) -> dict[str, Optional[float]]:
    values: dict[str, Any] = dict(observed.indicators.model_dump()) if observed.indicators else {}
    close = float(frame["close"].iat[end])
    upper, lower = ind.bb_upper[end], ind.bb_lower[end]
    values["bb_pct_b"] = (close - lower) / (upper - lower) if upper > lower else None
    avg = ind.volume_avg[end]
    values["volume_ratio"] = float(frame["volume"].iat[end]) / avg if avg and avg > 0 else None
    return {k: _finite(v) for k, v in values.items()}


def _finite(value: Any) -> Optional[float]:
    if value is None or not math.isfinite(float(value)):
        return None
    return round(float(value), 6)


def _range_bars(history: pd.DataFrame, lookback: int) -> tuple[tuple[str, int], ...]:
    """Inside / outside bars on the last ``lookback`` bars (no TA-Lib function), most recent first."""
    high, low = history["high"].to_numpy(), history["low"].to_numpy()
    opens, closes = history["open"].to_numpy(), history["close"].to_numpy()
    found: dict[str, int] = {}
    for i in range(len(history) - 1, max(0, len(history) - lookback - 1), -1):
        if i < 1:
            break
        if high[i] < high[i - 1] and low[i] > low[i - 1]:
            found.setdefault("inside bar", 0)
        elif high[i] > high[i - 1] and low[i] < low[i - 1]:
            sign = int(np.sign(closes[i] - opens[i]))
            name = {1: "bullish outside bar", -1: "bearish outside bar", 0: "outside bar"}[sign]
            found.setdefault(name, sign)
    return tuple(found.items())


def _states(r: dict[str, Optional[float]], observed: ChartSignal) -> dict[str, str]:
    rsi, hist, close = r.get("rsi"), r.get("macd_hist"), r.get("last_close")
    pct_b, vol = r.get("bb_pct_b"), r.get("volume_ratio")
    return {
        "trend": observed.trend,
        "rsi": "unknown" if rsi is None else "overbought" if rsi >= 70 else "oversold" if rsi <= 30 else "neutral",
        "macd": "unknown" if hist is None else "bullish" if hist > 0 else "bearish" if hist < 0 else "flat",
        "price_vs_sma_slow": _side(close, r.get("sma_slow")),
        "price_vs_sma_fast": _side(close, r.get("sma_fast")),
        "bollinger": _band(pct_b),
        "volume": "unknown" if vol is None else "high" if vol >= 1.5 else "low" if vol <= 0.5 else "normal",
    }


def _side(value: Optional[float], ref: Optional[float]) -> str:
    if value is None or ref is None:
        return "unknown"
    return "above" if value > ref else "below" if value < ref else "at"


def _band(pct_b: Optional[float]) -> str:
    if pct_b is None:
        return "unknown"
    if pct_b > 1:
        return "above upper band"
    if pct_b < 0:
        return "below lower band"
    return "upper half" if pct_b >= 0.5 else "lower half"


# --------------------------------------------------------------------- target


def _target(
    move: float,
    entry: float,
    atr: float,
    trend: str,
    patterns: tuple[tuple[str, int], ...],
    states: dict[str, str],
    win: Window,
    cfg: DatasetConfig,
) -> ChartSignal:
    k = cfg.threshold_atr
    action: Action = "BUY" if move >= k else "SELL" if move <= -k else "HOLD"
    if action == "HOLD":
        confidence = 0.5 + 0.5 * max(0.0, 1.0 - abs(move) / k)
    else:
        confidence = min(1.0, 0.5 + 0.5 * (abs(move) - k) / k)
    names = [name for name, _ in patterns]
    base = {"trend": trend, "patterns": names, "confidence": round(confidence, 2)}
    if action != "HOLD":
        side = 1.0 if action == "BUY" else -1.0
        levels = {
            "entry_price": round_price(entry),
            "stop_loss": round_price(entry - side * cfg.atr_stop_mult * atr),
            "take_profit": round_price(entry + side * cfg.atr_target_mult * atr),
        }
        try:
            text = _reasoning(action, states, patterns, win, cfg)
            return ChartSignal(action=action, reasoning=text, **levels, **base)
        except ValidationError:  # a stop at or below zero, or levels lost to rounding: no trade
            action = "HOLD"
            base["confidence"] = 0.5
    return ChartSignal(action="HOLD", reasoning=_reasoning("HOLD", states, patterns, win, cfg), **base)


def round_price(value: float) -> float:
    """Five significant digits, at least two decimals: 178.4567 -> 178.46, 2.19357 -> 2.1936."""
    if value <= 0 or not math.isfinite(value):
        return value
    return round(value, max(2, 4 - math.floor(math.log10(value))))


def _reasoning(
    action: Action, states: dict[str, str], patterns: tuple[tuple[str, int], ...], win: Window, cfg: DatasetConfig
) -> str:
    trend = states["trend"]
    lead = f"{trend.capitalize()} over the last {win.length} bars" if trend != "sideways" else (
        f"Sideways over the last {win.length} bars"
    )
    facts = [
        lead,
        f"close {states['price_vs_sma_slow']} its {win.length}-bar average",
        f"RSI {states['rsi']}",
        f"MACD histogram {states['macd']}",
        f"close in the Bollinger {states['bollinger']}",
    ]
    shown = [name for name, sign in patterns if sign] + [name for name, sign in patterns if not sign]
    facts.append("patterns: " + (", ".join(shown[:4]) if shown else "none"))
    k, h = f"{cfg.threshold_atr:g}", win.horizon
    if action == "BUY":
        outlook = (f"Bullish: a rise of at least {k} ATR within {h} bars is expected; "
                   f"stop {cfg.atr_stop_mult:g} ATR below entry, target {cfg.atr_target_mult:g} ATR above.")
    elif action == "SELL":
        outlook = (f"Bearish: a fall of at least {k} ATR within {h} bars is expected; "
                   f"stop {cfg.atr_stop_mult:g} ATR above entry, target {cfg.atr_target_mult:g} ATR below.")
    else:
        outlook = f"No edge: a move of {k} ATR either way within {h} bars is not expected."
    return ("; ".join(facts) + ". " + outlook)[:800]
