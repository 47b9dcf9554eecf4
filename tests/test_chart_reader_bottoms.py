"""Body bottoms: where a body's last row lies relative to its bottom price depends on how the chart
draws bodies, and the reader tells that from the candles' lower wicks.

With one fixed offset, bottoms were read half a row too low on mplfinance charts (a stroke
around each body) and half a row too high on TradingView-like ones (plain rectangles): half
of the bodies' bottoms were more than half a pixel off on either kind.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from alphasignal.chart.ohlc import load_csv
from alphasignal.chart.reader import synth
from alphasignal.chart.reader.candles import RawCandle
from alphasignal.chart.reader.digitize import _bottom_shift, digitize

DEMO = Path(__file__).resolve().parents[1] / "alphasignal" / "data" / "demo_ohlcv.csv"


def _raw(last_body_row: int, low: int) -> RawCandle:
    grey = np.array([90.0, 90.0, 90.0])
    return RawCandle(x=10.0, body_top=last_body_row - 10, body_bottom=last_body_row + 0.5, high=last_body_row - 14,
                     low=low, edge=grey, fill=grey, width=5.0)


def test_candles_that_never_end_flush_with_their_wick_are_plain_rectangles():
    raws = [_raw(50, 51)] * 4 + [_raw(50, 52)] * 2 + [_raw(50, 60)] * 5
    assert _bottom_shift(raws) == 0.5


def test_some_candles_flush_with_their_wick_are_stroked_bodies():
    raws = [_raw(50, 50)] * 2 + [_raw(50, 51)] * 6 + [_raw(50, 60)] * 5
    assert _bottom_shift(raws) == -0.5


def test_too_few_short_wicks_leave_the_bottoms_where_they_were():
    assert _bottom_shift([_raw(50, 51)] * 3 + [_raw(50, 60)] * 20) == 0.0
    # one flush candle among many short wicks is not enough to call the bodies stroked
    assert _bottom_shift([_raw(50, 50)] + [_raw(50, 51)] * 9) == 0.0


@pytest.mark.parametrize("style,bars,size", [
    ("charles", 90, (1000, 700)),
    ("mike", 120, (1200, 800)),
    ("tv-light", 120, (1200, 800)),
    ("tv-dark", 90, (800, 600)),
])
def test_body_bottoms_are_read_to_half_a_pixel_on_both_kinds(style, bars, size):
    window = load_csv(DEMO).iloc[-bars:]
    r = synth.render(window, style, volume=False, width=size[0], height=size[1])
    d = digitize(r.png)
    assert len(d.bars) == bars
    truth = synth.truth_rows(window, r)
    got = np.array([[b.open, b.close] for b in d.bars])
    bottom_true, bottom_read = truth[:, [0, 3]].max(axis=1), got.max(axis=1)
    tall = bottom_true - truth[:, [0, 3]].min(axis=1) >= 2
    error = (bottom_read - bottom_true)[tall]
    assert abs(float(np.median(error))) <= 0.15  # was +0.5 (mplfinance) and -0.5 (TradingView-like)
    assert np.mean(np.abs(error) <= 0.5) >= 0.95
