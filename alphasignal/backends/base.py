"""The one backend interface, its capability record, and the provider registry.

A backend is named ``provider:model``; the spec is split on the first colon only,
so ``ollama:qwen2.5vl:3b`` keeps its tag. Providers are looked up in a table of
lazily imported classes (plus the ``alphasignal.backends`` entry-point group for
third parties), never by an if/elif chain.
"""

from __future__ import annotations

import difflib
import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar, Optional

from ..errors import CapabilityError, ConfigError
from ..schemas import ChartInput, ChartSignal, NewsInput, NewsSentiment

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.runnables import RunnableConfig

    from ..config import Settings

ENTRY_POINT_GROUP = "alphasignal.backends"

# provider name -> "module:Class", imported only when that provider is used.
PROVIDERS: dict[str, str] = {
    "builtin": "alphasignal.backends.builtin:BuiltinBackend",
    "ollama": "alphasignal.backends.ollama:OllamaBackend",
    "llamacpp": "alphasignal.backends.llamacpp:LlamaCppBackend",
    "openai": "alphasignal.backends.openai_compat:OpenAICompatBackend",
}


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do; the graph checks these before calling it."""

    vision: bool  # takes chart images
    structured: bool  # decoding constrained to a JSON schema
    text: bool = True  # can score news
    needs_price_data: bool = False  # chart branch reads prices, not pixels
    in_process: bool = False  # runs inside this process (no server)


@dataclass(frozen=True)
class BackendSpec:
    provider: str
    model: str

    @property
    def label(self) -> str:
        return f"{self.provider}:{self.model}" if self.model else self.provider


def parse_spec(spec: str) -> BackendSpec:
    """``provider:model`` → BackendSpec, splitting on the first colon only."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError("empty backend spec; expected provider:model, e.g. builtin or ollama:llava:7b")
    provider, _, model = spec.strip().partition(":")
    return BackendSpec(provider=provider.strip().lower(), model=model.strip())


class Backend(ABC):
    """One way of answering the chart and news branches."""

    provider: ClassVar[str]
    capabilities: Capabilities  # a class attribute, or set per instance (llamacpp: vision iff mmproj)

    def __init__(self, spec: BackendSpec, settings: "Settings"):
        self.spec = spec
        self.settings = settings

    @property
    def model_name(self) -> str:
        return self.spec.model or self.provider

    def chart_model_name(self) -> str:
        """The model named in a decision's ``meta.vlm_model``."""
        return self.model_name

    def news_model_name(self) -> str:
        """The model named in a decision's ``meta.sentiment_model``."""
        return self.model_name

    @abstractmethod
    async def analyze_chart(
        self, chart: ChartInput, config: Optional["RunnableConfig"] = None
    ) -> ChartSignal:
        """Read a chart (image and, if present, its prices) into a ChartSignal."""

    @abstractmethod
    async def analyze_news(
        self, news: NewsInput, config: Optional["RunnableConfig"] = None
    ) -> NewsSentiment:
        """Score news items into a NewsSentiment."""

    def require(self, capability: str, what: str) -> None:
        """Raise CapabilityError naming the backends that can, if ``capability`` is missing."""
        if getattr(self.capabilities, capability):
            return
        able = [name for name in PROVIDERS if name != self.provider]
        raise CapabilityError(
            f"backend {self.spec.label!r} cannot {what}; use one of: "
            + ", ".join(f"{name}:<model>" for name in able)
        )

    def close(self) -> None:
        """Release models or connections; the default has nothing to release."""


def available_providers() -> dict[str, str]:
    """Built-in providers plus those registered under the entry-point group."""
    table = dict(PROVIDERS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        table.setdefault(ep.name, ep.value)
    return table


def backend_class(provider: str) -> type[Backend]:
    table = available_providers()
    target = table.get(provider)
    if target is None:
        hint = difflib.get_close_matches(provider, table, n=1)
        suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
        raise ConfigError(
            f"unknown backend provider {provider!r}{suggestion} (known: {', '.join(sorted(table))})"
        )
    module_name, _, attr = target.partition(":")
    cls: Any = getattr(importlib.import_module(module_name), attr)
    return cls


def get_backend(spec: str, settings: "Settings") -> Backend:
    """Instantiate the backend named by ``spec``; heavy imports happen here, not at import time."""
    parsed = parse_spec(spec)
    return backend_class(parsed.provider)(parsed, settings)
