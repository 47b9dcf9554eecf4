"""The embedded default: works on a fresh machine with no server and no internet.

Chart branch: TA-Lib analysis of the price data that travels with the chart
(demo, --csv, --ticker); for a bare image, the chart reader recovers the bars
from the pixels (and the prices from the axis labels, by OCR) and the same
analysis runs on them. News branch: MiniLM embeddings + a head trained on the
Financial PhraseBank train split. Both are CPU-light and run in a worker thread
so the two branches overlap.

``read_bare_chart`` is also the guard the graph puts in front of every chart
backend: it reads a bare image once and refuses what is not a candlestick chart;
the graph hands that reading back through ``analyze_reading`` so the builtin
backend does not digitise the image a second time.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Optional

from ..errors import NotAChartError, PriceDataError
from ..schemas import ChartInput, ChartSignal, NewsInput, NewsSentiment
from .base import Backend, Capabilities

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.runnables import RunnableConfig

    from ..chart.reader.read import ChartReading
    from ..config import Settings


def read_bare_chart(image: bytes, settings: "Settings") -> "ChartReading":
    """Read a chart image that came without prices; ``NotAChartError`` below ``pipeline.guard_threshold``.

    The price axis is read by OCR when ``builtin.reader_ocr`` is on. A threshold of 0
    refuses nothing.
    """
    from ..chart.reader.read import read_chart

    threshold = settings.pipeline.guard_threshold
    reading = read_chart(
        image,
        ocr=settings.builtin.reader_ocr,
        cfg=settings.builtin,
        max_pixels=settings.pipeline.max_image_pixels,
        guard_threshold=threshold,
    )
    if reading.guard_score < threshold:
        raise NotAChartError(_not_a_chart(reading, threshold))
    return reading


def _not_a_chart(reading: "ChartReading", threshold: float) -> str:
    factors = reading.guard_factors or {"count": 0.0}
    weakest = min(factors, key=lambda name: factors[name])
    return (
        f"not a candlestick chart: guard score {reading.guard_score:.2f} < {threshold:.2f} "
        f"(pipeline.guard_threshold; {len(reading.bars)} candle-like bar(s), weakest sign: "
        f"{weakest} {factors[weakest]:.2f}); give a candlestick chart image, or --csv/--ticker with the prices, "
        "or set pipeline.guard_threshold to 0 to skip this check"
    )


def signal_of(reading: "ChartReading") -> ChartSignal:
    """The builtin signal of a chart already read; ``PriceDataError`` when none could be computed."""
    if reading.signal is None:
        raise PriceDataError("chart image read, but no signal: " + "; ".join(reading.warnings))
    return reading.signal


class BuiltinBackend(Backend):
    provider = "builtin"
    capabilities = Capabilities(
        vision=True, structured=True, text=True, needs_price_data=True, in_process=True
    )

    @property
    def model_name(self) -> str:
        return self.spec.model or "builtin"

    def chart_model_name(self) -> str:
        return "talib-rules"

    def news_model_name(self) -> str:
        from ..news.model import MODEL_ID

        return MODEL_ID

    async def analyze_chart(
        self, chart: ChartInput, config: Optional["RunnableConfig"] = None
    ) -> ChartSignal:
        from ..chart.analysis import analyze_ohlc

        if chart.ohlc is not None:
            return await asyncio.to_thread(analyze_ohlc, chart.ohlc, self.settings.builtin)
        reading = await asyncio.to_thread(read_bare_chart, chart.image or b"", self.settings)
        return signal_of(reading)

    async def analyze_reading(
        self, reading: "ChartReading", config: Optional["RunnableConfig"] = None
    ) -> ChartSignal:
        """The chart branch for an image the graph has already read (and guarded) with ``read_bare_chart``."""
        return signal_of(reading)

    async def analyze_news(
        self, news: NewsInput, config: Optional["RunnableConfig"] = None
    ) -> NewsSentiment:
        from ..news.model import default_model

        model = await asyncio.to_thread(default_model)
        return await asyncio.to_thread(model.score, news)
