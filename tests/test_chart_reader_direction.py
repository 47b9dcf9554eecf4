"""Regression tests for reading each candle's direction (up/down) from its colours.

Failure modes: a wick read as a thin body, whose inside is background, was
clustered by that background colour (TradingView-like light theme, JPEG and
resized); a candle whose colour is equally far from both clusters took an
arbitrary side instead of the one its neighbours' closes and opens agree with.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from alphasignal.chart.ohlc import load_csv
from alphasignal.chart.reader import synth
from alphasignal.chart.reader.candles import RawCandle
from alphasignal.chart.reader.digitize import digitize
from alphasignal.chart.reader.direction import assign_direction

DEMO = Path(__file__).resolve().parents[1] / "alphasignal" / "data" / "demo_ohlcv.csv"
WHITE = np.array([255.0, 255.0, 255.0])
TEAL = np.array([38.0, 166.0, 154.0])
RED = np.array([239.0, 83.0, 80.0])


def _candle(top: float, bottom: float, fill: np.ndarray, edge: np.ndarray) -> RawCandle:
    return RawCandle(x=0.0, body_top=top, body_bottom=bottom, high=top - 3, low=bottom + 3,
                     edge=np.asarray(edge, dtype=float), fill=np.asarray(fill, dtype=float), width=4.0)


def _series(ups: list[bool]) -> list[tuple[float, float]]:
    """(top, bottom) rows of bodies where each bar opens at the previous close."""
    out, level = [], 200.0
    for up in ups:
        nxt = level - 10 if up else level + 10
        out.append((min(level, nxt), max(level, nxt)))
        level = nxt
    return out


def test_wick_read_as_body_takes_its_edge_colour() -> None:
    ups = [True, True, False] * 7
    rows = _series(ups)
    candles = []
    for i, (up, (top, bottom)) in enumerate(zip(ups, rows)):
        if not up:
            candles.append(_candle(top, bottom, RED, RED))
        elif i % 5 == 1:  # a wick taken for the body: background inside, a light teal edge
            candles.append(_candle(top, bottom, WHITE, 0.45 * TEAL + 0.55 * WHITE))
        else:
            candles.append(_candle(top, bottom, TEAL, TEAL))
    up, split = assign_direction(candles, WHITE)
    assert up.tolist() == ups
    assert split > 40


def test_unsure_colour_follows_continuity() -> None:
    ups = [True, True, False, True, False, False, True, False, True, True, False, True] * 2
    rows = _series(ups)
    grey = (TEAL + RED) / 2  # as far from one cluster as from the other
    candles = [_candle(t, b, TEAL if u else RED, TEAL if u else RED) for u, (t, b) in zip(ups, rows)]
    for i in (3, 7):
        candles[i] = _candle(rows[i][0], rows[i][1], grey, grey)
    up, _ = assign_direction(candles, WHITE)
    assert up.tolist() == ups


@pytest.fixture(scope="module")
def prices():
    return load_csv(DEMO)


def _read(window, size, scale):  # type: ignore[no-untyped-def]
    r = synth.render(window, "tv-light", volume=False, width=size[0], height=size[1])
    return digitize(synth.jpeg(r.png, 85, scale=scale))


def test_tv_light_jpeg_every_direction_right(prices) -> None:  # type: ignore[no-untyped-def]
    window = prices.iloc[-60:]
    d = _read(window, (800, 600), 1.0)
    assert len(d.bars) == 60
    moved = (window.close != window.open).to_numpy()
    truth = (window.close > window.open).to_numpy()
    got = np.array([b.up for b in d.bars])
    assert (got[moved] == truth[moved]).all()


def test_tv_light_dense_jpeg_resized_direction_errors_bounded(prices) -> None:  # type: ignore[no-untyped-def]
    # 90 bars at 800x600, JPEG and resized to 80 %: 20 directions were wrong, now 11
    window = prices.iloc[-90:]
    d = _read(window, (800, 600), 0.8)
    assert len(d.bars) == 90
    truth = (window.close > window.open).to_numpy()
    wrong = int((np.array([b.up for b in d.bars]) != truth).sum())
    assert wrong <= 12
