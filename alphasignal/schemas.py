"""The contracts: what a branch returns and what the agent decides.

The JSON schema of ``ChartSignal`` and ``NewsSentiment`` is exactly what a
language model is constrained to, so every field carries a description.
Models are strict and reject unknown keys; cross-field trading rules live in
validators. Nothing here imports the rest of the package.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

SCHEMA_VERSION = "1.0"

Action = Literal["BUY", "SELL", "HOLD"]
FinalAction = Literal["BUY", "SELL", "HOLD", "ABSTAIN"]
Trend = Literal["uptrend", "downtrend", "sideways"]
Sentiment = Literal["BULLISH", "BEARISH", "NEUTRAL"]
Status = Literal["ok", "failed"]

_PLACEHOLDERS = {"", "n/a", "na", "none", "null", "nil", "-", "--", "nan", "unknown", "not applicable"}


def _placeholder_to_none(value: Any) -> Any:
    """Models write "N/A" or "none" where they mean no value: treat those as None."""
    if isinstance(value, str) and value.strip().lower() in _PLACEHOLDERS:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _drop_placeholders(value: Any) -> Any:
    """Remove "N/A"-style entries from a list of strings."""
    if isinstance(value, list):
        return [item for item in value if _placeholder_to_none(item) is not None]
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Indicators(_Strict):
    """Indicator readings on the last bar, when computed from price data."""

    rsi: Optional[float] = Field(None, description="RSI(14) on the last bar, 0-100")
    macd: Optional[float] = Field(None, description="MACD line (12, 26)")
    macd_signal: Optional[float] = Field(None, description="MACD signal line (9)")
    macd_hist: Optional[float] = Field(None, description="MACD histogram")
    atr: Optional[float] = Field(None, description="ATR(14) in price units")
    sma_fast: Optional[float] = Field(None, description="fast simple moving average")
    sma_slow: Optional[float] = Field(None, description="slow simple moving average")
    last_close: Optional[float] = Field(None, description="close of the last bar")


class ChartSignal(_Strict):
    """What the chart branch reads from a candlestick chart."""

    action: Action = Field(description="trade suggested by the chart alone")
    confidence: float = Field(ge=0.0, le=1.0, description="confidence in the action, 0 to 1")
    entry_price: Optional[float] = Field(None, gt=0, description="entry price; required for BUY/SELL")
    stop_loss: Optional[float] = Field(
        None, gt=0, description="stop-loss price; below entry for BUY, above entry for SELL"
    )
    take_profit: Optional[float] = Field(
        None, gt=0, description="take-profit price; above entry for BUY, below entry for SELL"
    )
    trend: Trend = Field(description="direction of the price trend over the chart")
    patterns: list[str] = Field(
        default_factory=list,
        max_length=12,
        description="candlestick patterns seen on the last bars, e.g. 'bullish engulfing'",
    )
    reasoning: str = Field("", max_length=800, description="one or two sentences on why")
    indicators: Optional[Indicators] = Field(
        None, description="indicator readings, only when computed from price data"
    )

    _levels = field_validator("entry_price", "stop_loss", "take_profit", mode="before")(_placeholder_to_none)
    _patterns = field_validator("patterns", mode="before")(_drop_placeholders)

    @model_validator(mode="after")
    def _levels_match_action(self) -> "ChartSignal":
        if self.action == "HOLD":
            return self
        entry, stop, target = self.entry_price, self.stop_loss, self.take_profit
        if entry is None or stop is None or target is None:
            raise ValueError(f"{self.action} needs entry_price, stop_loss and take_profit")
        if self.action == "BUY" and not stop < entry < target:
            raise ValueError("BUY needs stop_loss < entry_price < take_profit")
        if self.action == "SELL" and not target < entry < stop:
            raise ValueError("SELL needs take_profit < entry_price < stop_loss")
        return self


class NewsItemMeta(_Strict):
    """One news item that reached the news model: where it came from and how much it counts."""

    title: str = Field(description="the item's text as the model saw it")
    source: Optional[str] = Field(None, description="feed title, 'input' or the news file's name")
    published: Optional[datetime] = Field(None, description="publication time (UTC), when the feed gives one")
    link: Optional[str] = None
    relevance: Optional[float] = Field(
        None, ge=0.0, le=1.0, description="1 names the ticker, 0.75 an alias; None when not checked"
    )
    weight: Optional[float] = Field(
        None, ge=0.0, le=1.0, description="share of the aggregate (recency x relevance, summing to 1)"
    )


class ItemScore(_Strict):
    """How the model read one news item."""

    index: int = Field(ge=0, description="position among the news items")
    sentiment: Sentiment
    confidence: float = Field(ge=0.0, le=1.0, description="calibrated probability of that sentiment")
    weight: float = Field(ge=0.0, le=1.0, description="share of the aggregate")
    phrases: list[str] = Field(default_factory=list, description="the words that drove the label, when computed")


class NewsSentiment(_Strict):
    """What the news branch reads from the news items."""

    sentiment: Sentiment = Field(description="overall market sentiment of the news")
    intensity: float = Field(ge=0.0, le=1.0, description="strength of that sentiment, 0 to 1")
    key_factors: list[str] = Field(
        default_factory=list,
        max_length=8,
        description="short phrases quoted or paraphrased from the news that drove the sentiment",
    )
    # Filled by the builtin model; kept out of the JSON schema a chat model is constrained to.
    agreement: SkipJsonSchema[Optional[float]] = Field(
        None, ge=0.0, le=1.0, description="weighted share of items whose own sentiment is the overall one"
    )
    items: SkipJsonSchema[list[ItemScore]] = Field(default_factory=list, description="per-item readings")

    _factors = field_validator("key_factors", mode="before")(_drop_placeholders)


class BranchFailure(_Strict):
    """Why a branch produced no answer."""

    branch: Literal["chart", "news"]
    error: str = Field(description="exception type")
    message: str


class TokenUsage(_Strict):
    input_tokens: int = 0
    output_tokens: int = 0


class DecisionMeta(_Strict):
    """Provenance of a decision: who answered, how fast, with what."""

    vlm_model: Optional[str] = Field(None, description="model behind the chart branch")
    sentiment_model: Optional[str] = Field(None, description="model behind the news branch")
    chart_backend: Optional[str] = None
    news_backend: Optional[str] = None
    signals_aligned: Optional[bool] = Field(
        None, description="chart and news point the same way; None when a branch is missing"
    )
    weights: dict[str, float] = Field(default_factory=dict)
    latency_ms: dict[str, float] = Field(
        default_factory=dict, description="per branch, chart_read (the guard's reading of a bare image) and total"
    )
    tokens: dict[str, TokenUsage] = Field(default_factory=dict, description="per branch")
    attempts: dict[str, int] = Field(default_factory=dict, description="model calls per branch")
    ticker: Optional[str] = None
    data_source: Optional[str] = Field(None, description="demo, csv, ticker or image")
    image_sha256: Optional[str] = None
    chart_guard_score: Optional[float] = Field(
        None, ge=0.0, le=1.0, description="how much the bare image looks like a candlestick chart; None when not read"
    )
    chart_grounding: list[str] = Field(
        default_factory=list,
        description="where a vision backend's chart answer disagrees with the chart reader's reading of the "
        "same image (each lowered its confidence), or why it was not checked",
    )
    news_count: int = 0
    news_items: list[NewsItemMeta] = Field(default_factory=list, description="the news items used, in order")
    news_agreement: Optional[float] = Field(
        None, ge=0.0, le=1.0, description="share of items agreeing with the news sentiment"
    )
    news_flags: list[str] = Field(
        default_factory=list, description="news items that read like instructions to a model (prompt injection)"
    )
    news_warnings: list[str] = Field(
        default_factory=list, description="feeds that failed or gave nothing, items dropped"
    )
    created_at: datetime
    alphasignal_version: str


class TradingDecision(_Strict):
    """The one JSON object alphasignal returns."""

    schema_version: Literal["1.0"] = SCHEMA_VERSION
    status: Status = Field(description="ok, or failed when a branch gave no valid answer")
    final_action: FinalAction = Field(description="ABSTAIN only when status is failed")
    final_confidence: float = Field(ge=0.0, le=1.0)
    entry_price: Optional[float] = None
    stop_loss: Optional[float] = None
    take_profit: Optional[float] = None
    vlm_signal: Optional[ChartSignal] = None
    sentiment: Optional[NewsSentiment] = None
    reasons: list[str] = Field(default_factory=list)
    errors: list[BranchFailure] = Field(default_factory=list)
    meta: DecisionMeta

    @model_validator(mode="after")
    def _status_is_explicit(self) -> "TradingDecision":
        failed = self.status == "failed"
        if failed != (self.final_action == "ABSTAIN"):
            raise ValueError("final_action is ABSTAIN exactly when status is failed")
        if failed and not self.errors:
            raise ValueError("a failed decision must say why (errors)")
        if self.final_action in ("BUY", "SELL") and None in (
            self.entry_price,
            self.stop_loss,
            self.take_profit,
        ):
            raise ValueError(f"{self.final_action} needs entry_price, stop_loss and take_profit")
        return self

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class ChartInput:
    """What the chart branch receives: image bytes and, when known, the prices behind them.

    ``ohlc`` is a validated pandas DataFrame (columns open, high, low, close,
    volume; DatetimeIndex) or None for a bare image.
    """

    image: Optional[bytes] = None
    mime: str = "image/png"
    ohlc: Any = None
    ticker: Optional[str] = None
    source: str = "image"


@dataclass(frozen=True)
class NewsInput:
    """What the news branch receives: validated, non-empty items."""

    items: tuple[str, ...] = field(default_factory=tuple)
    ticker: Optional[str] = None
    details: tuple[NewsItemMeta, ...] = field(default_factory=tuple)  # per item, when known
