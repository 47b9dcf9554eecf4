"""The deterministic merge of the chart and news branches.

Directions: chart BUY=+1, SELL=-1, HOLD=0; news BULLISH=+1, BEARISH=-1, NEUTRAL=0.
Weights ``w_chart`` and ``w_news`` are normalised over the branches present.

* Only the chart proposes a trade, because only it carries entry/stop/target.
  News reinforces, dampens or vetoes it:
  ``trade_conf = w_chart * chart.confidence + w_news * support``, where support is
  ``+intensity`` when the news points the same way, ``-intensity`` when it points the
  other way and ``0`` when it is neutral. If ``trade_conf >= min_confidence`` the chart's
  action stands with that confidence; otherwise the decision is HOLD with confidence
  ``1 - trade_conf`` and the conflict is named in the reasons.
* A chart HOLD stays HOLD: ``w_chart * chart.confidence + w_news * s`` where ``s`` is the
  news intensity when it is NEUTRAL and ``1 - intensity`` when it is directional.
* ``signals_aligned`` is True when the directions match (HOLD matches NEUTRAL), None when
  the news branch was not asked.

So agreement raises confidence, disagreement lowers it, and every step is in ``reasons``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..schemas import ChartSignal, NewsSentiment

_CHART_DIR = {"BUY": 1, "SELL": -1, "HOLD": 0}
_NEWS_DIR = {"BULLISH": 1, "BEARISH": -1, "NEUTRAL": 0}


@dataclass(frozen=True)
class MergeResult:
    action: str
    confidence: float
    signals_aligned: Optional[bool]
    weights: dict[str, float]
    reasons: list[str] = field(default_factory=list)


def normalised_weights(chart_weight: float, news_weight: float, has_news: bool) -> dict[str, float]:
    if not has_news:
        return {"chart": 1.0, "news": 0.0}
    total = chart_weight + news_weight
    return {"chart": chart_weight / total, "news": news_weight / total}


def _clip(value: float) -> float:
    return round(min(1.0, max(0.0, value)), 4)


def describe_chart(chart: ChartSignal) -> str:
    text = f"chart: {chart.action} at {chart.confidence:.2f}, {chart.trend}"
    if chart.patterns:
        text += "; patterns: " + ", ".join(chart.patterns[:4])
    return text


def describe_news(news: NewsSentiment, count: int) -> str:
    text = f"news: {news.sentiment} at intensity {news.intensity:.2f} from {count} item(s)"
    if news.key_factors:
        text += "; e.g. " + repr(news.key_factors[0][:80])
    return text


def merge_signals(
    chart: ChartSignal,
    news: Optional[NewsSentiment],
    *,
    chart_weight: float,
    news_weight: float,
    min_confidence: float,
    news_count: int = 0,
) -> MergeResult:
    """Combine the branches into one action and confidence (see the module docstring)."""
    weights = normalised_weights(chart_weight, news_weight, news is not None)
    reasons = [describe_chart(chart)]
    d_chart = _CHART_DIR[chart.action]
    aligned: Optional[bool] = None
    if news is None:
        reasons.append("news: none given, chart decides alone")
        d_news, intensity = 0, 0.0
    else:
        reasons.append(describe_news(news, news_count))
        d_news, intensity = _NEWS_DIR[news.sentiment], news.intensity
        aligned = d_chart == d_news

    if d_chart == 0:
        support = intensity if d_news == 0 else 1.0 - intensity
        confidence = _clip(weights["chart"] * chart.confidence + weights["news"] * support)
        reasons.append(f"chart says HOLD: decision HOLD at {confidence:.2f}")
        return MergeResult("HOLD", confidence, aligned, weights, reasons)

    support = intensity * d_news * d_chart  # +intensity same way, -intensity opposite, 0 neutral
    trade_conf = _clip(weights["chart"] * chart.confidence + weights["news"] * support)
    if news is not None:
        verb = {1: "supports", -1: "contradicts", 0: "is neutral on"}[int(d_news * d_chart)]
        reasons.append(f"news {verb} the chart's {chart.action} (support {support:+.2f})")
    if trade_conf >= min_confidence:
        reasons.append(f"decision {chart.action} at {trade_conf:.2f} (threshold {min_confidence:.2f})")
        return MergeResult(chart.action, trade_conf, aligned, weights, reasons)
    confidence = _clip(1.0 - trade_conf)
    reasons.append(
        f"{chart.action} confidence {trade_conf:.2f} is below the threshold {min_confidence:.2f}: "
        f"decision HOLD at {confidence:.2f}"
    )
    return MergeResult("HOLD", confidence, aligned, weights, reasons)
