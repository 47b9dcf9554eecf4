"""Dataset chart rendering: byte-identical whatever came before, the look of mpf.plot, no state left behind."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alphasignal.chart.ohlc import load_csv
from alphasignal.chart.render import render_chart
from alphasignal.dataset import render as render_mod
from alphasignal.dataset.render import ChartData, ChartRenderer, RenderSpec, check_styles, series_overlays
from alphasignal.errors import ConfigError

FORD = Path(__file__).parent / "data" / "ford_2012.csv"


@pytest.fixture(scope="module")
def ford():
    return load_csv(FORD)


def chart(ford, end: int, bars: int = 60, spec: RenderSpec = RenderSpec(), style: str = "charles", title: str = "") -> ChartData:
    arr = ford.to_numpy()
    overlays = series_overlays(arr, spec)
    rows = slice(end - bars + 1, end + 1)
    return ChartData(ford.index.asi8[rows], arr[rows], {k: v[rows] for k, v in overlays.items()}, style, title)


def pixels(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.mode == "RGB" and not image.info
    return np.asarray(image, dtype=np.int16)


def test_same_chart_same_bytes_whatever_was_drawn_before(ford):
    a, b = chart(ford, 120), chart(ford, 200, title="F 1d")
    with ChartRenderer(RenderSpec()) as fresh:
        alone = fresh.render(a)
    with ChartRenderer(RenderSpec()) as busy:
        busy.render(b)
        busy.render(chart(ford, 90, bars=40, style="yahoo"))
        after = busy.render(a)
    assert alone == after
    assert alone != ChartRenderer(RenderSpec()).render(b)


def test_looks_like_mpf_plot(ford):
    """The reused figure draws what render_chart (a fresh mpf.plot) draws, to within a few pixels."""
    window = ford.iloc[100:160]
    spec = RenderSpec(width=512, height=512)
    with ChartRenderer(spec) as renderer:
        ours = pixels(renderer.render(chart(ford, 159, title="F")))
    png = render_chart(window, bars=60, width=512, height=512, title="F")
    reference = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    assert ours.shape == reference.shape == (512, 512, 3)
    differs = (np.abs(ours - reference).sum(axis=2) > 30).mean()
    assert differs < 0.002


def test_overlays_and_panels_draw(ford):
    plain = RenderSpec(width=400, height=400)
    full = RenderSpec(width=400, height=400, mav=(10, 20), bollinger=True, rsi=True, macd=True)
    with ChartRenderer(plain) as a, ChartRenderer(full) as b:
        p, f = a.render(chart(ford, 150, spec=plain)), b.render(chart(ford, 150, spec=full))
    assert pixels(f).shape == (400, 400, 3)
    assert (np.abs(pixels(p) - pixels(f)).sum(axis=2) > 30).mean() > 0.05


def test_no_pyplot_figures_or_rcparams_left_behind(ford):
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    before = dict(mpl.rcParams)
    figs = plt.get_fignums()
    with ChartRenderer(RenderSpec(width=300, height=300)) as renderer:
        renderer.render(chart(ford, 100, style="nightclouds"))
        assert plt.get_fignums() == figs
    assert dict(mpl.rcParams) == before


def test_templates_are_bounded(ford, monkeypatch):
    monkeypatch.setattr(render_mod, "MAX_TEMPLATES", 2)
    with ChartRenderer(RenderSpec(width=200, height=200)) as renderer:
        for bars in (30, 40, 50, 30):
            renderer.render(chart(ford, 100, bars=bars))
        assert len(renderer._templates) == 2


def test_size_is_exact_and_png_is_plain(ford):
    with ChartRenderer(RenderSpec(width=320, height=240, compress_level=9)) as renderer:
        png = renderer.render(chart(ford, 100))
    assert pixels(png).shape == (240, 320, 3)


def test_unknown_style_says_what_exists():
    with pytest.raises(ConfigError, match="unknown chart style 'yahooo': did you mean 'yahoo'"):
        check_styles(("charles", "yahooo"))


def test_window_without_volume_drops_the_panel(ford):
    quiet = ford.copy()
    quiet["volume"] = 0.0
    with ChartRenderer(RenderSpec(width=300, height=300)) as renderer:
        renderer.render(chart(quiet, 100))
        (key,) = renderer._templates
        assert key[2] is False  # no volume panel
