"""Plain-text views for people: the decision summary and the settings as TOML."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from .schemas import TradingDecision


def _price(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.4g}"


def summary(decision: TradingDecision, output: Optional[Path] = None) -> str:
    meta = decision.meta
    lines = [
        f"{decision.final_action}  confidence {decision.final_confidence:.2f}  "
        f"entry {_price(decision.entry_price)}  stop {_price(decision.stop_loss)}  "
        f"target {_price(decision.take_profit)}   [status {decision.status}]"
    ]
    chart, news = decision.vlm_signal, decision.sentiment
    ms = meta.latency_ms
    if chart is not None:
        lines.append(
            f"chart  {meta.chart_backend} ({meta.vlm_model}): {chart.action} {chart.confidence:.2f}, "
            f"{chart.trend}  [{ms.get('chart', 0):.0f} ms]"
        )
    if news is not None:
        agreement = f", agreement {meta.news_agreement:.2f}" if meta.news_agreement is not None else ""
        lines.append(
            f"news   {meta.news_backend} ({meta.sentiment_model}): {news.sentiment} "
            f"{news.intensity:.2f} from {meta.news_count} item(s){agreement}  [{ms.get('news', 0):.0f} ms]"
        )
    aligned = {True: "yes", False: "no", None: "n/a"}[meta.signals_aligned]
    lines.append(f"aligned: {aligned}   total {ms.get('total', 0):.0f} ms")
    lines += [f"  - {reason}" for reason in decision.reasons]
    fed = [item for item in meta.news_items if item.published is not None or item.link]
    for item in fed[:5]:  # feed items: say where each came from and when
        when = f", {item.published:%Y-%m-%d %H:%M}" if item.published else ""
        lines.append(f"  news item ({item.source or 'input'}{when}, weight {item.weight or 0:.2f}): {item.title[:90]}")
    if output is not None:
        lines.append(f"decision written to {output}" if decision.ok else f"{output} left unchanged")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_value(str(k))} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def toml_text(data: dict[str, dict[str, Any]]) -> str:
    """Settings sections as TOML; unset values appear as comments."""
    out = []
    for section, values in data.items():
        out.append(f"[{section}]")
        for key, value in values.items():
            out.append(f"# {key} = (unset)" if value is None else f"{key} = {_toml_value(value)}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def metrics_table(metrics: dict[str, Any]) -> str:
    """Sentiment evaluation metrics as a small table."""
    lines = [f"model: {metrics.get('model_id', '?')}"]
    lines.append(f"{'subset':22s} {'n':>5s} {'accuracy':>9s} {'macro-F1':>9s} {'ECE':>7s}  recall (neg / neu / pos)")
    for key, value in metrics.items():
        if isinstance(value, dict) and "accuracy" in value:
            recall = value.get("recall", {})
            rec = " / ".join(f"{recall.get(k, 0):.3f}" for k in ("negative", "neutral", "positive"))
            ece = "-" if value.get("ece") is None else f"{value['ece']:.4f}"
            lines.append(
                f"{key:22s} {value['n']:5d} {value['accuracy']:9.4f} {value['macro_f1']:9.4f} {ece:>7s}  {rec}"
            )
    if metrics.get("failures"):
        lines.append(f"answers that never validated (counted wrong): {metrics['failures']}")
    latency = metrics.get("latency_ms_per_headline")
    if latency:
        lines.append(f"latency per headline: p50 {latency['p50']:.1f} ms, p95 {latency['p95']:.1f} ms (n={latency['n']})")
    return "\n".join(lines)
