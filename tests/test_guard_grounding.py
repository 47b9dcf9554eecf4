"""The chart-image guard in front of every chart backend, and a vision answer grounded in the chart reader.

A bare image (no prices with it) is read once before any chart model is called:
what is not a candlestick chart is refused with ``NotAChartError`` whatever the
backend, and a vision backend's levels, patterns and trend are checked against
the reading; disagreements land in ``meta.chart_grounding`` and lower the chart
confidence the merge uses.
"""

from __future__ import annotations

import io
import re
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
import pytest

from alphasignal.agent.graph import build_agent
from alphasignal.backends.base import PROVIDERS, BackendSpec
from alphasignal.chart.ohlc import demo_paths, load_csv
from alphasignal.cli import main
from alphasignal.config import Settings
from alphasignal.errors import NotAChartError
from alphasignal.schemas import ChartSignal

from .fakes import BULLISH, BUY, FakeBackend
from .test_graph import png as agreeing_chart

NEWS = ["Apple beats expectations with +12% revenue"]
REFUSED = r"^not a candlestick chart: guard score 0\.[0-4]\d < 0\.50 \(pipeline\.guard_threshold; "


class RecordingBackend(FakeBackend):
    """The fake backend, built by the registry like a real one; answers ``RecordingBackend.answer``."""

    provider = "recording"
    answer: ChartSignal = BUY

    def __init__(self, spec: BackendSpec, settings: Settings):
        super().__init__(settings, chart=type(self).answer, news=BULLISH)
        self.spec = spec


@pytest.fixture
def recording(monkeypatch):
    """Register the recording backend; the fixture's value sets its chart answer."""
    monkeypatch.setitem(PROVIDERS, "recording", f"{__name__}:RecordingBackend")

    def answering(signal: ChartSignal = BUY) -> str:
        monkeypatch.setattr(RecordingBackend, "answer", signal)
        return "recording:vlm"

    return answering


@lru_cache(maxsize=None)
def figure(kind: str) -> bytes:
    """A matplotlib picture that is not a candlestick chart."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    fig, ax = plt.subplots(figsize=(8, 6), dpi=100)
    try:
        if kind == "pie":
            ax.pie(rng.random(4), labels=["equities", "bonds", "cash", "gold"])
        elif kind == "text":
            ax.axis("off")
            words = "price market stock shares quarter revenue growth index trading volume".split()
            ax.text(0, 1, "\n".join(" ".join(rng.choice(words, 7)) for _ in range(18)), va="top", fontsize=10)
        else:  # a line-only price chart: prices, but no candles
            ax.plot(100 + np.cumsum(rng.standard_normal(120)))
            ax.grid(True)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None})
        return buf.getvalue()
    finally:
        plt.close(fig)


def demo_chart() -> bytes:
    return demo_paths()[2].read_bytes()


@lru_cache(maxsize=1)
def rendered_chart() -> bytes:
    """A candlestick chart rendered by the chart reader's test renderer (yahoo style, with volume)."""
    from alphasignal.chart.reader import synth

    return synth.render(load_csv(demo_paths()[0]).iloc[-70:], "yahoo", volume=True).png


@contextmanager
def counting_server():
    """A loopback OpenAI-compatible server that records every request it gets."""
    from alphasignal.bench import bench_reply, loopback_model_server

    bodies: list[dict] = []

    def reply(body: dict) -> str:
        bodies.append(body)
        return bench_reply(body)

    with loopback_model_server(reply=reply) as url:
        yield f"openai:m@{url}", bodies


# -- the guard ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pie", "text", "price-line"])
def test_non_charts_are_refused_before_the_chart_backend_is_called(recording, kind):
    agent = build_agent(Settings(), chart_backend=recording(), news_backend=recording())
    with pytest.raises(NotAChartError, match=REFUSED) as info:
        agent.invoke({"image": figure(kind), "news": NEWS})
    assert "--csv" in str(info.value) and "pipeline.guard_threshold" in str(info.value)
    assert agent.chart_backend.calls == [] and agent.news_backend.calls == []


@pytest.mark.parametrize("provider", ["ollama", "llamacpp", "openai", "builtin"])
def test_every_backend_is_behind_the_guard(tmp_path, provider):
    """Each real backend would fail on its own way (no server, no model); the guard answers first."""
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF" + bytes(60))  # passes the constructor's magic check; never loaded
    spec = {"ollama": "ollama:qwen2.5vl:3b", "llamacpp": f"llamacpp:{gguf}",
            "openai": "openai:m@http://127.0.0.1:9/v1", "builtin": "builtin"}[provider]
    agent = build_agent(Settings(), chart_backend=spec)
    with pytest.raises(NotAChartError, match="not a candlestick chart"):
        agent.invoke({"image": figure("pie")})


def test_the_guard_is_before_any_http_request():
    with counting_server() as (spec, bodies):
        agent = build_agent(Settings(), chart_backend=spec, news_backend=spec)
        with pytest.raises(NotAChartError):
            agent.invoke({"image": figure("text"), "news": NEWS})
        assert bodies == []
        decision = agent.invoke({"image": agreeing_chart(), "news": NEWS})
    assert decision.status == "ok" and len(bodies) == 2  # one chart request, one news request


@pytest.mark.parametrize("chart", [rendered_chart, agreeing_chart], ids=["demo-window-yahoo", "synthetic-charles"])
def test_a_rendered_candlestick_chart_passes_and_reaches_the_backend(recording, chart):
    agent = build_agent(Settings(), chart_backend=recording(), news_backend=recording())
    decision = agent.invoke({"image": chart(), "news": NEWS})
    assert agent.chart_backend.calls == ["chart"] and agent.news_backend.calls == ["news"]
    assert decision.status == "ok" and decision.meta.chart_guard_score >= 0.5
    assert decision.meta.latency_ms["chart_read"] > 0


def test_threshold_zero_turns_the_guard_off(recording):
    settings = Settings(pipeline={"guard_threshold": 0})
    agent = build_agent(settings, chart_backend=recording())
    decision = agent.invoke({"image": figure("pie")})
    assert agent.chart_backend.calls == ["chart"] and decision.status == "ok"
    # nothing to check the answer against: one note says so, and the confidence is the model's
    (note,) = decision.meta.chart_grounding
    assert note.startswith("not checked: the chart reader could not digitise the image")
    assert decision.vlm_signal.confidence == BUY.confidence


def test_guard_and_grounding_off_means_no_reading_at_all(recording, monkeypatch):
    reads = _count_reads(monkeypatch)
    settings = Settings(pipeline={"guard_threshold": 0, "chart_grounding": False})
    decision = build_agent(settings, chart_backend=recording()).invoke({"image": figure("text")})
    assert reads == [] and decision.meta.chart_guard_score is None and decision.meta.chart_grounding == []
    assert "chart_read" not in decision.meta.latency_ms


def test_prices_with_the_image_skip_the_reading(recording, monkeypatch):
    reads = _count_reads(monkeypatch)
    csv, _, chart = demo_paths()
    decision = build_agent(Settings(), chart_backend=recording()).invoke({"image": chart, "csv": csv})
    assert reads == [] and decision.meta.chart_guard_score is None and decision.meta.data_source == "csv"


def test_builtin_reads_a_bare_image_once(monkeypatch):
    reads = _count_reads(monkeypatch)
    decision = build_agent(Settings()).invoke({"image": demo_chart()})
    assert len(reads) == 1 and decision.status == "ok"
    assert decision.meta.vlm_model == "talib-rules" and decision.meta.chart_guard_score >= 0.5
    assert decision.meta.chart_grounding == []  # the builtin answer is the reading itself
    assert decision.vlm_signal.indicators.last_close == pytest.approx(178.46, rel=0.01)


def _count_reads(monkeypatch) -> list[int]:
    from alphasignal.chart.reader import read

    reads: list[int] = []
    real = read.read_chart

    def counted(image, **kwargs):
        reads.append(len(image))
        return real(image, **kwargs)

    monkeypatch.setattr(read, "read_chart", counted)
    return reads


# -- grounding ---------------------------------------------------------------------------------------

# The demo chart shows AAPL between about 146 and 182 (the axis is read by OCR), last close 178.46.
INVENTED = ChartSignal(action="BUY", confidence=0.8, entry_price=200.0, stop_loss=195.0, take_profit=215.0,
                       trend="uptrend")


def test_invented_levels_are_recorded_and_lower_the_final_confidence(recording):
    spec = recording(INVENTED)
    grounded = build_agent(Settings(), chart_backend=spec, news_backend=spec).invoke({"image": demo_chart(), "news": NEWS})
    notes = grounded.meta.chart_grounding
    assert [n.split(" is ")[0] for n in notes[:3]] == ["entry 200", "stop 195", "target 215"]
    assert all("outside the chart's visible prices" in n for n in notes[:3])
    assert "entry 200 is" in notes[3] and "ATR from the last close" in notes[3]
    lowered = round(max(0.0, 0.8 - 0.15 * len(notes)), 3)
    assert grounded.vlm_signal.confidence == pytest.approx(lowered) and len(notes) >= 4
    assert any(r.startswith(f"chart confidence lowered from 0.80 to {lowered:.2f}") for r in grounded.reasons)

    settings = Settings(pipeline={"chart_grounding": False})
    ungrounded = build_agent(settings, chart_backend=spec, news_backend=spec).invoke({"image": demo_chart(), "news": NEWS})
    assert ungrounded.meta.chart_grounding == [] and ungrounded.vlm_signal.confidence == 0.8
    # the merge used the lowered chart confidence: 0.6 * lowered + 0.4 * 0.8 instead of 0.6 * 0.80 + 0.4 * 0.8
    assert (grounded.final_action, ungrounded.final_action) == ("BUY", "BUY")
    assert grounded.final_confidence == pytest.approx(0.6 * lowered + 0.4 * 0.8, abs=1e-3)
    assert ungrounded.final_confidence == pytest.approx(0.8)


def test_a_stop_on_the_wrong_side_is_a_disagreement():
    """The ChartSignal schema already refuses such an answer from every backend; the check still holds."""
    from alphasignal.agent.graph import ground_signal
    from alphasignal.backends.builtin import read_bare_chart

    wrong = ChartSignal.model_construct(  # unvalidated: a stop above a BUY's entry, the entry off the chart
        action="BUY", confidence=0.8, entry_price=300.0, stop_loss=310.0, take_profit=320.0,
        trend="uptrend", patterns=[], reasoning="", indicators=None,
    )
    signal, notes = ground_signal(wrong, read_bare_chart(demo_chart(), Settings()))
    assert notes[0] == "stop 310 is not below the entry 300"
    assert any(n.startswith("entry 300 is outside the chart's visible prices") for n in notes)
    assert signal.confidence == pytest.approx(max(0.0, 0.8 - 0.15 * len(notes)))


def test_valid_but_invented_levels_and_patterns_are_flagged(recording):
    invented = ChartSignal(action="SELL", confidence=0.9, entry_price=120.0, stop_loss=125.0, take_profit=100.0,
                           trend="downtrend", patterns=["evening star"])
    decision = build_agent(Settings(), chart_backend=recording(invented)).invoke({"image": demo_chart(), "news": NEWS})
    notes = decision.meta.chart_grounding
    assert sum("outside the chart's visible prices" in n for n in notes) == 3
    assert "pattern 'evening star' is not on the last 5 bars of the chart" in notes
    assert decision.vlm_signal.confidence < 0.9 and decision.meta.chart_guard_score >= 0.5


def test_an_answer_the_chart_agrees_with_keeps_its_confidence(recording):
    spec = recording(BUY)
    decision = build_agent(Settings(), chart_backend=spec, news_backend=spec).invoke({"image": agreeing_chart(), "news": NEWS})
    assert decision.meta.chart_grounding == [] and decision.vlm_signal.confidence == BUY.confidence
    assert (decision.final_action, decision.final_confidence) == ("BUY", pytest.approx(0.8))


def test_without_the_axis_levels_are_not_checked_and_meta_says_so(recording):
    settings = Settings(builtin={"reader_ocr": False})
    invented = INVENTED.model_copy(update={"patterns": ["evening star"]})
    decision = build_agent(settings, chart_backend=recording(invented)).invoke({"image": demo_chart()})
    notes = decision.meta.chart_grounding
    assert notes[0] == "pattern 'evening star' is not on the last 5 bars of the chart"  # needs no prices
    assert notes[-1].startswith("price levels not checked: the chart's price axis was not read")
    assert len(notes) == 2 and decision.vlm_signal.confidence == pytest.approx(0.65)  # the note costs nothing


# -- the CLI -------------------------------------------------------------------------------------------


def test_cli_refuses_a_pie_chart_with_one_line_and_no_model_call(capsys, tmp_path):
    pie = tmp_path / "pie.png"
    pie.write_bytes(figure("pie"))
    out = tmp_path / "decision.json"
    with counting_server() as (spec, bodies):
        code = main(["analyze", "--image", str(pie), "--chart-backend", spec, "--output", str(out)])
    stderr = capsys.readouterr().err
    assert code == 1 and bodies == [] and not out.exists()
    assert re.match(REFUSED, stderr.removeprefix("alphasignal: error: ")), stderr
    assert len(stderr.strip().splitlines()) == 1
