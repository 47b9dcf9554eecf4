"""Body/wick width threshold on dense, blurred charts: a body as wide as its slot's window still
counts as the body width, and a wick blurred over two columns is not taken for a body."""

from __future__ import annotations

import numpy as np

from alphasignal.chart.reader.candles import body_threshold
from alphasignal.chart.reader.measure import measure_many

_SPACING = 6.0
_CENTRES = np.arange(4.0, 4.0 + 12 * _SPACING, _SPACING)


def _blurred_candles(line: bool = False) -> np.ndarray:
    """Ink of 12 candles 6 px apart: 5-px bodies (rows 20-29), wicks 2 px wide (a resized 1-px wick)
    from row 5 to row 44, with 1-px tips; ``line`` adds a moving average crossing every slot at row 40."""
    ink = np.zeros((50, int(_CENTRES[-1]) + 6), dtype=bool)
    for cx in _CENTRES.astype(int):
        ink[5:45, cx : cx + 2] = True  # the blurred wick straddles two columns
        ink[5, cx + 1] = ink[44, cx + 1] = False  # its tips are one column
        ink[20:30, cx - 2 : cx + 3] = True  # the body fills the 5-column window
    if line:
        ink[40, :] = True
    return ink


def test_body_filling_the_window_sets_the_body_width():
    thr, body, wick = body_threshold(_blurred_candles(), _CENTRES, _SPACING)
    assert body == 5.0
    assert wick == 2.0
    assert 2.0 < thr <= 5.0  # blurred wick rows (2 px) are below it, body rows (5 px) reach it


def test_blurred_wicks_are_not_measured_as_bodies():
    ink = _blurred_candles()
    rgb = np.where(ink[:, :, None], 40, 255).astype(np.int16) * np.ones(3, dtype=np.int16)
    thr, body, _ = body_threshold(ink, _CENTRES, _SPACING)
    for candle in measure_many(ink, rgb, _CENTRES, _SPACING, thr, body):
        assert candle is not None
        assert (candle.body_top, candle.body_bottom) == (20, 29.5)  # not the wick's 5-44
        assert (candle.high, candle.low) == (5, 44)


def test_a_line_through_the_gaps_is_not_a_body_row():
    thr, body, wick = body_threshold(_blurred_candles(line=True), _CENTRES, _SPACING)
    assert (body, wick) == (5.0, 2.0)
    assert thr > 2.0
