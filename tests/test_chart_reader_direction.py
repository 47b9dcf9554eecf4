"""Regression tests for reading each candle's direction (up/down) from its colours.

Failure modes: a wick read as a thin body, whose inside is background, was
clustered by that background colour (TradingView-like light theme, JPEG and
resized); a candle whose colour is equally far from both clusters took an
arbitrary side instead of the one its neighbours' closes and opens agree with; an
overlay line beside a body took over its edge colour and outvoted its fill; a hollow
body two pixels wide (all edge, no inside) was read as a filled one; a few bodies
misread as background took the place of one direction's colour, whose JPEG-spread
shades were each less frequent; a line crossing beside a hollow body, or JPEG
thickening its top and bottom edges, made its inside read as the edge colour.
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
from alphasignal.chart.reader.guard import guard_score
from alphasignal.chart.reader.measure import measure_many

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "alphasignal" / "data" / "demo_ohlcv.csv"
WHITE = np.array([255.0, 255.0, 255.0])
TEAL = np.array([38.0, 166.0, 154.0])
RED = np.array([239.0, 83.0, 80.0])


def _candle(top: float, bottom: float, fill: np.ndarray, edge: np.ndarray, width: float = 4.0) -> RawCandle:
    return RawCandle(x=0.0, body_top=top, body_bottom=bottom, high=top - 3, low=bottom + 3,
                     edge=np.asarray(edge, dtype=float), fill=np.asarray(fill, dtype=float), width=width)


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


def test_an_overlay_beside_a_body_does_not_outvote_its_fill() -> None:
    # starsandstripes with moving averages (a development window): a light-blue average beside
    # six red down bodies was their edge colour, and fill and edge taken as one vector put them
    # with the navy up bodies
    window = _history("AAPL").iloc[952:1072]
    assert _wrong_directions(window, "starsandstripes", (1000, 700), volume=True, mav=(10, 20))[0] <= 2


def test_a_hollow_body_with_no_inside_is_read_as_hollow() -> None:
    # classic at 640x480: an up body is white with a black edge, but two pixels wide it is all
    # edge (anti-aliased to grey 33), while a down body is black (18-25): 26 of 120 were wrong
    edge_up, down_fill, down_edge = np.array([33.0] * 3), np.array([25.0] * 3), np.array([18.0] * 3)
    ups = [True, False, True, True, False, False, True, False, True, False] * 3
    rows = _series(ups)
    candles = []
    for i, (u, (t, b)) in enumerate(zip(ups, rows)):
        narrow = i % 2 == 0
        if u:
            candles.append(_candle(t, b, edge_up if narrow else WHITE, edge_up, 2.0 if narrow else 3.0))
        else:
            candles.append(_candle(t, b, down_edge if narrow else down_fill, down_edge, 2.0 if narrow else 3.0))
    up, _ = assign_direction(candles, WHITE)
    assert up.tolist() == ups


def test_misread_background_fills_do_not_take_a_direction_s_place() -> None:
    # binancedark, JPEG and resized: the red bodies' shades fell into many colour bins, the few
    # bodies read as black background into one, so black and green were the two "directions"
    rng = np.random.default_rng(3)
    black = np.zeros(3)
    green, red = np.array([70.0, 200.0, 140.0]), np.array([225.0, 80.0, 100.0])
    ups = [bool(v) for v in rng.integers(0, 2, 40)]
    rows = _series(ups)
    candles = []
    for i, (u, (t, b)) in enumerate(zip(ups, rows)):
        if i % 8 == 3:
            fill = black + rng.integers(0, 5, 3)  # a body misread: background inside
        else:
            fill = (green if u else red) + rng.integers(-24, 25, 3)
        candles.append(_candle(t, b, fill, green if u else red))
    up, _ = assign_direction(candles, black)
    assert up.tolist() == ups


def test_inside_of_a_hollow_body_is_read_between_its_edges() -> None:
    # a hollow body 5 px wide and 9 tall whose top and bottom edges JPEG thickened to 2 rows,
    # its white inside spread over several colour bins, a line crossing its window on the left:
    # the inside was read as the edge colour (black), so the up candle was taken for a down one
    rng = np.random.default_rng(1)
    rgb = np.full((40, 20, 3), 255, dtype=np.int16)
    left, right, top, bottom = 8, 12, 10, 18
    rgb[top : bottom + 1, left : right + 1] = 2
    rgb[top + 2 : bottom - 1, left + 1 : right] = rng.integers(214, 242, size=(bottom - top - 3, right - left - 1, 1))
    rgb[4:top, 10], rgb[bottom + 1 : 26, 10] = 2, 2  # the wick
    ink = (rgb < 128).all(axis=2)
    for y in range(11, 17):  # a steep line beside the body
        rgb[y, 7 - (y - 11) // 3] = (120, 90, 160)
        ink[y, 7 - (y - 11) // 3] = True
    (candle,) = measure_many(ink, rgb, np.array([10.0]), 9.0, 4.0, 5.0)
    assert candle is not None
    assert candle.fill.min() > 200
    assert candle.edge.max() < 20


def _wrong_directions(window, style: str, size: tuple[int, int], *, scale=None, **kw):  # type: ignore[no-untyped-def]
    """(wrong up/down calls among bodies over 0.5 % of the range, the image, its reading)."""
    r = synth.render(window, style, width=size[0], height=size[1], **kw)
    image = r.png if scale is None else synth.jpeg(r.png, 85, scale=scale)
    d = digitize(image)
    assert len(d.bars) == len(window)
    moved = (np.abs(window.close - window.open) / (window.high.max() - window.low.min()) > 0.005).to_numpy()
    truth = (window.close > window.open).to_numpy()
    return int((np.array([b.up for b in d.bars])[moved] != truth[moved]).sum()), image, d


def test_classic_small_hollow_bodies_directions(prices) -> None:  # type: ignore[no-untyped-def]
    # 120 bars at 640x480 with moving averages: 29 directions were wrong, now 2
    assert _wrong_directions(prices.iloc[-120:], "classic", (640, 480), volume=False, mav=(10, 20))[0] <= 4


def _history(ticker: str):  # type: ignore[no-untyped-def]
    """A bundled price history; the windows used here are in the reader's development dates."""
    return load_csv(next((ROOT / "datasets" / "ohlcv").glob(f"yahoofinance-{ticker}-*.csv")))


def test_binancedark_bollinger_jpeg_resized_directions() -> None:
    # a development window: 24 directions were wrong (red and green one cluster) and the guard
    # refused the chart; now none
    window = _history("GOOG").iloc[1496:1556]
    wrong, image, d = _wrong_directions(window, "binancedark", (800, 600), scale=0.8, volume=True, bollinger=True)
    assert wrong <= 2
    assert guard_score(image, d) >= 0.5
