"""The embedded default: works on a fresh machine with no server and no internet.

Chart branch: TA-Lib analysis of the price data that travels with the chart
(demo, --csv, --ticker); for a bare image, the chart reader recovers the bars
from the pixels (and the prices from the axis labels, by OCR) and the same
analysis runs on them. News branch: MiniLM embeddings + a head trained on the
Financial PhraseBank train split. Both are CPU-light and run in a worker thread
so the two branches overlap.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Optional

from ..errors import NotAChartError, PriceDataError
from ..schemas import ChartInput, ChartSignal, NewsInput, NewsSentiment
from .base import Backend, Capabilities

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.runnables import RunnableConfig


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
        return await asyncio.to_thread(self._read_image, chart.image or b"")

    def _read_image(self, image: bytes) -> ChartSignal:
        """Digitise a bare chart image and analyse the recovered bars (see chart.reader)."""
        from ..chart.reader.read import read_chart

        threshold = self.settings.pipeline.guard_threshold
        reading = read_chart(
            image,
            ocr=self.settings.builtin.reader_ocr,
            cfg=self.settings.builtin,
            max_pixels=self.settings.pipeline.max_image_pixels,
            guard_threshold=threshold,
        )
        if reading.guard_score < threshold:
            raise NotAChartError(
                f"not a candlestick chart: guard score {reading.guard_score:.2f} < {threshold:.2f} "
                "(pipeline.guard_threshold); pass --csv/--ticker with the prices, or a vision backend"
            )
        if reading.signal is None:
            raise PriceDataError("chart image read, but no signal: " + "; ".join(reading.warnings))
        return reading.signal

    async def analyze_news(
        self, news: NewsInput, config: Optional["RunnableConfig"] = None
    ) -> NewsSentiment:
        from ..news.model import default_model

        model = await asyncio.to_thread(default_model)
        return await asyncio.to_thread(model.score, news)
