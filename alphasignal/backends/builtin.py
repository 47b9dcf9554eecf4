"""The embedded default: works on a fresh machine with no server and no internet.

Chart branch: TA-Lib analysis of the price data that travels with the chart
(demo, --csv, --ticker). News branch: MiniLM embeddings + a head trained on the
Financial PhraseBank train split. Both are CPU-light and run in a worker thread
so the two branches overlap.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Optional

from ..errors import CapabilityError
from ..schemas import ChartInput, ChartSignal, NewsInput, NewsSentiment
from .base import Backend, Capabilities

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.runnables import RunnableConfig

BARE_IMAGE_HELP = (
    "the builtin chart backend analyses price data, and this chart came without any: "
    "pass --csv FILE or --ticker SYMBOL so the prices travel with the chart, or read the image with "
    "a vision backend: --chart-backend ollama:<vision model>, llamacpp:<model.gguf> --mmproj <mmproj.gguf>, "
    "or openai:<model>@<url>"
)


class BuiltinBackend(Backend):
    provider = "builtin"
    capabilities = Capabilities(
        vision=False, structured=True, text=True, needs_price_data=True, in_process=True
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
        if chart.ohlc is None:
            raise CapabilityError(BARE_IMAGE_HELP)
        from ..chart.analysis import analyze_ohlc

        return await asyncio.to_thread(analyze_ohlc, chart.ohlc, self.settings.builtin)

    async def analyze_news(
        self, news: NewsInput, config: Optional["RunnableConfig"] = None
    ) -> NewsSentiment:
        from ..news.model import default_model

        model = await asyncio.to_thread(default_model)
        return await asyncio.to_thread(model.score, news)
