"""Chart rendering: deterministic PNG bytes of the asked size, no pyplot state left behind."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from PIL import Image

from alphasignal.chart.ohlc import load_csv
from alphasignal.chart.render import render_chart, save_chart
from alphasignal.errors import ConfigError, PriceDataError

DATA = Path(__file__).parent / "data"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def ford():
    return load_csv(DATA / "ford_2012.csv")


def decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def test_render_is_deterministic_and_sized(ford):
    first = render_chart(ford)
    second = render_chart(ford)
    assert first.startswith(PNG_SIGNATURE)
    assert first == second
    image = decode(first)
    assert image.format == "PNG" and image.size == (800, 600)
    assert "Software" not in image.info and "Creation Time" not in image.info


def test_size_is_exact(ford):
    assert decode(render_chart(ford, width=640, height=480, volume=False)).size == (640, 480)


def test_renders_only_the_last_bars(ford):
    assert render_chart(ford, bars=60) == render_chart(ford.iloc[-60:], bars=60)
    assert render_chart(ford, bars=60) != render_chart(ford, bars=90)


def test_moving_averages_use_the_history_before_the_window(ford):
    with_history = render_chart(ford, bars=60, mav=(20,))
    window_only = render_chart(ford.iloc[-60:], bars=60, mav=(20,))
    assert with_history != window_only  # the SMA starts at the left edge only with history
    assert with_history != render_chart(ford, bars=60)


def test_title_and_volume_change_the_picture(ford):
    plain = render_chart(ford, bars=40, volume=False)
    assert render_chart(ford, bars=40, volume=True) != plain
    assert render_chart(ford, bars=40, volume=False, title="F daily") != plain


def test_zero_volume_frame_renders_without_a_volume_panel(ford):
    no_volume = ford.assign(volume=0.0)
    assert render_chart(no_volume, bars=40, volume=True) == render_chart(no_volume, bars=40, volume=False)


def test_twenty_renders_leave_no_figures_and_no_rc_changes(ford):
    import matplotlib
    import matplotlib.pyplot as plt

    render_chart(ford, bars=30, width=200, height=150)  # first call imports and styles
    rc_before = dict(matplotlib.rcParams)
    for i in range(20):
        render_chart(ford, bars=30 + i, width=200, height=150)
    assert plt.get_fignums() == []
    assert dict(matplotlib.rcParams) == rc_before


def test_concurrent_renders_agree(ford):
    expected = render_chart(ford, bars=50, width=300, height=200)
    results: list[bytes] = []

    def work() -> None:
        results.append(render_chart(ford, bars=50, width=300, height=200))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [expected] * 4


def test_save_chart_writes_the_same_bytes(ford, tmp_path):
    path = save_chart(ford, tmp_path / "out" / "chart.png", bars=40, width=320, height=240)
    assert path.read_bytes() == render_chart(ford, bars=40, width=320, height=240)


def test_unknown_style_suggests_the_close_one(ford):
    with pytest.raises(ConfigError, match="unknown chart style 'charls': did you mean 'charles'"):
        render_chart(ford, style="charls")


@pytest.mark.parametrize(
    "kwargs",
    [{"width": 50}, {"height": 10_000}, {"bars": 1}, {"mav": (1,)}, {"mav": (2, 3, 4, 5, 6, 7)}],
)
def test_bad_options_are_config_errors(ford, kwargs):
    with pytest.raises(ConfigError):
        render_chart(ford, **kwargs)


def test_bad_frames_are_price_data_errors(ford):
    with pytest.raises(PriceDataError, match="lacks volume"):
        render_chart(ford.drop(columns="volume"))
    with pytest.raises(PriceDataError, match="at least 2 bars"):
        render_chart(ford.iloc[:1])
    with pytest.raises(PriceDataError, match="DatetimeIndex"):
        render_chart(ford.reset_index())
