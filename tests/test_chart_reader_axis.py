"""Reading the price axis: label parsing, the robust fit, and the real OCR model on a fixture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from alphasignal.chart.reader.axis import AxisMapping, fit_mapping, parse_number, read_axis
from alphasignal.chart.reader.read import read_chart

DATA = Path(__file__).parent / "data" / "reader"


@pytest.mark.parametrize(
    "text, value",
    [("8.0", 8.0), (" 1,234.5 ", 1234.5), ("\u22123", -3.0), ("$42", 42.0), ("5O", 50.0), ("Price", None),
     ("", None), ("1.2.3", None), ("200 %", None)],
)
def test_parse_number(text, value):
    assert parse_number(text) == value


def test_fit_mapping_is_robust_to_a_misread_label():
    rows = [50.0, 100.0, 150.0, 200.0, 250.0]
    values = [9.0, 8.5, 8.0, 1.5, 7.0]  # "7.5" misread as "1.5"
    mapping, _ = fit_mapping(rows, values)
    assert mapping is not None and mapping.kind == "linear" and mapping.labels == 4
    assert mapping.price(200.0) == pytest.approx(7.5)


def test_fit_mapping_recognises_a_log_axis():
    rows = [40.0, 140.0, 240.0, 340.0]
    values = [1000.0, 100.0, 10.0, 1.0]
    mapping, _ = fit_mapping(rows, values)
    assert mapping is not None and mapping.kind == "log"
    assert mapping.price(190.0) == pytest.approx(10 ** 1.5, rel=1e-6)


@pytest.mark.parametrize(
    "rows, values, reason",
    [([10.0, 20.0], [2.0, 1.0], "only 2"), ([10.0, 20.0, 30.0], [1.0, 2.0, 3.0], "grow downwards"),
     ([10.0, 20.0, 30.0, 40.0], [5.0, 1.0, 9.0, 2.0], "do not agree")],
)
def test_fit_mapping_refuses_with_a_reason(rows, values, reason):
    mapping, why = fit_mapping(rows, values)
    assert mapping is None and reason in why


def test_mapping_round_trips():
    m = AxisMapping(intercept=12.0, slope=-0.01)
    assert float(m.row(m.price(123.0))) == pytest.approx(123.0)


def test_read_axis_without_labels_says_why():
    blank = np.full((200, 300, 3), 255, dtype=np.int16)
    result = read_axis(blank, (20, 180, 40, 260), recognizer=lambda crops: [("", 0.0)] * len(crops))
    assert result.mapping is None and "label" in result.reason


def test_ocr_reads_the_fixture_axis_within_half_a_percent():
    pytest.importorskip("rapidocr_onnxruntime")  # an optional dependency of the reader
    truth = json.loads((DATA / "intc_charles_70.json").read_text())
    reading = read_chart((DATA / "intc_charles_70.png").read_bytes())
    assert reading.axis is not None and reading.axis.source == "ocr" and reading.axis.labels >= 4
    rows = np.linspace(80, 320, 7)
    true_prices = (rows - truth["y0"]) / truth["dy"]
    visible = abs(truth["ylim"][1] - truth["ylim"][0])
    assert np.max(np.abs(reading.axis.price(rows) - true_prices)) / visible < 0.005
    frame = reading.to_ohlc_frame()
    assert len(frame) == 70 and reading.signal is not None


def test_reading_is_json_for_the_cli():
    reading = read_chart((DATA / "intc_charles_70.png").read_bytes(), ocr=False)
    record = json.loads(json.dumps(reading.to_dict()))
    assert record["units"] == "relative" and record["bars"] == 70 and record["axis"] is None
    assert len(record["ohlc"]) == 70 and record["signal"]["action"] == "HOLD"


def test_a_leading_one_is_read_with_its_label():
    # a tuning-split chart (SPY, 2010, prices 117-128): in each label such as "128" the 1's stem stands
    # 7 px from the next digit, so it was cut off as a band of its own, every label was read as "28"
    # and the prices came out 100 too low (908 % of the visible range)
    pytest.importorskip("rapidocr_onnxruntime")
    from alphasignal.chart.reader import evaluate, synth

    frames = evaluate.load_frames(Path(__file__).resolve().parents[1] / "datasets" / "ohlcv", "tune")
    window = frames["yahoofinance-SPY-20080101-20180101.csv"].iloc[720:760]
    r = synth.render(window, "tradingview", volume=False, width=640, height=480)
    reading = read_chart(r.png)
    assert reading.axis is not None and reading.axis.source == "ocr" and reading.axis.labels >= 3
    assert sum(label.text in {"118", "120", "122", "124", "126", "128"} for label in reading.axis_labels) >= 3
    rows = np.linspace(r.y0 + 118 * r.dy, r.y0 + 127 * r.dy, 5)
    visible = abs(r.ylim[1] - r.ylim[0])
    assert np.max(np.abs(reading.axis.price(rows) - (rows - r.y0) / r.dy)) / visible < 0.005
