"""The graph with fake backends: concurrency, timeouts, failures, the Runnable surface."""

import asyncio
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from alphasignal.agent.graph import DecisionAgent
from alphasignal.config import Settings
from alphasignal.errors import InputError, NewsError
from alphasignal.schemas import TradingDecision

from .fakes import FakeBackend, unavailable


@lru_cache(maxsize=1)
def png() -> bytes:
    """A rendered candlestick chart the fakes' BUY (entry 100, stop 95, target 110, uptrend) agrees with.

    A bare image is read and guarded before any backend runs, and a vision backend's
    answer is grounded in that reading, so the chart must be real and must agree.
    """
    from alphasignal.chart.render import render_chart

    n, rng = 60, np.random.default_rng(3)
    close = np.linspace(88, 100, n) + rng.normal(0, 0.6, n)
    close[-1] = 100.0
    open_ = np.r_[close[0] - 0.5, close[:-1]]
    high = np.maximum(open_, close) + rng.uniform(0.2, 1.0, n)
    low = np.minimum(open_, close) - rng.uniform(0.2, 1.0, n)
    high[40], low[5] = 110.5, 86.0  # the visible range takes in the target and the stop
    index = pd.bdate_range("2024-01-01", periods=n, name="date")
    frame = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": 1e6}, index=index)
    return render_chart(frame, bars=n, width=640, height=480, volume=False)


def agent(chart=None, news=None, **pipeline):
    settings = Settings(pipeline=pipeline)
    return DecisionAgent(settings, chart or FakeBackend(settings), news or FakeBackend(settings))


REQUEST = {"image": png(), "news": ["Apple beats expectations"]}


def test_invoke_returns_a_trading_decision():
    decision = agent().invoke(REQUEST)
    assert isinstance(decision, TradingDecision)
    assert (decision.status, decision.final_action, decision.final_confidence) == ("ok", "BUY", 0.8)
    assert (decision.entry_price, decision.stop_loss, decision.take_profit) == (100.0, 95.0, 110.0)
    assert decision.meta.signals_aligned is True
    assert decision.meta.news_count == 1 and decision.meta.image_sha256
    assert set(decision.meta.latency_ms) == {"chart", "news", "chart_read", "total"}
    assert decision.meta.chart_guard_score >= 0.5 and decision.meta.chart_grounding == []


async def test_ainvoke_batch_and_abatch():
    a = agent()
    assert (await a.ainvoke(REQUEST)).final_action == "BUY"
    results = await a.abatch([REQUEST, {"image": png()}])
    assert [r.final_action for r in results] == ["BUY", "BUY"]
    assert results[1].sentiment is None and results[1].meta.signals_aligned is None


def test_sync_batch():
    assert [d.status for d in agent().batch([REQUEST, REQUEST])] == ["ok", "ok"]


@pytest.mark.parametrize("blocking", [False, True], ids=["async-io", "worker-thread"])
def test_branches_run_concurrently(blocking):
    settings = Settings()
    a = DecisionAgent(settings, FakeBackend(settings, delay=0.4, blocking=blocking), FakeBackend(settings, delay=0.4, blocking=blocking))
    decision = a.invoke(REQUEST)
    ms = decision.meta.latency_ms
    assert ms["chart"] >= 400 and ms["news"] >= 400
    # sequential would be >= 800 ms; concurrent is the slowest branch plus overhead (the image is read before)
    assert ms["total"] - ms["chart_read"] < 1.5 * max(ms["chart"], ms["news"])


def test_branch_timeout_is_a_failed_decision_not_a_hold():
    settings = Settings(pipeline={"chart_timeout_s": 0.1})
    a = DecisionAgent(settings, FakeBackend(settings, delay=2), FakeBackend(settings))
    decision = a.invoke(REQUEST)
    assert (decision.status, decision.final_action, decision.final_confidence) == ("failed", "ABSTAIN", 0.0)
    assert decision.errors[0].branch == "chart" and decision.errors[0].error == "BranchTimeout"
    assert "timed out after 0.1 s" in decision.reasons[0]
    assert decision.sentiment is not None  # the branch that worked is still reported


def test_backend_error_is_reported_with_its_fix():
    settings = Settings()
    a = DecisionAgent(settings, FakeBackend(settings), FakeBackend(settings, error=unavailable()))
    decision = a.invoke(REQUEST)
    assert decision.status == "failed" and decision.errors[0].branch == "news"
    assert "ollama serve" in decision.errors[0].message


def test_unexpected_exception_is_reported_not_hidden():
    settings = Settings()
    a = DecisionAgent(settings, FakeBackend(settings, error=ZeroDivisionError("boom")), FakeBackend(settings))
    decision = a.invoke(REQUEST)
    assert decision.status == "failed" and decision.errors[0].error == "ZeroDivisionError"


def test_bad_input_raises_before_any_backend_runs():
    settings = Settings()
    chart, news = FakeBackend(settings), FakeBackend(settings)
    a = DecisionAgent(settings, chart, news)
    with pytest.raises(NewsError):
        a.invoke({"image": png(), "news": ["   "]})
    with pytest.raises(InputError, match="nothing to analyse"):
        a.invoke({"news": ["x"]})
    with pytest.raises(InputError, match="must be a dict"):
        a.invoke("chart.png")
    with pytest.raises(InputError, match="invalid agent input 'colour'"):
        a.invoke({"image": png(), "colour": "red"})
    assert chart.calls == [] and news.calls == []


def test_callbacks_from_the_caller_still_fire():
    from langchain_core.callbacks import BaseCallbackHandler

    class Names(BaseCallbackHandler):
        def __init__(self):
            self.names = []

        def on_chain_start(self, serialized, inputs, **kwargs):
            self.names.append(kwargs.get("name"))

    handler = Names()
    agent().invoke(REQUEST, config={"callbacks": [handler]})
    assert {"prepare", "merge"} <= set(handler.names)


def test_invoke_inside_a_running_loop():
    async def inside():
        return agent().invoke(REQUEST)

    assert asyncio.run(inside()).final_action == "BUY"


def test_tokens_and_calls_reach_meta_through_callbacks():
    """Both branches over real HTTP (a loopback OpenAI-compatible server): usage lands in meta per branch."""
    from alphasignal.agent.graph import build_agent
    from alphasignal.bench import loopback_model_server

    with loopback_model_server(0.05) as url:
        spec = f"openai:stub@{url}"
        decision = build_agent(Settings(), chart_backend=spec, news_backend=spec).invoke(REQUEST)
    assert decision.status == "ok", decision.reasons
    for branch in ("chart", "news"):
        assert decision.meta.tokens[branch].input_tokens == 100
        assert decision.meta.tokens[branch].output_tokens == 40
        assert decision.meta.attempts[branch] == 1
    assert decision.meta.vlm_model == "stub" and decision.meta.chart_backend == spec


def test_news_feeds_reach_the_news_branch_with_their_provenance(tmp_path):
    from email.utils import format_datetime
    from datetime import datetime, timezone

    stamp = format_datetime(datetime.now(timezone.utc), usegmt=True)
    feed = tmp_path / "feed.xml"
    feed.write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>'
        f"<item><title>ACME wins an order</title><link>https://example.com/a</link><pubDate>{stamp}</pubDate></item>"
        f"<item><title>Unrelated company news</title><pubDate>{stamp}</pubDate></item>"
        "</channel></rss>"
    )
    settings = Settings()
    news = FakeBackend(settings)
    a = DecisionAgent(settings, FakeBackend(settings), news)
    decision = a.invoke({"image": png(), "ticker": "ACME", "news_feeds": [str(feed), str(tmp_path / "gone.xml")]})
    assert decision.status == "ok" and news.calls == ["news"]
    (item,) = decision.meta.news_items
    assert (item.title, item.source, item.link, item.weight) == ("ACME wins an order", "Wire", "https://example.com/a", 1.0)
    assert item.published is not None and decision.meta.news_count == 1
    assert "gone.xml: not found" in decision.meta.news_warnings[0]
    assert any(r.startswith("news warning: news feed") for r in decision.reasons)


def test_no_usable_feed_items_skip_the_news_branch_and_say_so(tmp_path):
    settings = Settings()
    news = FakeBackend(settings)
    decision = DecisionAgent(settings, FakeBackend(settings), news).invoke({"image": png(), "news_feeds": str(tmp_path / "x.xml")})
    assert news.calls == [] and decision.sentiment is None and decision.status == "ok"
    assert decision.meta.news_warnings[-1] == "no news items to score: the chart decides alone"


def test_builtin_news_agreement_and_item_weights_reach_meta():
    from alphasignal.agent.graph import build_agent

    decision = build_agent(Settings()).invoke({"demo": True})
    assert decision.meta.news_agreement == decision.sentiment.agreement is not None
    assert [i.source for i in decision.meta.news_items] == ["input"] * 3
    assert sum(s.weight for s in decision.sentiment.items) == pytest.approx(1.0, abs=1e-3)
