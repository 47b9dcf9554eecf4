"""Read a ChartSignal from OHLC prices with TA-Lib: trend, momentum, candlestick patterns.

This is the engine of the ``builtin`` chart backend. It is deterministic, needs
no model, and analyses a 150-bar frame in well under a millisecond.

How the decision is made (every number is in the ``reasoning`` it returns):

* **Trend.** A least-squares line is fitted to the last ``sma_slow`` closes
  (TA-Lib ``LINEARREG_SLOPE``). Its rise over the window, measured in ATRs,
  is the *drift*: ``drift = slope * (sma_slow - 1) / ATR``. Dividing by ATR
  makes the threshold independent of price level and volatility. The trend is
  ``uptrend`` when drift >= +3 ATR and the close is above the slow SMA,
  ``downtrend`` when drift <= -3 ATR and the close is below it, else
  ``sideways``. (On 10+ years of daily AAPL, GOOG, INTC and SPY this calls
  about 40 % of days sideways.)
* **Score** in [-1, 1], a weighted sum of four votes, each in [-1, 1]::

      score = 0.4 * trend       (+1 up, -1 down, 0 sideways)
            + 0.2 * macd        (sign of the MACD(12, 26, 9) histogram)
            + 0.2 * rsi         (+1 oversold <= 30, +0.5 in (50, 70), 0 at 50,
                                 -0.5 in (30, 50), -1 overbought >= 70)
            + 0.2 * patterns    (mean sign of the directional candlestick
                                 patterns on the last ``pattern_lookback`` bars)

* **Action.** BUY when score >= 0.35, SELL when score <= -0.35, else HOLD.
  Because the trend carries 0.4 and everything else 0.6, a clear trend can be
  neutralised by the other votes but never reversed: an uptrend never gives
  SELL, a downtrend never gives BUY.
* **Confidence.** For BUY/SELL, ``|score|``; for HOLD, ``1 - |score| / 0.35``,
  i.e. how far the score is from triggering a trade.
* **Levels.** entry = last close; stop = entry -/+ ``atr_stop_mult`` * ATR;
  target = entry +/- ``atr_target_mult`` * ATR (BUY/SELL). A trade whose stop
  or target would not be a positive price becomes HOLD; HOLD has no levels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd
import talib

from ..config import BuiltinConfig
from ..errors import PriceDataError
from ..schemas import Action, ChartSignal, Indicators, Trend

TREND_DRIFT_ATR = 3.0
ACTION_THRESHOLD = 0.35
WEIGHTS = {"trend": 0.4, "macd": 0.2, "rsi": 0.2, "patterns": 0.2}
RSI_OVERBOUGHT, RSI_OVERSOLD = 70.0, 30.0
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
MAX_PATTERNS = 12
_MARGIN_BARS = 10
# TA-Lib's longest candlestick lookback is 14 bars; scanning a short tail gives
# the same answers as the whole history, much faster.
_PATTERN_CONTEXT = 20

# TA-Lib function -> (name when its output is > 0, name when < 0); None where
# TA-Lib never gives that sign. Listed roughly from multi-bar reversals to
# single-candle shapes: within one bar, patterns are reported in this order.
_DIRECTIONAL: dict[str, tuple[Optional[str], Optional[str]]] = {
    "CDLMORNINGSTAR": ("morning star", None),
    "CDLEVENINGSTAR": (None, "evening star"),
    "CDLMORNINGDOJISTAR": ("morning doji star", None),
    "CDLEVENINGDOJISTAR": (None, "evening doji star"),
    "CDLABANDONEDBABY": ("bullish abandoned baby", "bearish abandoned baby"),
    "CDL3WHITESOLDIERS": ("three white soldiers", None),
    "CDL3BLACKCROWS": (None, "three black crows"),
    "CDLIDENTICAL3CROWS": (None, "identical three crows"),
    "CDL3INSIDE": ("three inside up", "three inside down"),
    "CDL3OUTSIDE": ("three outside up", "three outside down"),
    "CDL3LINESTRIKE": ("bullish three-line strike", "bearish three-line strike"),
    "CDL3STARSINSOUTH": ("three stars in the south", None),
    "CDLENGULFING": ("bullish engulfing", "bearish engulfing"),
    "CDLHARAMI": ("bullish harami", "bearish harami"),
    "CDLHARAMICROSS": ("bullish harami cross", "bearish harami cross"),
    "CDLPIERCING": ("piercing line", None),
    "CDLDARKCLOUDCOVER": (None, "dark cloud cover"),
    "CDLKICKING": ("bullish kicking", "bearish kicking"),
    "CDLBREAKAWAY": ("bullish breakaway", "bearish breakaway"),
    "CDLTRISTAR": ("bullish tristar", "bearish tristar"),
    "CDLUNIQUE3RIVER": ("unique three river", None),
    "CDLCONCEALBABYSWALL": ("concealing baby swallow", None),
    "CDLLADDERBOTTOM": ("ladder bottom", None),
    "CDLMATCHINGLOW": ("matching low", None),
    "CDLHOMINGPIGEON": ("homing pigeon", None),
    "CDLSTICKSANDWICH": ("stick sandwich", None),
    "CDL2CROWS": (None, "two crows"),
    "CDLUPSIDEGAP2CROWS": (None, "upside gap two crows"),
    "CDLADVANCEBLOCK": (None, "advance block"),
    "CDLSTALLEDPATTERN": (None, "stalled pattern"),
    "CDLRISEFALL3METHODS": ("rising three methods", "falling three methods"),
    "CDLMATHOLD": ("mat hold", None),
    "CDLXSIDEGAP3METHODS": ("upside gap three methods", "downside gap three methods"),
    "CDLTASUKIGAP": ("upside tasuki gap", "downside tasuki gap"),
    "CDLGAPSIDESIDEWHITE": ("upside gap side-by-side white lines", "downside gap side-by-side white lines"),
    "CDLSEPARATINGLINES": ("bullish separating lines", "bearish separating lines"),
    "CDLCOUNTERATTACK": ("bullish counterattack", "bearish counterattack"),
    "CDLINNECK": (None, "in-neck"),
    "CDLONNECK": (None, "on-neck"),
    "CDLTHRUSTING": (None, "thrusting"),
    "CDLHIKKAKE": ("bullish hikkake", "bearish hikkake"),
    "CDLHIKKAKEMOD": ("bullish modified hikkake", "bearish modified hikkake"),
    "CDLDOJISTAR": ("bullish doji star", "bearish doji star"),
    "CDLHAMMER": ("hammer", None),
    "CDLINVERTEDHAMMER": ("inverted hammer", None),
    "CDLHANGINGMAN": (None, "hanging man"),
    "CDLSHOOTINGSTAR": (None, "shooting star"),
    "CDLBELTHOLD": ("bullish belt hold", "bearish belt hold"),
    "CDLMARUBOZU": ("bullish marubozu", "bearish marubozu"),
    "CDLCLOSINGMARUBOZU": ("bullish closing marubozu", "bearish closing marubozu"),
}
# Indecision shapes: TA-Lib gives +100 (or the candle's colour) without any trend
# context, so they are reported with sign 0 and do not move the score. One candle
# often matches several; only the first in this order (most specific) is kept.
_NEUTRAL: dict[str, str] = {
    "CDLTAKURI": "takuri",
    "CDLDRAGONFLYDOJI": "dragonfly doji",
    "CDLGRAVESTONEDOJI": "gravestone doji",
    "CDLRICKSHAWMAN": "rickshaw man",
    "CDLLONGLEGGEDDOJI": "long-legged doji",
    "CDLDOJI": "doji",
    "CDLHIGHWAVE": "high wave",
    "CDLSPINNINGTOP": "spinning top",
}
# Not scanned: CDLLONGLINE / CDLSHORTLINE describe any long or short candle, and
# CDLKICKINGBYLENGTH repeats CDLKICKING.
_SCANS = [(getattr(talib, fn), names) for fn, names in _DIRECTIONAL.items()] + [
    (getattr(talib, fn), (name, name)) for fn, name in _NEUTRAL.items()
]
_NEUTRAL_NAMES = frozenset(_NEUTRAL.values())


@dataclass(frozen=True)
class _Prices:
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray


@dataclass(frozen=True)
class _Readings:
    close: float
    rsi: float
    macd: float
    macd_signal: float
    macd_hist: float
    atr: float
    sma_fast: float
    sma_slow: float
    drift: float  # rise of the regression line over the slow window, in ATRs


def required_bars(cfg: Optional[BuiltinConfig] = None) -> int:
    """Bars ``analyze_ohlc`` needs: the longest indicator warm-up plus a margin."""
    cfg = cfg or BuiltinConfig()
    macd_bars = MACD_SLOW + MACD_SIGNAL - 1
    longest = max(cfg.sma_slow, cfg.sma_fast, macd_bars, cfg.rsi_period + 1, cfg.atr_period + 1)
    return longest + _MARGIN_BARS


def analyze_ohlc(df: pd.DataFrame, cfg: Optional[BuiltinConfig] = None) -> ChartSignal:
    """A ChartSignal from an OHLC frame (the contract of ``chart.ohlc``); see the module docstring.

    Raises ``PriceDataError`` when the frame has fewer than ``required_bars(cfg)``
    bars or is not a valid OHLC frame.
    """
    cfg = cfg or BuiltinConfig()
    prices = _prices(df, required_bars(cfg))
    readings = _indicators(prices, cfg)
    trend = _trend(readings)
    patterns = _scan(prices, cfg.pattern_lookback)
    votes = _votes(trend, readings, patterns)
    score = round(sum(WEIGHTS[k] * v for k, v in votes.items()), 6)  # 0.35, not 0.35000000000000003
    action, confidence = _decide(score)
    levels = _levels(action, readings, cfg)
    note = ""
    if action != "HOLD" and levels is None:
        action, confidence = "HOLD", 0.0
        note = (
            f" {_sign_word(score).capitalize()} signal not traded: a {cfg.atr_stop_mult:g}/"
            f"{cfg.atr_target_mult:g} ATR stop/target would not be a positive price."
        )
    entry, stop, target = levels or (None, None, None)
    return ChartSignal(
        action=action,
        confidence=confidence,
        entry_price=entry,
        stop_loss=stop,
        take_profit=target,
        trend=trend,
        patterns=[name for name, _ in patterns],
        reasoning=(_reasoning(action, score, trend, readings, patterns, cfg) + note)[:800],
        indicators=_indicator_record(readings),
    )


def detect_patterns(df: pd.DataFrame, lookback: int) -> list[tuple[str, int]]:
    """Candlestick patterns on the last ``lookback`` bars as (name, sign), most recent first.

    ``sign`` is +1 bullish, -1 bearish, 0 indecision (doji and the like). Names are
    deduplicated, keeping the most recent occurrence, and at most 12 are returned.
    """
    if lookback < 1:
        raise PriceDataError(f"pattern lookback must be >= 1, got {lookback}")
    return _scan(_prices(df, 1), lookback)


# ------------------------------------------------------------------- internals


def _prices(df: pd.DataFrame, needed: int) -> _Prices:
    if not isinstance(df, pd.DataFrame):
        raise PriceDataError(f"expected an OHLC DataFrame, got {type(df).__name__}: load it with load_csv")
    missing = [c for c in ("open", "high", "low", "close") if c not in df.columns]
    if missing:
        raise PriceDataError(f"OHLC frame lacks column(s) {', '.join(missing)}: load it with load_csv")
    if len(df) < needed:
        raise PriceDataError(
            f"analysis needs at least {needed} bars, got {len(df)}: pass a longer history "
            "(for example 6 months of daily bars)"
        )
    arrays = [df[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close")]
    if not all(np.isfinite(a).all() for a in arrays):
        raise PriceDataError("OHLC frame contains NaN or infinite prices: load it with load_csv or validate_ohlc")
    return _Prices(*arrays)


def _last(values: np.ndarray) -> float:
    return float(values[-1])


def _indicators(p: _Prices, cfg: BuiltinConfig) -> _Readings:
    macd, signal, hist = talib.MACD(p.close, MACD_FAST, MACD_SLOW, MACD_SIGNAL)
    atr = _last(talib.ATR(p.high, p.low, p.close, cfg.atr_period))
    slope = _last(talib.LINEARREG_SLOPE(p.close, cfg.sma_slow))
    return _Readings(
        close=_last(p.close),
        rsi=_rsi(p.close, cfg.rsi_period),
        macd=_last(macd),
        macd_signal=_last(signal),
        macd_hist=_last(hist),
        atr=atr,
        sma_fast=_last(talib.SMA(p.close, cfg.sma_fast)),
        sma_slow=_last(talib.SMA(p.close, cfg.sma_slow)),
        drift=slope * (cfg.sma_slow - 1) / atr if atr > 0 else 0.0,
    )


def _rsi(close: np.ndarray, period: int) -> float:
    # With no close-to-close change RSI is 0/0; TA-Lib answers 0 ("oversold"),
    # the usual convention is the neutral 50.
    if np.ptp(close[-(period + 1):]) == 0:
        return 50.0
    return _last(talib.RSI(close, period))


def _trend(r: _Readings) -> Trend:
    if r.drift >= TREND_DRIFT_ATR and r.close > r.sma_slow:
        return "uptrend"
    if r.drift <= -TREND_DRIFT_ATR and r.close < r.sma_slow:
        return "downtrend"
    return "sideways"


def _scan(p: _Prices, lookback: int) -> list[tuple[str, int]]:
    start = max(0, len(p.close) - lookback - _PATTERN_CONTEXT)
    o, h, l, c = p.open[start:], p.high[start:], p.low[start:], p.close[start:]
    found: dict[str, tuple[int, int, int]] = {}  # name -> (bars ago, scan order, sign)
    neutral_bars: set[int] = set()
    for order, (fn, (bull, bear)) in enumerate(_SCANS):
        out = fn(o, h, l, c)[-lookback:]
        for ago, value in enumerate(out[::-1]):
            name = bull if value > 0 else bear if value < 0 else None
            if name is None or name in found:
                continue
            if name in _NEUTRAL_NAMES:
                if ago in neutral_bars:
                    continue
                neutral_bars.add(ago)
            sign = 0 if name in _NEUTRAL_NAMES else (1 if value > 0 else -1)
            found[name] = (ago, order, sign)
    ranked = sorted(found.items(), key=lambda item: item[1][:2])
    return [(name, sign) for name, (_, _, sign) in ranked[:MAX_PATTERNS]]


def _rsi_vote(rsi: float) -> float:
    if rsi >= RSI_OVERBOUGHT:
        return -1.0
    if rsi <= RSI_OVERSOLD:
        return 1.0
    return float(np.sign(rsi - 50.0)) * 0.5


def _votes(trend: Trend, r: _Readings, patterns: list[tuple[str, int]]) -> dict[str, float]:
    signs = [sign for _, sign in patterns if sign]
    return {
        "trend": {"uptrend": 1.0, "downtrend": -1.0, "sideways": 0.0}[trend],
        # below 1e-9 of the price the histogram is rounding noise, not momentum
        "macd": float(np.sign(r.macd_hist)) if abs(r.macd_hist) > 1e-9 * r.close else 0.0,
        "rsi": _rsi_vote(r.rsi),
        "patterns": float(np.mean(signs)) if signs else 0.0,
    }


def _decide(score: float) -> tuple[Action, float]:
    if score >= ACTION_THRESHOLD:
        return "BUY", round(min(1.0, score), 3)
    if score <= -ACTION_THRESHOLD:
        return "SELL", round(min(1.0, -score), 3)
    return "HOLD", round(max(0.0, 1.0 - abs(score) / ACTION_THRESHOLD), 3)


def _levels(action: Action, r: _Readings, cfg: BuiltinConfig) -> Optional[tuple[float, float, float]]:
    if action == "HOLD" or r.atr <= 0:
        return None
    side = 1.0 if action == "BUY" else -1.0
    entry = r.close
    stop = entry - side * cfg.atr_stop_mult * r.atr
    target = entry + side * cfg.atr_target_mult * r.atr
    if min(stop, target) <= 0 or not (min(stop, target) < entry < max(stop, target)):
        return None
    return entry, stop, target


def _sign_word(score: float) -> str:
    return "bullish" if score > 0 else "bearish"


def _rsi_zone(rsi: float) -> str:
    if rsi >= RSI_OVERBOUGHT:
        return " overbought"
    if rsi <= RSI_OVERSOLD:
        return " oversold"
    return ""


def _reasoning(
    action: Action,
    score: float,
    trend: Trend,
    r: _Readings,
    patterns: list[tuple[str, int]],
    cfg: BuiltinConfig,
) -> str:
    side = ">" if r.close > r.sma_slow else "<" if r.close < r.sma_slow else "="
    return (
        f"{trend.capitalize()}: regression drift {r.drift:+.1f} ATR over {cfg.sma_slow} bars, "
        f"close {r.close:.4g} {side} SMA{cfg.sma_slow} {r.sma_slow:.4g}; "
        f"MACD hist {r.macd_hist:+.3g}; RSI {r.rsi:.1f}{_rsi_zone(r.rsi)}; "
        f"patterns: {_pattern_summary(patterns)}; score {score:+.2f} -> {action}."
    )


def _pattern_summary(patterns: list[tuple[str, int]]) -> str:
    """Up to three patterns, directional ones first, with their vote."""
    directional = [name for name, sign in patterns if sign]
    shown = (directional + [name for name, sign in patterns if not sign])[:3]
    if not shown:
        return "none"
    signs = [sign for _, sign in patterns if sign]
    vote = f" (vote {np.mean(signs):+.2f})" if signs else " (indecision only)"
    return ", ".join(shown) + vote


def _indicator_record(r: _Readings) -> Indicators:
    return Indicators(
        rsi=r.rsi,
        macd=r.macd,
        macd_signal=r.macd_signal,
        macd_hist=r.macd_hist,
        atr=r.atr,
        sma_fast=r.sma_fast,
        sma_slow=r.sma_slow,
        last_close=r.close,
    )
