"""Turn what a caller hands the agent into validated branch inputs.

Accepted keys (a dict or an ``AgentRequest``): ``image`` (path or bytes), ``news``
(a string or list of strings), ``news_file``, ``news_feeds`` (RSS/Atom URLs or files),
``csv``, ``ohlc`` (a DataFrame), ``ticker``, ``demo``. Bad input raises an
``InputError`` here, before any model runs.

A chart image that comes without prices is read here once by the chart reader,
whatever the chart backend: an image that is not a candlestick chart raises
``NotAChartError`` (the guard, ``pipeline.guard_threshold``), and the reading
travels on ``Prepared`` to the builtin backend and to the grounding of a vision
backend's answer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any, Optional, Union

from pydantic import BaseModel, ConfigDict, ValidationError

from ..backends.base import Backend
from ..backends.builtin import BuiltinBackend, read_bare_chart
from ..config import Settings
from ..errors import InputError
from ..inputs import load_image, read_news_file
from ..news.collect import collect_news, feed_locations
from ..schemas import ChartInput, NewsInput, NewsItemMeta

if TYPE_CHECKING:  # pragma: no cover
    from ..chart.reader.read import ChartReading


class AgentRequest(BaseModel):
    """The agent's input."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True)

    image: Optional[Union[Path, str, bytes]] = None
    news: Optional[Union[str, list[str]]] = None
    news_file: Optional[Path] = None
    news_feeds: Optional[Union[str, list[str]]] = None
    csv: Optional[Path] = None
    ohlc: Any = None
    ticker: Optional[str] = None
    demo: bool = False


@dataclass(frozen=True)
class Prepared:
    chart: ChartInput
    news: Optional[NewsInput]
    data_source: str
    image_sha256: Optional[str]
    news_flags: tuple[str, ...] = field(default_factory=tuple)
    news_warnings: tuple[str, ...] = field(default_factory=tuple)
    reading: Optional["ChartReading"] = None  # the chart reader's reading of a bare image
    read_ms: Optional[float] = None  # how long that reading took

    @property
    def news_items(self) -> tuple[NewsItemMeta, ...]:
        return self.news.details if self.news is not None else ()


def as_request(value: Any) -> AgentRequest:
    if isinstance(value, AgentRequest):
        return value
    if not isinstance(value, dict):
        raise InputError(
            f"agent input must be a dict like {{'image': ..., 'news': [...]}}, got {type(value).__name__}"
        )
    try:
        return AgentRequest(**value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(f"invalid agent input {where!r}: {first['msg']}") from None


def _with_demo(req: AgentRequest) -> AgentRequest:
    from ..chart.ohlc import demo_paths

    csv, news, png = demo_paths()
    return req.model_copy(
        update={
            "csv": req.csv or csv,
            "image": req.image if req.image is not None or req.csv else png,
            "news": req.news if req.news is not None or req.news_file else read_news_file(news),
            "ticker": req.ticker or "AAPL",
        }
    )


def _price_data(req: AgentRequest, settings: Settings) -> tuple[Any, Optional[str]]:
    from ..chart import ohlc as ohlc_mod

    if req.ohlc is not None:
        return ohlc_mod.validate_ohlc(req.ohlc, source="ohlc argument"), "dataframe"
    if req.csv is not None:
        return ohlc_mod.load_csv(req.csv), "csv"
    if req.ticker and req.image is None:
        data = settings.dataset
        return ohlc_mod.fetch_ticker(req.ticker, period="1y", interval=data.interval), "ticker"
    return None, None


def _chart_input(req: AgentRequest, settings: Settings, backend: Backend) -> tuple[ChartInput, str]:
    limits = settings.pipeline
    ohlc, source = _price_data(req, settings)
    bars = settings.builtin.chart_bars
    if ohlc is not None:
        from ..chart.analysis import required_bars

        # the analysis may need more history than the chart shows (a long slow SMA)
        ohlc = ohlc.tail(max(bars, required_bars(settings.builtin)))
    image, mime = None, "image/png"
    if req.image is not None:
        image, mime = load_image(req.image, max_bytes=limits.max_image_bytes, max_pixels=limits.max_image_pixels)
        source = source or "image"
    elif ohlc is not None and not backend.capabilities.needs_price_data:
        from ..chart.render import render_chart

        image = render_chart(ohlc, bars=bars, title=req.ticker)
    if image is None and ohlc is None:
        raise InputError("nothing to analyse: give an image, a CSV, a ticker, or use --demo")
    if req.demo:
        source = "demo"
    return ChartInput(image=image, mime=mime, ohlc=ohlc, ticker=req.ticker, source=source or "image"), source or "image"


def prepare(value: Any, settings: Settings, chart_backend: Backend) -> Prepared:
    """Validate everything the caller gave; raise InputError on the first problem."""
    req = as_request(value)
    if req.demo:
        req = _with_demo(req)
    chart, source = _chart_input(req, settings, chart_backend)
    given = _given_news(req)
    feeds = [req.news_feeds] if isinstance(req.news_feeds, str) else list(req.news_feeds or [])
    collected = collect_news(given, feed_locations(feeds, settings, req.ticker), settings, ticker=req.ticker)
    digest = hashlib.sha256(chart.image).hexdigest() if chart.image else None
    start = perf_counter()
    reading = read_bare_image(chart, settings, chart_backend)
    return Prepared(
        chart=chart, news=collected.news, data_source=source, image_sha256=digest,
        news_flags=collected.flags, news_warnings=collected.warnings, reading=reading,
        read_ms=round((perf_counter() - start) * 1000, 2) if reading is not None else None,
    )


def read_bare_image(chart: ChartInput, settings: Settings, chart_backend: Backend) -> Optional["ChartReading"]:
    """The guarded reading of an image that came without prices; None when nothing needs it.

    The builtin backend needs it to answer; for the others it is the guard
    (``guard_threshold`` > 0) and the grounding (``chart_grounding``). Raises
    ``NotAChartError`` when the image is not a candlestick chart.
    """
    if chart.image is None or chart.ohlc is not None:
        return None
    pipeline = settings.pipeline
    if not (isinstance(chart_backend, BuiltinBackend) or pipeline.guard_threshold > 0 or pipeline.chart_grounding):
        return None
    return read_bare_chart(chart.image, settings)


def _given_news(req: AgentRequest) -> Optional[list[tuple[str, str]]]:
    """(text, source) for the items typed by the caller; None when none were given at all."""
    if req.news is None and req.news_file is None:
        return None
    items = [req.news] if isinstance(req.news, str) else list(req.news or [])
    given = [(text, "input") for text in items]
    if req.news_file is not None:
        given += [(text, Path(req.news_file).name) for text in read_news_file(req.news_file)]
    return given
