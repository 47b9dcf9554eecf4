"""The decision graph: prepare → (chart ‖ news) → merge, as one LangChain Runnable.

``build_agent()`` returns a ``DecisionAgent``: a Runnable with invoke/ainvoke/
batch/abatch. Inside, a ``RunnableParallel`` runs the chart and news branches
concurrently, each under its own timeout and with a callback handler that
records latency, model calls and tokens. A branch that fails does not turn into
a HOLD: the decision comes back with ``status="failed"``, ``final_action="ABSTAIN"``
and the reason in ``errors``.

A chart image without prices is read once while the input is prepared (the guard
refuses what is not a candlestick chart before any model runs, see ``inputs``).
The builtin backend answers from that reading; a vision backend's answer is
checked against it (``ground_signal``): each disagreement lowers the chart
confidence the merge uses and is listed in ``meta.chart_grounding``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda, RunnableParallel
from langchain_core.runnables.config import merge_configs

from .. import __version__
from ..backends.base import Backend, get_backend
from ..backends.builtin import BuiltinBackend
from ..chains.merge import merge_signals
from ..config import Settings, load_settings
from ..errors import AlphaSignalError, BranchTimeout
from ..schemas import BranchFailure, ChartSignal, DecisionMeta, TokenUsage, TradingDecision, utcnow
from .inputs import AgentRequest, Prepared, prepare

if TYPE_CHECKING:  # pragma: no cover
    from ..chart.reader.read import ChartReading

BranchCall = Callable[[Any, RunnableConfig], Awaitable[Any]]

log = logging.getLogger(__name__)


class BranchMetrics(BaseCallbackHandler):
    """Counts model calls and tokens for one branch."""

    def __init__(self) -> None:
        self.calls = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self._lock = threading.Lock()

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        with self._lock:
            self.calls += 1

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        for generations in response.generations:
            for gen in generations:
                usage = getattr(getattr(gen, "message", None), "usage_metadata", None) or {}
                with self._lock:
                    self.input_tokens += int(usage.get("input_tokens", 0))
                    self.output_tokens += int(usage.get("output_tokens", 0))


@dataclass
class BranchOutcome:
    name: str
    value: Any = None
    failure: Optional[BranchFailure] = None
    latency_ms: float = 0.0
    model: Optional[str] = None
    metrics: BranchMetrics = field(default_factory=BranchMetrics)


async def run_branch(
    name: str, backend: Backend, payload: Any, timeout: float, config: RunnableConfig,
    call: Optional[BranchCall] = None,
) -> BranchOutcome:
    """Run one branch under its timeout; errors become a BranchFailure, never a default answer.

    ``call`` replaces the backend's ``analyze_chart``/``analyze_news`` (same arguments).
    """
    outcome = BranchOutcome(name=name)
    cfg = merge_configs(config, {"callbacks": [outcome.metrics], "run_name": f"{name}-branch"})
    method = call or (backend.analyze_chart if name == "chart" else backend.analyze_news)
    start = perf_counter()
    try:
        outcome.value = await asyncio.wait_for(method(payload, cfg), timeout)
        name_of = backend.chart_model_name if name == "chart" else backend.news_model_name
        outcome.model = name_of()
    except asyncio.TimeoutError:
        exc = BranchTimeout(f"{name} branch ({backend.spec.label}) timed out after {timeout:g} s")
        outcome.failure = BranchFailure(branch=name, error=type(exc).__name__, message=str(exc))
    except AlphaSignalError as exc:
        outcome.failure = BranchFailure(branch=name, error=type(exc).__name__, message=exc.one_line())
    except Exception as exc:  # a bug or an unexpected client error: report it, do not hide it
        log.exception("%s branch crashed", name)
        outcome.failure = BranchFailure(branch=name, error=type(exc).__name__, message=str(exc)[:500])
    outcome.latency_ms = round((perf_counter() - start) * 1000, 2)
    return outcome


class DecisionAgent(Runnable[Any, TradingDecision]):
    """chart ‖ news → merge. Build it with ``build_agent()``."""

    def __init__(self, settings: Settings, chart_backend: Backend, news_backend: Backend):
        self.settings = settings
        self.chart_backend = chart_backend
        self.news_backend = news_backend
        parallel = RunnableParallel(
            chart=RunnableLambda(self._chart_branch, name="chart"),
            news=RunnableLambda(self._news_branch, name="news"),
            prepared=RunnableLambda(lambda p: p, name="passthrough"),
        )
        self.graph: Runnable = (
            RunnableLambda(self._prepare, name="prepare") | parallel | RunnableLambda(self._merge, name="merge")
        )

    @property
    def InputType(self) -> type:  # noqa: N802 - LangChain's name
        return AgentRequest

    @property
    def OutputType(self) -> type:  # noqa: N802
        return TradingDecision

    # -- graph nodes -------------------------------------------------------------
    async def _prepare(self, value: Any) -> tuple[Prepared, float]:
        start = perf_counter()
        prepared = await asyncio.to_thread(prepare, value, self.settings, self.chart_backend)
        return prepared, start

    async def _chart_branch(self, state: tuple[Prepared, float], config: RunnableConfig) -> BranchOutcome:
        prepared, timeout = state[0], self.settings.pipeline.chart_timeout_s
        call = self._chart_call(prepared)
        return await run_branch("chart", self.chart_backend, prepared.chart, timeout, config, call)

    def _chart_call(self, prepared: Prepared) -> Optional[BranchCall]:
        """The builtin backend answers from the reading made in ``prepare``: the image is not digitised twice."""
        backend, reading = self.chart_backend, prepared.reading
        if reading is None or not isinstance(backend, BuiltinBackend):
            return None
        return lambda chart, cfg: backend.analyze_reading(reading, cfg)

    async def _news_branch(self, state: tuple[Prepared, float], config: RunnableConfig) -> Optional[BranchOutcome]:
        if state[0].news is None:
            return None
        timeout = self.settings.pipeline.news_timeout_s
        return await run_branch("news", self.news_backend, state[0].news, timeout, config)

    def _merge(self, parts: dict[str, Any]) -> TradingDecision:
        prepared, start = parts["prepared"]
        chart, news = parts["chart"], parts["news"]
        return build_decision(self, prepared, chart, news, total_ms=(perf_counter() - start) * 1000)

    # -- Runnable ------------------------------------------------------------------
    async def ainvoke(self, input: Any, config: Optional[RunnableConfig] = None, **kwargs: Any) -> TradingDecision:
        return await self.graph.ainvoke(input, config)

    def invoke(self, input: Any, config: Optional[RunnableConfig] = None, **kwargs: Any) -> TradingDecision:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.ainvoke(input, config))
        # Called from inside an event loop (a notebook): run on a private loop in a thread.
        result: dict[str, Any] = {}

        def target() -> None:
            try:
                result["value"] = asyncio.run(self.ainvoke(input, config))
            except BaseException as exc:  # re-raised in the caller's thread
                result["error"] = exc

        thread = threading.Thread(target=target)
        thread.start()
        thread.join()
        if "error" in result:
            raise result["error"]
        return result["value"]

    def close(self) -> None:
        self.chart_backend.close()
        if self.news_backend is not self.chart_backend:
            self.news_backend.close()


def _meta(agent: DecisionAgent, prepared: Prepared, chart: BranchOutcome, news: Optional[BranchOutcome], weights: dict, total_ms: float) -> DecisionMeta:
    branches = [b for b in (chart, news) if b is not None]
    latency = {b.name: b.latency_ms for b in branches}
    if prepared.read_ms is not None:
        latency["chart_read"] = prepared.read_ms
    latency["total"] = round(total_ms, 2)
    return DecisionMeta(
        vlm_model=chart.model or agent.chart_backend.model_name,
        sentiment_model=(news.model or agent.news_backend.model_name) if news else None,
        chart_backend=agent.chart_backend.spec.label,
        news_backend=agent.news_backend.spec.label if news else None,
        weights=weights,
        latency_ms=latency,
        tokens={b.name: TokenUsage(input_tokens=b.metrics.input_tokens, output_tokens=b.metrics.output_tokens) for b in branches},
        attempts={b.name: b.metrics.calls for b in branches},
        ticker=prepared.chart.ticker,
        data_source=prepared.data_source,
        image_sha256=prepared.image_sha256,
        chart_guard_score=prepared.reading.guard_score if prepared.reading is not None else None,
        news_count=len(prepared.news.items) if prepared.news else 0,
        news_items=list(prepared.news_items),
        news_agreement=getattr(news.value, "agreement", None) if news else None,
        news_flags=list(prepared.news_flags),
        news_warnings=list(prepared.news_warnings),
        created_at=utcnow(),
        alphasignal_version=__version__,
    )


def build_decision(agent: DecisionAgent, prepared: Prepared, chart: BranchOutcome, news: Optional[BranchOutcome], total_ms: float) -> TradingDecision:
    failures = [b.failure for b in (chart, news) if b is not None and b.failure is not None]
    pipeline = agent.settings.pipeline
    if failures:
        reasons = [f"{f.branch} branch failed: {f.message}" for f in failures] + news_notes(prepared)
        weights = {"chart": pipeline.chart_weight, "news": pipeline.news_weight}
        meta = _meta(agent, prepared, chart, news, weights, total_ms)
        return TradingDecision(
            status="failed", final_action="ABSTAIN", final_confidence=0.0,
            vlm_signal=chart.value, sentiment=news.value if news else None,
            reasons=reasons, errors=failures, meta=meta,
        )
    signal, grounding = chart.value, []
    if _grounds(agent, prepared):
        signal, grounding = ground_signal(chart.value, prepared.reading)
    merged = merge_signals(
        signal, news.value if news else None,
        chart_weight=pipeline.chart_weight, news_weight=pipeline.news_weight,
        min_confidence=pipeline.min_confidence,
        news_count=len(prepared.news.items) if prepared.news else 0,
    )
    meta = _meta(agent, prepared, chart, news, merged.weights, total_ms).model_copy(
        update={"signals_aligned": merged.signals_aligned, "chart_grounding": grounding}
    )
    trade = merged.action in ("BUY", "SELL")
    return TradingDecision(
        status="ok", final_action=merged.action, final_confidence=merged.confidence,
        entry_price=signal.entry_price if trade else None,
        stop_loss=signal.stop_loss if trade else None,
        take_profit=signal.take_profit if trade else None,
        vlm_signal=signal, sentiment=news.value if news else None,
        reasons=merged.reasons[:1] + _grounding_reason(chart.value, signal) + merged.reasons[1:] + news_notes(prepared),
        meta=meta,
    )


def _grounds(agent: DecisionAgent, prepared: Prepared) -> bool:
    """A vision backend's answer is checked when the image was read (the builtin answer *is* the reading)."""
    return (
        prepared.reading is not None
        and agent.settings.pipeline.chart_grounding
        and not isinstance(agent.chart_backend, BuiltinBackend)
    )


def ground_signal(signal: ChartSignal, reading: "ChartReading") -> tuple[ChartSignal, list[str]]:
    """(``signal`` with its confidence lowered per disagreement, the notes for ``meta.chart_grounding``).

    The checks (``chart.reader.grounding``): levels inside the chart's visible prices
    and near the last close, stop and target on their sides, named patterns present
    on the last bars, trend not opposite. A reading without candles checks nothing
    and says so in one note.
    """
    from ..chart.reader.grounding import ground_vlm_signal, grounded_confidence

    if len(reading.bars) < 2 or reading.guard_score <= 0:
        return signal, [
            f"not checked: the chart reader could not digitise the image ({len(reading.bars)} candle-like "
            f"bar(s), guard score {reading.guard_score:.2f})"
        ]
    notes = ground_vlm_signal(signal, reading)
    if notes:
        signal = signal.model_copy(update={"confidence": grounded_confidence(signal, notes)})
    has_levels = signal.entry_price is not None or signal.stop_loss is not None or signal.take_profit is not None
    if reading.prices is None and has_levels:
        notes.append(f"price levels not checked: the chart's price axis was not read ({reading.axis_reason})")
    return signal, notes


def _grounding_reason(answered: ChartSignal, used: ChartSignal) -> list[str]:
    if used.confidence == answered.confidence:
        return []
    return [
        f"chart confidence lowered from {answered.confidence:.2f} to {used.confidence:.2f}: the chart model "
        "disagrees with the chart's pixels (meta.chart_grounding)"
    ]


def news_notes(prepared: Prepared) -> list[str]:
    """Warnings about the news (failed feeds, dropped items, injection flags) for ``reasons``."""
    return [f"news warning: {w}" for w in prepared.news_warnings] + [
        f"news flag: {f}" for f in prepared.news_flags
    ]


def build_agent(
    settings: Optional[Settings] = None,
    *,
    chart_backend: Optional[str] = None,
    news_backend: Optional[str] = None,
) -> DecisionAgent:
    """The agent as a LangChain Runnable; backends default to the settings' (``builtin``)."""
    settings = settings or load_settings()
    chart = get_backend(chart_backend or settings.pipeline.chart_backend, settings)
    news_spec = news_backend or settings.pipeline.news_backend
    news = chart if news_spec == chart.spec.label and chart.provider == "builtin" else get_backend(news_spec, settings)
    return DecisionAgent(settings, chart, news)
