"""Regression tests for the digitizer's failure modes found by ``alphasignal eval chart-reader``.

Each rendered case stands for one mode that used to miscount bars: a volume
panel taken for the price panel, a shared spine not splitting the panels, a
hollow first candle, axis labels or tick marks beside the last candle, a grid
found at twice the candle spacing, and overlays on JPEG-compressed dark themes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from alphasignal.chart.ohlc import load_csv
from alphasignal.chart.reader import synth
from alphasignal.chart.reader.candles import _centroids, find_slots
from alphasignal.chart.reader.digitize import digitize
from alphasignal.chart.reader.panel import _bars_only

DEMO = Path(__file__).resolve().parents[1] / "alphasignal" / "data" / "demo_ohlcv.csv"

# (style, bars, volume, overlay, (width, height), damage)
CASES = [
    pytest.param("kenan", 90, True, "bollinger", (1000, 700), "jpeg+resize", id="kenan-shared-spine-jpeg-resize"),
    pytest.param("checkers", 60, True, "", (800, 600), "", id="checkers-gap-between-panels"),
    pytest.param("blueskies", 60, True, "mav", (1000, 700), "", id="blueskies-hollow-candles-white-volume"),
    pytest.param("nightclouds", 40, False, "", (1200, 800), "jpeg+resize", id="nightclouds-spine-remains"),
    pytest.param("ibd", 40, False, "", (800, 600), "jpeg+resize", id="ibd-hollow-grid-spacing"),
    pytest.param("binancedark", 120, False, "bollinger", (800, 600), "jpeg", id="binancedark-bollinger-jpeg"),
]


@pytest.fixture(scope="module")
def prices():
    return load_csv(DEMO)


def _image(df, style, bars, volume, overlay, size, damage) -> bytes:  # type: ignore[no-untyped-def]
    window = df.iloc[-bars:]
    r = synth.render(window, style, volume=volume, mav=(10, 20) if overlay == "mav" else (),
                     bollinger=overlay == "bollinger", width=size[0], height=size[1])
    if damage == "jpeg":
        return synth.jpeg(r.png, 85)
    if damage == "jpeg+resize":
        return synth.jpeg(r.png, 85, scale=0.8)
    return r.png


@pytest.mark.parametrize("style,bars,volume,overlay,size,damage", CASES)
def test_every_bar_is_found_once(prices, style, bars, volume, overlay, size, damage):
    d = digitize(_image(prices, style, bars, volume, overlay, size, damage))
    assert len(d.bars) == bars
    xs = np.array([b.x for b in d.bars])
    assert np.all(np.diff(xs) > 0) and d.fit_residual < 0.1


def test_a_volume_panel_is_never_the_price_panel(prices):
    d = digitize(_image(prices, "binance", 90, True, "", (800, 600), ""))
    lows = np.array([b.low for b in d.bars])
    assert d.baseline_share < 0.5  # the bars read do not stand on one baseline
    assert d.panel.bottom * d.scale < 0.7 * d.image_size[1]  # the volume panel lies below the price panel
    assert lows.max() <= d.panel.bottom * d.scale


def _candles(spacing: int, hollow: bool, n: int = 30, height: int = 120) -> np.ndarray:
    ink = np.zeros((height, spacing * (n + 2)), dtype=bool)
    rng = np.random.default_rng(3)
    for k in range(1, n + 1):
        x, top = k * spacing, int(rng.integers(10, 60))
        ink[top - 8 : top + 40, x] = True  # wick
        body = ink[top : top + 25, x - 3 : x + 4]
        body[:] = True
        if hollow:
            body[1:-1, 1:-1] = False
            ink[top - 8 : top, x] = True
    return ink


@pytest.mark.parametrize("hollow", [False, True])
def test_slots_are_found_at_the_candle_spacing_not_twice_it(hollow):
    slots = find_slots(_candles(10, hollow))
    assert slots is not None and slots.centres.size == 30
    assert abs(slots.spacing - 10) < 0.05


def test_a_tick_mark_at_the_panel_edge_is_not_a_candle():
    ink = _candles(10, False)
    ink[-5:, 31 * 10] = True  # a tick mark in the next slot, on the panel's bottom edge
    ink[-1, 300:] = True  # what is left of the bottom spine
    assert find_slots(ink).centres.size == 30


def test_centroids_match_a_direct_computation():
    profile = np.random.default_rng(0).integers(0, 5, 200).astype(float)
    guesses = np.array([0.0, 13.3, 50.5, 199.0, 210.0])
    cent, mass = _centroids(profile, guesses, 10.0)
    for g, c, m in zip(guesses, cent, mass):
        a, b = max(0, int(round(g)) - 4), min(200, int(round(g)) + 5)
        w = profile[a:b] if b > a else np.zeros(0)
        assert m == w.sum()
        if w.sum():
            assert c == pytest.approx(np.average(np.arange(a, b), weights=w))
        else:
            assert np.isnan(c)


def test_bars_only_tells_a_volume_panel_from_candles_above_it():
    region = np.zeros((60, 100), dtype=bool)
    for x in range(5, 95, 6):
        region[60 - (10 + x % 30) :, x : x + 4] = True  # volume bars on the bottom row
    assert _bars_only(region)
    with_candles = region.copy()
    for x in range(5, 95, 6):
        with_candles[5:20, x + 1] = True  # candle wicks above the bars
        with_candles[8:14, x : x + 3] = True
    assert not _bars_only(with_candles)


def test_the_evaluation_has_a_tuning_split_apart_from_the_eval_split(tmp_path):
    from alphasignal.chart.reader.evaluate import EVAL_FILES, HELD_OUT_FROM, TUNE_FILES, evaluate_reader, plan

    assert "yahoofinance-INTC-19950101-20040412.csv" in TUNE_FILES and "ford_2012.csv" not in TUNE_FILES
    assert "ford_2012.csv" in EVAL_FILES
    with pytest.raises(ValueError, match="unknown split"):
        evaluate_reader(tmp_path, split="train")
    frames = {"demo": load_csv(DEMO)}
    frames["demo"].index = frames["demo"].index - (frames["demo"].index[0] - HELD_OUT_FROM) - np.timedelta64(400, "D")
    for case in plan(frames, 6, held_out=False):
        assert frames["demo"].index[case.start + case.bars - 1] < HELD_OUT_FROM


def test_offline_negatives_stay_far_below_the_guard_threshold(prices):
    # a first version of re-reading bars far from their neighbours took the guard's continuity
    # from the readings it chose for being continuous: a photograph of a camera scored 1.0
    from alphasignal.chart.reader.guard import DEFAULT_THRESHOLD, guard_score

    scores = {name: guard_score(image) for name, image in synth.negatives(7, closes=prices.iloc[-120:]).items()}
    assert max(scores.values()) < DEFAULT_THRESHOLD / 4, max(scores.items(), key=lambda kv: kv[1])
