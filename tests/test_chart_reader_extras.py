"""Overlay drawing, grounding a vision model's answer, the evaluation plan, and bad input."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphasignal.chart.reader import synth
from alphasignal.chart.reader.evaluate import HELD_OUT_FROM, _pattern_hits, plan
from alphasignal.chart.reader.grounding import check, ground_vlm_signal
from alphasignal.chart.reader.overlay import overlay_image, render_overlay
from alphasignal.chart.reader.read import read_chart
from alphasignal.errors import ImageError
from alphasignal.schemas import ChartSignal

DATA = Path(__file__).parent / "data" / "reader"


@pytest.fixture(scope="module")
def fixture():
    png = (DATA / "intc_charles_70.png").read_bytes()
    truth = json.loads((DATA / "intc_charles_70.json").read_text())
    from alphasignal.chart.reader.axis import AxisMapping

    axis = AxisMapping(intercept=-truth["y0"] / truth["dy"], slope=1 / truth["dy"], source="truth")
    return png, read_chart(png, axis=axis)


def test_overlay_draws_the_recovered_candles(fixture, tmp_path):
    from PIL import Image

    png, reading = fixture
    path = render_overlay(png, reading, tmp_path / "out" / "overlay.png")
    with Image.open(path) as img, Image.open(io.BytesIO(png)) as original:
        assert img.size == original.size
        pixels = np.asarray(img.convert("RGB"))
    drawn = ((pixels == (255, 0, 255)).all(axis=2) | (pixels == (0, 200, 255)).all(axis=2)).sum()
    assert drawn > 10 * len(reading.bars)


def test_overlay_of_an_empty_reading_still_writes_the_image():
    blank = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (120, 80), "white").save(blank, format="PNG")
    reading = read_chart(blank.getvalue(), ocr=False)
    assert overlay_image(blank.getvalue(), reading).startswith(b"\x89PNG")


def test_grounding_flags_invented_levels_wrong_trend_and_missing_patterns(fixture):
    _, reading = fixture
    close = float(reading.prices[-1, 3])
    invented = ChartSignal(action="BUY", confidence=0.8, entry_price=close * 3, stop_loss=close * 2.5,
                           take_profit=close * 4, trend="downtrend" if reading.signal.trend == "uptrend" else "uptrend",
                           patterns=["morning star", "three white soldiers", "a rocket"])
    notes, confidence = check(invented, reading)
    assert any("outside the chart's visible prices" in n for n in notes)
    assert any("ATR from the last close" in n for n in notes)
    assert any("'morning star'" in n for n in notes) and not any("rocket" in n for n in notes)
    assert confidence < invented.confidence


def test_grounding_accepts_a_signal_consistent_with_the_chart(fixture):
    _, reading = fixture
    close = float(reading.prices[-1, 3])
    fine = ChartSignal(action="HOLD", confidence=0.5, trend=reading.signal.trend, patterns=reading.patterns[:2])
    assert ground_vlm_signal(fine, reading) == []
    near = ChartSignal(action="BUY", confidence=0.5, entry_price=close, stop_loss=close * 0.98,
                       take_profit=close * 1.03, trend=reading.signal.trend)
    assert not any("outside" in n for n in ground_vlm_signal(near, reading))


def test_evaluation_windows_are_held_out():
    index = pd.bdate_range("2008-01-01", "2016-12-30")
    frame = pd.DataFrame({"close": np.ones(len(index))}, index=index)
    cases = plan({"x.csv": frame}, 30)
    assert all(frame.index[c.start] >= HELD_OUT_FROM for c in cases)
    assert len({c.style for c in cases}) >= 10
    tuning = plan({"x.csv": frame}, 30, held_out=False)
    assert all(frame.index[c.start + c.bars - 1] < HELD_OUT_FROM for c in tuning)


def test_inside_and_outside_bars():
    ohlc = np.array([[10, 12, 8, 11], [11, 11.5, 9, 10], [10, 13, 7, 12]], dtype=float)
    hits = _pattern_hits(np.vstack([ohlc] * 4))
    assert hits["inside bar"][1] and not hits["inside bar"][2]
    assert hits["outside bar"][2] and not hits["outside bar"][1]


def test_a_huge_image_is_refused_before_decoding():
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (3000, 3000), "white").save(buf, format="PNG")
    with pytest.raises(ImageError, match="too large"):
        read_chart(buf.getvalue(), max_pixels=1_000_000)


def test_a_chart_cropped_through_the_axis_keeps_relative_units(fixture):
    from PIL import Image

    png, _ = fixture
    with Image.open(io.BytesIO(png)) as img:
        cropped = img.crop((0, 0, 600, img.height))  # the price labels are cut off
        buf = io.BytesIO()
        cropped.save(buf, format="PNG")
    reading = read_chart(buf.getvalue())
    assert len(reading.bars) >= 60
    if reading.axis is None:  # never invented: relative units, HOLD without levels
        assert reading.prices is None and reading.signal.entry_price is None


def test_a_single_candle_is_not_a_chart():
    window = synth.render(
        pd.DataFrame({"open": [10.0, 10.5], "high": [11.0, 11.2], "low": [9.5, 10.1], "close": [10.5, 11.0],
                      "volume": [0.0, 0.0]}, index=pd.bdate_range("2020-01-01", periods=2)), "charles", volume=False,
    )
    reading = read_chart(window.png, ocr=False)
    assert reading.guard_score < 0.5
    assert reading.signal is None or reading.signal.entry_price is None


@pytest.mark.slow
def test_evaluate_reader_reports_every_figure(tmp_path):
    from alphasignal.chart.reader.evaluate import evaluate_reader

    source = Path("/work/shared/data/ohlcv")
    if not (source / "ford_2012.csv").is_file():  # the shared data of the development machine
        index = pd.bdate_range("2012-01-02", periods=260)
        rng = np.random.default_rng(1)
        close = 20 + np.cumsum(rng.normal(0, 0.3, len(index)))
        frame = pd.DataFrame({"Date": index, "Open": close + rng.normal(0, 0.1, len(index)),
                              "High": close + 0.5, "Low": close - 0.5, "Close": close, "Volume": 1e6})
        frame["High"] = frame[["Open", "High", "Close"]].max(axis=1)
        frame["Low"] = frame[["Open", "Low", "Close"]].min(axis=1)
        frame.to_csv(tmp_path / "ford_2012.csv", index=False)
        source = tmp_path
    report = evaluate_reader(source, charts=4)
    assert report["charts"] == 4 and report["held_out_from"] == "2012-01-01"
    for key in ("ohlc_error_pct_of_range", "bar_count_exact_rate", "patterns", "pattern_macro_f1", "axis_read_rate",
                "axis_error_pct_of_range", "guard", "latency_ms"):
        assert key in report
    assert report["guard"]["negatives"] >= 20 and 0 <= report["guard"]["accuracy"] <= 1
    assert 0 < report["pattern_macro_f1_whole_pixel_ceiling"] <= 1
