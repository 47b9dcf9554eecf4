"""Timeframes, windows and labels: resampled bars stamped when known, labels that never look ahead."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphasignal.chart.ohlc import load_csv
from alphasignal.config import DatasetConfig
from alphasignal.dataset.labels import SeriesIndicators, label_window, round_price, warmup_bars
from alphasignal.dataset.windows import Window, build_series, check_timeframes, stable_index, windows_for
from alphasignal.errors import ConfigError
from alphasignal.schemas import ChartSignal

FORD = Path(__file__).parent / "data" / "ford_2012.csv"
CFG = DatasetConfig(windows=(40,), stride=5, horizon=5)


@pytest.fixture(scope="module")
def ford() -> pd.DataFrame:
    return load_csv(FORD)


def series(ford: pd.DataFrame, tf: str = "1d"):
    s = build_series("F", ford, tf)
    assert s is not None
    return s


def test_weekly_bars_are_stamped_with_their_last_day(ford):
    weekly = series(ford, "1w")
    first_week = ford.loc["2012-01-03":"2012-01-06"]
    bar = weekly.frame.iloc[0]
    assert weekly.frame.index[0] == pd.Timestamp("2012-01-06")
    assert weekly.first[0] == pd.Timestamp("2012-01-03")
    assert bar["open"] == first_week["open"].iloc[0] and bar["close"] == first_week["close"].iloc[-1]
    assert bar["high"] == first_week["high"].max() and bar["low"] == first_week["low"].min()
    assert bar["volume"] == first_week["volume"].sum()
    # the last (maybe incomplete) week is dropped
    assert weekly.frame.index[-1] < ford.index[-1]
    assert weekly.base_bars[0] == 3 and ford.index[weekly.base_bars[-1]] == weekly.frame.index[-1]


def test_finer_timeframe_than_the_data_is_skipped_and_unknown_one_refused(ford):
    assert build_series("F", ford, "4h") is None
    with pytest.raises(ConfigError, match="unknown timeframe.*2d.*choose from"):
        check_timeframes(("1d", "2d"))


def test_windows_follow_the_stride_and_leave_the_horizon(ford):
    s = series(ford)
    wins = windows_for(s, (40,), 5, 5, warmup=50, seed=0)
    ends = [w.end for w in wins]
    assert ends[0] == 49 and set(np.diff(ends)) == {5}
    assert ends[-1] + 5 <= len(ford) - 1 and ends[-1] + 5 + 5 > len(ford) - 1
    assert all(w.length == 40 and w.start == w.end - 39 for w in wins)


def test_window_length_choice_is_stable(ford):
    s = series(ford)
    one = [w.length for w in windows_for(s, (30, 40, 50), 3, 5, warmup=60, seed=1)]
    two = [w.length for w in windows_for(s, (30, 40, 50), 3, 5, warmup=60, seed=1)]
    assert one == two and set(one) == {30, 40, 50}
    assert stable_index(7, "a", 1) == stable_index(7, "a", 1)


def labels_at(frame: pd.DataFrame, end: int, cfg: DatasetConfig = CFG):
    s = build_series("F", frame, "1d")
    return label_window(Window(s, end, 40, cfg.horizon), SeriesIndicators.of(s), cfg)


def test_observed_labels_ignore_every_bar_after_the_window(ford):
    end = 150
    base = labels_at(ford, end)
    future = ford.copy()
    future.iloc[end + 1:, :4] *= 3.0  # rewrite the future (keeps high >= low)
    changed = labels_at(future, end)
    assert changed.patterns == base.patterns
    assert changed.states == base.states
    assert changed.readings == base.readings
    assert changed.target.trend == base.target.trend and changed.target.patterns == base.target.patterns
    for lab in (base, changed):
        if lab.action != "HOLD":
            assert lab.target.entry_price == round_price(ford["close"].iat[end])
    # ... while the target does look ahead
    assert changed.forward_return != base.forward_return


def test_target_from_the_forward_move_in_atrs(ford):
    end = 150
    close = ford["close"].iat[end]
    atr = labels_at(ford, end).readings["atr"]
    for move, action in ((2.5, "BUY"), (-2.5, "SELL"), (0.3, "HOLD")):
        shifted = ford.copy()
        shifted.iloc[end + CFG.horizon, :4] = [close + move * atr] * 4
        lab = labels_at(shifted, end)
        assert lab.action == action
        assert lab.forward_atr == pytest.approx(move, rel=1e-6)
        if action == "BUY":
            t = lab.target
            assert t.stop_loss < t.entry_price < t.take_profit
            assert t.entry_price == round_price(close)
            assert t.stop_loss == pytest.approx(close - 1.5 * atr, rel=1e-3)
            assert t.take_profit == pytest.approx(close + 3.0 * atr, rel=1e-3)
            assert t.confidence == 1.0  # 2.5 ATR is past twice the 1-ATR threshold
        if action == "HOLD":
            assert lab.target.entry_price is None and lab.target.confidence == pytest.approx(0.85)


def test_targets_validate_and_reasoning_states_only_observed_facts(ford):
    s = series(ford)
    ind = SeriesIndicators.of(s)
    cfg = CFG
    seen = set()
    for win in windows_for(s, (40,), 5, 5, warmup_bars(cfg), 0):
        lab = label_window(win, ind, cfg)
        ChartSignal.model_validate_json(lab.target.model_dump_json())
        assert "forward" not in lab.target.reasoning and "%" not in lab.target.reasoning
        assert len(lab.target.patterns) <= 12
        seen.add(lab.action)
    assert seen == {"BUY", "SELL", "HOLD"}


def test_inside_and_outside_bars_are_labelled(ford):
    frame = ford.iloc[:100].copy()
    end = 90
    prev = frame.iloc[end - 1]
    frame.iloc[end, :4] = [prev["low"] - 0.2, prev["high"] + 0.2, prev["low"] - 0.2, prev["high"] + 0.1]
    lab = labels_at(frame, end, DatasetConfig(windows=(40,), horizon=5, pattern_lookback=1))
    assert ("bullish outside bar", 1) in lab.patterns
    inside = ford.iloc[:100].copy()
    inside.iloc[end, :4] = [prev["low"] + 0.01, prev["high"] - 0.01, prev["low"] + 0.01, prev["high"] - 0.02]
    lab = labels_at(inside, end, DatasetConfig(windows=(40,), horizon=5, pattern_lookback=1))
    assert ("inside bar", 0) in lab.patterns


@pytest.mark.parametrize("value, rounded", [(178.4567, 178.46), (2.193571, 2.1936), (0.0123456, 0.012346), (12345.678, 12345.68)])
def test_round_price(value, rounded):
    assert round_price(value) == rounded
