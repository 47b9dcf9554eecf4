"""The shared base of every backend that talks to a LangChain chat model.

Subclasses only say how to build a chat model constrained to a schema and how
to turn their client's exceptions into errors that name the fix.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Optional

from pydantic import BaseModel

from ..chains import prompts
from ..chains.structured import ainvoke_structured
from ..errors import AlphaSignalError, BackendError, CapabilityError
from ..schemas import ChartInput, ChartSignal, NewsInput, NewsSentiment
from .base import Backend

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.messages import BaseMessage
    from langchain_core.runnables import Runnable, RunnableConfig

BUILTIN_HINT = "or use --chart-backend builtin / --news-backend builtin, which need no server"


class ChatBackend(Backend):
    """A backend whose answers come from a chat model constrained to our schemas."""

    @abstractmethod
    def build_chat_model(self, schema: type[BaseModel]) -> "Runnable":
        """A chat model (Runnable over messages) whose decoding is constrained to ``schema``.

        Called once per request: keep it cheap (reuse loaded weights held on ``self``).
        """

    def translate_error(self, exc: Exception) -> Optional[AlphaSignalError]:
        """Map a client exception to an error that says the fix; None keeps the generic one."""
        return None

    def chat_model(self, schema: type[BaseModel]) -> "Runnable":
        # Built per call, not cached: async HTTP clients bind to the event loop that first
        # used them, and invoke()/batch() run each call in a loop of its own. Subclasses keep
        # anything expensive (a loaded GGUF) on the backend instance, so this stays cheap.
        return self.build_chat_model(schema)

    async def analyze_chart(
        self, chart: ChartInput, config: Optional["RunnableConfig"] = None
    ) -> ChartSignal:
        self.require("vision", "read chart images")
        if chart.image is None:
            raise CapabilityError(f"backend {self.spec.label!r} needs a chart image")
        return await self._ask(ChartSignal, prompts.chart_messages(chart), config)

    async def analyze_news(
        self, news: NewsInput, config: Optional["RunnableConfig"] = None
    ) -> NewsSentiment:
        self.require("text", "score news")
        return await self._ask(NewsSentiment, prompts.news_messages(news), config)

    async def _ask(self, schema, messages: list["BaseMessage"], config):
        try:
            model = self.chat_model(schema)
            return await ainvoke_structured(
                model, messages, schema, max_retries=self.settings.pipeline.max_retries, config=config
            )
        except AlphaSignalError:
            raise
        except Exception as exc:  # client errors: translate to a message with the fix
            translated = self.translate_error(exc)
            if translated is not None:
                raise translated from exc
            raise BackendError(
                f"{self.spec.label} failed: {type(exc).__name__}: {exc} ({BUILTIN_HINT})"
            ) from exc
