"""TA-Lib analysis: trend, patterns, score and levels always give a valid ChartSignal."""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphasignal.chart.analysis import analyze_ohlc, detect_patterns, required_bars
from alphasignal.chart.ohlc import PriceDataWarning, demo_paths, load_csv
from alphasignal.config import BuiltinConfig
from alphasignal.errors import PriceDataError
from alphasignal.schemas import ChartSignal

DATA = Path(__file__).parent / "data"


def frame(closes, spread: float = 0.3, opens=None) -> pd.DataFrame:
    """Bars whose open is the previous close, with wicks ``spread`` beyond the body."""
    closes = np.asarray(closes, dtype=float)
    if opens is None:
        opens = np.concatenate([[closes[0]], closes[:-1]])
    opens = np.asarray(opens, dtype=float)
    return pd.DataFrame(
        {
            "open": opens,
            "high": np.maximum(opens, closes) + spread,
            "low": np.minimum(opens, closes) - spread,
            "close": closes,
            "volume": 1000.0,
        },
        index=pd.bdate_range("2023-01-02", periods=len(closes), name="date"),
    )


def wavy(n: int, step: float, start: float = 100.0) -> np.ndarray:
    """A steady trend of ``step`` per bar with a small deterministic wobble."""
    i = np.arange(n)
    return start + step * i + 0.8 * np.sin(i / 2.0)


def assert_levels(signal: ChartSignal, cfg: BuiltinConfig) -> None:
    atr = signal.indicators.atr
    if signal.action == "HOLD":
        assert signal.entry_price is signal.stop_loss is signal.take_profit is None
        return
    side = 1 if signal.action == "BUY" else -1
    assert signal.entry_price == signal.indicators.last_close
    assert signal.stop_loss == pytest.approx(signal.entry_price - side * cfg.atr_stop_mult * atr)
    assert signal.take_profit == pytest.approx(signal.entry_price + side * cfg.atr_target_mult * atr)
    if side == 1:
        assert signal.stop_loss < signal.entry_price < signal.take_profit
    else:
        assert signal.take_profit < signal.entry_price < signal.stop_loss


def test_steady_uptrend_is_an_uptrend_and_never_sell():
    signal = analyze_ohlc(frame(wavy(120, +0.5)))
    assert signal.trend == "uptrend"
    assert signal.action != "SELL"
    assert signal.indicators.rsi > 50 and signal.indicators.sma_fast > signal.indicators.sma_slow


def test_steady_downtrend_is_a_downtrend_and_never_buy():
    signal = analyze_ohlc(frame(wavy(120, -0.5, start=200.0)))
    assert signal.trend == "downtrend"
    assert signal.action != "BUY"
    assert signal.indicators.rsi < 50 and signal.indicators.sma_fast < signal.indicators.sma_slow


def test_buy_and_sell_levels_sit_on_the_right_sides():
    cfg = BuiltinConfig(atr_stop_mult=2.0, atr_target_mult=4.5)
    # a trend whose last bars accelerate: MACD histogram and RSI agree with it
    up = np.concatenate([wavy(100, 0.2), 100 + 0.2 * 100 + np.arange(1, 21) * 0.9])
    buy = analyze_ohlc(frame(up), cfg)
    sell = analyze_ohlc(frame(300.0 - up), cfg)  # the mirror image: an accelerating fall
    assert buy.action == "BUY" and sell.action == "SELL"
    assert_levels(buy, cfg)
    assert_levels(sell, cfg)
    assert buy.confidence >= 0.35 and sell.confidence >= 0.35


def test_trend_is_never_traded_against_on_random_walks():
    rng = np.random.default_rng(7)
    cfg = BuiltinConfig()
    seen = set()
    for drift in np.linspace(-0.6, 0.6, 25):
        closes = 100 + np.cumsum(drift + rng.normal(0, 1.0, 130))
        closes = closes - min(0.0, closes.min()) + 5  # keep prices positive
        signal = analyze_ohlc(frame(closes, spread=0.6), cfg)
        seen.add((signal.trend, signal.action))
        assert (signal.trend, signal.action) not in {("uptrend", "SELL"), ("downtrend", "BUY")}
        assert_levels(signal, cfg)
    assert {t for t, _ in seen} == {"uptrend", "downtrend", "sideways"}


def test_flat_prices_hold_without_levels():
    signal = analyze_ohlc(frame(np.full(80, 10.0), spread=0.0))
    assert signal.action == "HOLD" and signal.trend == "sideways"
    assert signal.entry_price is None and signal.confidence == 1.0
    assert signal.indicators.rsi == 50.0


def test_bullish_engulfing_at_the_end_is_reported():
    closes = wavy(70, -0.3, start=130.0)
    opens = np.concatenate([[closes[0]], closes[:-1]])
    last = closes[-3]
    # a small black candle, then a white one whose body engulfs it
    opens[-2], closes[-2] = last, last - 0.5
    opens[-1], closes[-1] = last - 0.8, last + 0.6
    df = frame(closes, opens=opens, spread=0.2)
    assert ("bullish engulfing", 1) in detect_patterns(df, 1)
    signal = analyze_ohlc(df)
    assert "bullish engulfing" in signal.patterns
    assert "bullish engulfing" in signal.reasoning


def test_bearish_engulfing_at_the_end_is_reported():
    closes = wavy(70, +0.3)
    opens = np.concatenate([[closes[0]], closes[:-1]])
    last = closes[-3]
    opens[-2], closes[-2] = last, last + 0.5
    opens[-1], closes[-1] = last + 0.8, last - 0.6
    assert ("bearish engulfing", -1) in detect_patterns(frame(closes, opens=opens, spread=0.2), 1)


def test_patterns_are_recent_first_unique_and_capped():
    df = load_csv(DATA / "ford_2012.csv")
    for end in range(60, len(df) + 1, 7):
        found = detect_patterns(df.iloc[:end], 20)
        names = [name for name, _ in found]
        assert len(names) == len(set(names)) and len(names) <= 12
        assert all(sign in (-1, 0, 1) for _, sign in found)
    one_bar = {name for name, _ in detect_patterns(df, 1)}
    assert one_bar <= {name for name, _ in detect_patterns(df, 5)}


def test_demo_csv_gives_a_valid_signal():
    csv, _, _ = demo_paths()
    signal = analyze_ohlc(load_csv(csv))
    assert ChartSignal.model_validate_json(signal.model_dump_json()) == signal
    ind = signal.indicators
    assert ind.last_close == pytest.approx(178.460007)
    assert 0 < ind.rsi < 100 and ind.atr > 0
    assert f"RSI {ind.rsi:.1f}" in signal.reasoning and "score" in signal.reasoning
    assert_levels(signal, BuiltinConfig())


@pytest.mark.parametrize("name", ["ford_2012.csv", "spy_2015_quirk.csv"])
def test_every_window_of_real_data_validates(name):
    # the SPY slice holds the two bars that load_csv repairs; warnings are errors otherwise
    with pytest.warns(PriceDataWarning) if name.startswith("spy") else nullcontext():
        df = load_csv(DATA / name)
    cfg = BuiltinConfig()
    for end in range(required_bars(cfg), len(df) + 1, 3):
        signal = analyze_ohlc(df.iloc[max(0, end - 150):end], cfg)
        ChartSignal.model_validate(signal.model_dump())
        assert_levels(signal, cfg)
        assert len(signal.reasoning) <= 800


def test_stop_that_would_be_negative_turns_a_trade_into_hold():
    # a collapse with candles wider than the price: a 1.5 ATR stop would be below zero
    closes = 100 * np.exp(np.linspace(0, -5, 80))
    opens = closes * 1.02
    df = pd.DataFrame(
        {"open": opens, "high": closes * 2.2, "low": np.minimum(closes * 0.2, opens), "close": closes, "volume": 0.0},
        index=pd.bdate_range("2023-01-02", periods=80, name="date"),
    )
    signal = analyze_ohlc(df)
    assert signal.action == "HOLD" and signal.entry_price is None
    assert "signal not traded" in signal.reasoning


def test_too_short_history_names_the_bars_needed():
    with pytest.raises(PriceDataError, match="needs at least 60 bars, got 59"):
        analyze_ohlc(frame(wavy(59, 0.1)))
    cfg = BuiltinConfig(sma_slow=100)
    assert required_bars(cfg) == 110
    with pytest.raises(PriceDataError, match="needs at least 110 bars, got 80"):
        analyze_ohlc(frame(wavy(80, 0.1)), cfg)


def test_bad_frames_are_price_data_errors():
    df = frame(wavy(80, 0.1))
    with pytest.raises(PriceDataError, match="NaN"):
        analyze_ohlc(df.assign(close=np.where(np.arange(80) == 40, np.nan, df["close"])))
    with pytest.raises(PriceDataError, match="lacks column"):
        analyze_ohlc(df.drop(columns="high"))
    with pytest.raises(PriceDataError, match="lookback"):
        detect_patterns(df, 0)


def test_analysis_of_150_bars_takes_milliseconds():
    df = load_csv(demo_paths()[0])
    analyze_ohlc(df)  # warm
    timings = []
    for _ in range(30):
        start = time.perf_counter()
        analyze_ohlc(df)
        timings.append(time.perf_counter() - start)
    assert float(np.median(timings)) < 0.02  # about 1 ms on a 2-core laptop-class CPU
