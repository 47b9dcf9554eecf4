"""Dense, blurred charts: bodies told from wicks by coverage span, not by binary span.

Under about 4 px per bar, JPEG and resizing spread a 1-px wick over 2 columns and a
2-3 px body over 3, so the binary span of a row could not tell them apart and
bodies were read from high to low (open/close within 1.5 px for only 53-59 % of
bars on the charts below, 84-97 % now).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pytest

from alphasignal.chart.ohlc import load_csv
from alphasignal.chart.reader import synth
from alphasignal.chart.reader.digitize import digitize
from alphasignal.chart.reader.measure import coverage_spans, coverage_threshold

DEMO = Path(__file__).resolve().parents[1] / "alphasignal" / "data" / "demo_ohlcv.csv"


def _rows(parts: list[tuple[int, list[float]]], candles: int = 2) -> Optional[np.ndarray]:
    """Which inked rows of identical candles are body rows: each candle's rows are ``parts``
    (a count of rows, and the strengths over its 3 columns, the middle one the wick's)."""
    strength = np.array([c for rows, c in parts for _ in range(rows)], dtype=float)  # rows x 3
    win = strength > 40
    first = np.argmax(win, axis=1)
    last = 2 - np.argmax(win[:, ::-1], axis=1)
    y = np.arange(len(strength))
    args = (strength[y, first], strength[y, last], np.where(win[:, 1], strength[:, 1], 0), first, last)
    flat = [np.tile(a, candles) for a in args]
    candle = np.repeat(np.arange(candles), len(strength))
    spans = coverage_spans(*flat, candle, candles)
    thr = coverage_threshold(spans, candle, candles)
    return None if thr is None else (spans >= thr)[: len(strength)]


def test_a_blurred_wick_is_not_a_body():
    # wick rows: 2 columns at half strength (binary span 2); body rows: 3 columns, the outer ones
    # partly covered (binary span 3); the binary threshold between wick 2 and body 3 fell on them
    got = _rows([(6, [0, 120, 110]), (6, [90, 240, 90]), (6, [0, 120, 110])])
    assert got is not None
    assert not got[:6].any() and got[6:12].all() and not got[12:].any()


def test_a_hollow_body_keeps_its_width():
    # a hollow body: two thin edges with background between; the coverage span counts its width
    got = _rows([(6, [0, 200, 0]), (6, [200, 0, 200]), (6, [0, 200, 0])])
    assert got is not None and got[6:12].all() and not got[:6].any()


def test_nothing_is_decided_when_bodies_and_wicks_span_alike():
    assert _rows([(6, [0, 200, 0]), (6, [0, 200, 60]), (6, [0, 200, 0])]) is None


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
    assert near[:, [0, 3]].mean() >= 0.8  # open and close (53-59 % before; 84-97 % now)
    assert near[:, [1, 2]].mean() >= 0.9


def _dense(style: str, volume: bool = False, bars: int = 120):  # type: ignore[no-untyped-def]
    """A 640x480 chart of the last ``bars`` demo bars, JPEG and resized to 80 %: 2.77 px per bar."""
    window = load_csv(DEMO).iloc[-bars:]
    r = synth.render(window, style, volume=volume, width=640, height=480)
    return window, r, digitize(synth.jpeg(r.png, 85, scale=0.8))


@pytest.mark.parametrize("style", ["kenan", "classic", "default"])
def test_a_spine_fringe_is_not_read_as_candles(style):
    # the panel's top row lay on the top spine; its JPEG fringe was one more wide row in every
    # candle's window, and 12-24 thin candles were read there, all four prices on the spine
    # (mean error 10-23 px before, 1-2 px now)
    window, r, d = _dense(style)
    assert len(d.bars) == 120
    got = np.array([[b.open, b.high, b.low, b.close] for b in d.bars])
    assert not any(b.low - b.high < 2 and b.high <= d.panel.top + 2 for b in d.bars)
    assert np.abs(got - synth.truth_rows(window, r) * 0.8).mean() < 2.5


def test_the_panel_stops_inside_spines_on_its_edges():
    from alphasignal.chart.reader.lines import Line
    from alphasignal.chart.reader.panel import _inside_spines

    grey = np.array([0, 0, 0], dtype=np.int16)
    spines = [Line(45, 47, 94, 460, grey), Line(314, 315, 94, 460, grey)]
    assert _inside_spines(spines, 44, 316, 94, 460) == (49, 313)
    # a gridline inside the panel, or a short line at its edge, moves nothing
    inner = [Line(100, 100, 94, 460, grey), Line(45, 46, 94, 200, grey)]
    assert _inside_spines(inner, 44, 316, 94, 460) == (44, 316)


def test_dense_centroids_are_not_pulled_by_blurred_neighbours():
    from alphasignal.chart.reader.candles import _centroids

    # 2.77 px per bar, bodies 1.7 px wide, blurred over a pixel either side (a resized JPEG): a
    # three-column window takes a column of each neighbour's blur, and the centroids were 0.3 px
    # rms off the true centres (0.07 spacings of scatter with which the guard refused the chart)
    spacing = 2.77
    centres = 1.6 + np.arange(12) * spacing
    cols = np.arange(40)
    profile = np.zeros(40)
    for c, height in zip(centres, [10, 30, 5, 20, 8, 25, 12, 30, 6, 18, 22, 9]):
        cover = np.clip(np.minimum(cols + 0.5, c + 0.85) - np.maximum(cols - 0.5, c - 0.85), 0, 1)
        profile += height * np.convolve(cover, [0.25, 0.5, 0.25], mode="same")
    got, _ = _centroids(profile, centres, spacing)
    assert np.sqrt(np.mean((got - centres) ** 2)) < 0.15  # 0.30 px before


def test_a_biased_first_peak_still_divides_a_longer_period():
    from alphasignal.chart.reader.candles import _divisor_peak

    # 2.77 px per bar: the first peak sits at 2.92 (the candles' shape), its multiples at 5.39 and
    # 8.14, and a gridline period of 72 px is the strongest; 8.14 was taken for the spacing
    # (40 bars read for 120)
    lags = [2.92, 5.39, 8.14, 11.08, 13.86, 36.01, 72.01]
    heights = [0.271, 0.18, 0.351, 0.302, 0.173, 0.342, 0.468]
    assert _divisor_peak(lags, heights, 2) == 0
    # a first peak well off a third of the chosen one is no divisor of it (a 16 px grid)
    assert _divisor_peak([4.67, 11.17, 16.0], [0.229, 0.035, 0.533], 2) == 2


def test_dense_default_chart_keeps_every_bar():
    window, r, d = _dense("default")
    assert len(d.bars) == 120  # 40 read when the spacing was taken for three times itself


@pytest.mark.parametrize("style", ["charles", "ibd", "checkers", "tradingview"])
def test_a_dense_chart_passes_the_guard(style):
    # 2.77 px per bar: whole-pixel centroids alone are 0.07 spacings off an exact grid, and the
    # guard's regularity refused such charts as "not a candlestick chart" (scores 0.0-0.51)
    from alphasignal.chart.reader.guard import DEFAULT_THRESHOLD, score_digitized

    _, _, d = _dense(style)
    assert len(d.bars) == 120
    score, factors = score_digitized(d)
    assert factors["regularity"] >= 0.9
    assert score >= DEFAULT_THRESHOLD


@pytest.mark.parametrize("style", ["nightclouds", "starsandstripes", "mike", "sas"])
def test_a_neighbours_blur_on_the_last_gridline_is_no_candle(style):
    # the last candle stands 2.7 px left of a dashed gridline; its JPEG blur across the line is
    # neither the line's colour nor the background's and stayed as ink on the line's column, in
    # the candle's rows: a 121st bar was read there
    window, r, d = _dense(style)
    assert len(d.bars) == 120
    xs = np.array([b.x for b in d.bars])
    assert np.abs(xs - r.xs * 0.8).max() < 0.5


def test_a_spacing_without_a_peak_of_its_own_is_found_from_its_multiples():
    from alphasignal.chart.reader.candles import _missing_fundamental

    # a brasil chart at 2.77 px per bar: blue and yellow candles blur into the green between
    # them, the profile shows no peak at 2.77 but one at each of 2, 3 and 4 times it; 5.57 px was
    # taken for the spacing (60 bars read for 120)
    lags = [5.63, 8.25, 11.07, 13.70, 16.74, 19.38, 22.23, 24.83]
    assert abs(_missing_fundamental(lags, 2) - 2.77) < 0.02
    # a 10.9 px grid with two weak peaks that happen to fall near 2 and 3 times 2.72, but none at
    # 5 to 8 times it (203 bars were read for 60)
    assert _missing_fundamental([5.31, 8.57, 10.89, 21.39, 29.62, 32.07], 2) is None
    # a coarse grid with a peak of its own, or no peak at the multiples in between, is left alone
    assert _missing_fundamental([4.67, 11.17, 16.0], 2) is None
    assert _missing_fundamental([2.8, 5.6, 8.4, 11.2], 3) is None


def _brasil(start: int, bars: int, volume: bool):  # type: ignore[no-untyped-def]
    window = load_csv(DEMO).iloc[start : start + bars]
    r = synth.render(window, "brasil", volume=volume, width=640, height=480)
    return window, r, digitize(synth.jpeg(r.png, 85, scale=0.8))


@pytest.mark.parametrize("start,volume", [(55, False), (55, True), (20, True)])
def test_a_candle_blurred_under_the_ink_thresholds_keeps_its_slot(start, volume):
    # navy dojis on green at 3.7 px per bar: a 1-px wick, resized and JPEG'd, differs from the
    # background by 40-70 levels, under both ink thresholds; its empty slot split the run of
    # candles (86-87 of 90 read). It is now read from the faint pixels, with a warning.
    window, r, d = _brasil(start, 90, volume)
    assert len(d.bars) == 90
    assert np.abs(np.array([b.x for b in d.bars]) - r.xs * 0.8).max() < 0.5
    assert any("faint pixels" in w for w in d.warnings)
    got = np.array([[b.open, b.high, b.low, b.close] for b in d.bars])
    assert np.median(np.abs(got - synth.truth_rows(window, r) * 0.8)) < 1.5


@pytest.mark.parametrize("start,volume", [(15, False), (15, True), (20, False)])
def test_the_last_gridline_of_the_candles_colour_adds_no_bar(start, volume):
    # brasil draws yellow gridlines, and yellow up candles; the last one's blur on the last gridline,
    # plus specks where horizontal gridlines cross it, made a 121st bar (or worse, 59 read for 120)
    _, r, d = _brasil(start, 120, volume)
    assert len(d.bars) == 120
    assert np.abs(np.array([b.x for b in d.bars]) - r.xs * 0.8).max() < 0.5


def test_a_third_of_the_first_strong_peak_can_be_the_spacing():
    from alphasignal.chart.reader.candles import _missing_fundamental

    # a brasil chart at 2.77 px per bar whose first peak over 0.6 of the strongest is at 3 spacings
    lags = [5.69, 8.36, 10.96, 13.89, 16.78, 19.31, 22.01]
    assert abs(_missing_fundamental(lags, 1) - 2.787) < 0.01
