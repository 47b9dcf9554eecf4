"""The chart reader on rendered charts with known answers, non-charts, and bad input."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from alphasignal.chart.ohlc import load_csv, validate_ohlc
from alphasignal.chart.reader import synth
from alphasignal.chart.reader.digitize import digitize
from alphasignal.chart.reader.guard import NotAChartError, check_is_candlestick_chart, guard_score
from alphasignal.chart.reader.read import AxisMapping, read_chart
from alphasignal.errors import ImageError, PriceDataError

DEMO = Path(__file__).resolve().parents[1] / "alphasignal" / "data" / "demo_ohlcv.csv"


@pytest.fixture(scope="module")
def window():
    return load_csv(DEMO).iloc[-90:]


@pytest.fixture(scope="module", params=["ibd", "kenan"])
def rendered(request, window):
    return synth.render(window, request.param, volume=True)


def _truth_axis(r: synth.Rendered) -> AxisMapping:
    return AxisMapping(intercept=-r.y0 / r.dy, slope=1.0 / r.dy, source="truth")


def test_digitizer_recovers_every_bar_within_half_a_percent(window, rendered):
    d = digitize(rendered.png)
    assert len(d.bars) == len(window)
    got = np.array([[b.open, b.high, b.low, b.close] for b in d.bars])
    visible = abs(rendered.ylim[1] - rendered.ylim[0]) * abs(rendered.dy)
    err = np.abs(got - synth.truth_rows(window, rendered)) / visible * 100
    assert np.median(err) <= 0.5 and np.percentile(err, 95) <= 1.5
    body = (window["close"] - window["open"]).to_numpy()
    clear = np.abs(body) > 0.005 * (window["high"].max() - window["low"].min())  # not a doji
    up = np.array([b.up for b in d.bars])
    assert (up[clear] == (body[clear] > 0)).all()


def test_reading_with_an_axis_gives_a_valid_ohlc_frame_and_signal(window, rendered):
    reading = read_chart(rendered.png, axis=_truth_axis(rendered))
    frame = validate_ohlc(reading.to_ohlc_frame(), source="reader")
    assert frame.index.name == "date" and list(frame.columns) == ["open", "high", "low", "close", "volume"]
    span = window["high"].max() - window["low"].min()
    assert np.abs(frame["close"].to_numpy() - window["close"].to_numpy()).max() < 0.03 * span
    assert reading.signal is not None and reading.axis is not None


def test_without_an_axis_levels_are_never_invented(rendered):
    reading = read_chart(rendered.png, ocr=False)
    assert reading.prices is None and reading.axis is None and reading.axis_reason
    assert reading.signal.action == "HOLD"
    assert (reading.signal.entry_price, reading.signal.stop_loss, reading.signal.take_profit) == (None, None, None)
    assert reading.signal.reasoning.startswith("Price axis not read")
    with pytest.raises(PriceDataError, match="price axis was not read"):
        reading.to_ohlc_frame()


def test_guard_accepts_a_candlestick_chart(rendered):
    assert check_is_candlestick_chart(rendered.png, threshold=0.5) >= 0.5


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _plot(kind: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    fig, ax = plt.subplots(figsize=(8, 6), dpi=100)
    if kind == "bar":
        ax.bar(range(30), rng.random(30))
    else:
        ax.plot(np.cumsum(rng.standard_normal(200)))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(lambda: _png(np.random.default_rng(1).random((300, 400, 3)) * 255), id="noise"),
        pytest.param(lambda: _png(np.full((300, 400, 3), 255)), id="blank"),
        pytest.param(lambda: _plot("bar"), id="bar-chart"),
        pytest.param(lambda: _plot("line"), id="line-chart"),
    ],
)
def test_guard_refuses_non_charts(image):
    data = image()
    assert guard_score(data) < 0.5
    with pytest.raises(NotAChartError, match="not a candlestick chart"):
        check_is_candlestick_chart(data, threshold=0.5)


def test_not_a_chart_error_is_an_image_error():
    assert issubclass(NotAChartError, ImageError)


def test_unreadable_bytes_are_an_image_error():
    with pytest.raises(ImageError, match="not an image"):
        read_chart(b"this is not a png")
    with pytest.raises(ImageError, match="empty"):
        read_chart(b"")


def test_blank_image_gives_no_bars_and_no_signal():
    reading = read_chart(_png(np.full((200, 300, 3), 255)))
    assert reading.bars == [] and reading.signal is None and reading.guard_score == 0.0
    assert reading.warnings
