"""Plan a dataset: price sources -> timeframe series -> windows -> labels -> splits (+ news, negatives).

Everything here is cheap and runs in the main process; only the rendering of
the planned charts is spread over workers (``build.py``). The plan is a pure
function of the config and the sources' bytes, which makes builds repeatable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

import numpy as np
import pandas as pd

from ..config import DatasetConfig
from ..errors import PriceDataError
from . import negatives
from .labels import Labels, SeriesIndicators, label_window, warmup_bars
from .news import NewsIndex
from .render import ChartData, RenderSpec, series_overlays
from .sources import PriceSource, safe_name
from .splits import Regions, assign, plan_regions
from .windows import Series, Window, build_series, min_bars, ns, stable_fraction, stable_index, windows_for

Progress = Callable[[Iterable[Any], int, str], Iterable[Any]]


@dataclass
class Sample:
    """One planned row: where its window is, its labels, and how its chart looks."""

    id: str
    window: Window
    labels: Labels
    style: str
    price_context: bool
    split: str = ""
    news: tuple[str, ...] = ()
    hard_negative: Optional[str] = None
    hard_negative_distance: Optional[float] = None

    @property
    def image(self) -> str:
        return f"images/{self.id}.png"


@dataclass
class Plan:
    samples: list[Sample]
    series: list[Series]
    regions: dict[str, Regions]
    purged: int = 0
    skipped: list[str] = field(default_factory=list)


def render_spec(cfg: DatasetConfig) -> RenderSpec:
    return RenderSpec(
        width=cfg.image_width,
        height=cfg.image_height,
        volume=cfg.volume,
        mav=tuple(cfg.mav),
        bollinger=cfg.bollinger,
        rsi=cfg.rsi_panel,
        macd=cfg.macd_panel,
        compress_level=cfg.png_compress_level,
    )


def make_plan(sources: list[PriceSource], cfg: DatasetConfig, progress: Progress) -> Plan:
    """Windows of every source and timeframe, labelled and assigned to splits."""
    warmup = warmup_bars(cfg)
    series, skipped = _all_series(sources, cfg, warmup)
    frames = {src.ticker: src.frame for src in sources}
    by_ticker: dict[str, list[Series]] = {}
    for s in series:
        by_ticker.setdefault(s.ticker, []).append(s)
    plan = Plan([], series, plan_regions(frames, by_ticker, cfg), skipped=skipped)
    windows = [w for s in series for w in windows_for(s, cfg.windows, cfg.stride, cfg.horizon, warmup, cfg.seed)]
    indicators = {id(s): SeriesIndicators.of(s) for s in series}
    for win in progress(windows, len(windows), "label"):
        split = assign(win, plan.regions)
        if split is None:
            plan.purged += 1
            continue
        plan.samples.append(_sample(win, label_window(win, indicators[id(win.series)], cfg), split, cfg))
    return plan


def _all_series(sources: list[PriceSource], cfg: DatasetConfig, warmup: int) -> tuple[list[Series], list[str]]:
    need = min_bars(cfg.windows, cfg.horizon, warmup)
    out: list[Series] = []
    skipped: list[str] = []
    for src in sources:
        usable = []
        for tf in cfg.timeframes:
            s = build_series(src.ticker, src.frame, tf)
            if s is None:
                skipped.append(f"{src.ticker} {tf}: finer than the data's bars, skipped")
            elif len(s.frame) < need:
                skipped.append(f"{src.ticker} {tf}: {len(s.frame)} bars, {need} needed, skipped")
            else:
                usable.append(s)
        if not usable:
            raise PriceDataError(
                f"{src.origin}: too short for any timeframe ({len(src.frame)} bars; a window of "
                f"{max(cfg.windows)} bars needs {need} with indicator warm-up and a {cfg.horizon}-bar horizon): "
                "use shorter windows, a finer timeframe or a longer history"
            )
        out += usable
    return out, skipped


def _sample(win: Window, labels: Labels, split: str, cfg: DatasetConfig) -> Sample:
    s = win.series
    stamp = win.end_time.strftime("%Y%m%d" if s.timeframe in ("1d", "1w", "1mo") else "%Y%m%dT%H%M")
    sample_id = f"{safe_name(s.ticker)}-{s.timeframe}-{stamp}-w{win.length}"
    style = cfg.styles[stable_index(len(cfg.styles), cfg.seed, sample_id, "style")]
    with_prices = stable_fraction(cfg.seed, sample_id, "prices") < cfg.price_context
    return Sample(sample_id, win, labels, style, with_prices, split)


# ---------------------------------------------------------------- extras


def pair_news(samples: list[Sample], news: NewsIndex, cfg: DatasetConfig) -> int:
    """Attach dated news to each sample; returns how many samples got any."""
    paired = 0
    for sample in samples:
        win = sample.window
        sample.news = news.pick(win.series.ticker, win.end_time, cfg.news_days, cfg.news_max_items)
        paired += bool(sample.news)
    return paired


def pair_hard_negatives(samples: list[Sample]) -> int:
    """Give each sample its nearest look-alike of another action in the same split; returns pairs made."""
    made = 0
    for split in ("train", "val", "test"):
        group = [s for s in samples if s.split == split]
        if len(group) < 2:
            continue
        vectors = np.stack([negatives.look(_ohlc(s.window)[:, :4], s.labels.readings.get("atr")) for s in group])
        for sample, (j, dist) in zip(group, negatives.mine(vectors, [s.labels.action for s in group])):
            if j is not None:
                sample.hard_negative, sample.hard_negative_distance = group[j].id, round(dist, 4)
                made += 1
    return made


# ------------------------------------------------------------------ charts


def chart_data(samples: list[Sample], cfg: DatasetConfig) -> Iterable[tuple[str, ChartData]]:
    """(image path, chart) per sample, with overlays computed once per series.

    Charts come grouped by look (style, bar count), so that each worker mostly
    reuses the figure it has instead of laying out another one.
    """
    spec = render_spec(cfg)
    cache: dict[int, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
    for sample in sorted(samples, key=lambda s: (s.style, s.window.length)):
        win = sample.window
        key = id(win.series)
        if key not in cache:
            arr = win.series.frame.to_numpy(dtype=np.float64)
            cache[key] = (arr, series_overlays(arr, spec))
        arr, overlays = cache[key]
        rows = slice(win.start, win.end + 1)
        title = f"{win.series.ticker} {win.series.timeframe}" if cfg.title else ""
        yield sample.image, ChartData(
            dates=ns(win.series.frame.index[rows]),
            ohlcv=arr[rows].copy(),
            overlays={k: v[rows].copy() for k, v in overlays.items()},
            style=sample.style,
            title=title,
        )


def window_frame(win: Window) -> pd.DataFrame:
    return win.series.frame.iloc[win.start: win.end + 1]


def _ohlc(win: Window) -> np.ndarray:
    return win.series.frame.iloc[win.start: win.end + 1].to_numpy(dtype=np.float64)
