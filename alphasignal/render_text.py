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
        lines.append(
            f"news   {meta.news_backend} ({meta.sentiment_model}): {news.sentiment} "
            f"{news.intensity:.2f} from {meta.news_count} item(s)  [{ms.get('news', 0):.0f} ms]"
        )
    aligned = {True: "yes", False: "no", None: "n/a"}[meta.signals_aligned]
    lines.append(f"aligned: {aligned}   total {ms.get('total', 0):.0f} ms")
    lines += [f"  - {reason}" for reason in decision.reasons]
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
