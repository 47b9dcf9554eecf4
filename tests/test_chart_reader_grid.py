"""The candle grid and the lines around it: spacing from several autocorrelation peaks, a grid
at half the spacing refused, axis labels on the grid left out, a resized shared spine still
splitting the panels, spines not lengthened by date labels, a long wick not taken for a gridline.

Each case misread the chart before the fix it pins (what was read is in the comments).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from alphasignal.chart.ohlc import load_csv
from alphasignal.chart.reader import synth
from alphasignal.chart.reader.candles import _divisor_peak, _harmonic_spacing, find_slots
from alphasignal.chart.reader.digitize import digitize, digitize_rgb
from alphasignal.chart.reader.lines import Line, _extent, _find_lines, erase_cols

DEMO = Path(__file__).resolve().parents[1] / "alphasignal" / "data" / "demo_ohlcv.csv"


def _prices():  # type: ignore[no-untyped-def]
    return load_csv(DEMO)


def test_the_spacing_is_the_slope_through_the_peaks_at_its_multiples():
    # the first peak of a resized chart with wide bodies lay at 5.94 px for a 6.91 px spacing;
    # the peaks at 2..6 spacings were not biased (measured on a rendered chart)
    peaks = [5.94, 9.1, 13.36, 20.72, 27.52, 34.66, 41.68]
    assert abs(_harmonic_spacing(peaks, 5.94) - 6.91) < 0.05
    # a spurious peak nearer the second multiple than the true one is not taken for it
    assert abs(_harmonic_spacing([16.0, 20.75, 27.11, 32.0, 36.82, 48.0, 64.0], 16.0) - 16.0) < 0.05


def test_a_lone_peak_is_its_own_spacing():
    assert _harmonic_spacing([12.5], 12.5) == 12.5


def test_hollow_candles_under_moving_averages_are_not_read_as_two_candles_each():
    # 640x480 'default' style: hollow bodies' two edges and the averages crossing the gaps once
    # made the grid halve (119 bars read for 60)
    window = _prices().iloc[40:100]
    r = synth.render(window, "default", volume=True, mav=(10, 20), width=640, height=480)
    d = digitize(r.png)
    assert len(d.bars) == 60
    assert abs(d.spacing - (r.xs[1] - r.xs[0])) < 0.05


def test_a_resized_shared_spine_still_splits_off_the_volume_panel():
    # resizing turns ibd's 1-px spine into a pale row over a dark one; the pale row's colour was
    # compared with the spines' and the volume bars were read with the candles (67 bars for 90)
    window = _prices().iloc[-90:]
    r = synth.render(window, "ibd", volume=True, width=1200, height=800)
    d = digitize(synth.jpeg(r.png, 85, scale=0.8))
    assert len(d.bars) == 90
    assert d.panel.bottom * d.scale < 0.7 * d.image_size[1]
    lows = np.array([b.low for b in d.bars]) / 0.8
    assert np.all(lows <= max(r.y0 + window["low"].to_numpy() * r.dy) + 3)


def _dark_chart_with_labels_on_the_grid() -> tuple[np.ndarray, int]:
    """A dark chart of 20 candles 20 px apart with no spines, and axis labels (light grey glyphs)
    in the slot after the last candle, as a TradingView-like chart puts them."""
    rng = np.random.default_rng(5)
    rgb = np.zeros((300, 520, 3), dtype=np.int16) + np.array([19, 23, 34], dtype=np.int16)
    up, down = np.array([38, 166, 154]), np.array([239, 83, 80])
    n = 20
    for k in range(n):
        x = 40 + 20 * k
        top = int(rng.integers(40, 180))
        height = int(rng.integers(8, 60))
        colour = up if k % 3 else down
        rgb[top - 10 : top + height + 10, x] = colour  # wick
        rgb[top : top + height, x - 6 : x + 7] = colour  # body
    for y in (60, 200):  # "105", "100": three thin glyphs per label, centred on the next slot
        for gx in (-5, 0, 5):
            rgb[y : y + 11, 40 + 20 * n + gx] = 209
            rgb[y, 40 + 20 * n + gx - 2 : 40 + 20 * n + gx + 3] = 209
    return rgb, n


def test_axis_labels_in_the_slot_after_the_last_candle_are_not_a_candle():
    rgb, n = _dark_chart_with_labels_on_the_grid()
    d = digitize_rgb(rgb)
    assert len(d.bars) == n
    assert max(b.x for b in d.bars) < 40 + 20 * n - 10


def test_the_grid_alone_still_covers_the_labels():
    # what the fix relies on: the slots found on all ink do reach the labels' slot
    rgb, n = _dark_chart_with_labels_on_the_grid()
    ink = np.abs(rgb - np.array([19, 23, 34])).max(axis=2) > 72
    slots = find_slots(ink)
    assert slots is not None and slots.centres.size == n + 1


def test_date_labels_under_a_spine_do_not_lengthen_it():
    # a spine's column: solid over rows 57..394, then the strokes of rotated date labels crossing it
    # after 67 blank rows (a 640x480 'classic' chart read its panel down to the image's bottom)
    inked = np.zeros(480, dtype=bool)
    inked[57:395] = True
    for a, b in ((462, 468), (472, 474), (478, 480)):
        inked[a:b] = True
    assert _extent(np.flatnonzero(inked), lambda: inked) == (57, 394)


def test_a_gridline_covered_by_candles_keeps_its_whole_extent():
    same = np.zeros(600, dtype=bool)
    same[100:250] = True
    same[400:420] = True  # the end of the line, past a tall candle that hides 150 pixels of it
    inked = same.copy()
    inked[250:400] = True  # the candle: ink of another colour
    assert _extent(np.flatnonzero(same), lambda: inked) == (100, 419)
    # JPEG-lightened gridline pixels near the line's colour are not blank either
    assert _extent(np.flatnonzero(same), lambda: same | (np.arange(600) >= 250)) == (100, 419)


def test_a_faint_dashed_gridline_keeps_its_whole_extent():
    # an 800x600 'binance' JPEG: its light grey dashed gridlines lie about 48 levels from the white
    # background, and JPEG lightens most dashes under the ink threshold near the left spine; the line's
    # extent, taken from its inked pixels alone, began 60 px inside the plot and cut three candles off
    rng = np.random.default_rng(3)
    rgb = np.full((60, 800, 3), 255, dtype=np.int16)
    x = np.arange(40, 760)
    dash = x[(x - 40) % 10 < 6]
    rgb[30, dash] = 204
    light = dash[((dash < 300) & (rng.random(dash.size) < 0.85)) | (rng.random(dash.size) < 0.1)]
    rgb[30, light] = rng.integers(215, 231, size=(light.size, 1))  # 25-40 levels from the background
    ink = np.abs(rgb - 255).max(axis=2) > 48
    assert not ink[30, 40:300].any() or ink[30, 40:300].mean() < 0.1  # hardly any ink on the left
    lines = _find_lines(rgb, ink, 0.3)
    assert [(l.first, l.start, l.end) for l in lines] == [(30, 40, 756)]


def test_a_coloured_body_on_a_grey_vertical_line_is_not_erased_with_it():
    # 'binancedark': a muted green body, (93, 147, 124), lies within 36 levels of the white-on-black
    # line's mixes (a grey at 0.59 of the line), so it was erased with the gridline it sits on
    rgb = np.zeros((60, 30, 3), dtype=np.int16)
    rgb[:, 10] = 206  # a white gridline on black
    rgb[20:40, 10:12] = (93, 147, 124)  # a 2-px body drawn over it
    ink = np.abs(rgb).max(axis=2) > 72
    background = np.zeros(3, dtype=np.int16)
    erase_cols(rgb, ink, [Line(10, 10, 0, 60, np.array([206, 206, 206], dtype=np.int16))], background)
    assert ink[20:40, 10:12].all()  # the body stays
    assert not ink[:20, 10].any() and not ink[40:, 10].any()  # the line goes


def test_a_dense_dark_chart_keeps_its_first_candle_on_a_gridline():
    from alphasignal.chart.reader import evaluate

    frames = evaluate.load_frames(Path(__file__).resolve().parents[1] / "datasets" / "ohlcv", "tune")
    window = frames["yahoofinance-GOOG-20040819-20180120.csv"].iloc[909:1029]
    r = synth.render(window, "binancedark", volume=False, bollinger=True, width=800, height=600)
    assert len(digitize(synth.jpeg(r.png, 85, scale=0.8)).bars) == 120  # 119 read before


def test_a_long_wick_alone_is_not_a_vertical_gridline():
    # a dark chart with no visible gridlines: one wick spanning 35 % of the image's height was taken
    # for a spine, and the panel was cut to its rows (4 bars read for 40)
    rgb = np.zeros((800, 600, 3), dtype=np.int16) + np.array([19, 23, 34], dtype=np.int16)
    rgb[400:680, 300] = (38, 166, 154)
    rgb[450:500, 294:307] = (38, 166, 154)
    ink = np.abs(rgb - np.array([19, 23, 34])).max(axis=2) > 72
    assert _find_lines(np.swapaxes(rgb, 0, 1), ink.T, 0.3) == []
    # a pair of spines of that length are lines (a plot in the middle third of a tall figure)
    rgb[400:680, 100] = rgb[400:680, 500] = (200, 200, 200)
    ink = np.abs(rgb - np.array([19, 23, 34])).max(axis=2) > 72
    found = _find_lines(np.swapaxes(rgb, 0, 1), ink.T, 0.3)
    assert [line.first for line in found] == [100, 500]


def test_a_strong_long_period_does_not_hide_the_candle_spacing():
    # a dense 640x480 Bollinger chart (2.77 px per bar, JPEG+resized): the strongest peak lay at
    # 36 px, 13 spacings, and the first peak over 0.6 of it was that one (10 bars read for 120)
    lags = [2.75, 5.5, 8.25, 11.0, 13.8, 16.5, 19.4, 22.1, 24.9, 27.7, 30.4, 33.2, 36.0]
    heights = [0.21, 0.14, 0.22, 0.19, 0.1, 0.13, 0.08, 0.07, 0.15, 0.17, 0.07, 0.02, 0.4]
    assert _divisor_peak(lags, heights, 12) == 0


def test_a_peak_is_not_taken_for_the_spacing_without_a_peak_at_each_multiple():
    # a weak peak at 5 px with the strong one at 40 px, but nothing at 10, 15, ... 35 px
    assert _divisor_peak([5.0, 40.0], [0.2, 0.5], 1) == 1
    # a peak at half the spacing (hollow bodies' two edges) is not a divisor: fewer than 3 multiples
    assert _divisor_peak([5.0, 10.0], [0.3, 0.5], 1) == 1


def _short_first_body(window):  # type: ignore[no-untyped-def]
    """``window`` with its first bar's body cut to 2 % of its range, its wicks kept."""
    window = window.copy()
    mid = (window["high"].iloc[0] + window["low"].iloc[0]) / 2
    span = window["high"].iloc[0] - window["low"].iloc[0]
    window.iloc[0, window.columns.get_loc("open")] = mid - 0.01 * span
    window.iloc[0, window.columns.get_loc("close")] = mid + 0.01 * span
    return window


def test_a_first_candle_on_a_gridline_of_its_colour_is_still_a_candle():
    # brasil draws the x gridlines on bars 1, 21, ... in the up colour; a short-bodied first candle
    # lost its wick with the gridline and left no vertical stroke: 119 bars were read for 120,
    # every one a bar off
    window = _short_first_body(_prices().iloc[-120:])
    r = synth.render(window, "brasil", width=1200, height=800)
    d = digitize(r.png)
    assert len(d.bars) == 120
    assert np.abs(np.array([b.x for b in d.bars]) - r.xs).max() < 1.0  # every bar in its own slot
    truth = r.y0 + window[["open", "close"]].to_numpy() * r.dy
    assert np.abs(np.array([d.bars[0].open, d.bars[0].close]) - truth[0]).max() < 1.5
    # its wicks went with the dashed gridline; the gaps between dashes they fill give them back
    wicks = r.y0 + window[["high", "low"]].to_numpy()[0] * r.dy
    assert np.abs(np.array([d.bars[0].high, d.bars[0].low]) - wicks).max() < 2.5
    assert any("dashed vertical gridline of their colour (bar 1 first)" in w for w in d.warnings)


def test_wicks_on_a_dashed_gridline_of_their_colour_are_read_from_the_gaps_they_fill():
    # sas draws dashed x gridlines on bars 1, 21, ... in the candles' colour; their wicks were erased
    # with the line and read as nothing (bar 21's high 6 px short, bar 81's 6 px, bar 101's 6 px)
    window = _prices().iloc[-120:]
    r = synth.render(window, "sas", width=1200, height=800)
    d = digitize(r.png)
    assert len(d.bars) == 120
    truth = r.y0 + window[["high", "low"]].to_numpy() * r.dy
    for i in (20, 40, 80, 100):
        assert abs(d.bars[i].high - truth[i, 0]) < 2.5 and abs(d.bars[i].low - truth[i, 1]) < 2.5, i
    assert any("4 bar(s) lie on a dashed vertical gridline" in w for w in d.warnings)


def test_an_erased_gridline_beyond_the_last_candle_adds_no_slot():
    from alphasignal.chart.reader.candles import _ends_on_lines

    h, w = 200, 60
    spacing, x0 = 8.0, 4.0  # slots at 4, 12, ..., 52; the block is slots 0..5, slot 6 is at 52

    def ends(ink, raw):  # type: ignore[no-untyped-def]
        return _ends_on_lines(ink, raw, ink.sum(axis=0).astype(float), raw.sum(axis=0).astype(float),
                              x0, spacing, 0, 5)

    ink = np.zeros((h, w), dtype=bool)
    raw = ink.copy()
    raw[:, 52] = True  # a full-height gridline, erased from ``ink``, at slot 6
    # a horizontal line crossing it runs on past the slot's window: not a body
    ink[100, 40:60] = True
    assert ends(ink, raw | ink) == (0, 5)
    # what is left of a body, centred on the slot and blank either side, is one
    ink[:] = False
    ink[100:102, 51:54] = True
    assert ends(ink, raw | ink) == (0, 6)
    # without an erased gridline there, the same remnant is not taken
    assert ends(ink, ink.copy()) == (0, 5)
    # nor on the rows of a horizontal line (blank in ``raw``): the speck where two gridlines cross
    on_line = raw | ink
    on_line[99:103] = False
    assert ends(ink, on_line) == (0, 5)


def test_a_solid_gridline_gives_no_wick_and_a_short_run_moves_no_end():
    from alphasignal.chart.reader.candles import RawCandle
    from alphasignal.chart.reader.digitize import _wick_through_dashes
    from alphasignal.chart.reader.lines import Line
    from alphasignal.chart.reader.panel import Panel

    panel = Panel(top=0, bottom=200, left=0, right=40)
    line = Line(first=20, last=20, start=0, end=199, colour=np.array([0, 0, 0]))

    def candle():  # type: ignore[no-untyped-def]
        return RawCandle(x=20.0, body_top=100.0, body_bottom=120.5, high=100.0, low=120.0,
                         edge=np.zeros(3), fill=np.zeros(3), width=5.0)

    raw = np.zeros((200, 40), dtype=bool)
    raw[:, 20] = True  # solid: nothing tells the wick from the line
    c = candle()
    assert not _wick_through_dashes(c, line, raw, panel) and (c.high, c.low) == (100.0, 120.0)
    raw[::6, 20] = False  # dashes of 5 rows, gaps of 1: rows 0, 6, ..., 198 blank
    raw[80:101, 20] = True  # a wick filling the gaps from row 80 up to the body
    c = candle()
    assert _wick_through_dashes(c, line, raw, panel)
    assert 79 <= c.high <= 84  # its top lies in the dash after the gap left blank (79: 79-83)
    assert c.low == 120.0  # below the body the run stops at the next gap (row 126): no gap filled


def test_hollow_bodies_three_strokes_each_are_not_three_candles():
    # classic's hollow up bodies are two edges and a wick, evenly spaced: their autocorrelation peak
    # at 2/3 of the spacing was taken for it, then halved (120 bars read for 40)
    window = _prices().iloc[10:50]
    r = synth.render(window, "classic", volume=True, bollinger=True, width=640, height=480)
    d = digitize(synth.jpeg(r.png, 85, scale=0.8))
    assert len(d.bars) == 40
    assert abs(d.spacing - 0.8 * (r.xs[1] - r.xs[0])) < 0.1  # resized to 0.8


def test_a_spine_between_a_dashed_gridline_and_a_tall_volume_bar_still_splits_the_panels():
    # starsandstripes, resized: the price panel's spine lies two rows under its lowest dashed gridline
    # and above the volume panel's; each line took the other for the edge of a wider shape and the
    # spine was not found (JPEG leftovers of the gridlines beside it, or a volume bar reaching it,
    # also refused it): volume bars were read with the candles (19 bars read for 40)
    window = _prices().iloc[30:70]
    r = synth.render(window, "starsandstripes", volume=True, width=640, height=480)
    d = digitize(synth.jpeg(r.png, 85, scale=0.8))
    assert len(d.bars) == 40
    assert d.panel.bottom < 0.65 * d.image_size[1]  # the volume panel starts at 0.63


def test_hollow_bodies_read_as_three_strokes_are_merged_into_candles():
    # a hollow body's two edges and its wick, evenly spaced, made a grid three times too fine, and no
    # autocorrelation rule could tell (120 bars read for 40 on both); the body's top and bottom edges
    # join a candle's strokes along a row, and nothing joins two candles
    cases = [(("default", 1000, 700), 92, False, "jpeg+resize"), (("mike", 640, 480), 80, True, "jpeg")]
    for (style, width, height), start, volume, damage in cases:
        window = _prices().iloc[start : start + 40]
        r = synth.render(window, style, volume=volume, width=width, height=height)
        scale = 0.8 if damage == "jpeg+resize" else 1.0
        d = digitize(synth.jpeg(r.png, 85, scale=scale))
        assert len(d.bars) == 40, style
        assert np.abs(np.array([b.x for b in d.bars]) - r.xs * scale).max() < 1.0, style


def test_a_wide_hollow_body_edge_to_wick_peak_is_not_the_spacing():
    # classic 1200x800, 40 bars: the peak at a wide hollow body's edge-to-wick distance (5.8 px) was
    # the first strong one; no peak lies at its double, and a fine grid fitted only 6 bars (6 read for 40)
    window = _prices().iloc[108:148]
    r = synth.render(window, "classic", width=1200, height=800)
    d = digitize(r.png)
    assert len(d.bars) == 40
    assert abs(d.spacing - (r.xs[1] - r.xs[0])) < 0.05


def test_the_remains_of_a_dashed_gridline_after_the_last_candle_are_not_a_candle():
    # brasil draws a dashed x gridline one tick after the last candle, in the up colour; JPEG leaves
    # fringes beside it that the erased line does not take, and they stood as one more slot (41 for 40)
    window = _prices().iloc[105:145]
    r = synth.render(window, "brasil", width=800, height=600)
    d = digitize(synth.jpeg(r.png, 85))
    assert len(d.bars) == 40
    assert abs(d.bars[-1].x - r.xs[-1]) < 1.0


def test_a_last_candle_that_gapped_away_alone_joins_the_panel():
    # resized charles charts lose their faint frame, so the panel comes from bands of ink; the last
    # candle gapped up clear of the rest and a band of one candle never joined (59 bars read for 60)
    window = _prices().iloc[39:99]
    for width, height in ((1000, 700), (640, 480)):
        r = synth.render(window, "charles", volume=True, width=width, height=height)
        d = digitize(synth.jpeg(r.png, 85, scale=0.8))
        assert len(d.bars) == 60, width
        assert abs(d.bars[-1].x - 0.8 * r.xs[-1]) < 1.0, width


def test_a_band_of_wide_bodies_joins_the_panel_after_a_gap():
    # tv-light draws no spines; prices gapped up and never came back, so the bars split into two
    # bands of ink. A band joined the main one with 80 % of its ink within 0.3 spacing of a slot, which
    # wide bodies (0.73 spacing) never reach, not even the main band: 24 bars read for 40
    window = _prices().iloc[16:56]
    r = synth.render(window, "tv-light", volume=True, width=640, height=480)
    d = digitize(synth.jpeg(r.png, 85, scale=0.8))
    assert len(d.bars) == 40
    assert abs(d.bars[0].x - 0.8 * r.xs[0]) < 1.0


def test_the_dark_row_of_a_spine_resized_across_two_rows_is_erased():
    from alphasignal.chart.reader.lines import erase_rows

    # a navy spine resized to 80 % and JPEG'd: a pale row and a dark row; the line took the pale
    # row's colour, and the dark row, no mix of the pale colour with white, stayed as ink across the
    # panel, taken for the volume bars' baseline (a volume panel was not split off: 0 bars read)
    white = np.array([255, 255, 255], dtype=np.int16)
    rgb = np.zeros((20, 200, 3), dtype=np.int16) + white
    rgb[10] = (168, 180, 204)
    rgb[11] = (93, 101, 117)
    rgb[4:16, 50:53] = (12, 32, 96)  # a volume bar's edge crossing the spine
    ink = np.abs(rgb - white).max(axis=2) > 72
    erase_rows(rgb, ink, [Line(10, 11, 0, 199, np.array([168, 180, 204], dtype=np.int16))], white)
    assert not ink[10:12, :50].any() and not ink[10:12, 53:].any()  # both rows go
    assert ink[4:16, 50:53].all()  # what crosses them stays


@pytest.mark.parametrize("style,start", [("starsandstripes", 0), ("sas", 75)])
def test_a_gridlines_remains_do_not_hide_the_volume_panel(style, start):
    # 640x480, JPEG+resized, a volume panel: the first or last candle hides a vertical gridline from
    # the line search, and what JPEG keeps of it is one column standing from the volume baseline to
    # the top of the figure, with ink in every row; it was taken for the tallest volume bar, no
    # blank row was left above it, the volume panel was not split off (25 or 43 bars read for 60)
    window = load_csv(DEMO).iloc[start : start + 60]
    r = synth.render(window, style, volume=True, width=640, height=480)
    d = digitize(synth.jpeg(r.png, 85, scale=0.8))
    assert len(d.bars) == 60
    assert d.panel.bottom * d.scale <= r.bbox[1] * 0.8 + 12  # the price panel stops at the volume panel


def test_a_one_column_reaching_the_top_is_a_lines_remains():
    from alphasignal.chart.reader.panel import _line_remains

    columns = np.arange(10, 40)
    tops = np.full(30, 80)
    tops[5] = 2  # one column from the baseline (100) up to row 2
    assert _line_remains(2, tops, columns, 100)
    tops[6] = 2  # and the one beside it: a line 2 px wide
    assert _line_remains(2, tops, columns, 100)
    tops[12] = 2  # a bar drawn as two edges: not a line
    assert not _line_remains(2, tops, columns, 100)
    assert not _line_remains(30, np.where(tops == 2, 30, tops), columns, 100)  # lower down: a bar
