"""alphasignal: a candlestick chart and market news in, one validated JSON trading decision out.

    >>> from alphasignal import build_agent
    >>> agent = build_agent()                       # builtin backends, no server needed
    >>> decision = agent.invoke({"csv": "prices.csv", "news": ["Apple beats expectations"]})
    >>> decision.final_action, decision.final_confidence

Heavy dependencies (langchain, torch, llama.cpp, matplotlib) load only when used.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

logging.getLogger("alphasignal").addHandler(logging.NullHandler())

__version__ = "0.1.0"

_LAZY = {
    "build_agent": "alphasignal.agent.graph",
    "Settings": "alphasignal.config",
    "load_settings": "alphasignal.config",
    "TradingDecision": "alphasignal.schemas",
    "ChartSignal": "alphasignal.schemas",
    "NewsSentiment": "alphasignal.schemas",
    "AlphaSignalError": "alphasignal.errors",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover
    from .agent.graph import build_agent
    from .config import Settings, load_settings
    from .errors import AlphaSignalError
    from .schemas import ChartSignal, NewsSentiment, TradingDecision


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'alphasignal' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
