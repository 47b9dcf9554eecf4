"""Dense, blurred charts: bodies told from wicks by coverage span, not by binary span.

Under about 4 px per bar, JPEG and resizing spread a 1-px wick over 2 columns and a
2-3 px body over 3, so the binary span of a row could not tell them apart and
bodies were read from high to low (open/close within 1.5 px for only 53-59 % of
bars on the charts below).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from alphasignal.chart.ohlc import load_csv
from alphasignal.chart.reader import synth
from alphasignal.chart.reader.digitize import digitize
from alphasignal.chart.reader.measure import _coverage_rows

DEMO = Path(__file__).resolve().parents[1] / "alphasignal" / "data" / "demo_ohlcv.csv"


def _window(rows: int, cols: list[list[float]]) -> tuple[np.ndarray, ...]:
    """(strength, win, any_ink, first, last) for one candle whose rows follow the column strengths
    in ``cols`` (a list of per-row strengths over 3 columns), repeated ``rows`` times each."""
    strength = np.array([c for c in cols for _ in range(rows)], dtype=float)[:, None, :]  # rows x 1 x 3
    win = strength > 40
    any_ink = win.any(axis=2)
    first = np.argmax(win, axis=2)
    last = win.shape[2] - 1 - np.argmax(win[:, :, ::-1], axis=2)
    return strength, win, any_ink, first, last


def _two(parts: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    return tuple(np.concatenate([a, a], axis=1) for a in parts)  # two identical candles


def test_a_blurred_wick_is_not_a_body():
    # wick rows: 2 columns at half strength (binary span 2); body rows: 3 columns, the outer ones
    # partly covered (binary span 3); the binary threshold between wick 2 and body 3 fell on them
    parts = _window(6, [[0, 120, 110]] + [[90, 240, 90]] + [[0, 120, 110]])
    got = _coverage_rows(*_two(parts))
    assert got is not None
    assert not got[:6].any() and got[6:12].all() and not got[12:].any()


def test_a_hollow_body_keeps_its_width():
    # a hollow body: two thin edges with background between; the coverage span counts its width
    parts = _window(6, [[0, 200, 0]] + [[200, 0, 200]] + [[0, 200, 0]])
    got = _coverage_rows(*_two(parts))
    assert got is not None and got[6:12].all() and not got[:6].any()


def test_nothing_is_decided_when_bodies_and_wicks_span_alike():
    parts = _window(6, [[0, 200, 0]] + [[0, 200, 60]] + [[0, 200, 0]])
    assert _coverage_rows(*_two(parts)) is None


@pytest.mark.parametrize("style,bars,size", [
    ("nightclouds", 90, (640, 480)),
    ("ibd", 90, (640, 480)),
    ("starsandstripes", 120, (800, 600)),
    ("sas", 90, (640, 480)),
])
def test_dense_jpeg_resized_bodies_are_read_to_the_pixel(style, bars, size):
    window = load_csv(DEMO).iloc[-bars:]
    r = synth.render(window, style, volume=False, width=size[0], height=size[1])
    d = digitize(synth.jpeg(r.png, 85, scale=0.8))
    assert len(d.bars) == bars
    truth = synth.truth_rows(window, r) * 0.8
    got = np.array([[b.open, b.high, b.low, b.close] for b in d.bars])
    near = np.abs(got - truth) <= 1.5
    assert near[:, [0, 3]].mean() >= 0.85  # open and close (53-59 % before)
    assert near[:, [1, 2]].mean() >= 0.9
