"""Test doubles: a backend that answers with preset values after a delay (fakes over mocks)."""

from __future__ import annotations

import asyncio
import time

from alphasignal.backends.base import Backend, BackendSpec, Capabilities
from alphasignal.errors import BackendUnavailable
from alphasignal.schemas import ChartSignal, NewsSentiment

BUY = ChartSignal(action="BUY", confidence=0.8, entry_price=100.0, stop_loss=95.0, take_profit=110.0, trend="uptrend")
BULLISH = NewsSentiment(sentiment="BULLISH", intensity=0.8, key_factors=["beat"])


class FakeBackend(Backend):
    provider = "fake"
    capabilities = Capabilities(vision=True, structured=True)

    def __init__(self, settings, chart=BUY, news=BULLISH, delay=0.0, blocking=False, error=None):
        super().__init__(BackendSpec("fake", "m"), settings)
        self.chart, self.news, self.delay, self.blocking, self.error = chart, news, delay, blocking, error
        self.calls: list[str] = []

    async def _wait(self):
        if self.blocking:  # CPU-bound-like work in a worker thread, as the builtin backend does
            await asyncio.to_thread(time.sleep, self.delay)
        else:
            await asyncio.sleep(self.delay)
        if self.error:
            raise self.error

    async def analyze_chart(self, chart, config=None):
        self.calls.append("chart")
        await self._wait()
        return self.chart

    async def analyze_news(self, news, config=None):
        self.calls.append("news")
        await self._wait()
        return self.news


def unavailable(message="cannot reach Ollama at http://127.0.0.1:11434: start it with `ollama serve`"):
    return BackendUnavailable(message)
