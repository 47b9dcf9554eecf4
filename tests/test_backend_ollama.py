"""The ``ollama:<model>`` backend.

Contract tests run the real ``ChatOllama`` and the real ``ollama`` client over an
``httpx.MockTransport`` that checks the documented ``/api/chat`` request and
answers with the documented NDJSON stream: they prove serialization and error
handling, not model quality. The live test talks to a real Ollama when one runs.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import io
import json
import os
import socket
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator, Optional

import httpx
import pytest
from langchain_core.callbacks import UsageMetadataCallbackHandler
from PIL import Image

from alphasignal.backends.base import get_backend
from alphasignal.backends.ollama import OllamaBackend
from alphasignal.config import Settings
from alphasignal.errors import (
    BackendError,
    BackendUnavailable,
    CapabilityError,
    ConfigError,
    StructuredOutputError,
)
from alphasignal.schemas import ChartInput, ChartSignal, NewsInput, NewsSentiment
from tests.backend_contract import NEWS, BackendContract

MODEL = "qwen2.5vl:3b"
CHART_JSON = json.dumps(
    {
        "action": "BUY",
        "confidence": 0.7,
        "entry_price": 100.0,
        "stop_loss": 95.0,
        "take_profit": 110.0,
        "trend": "uptrend",
        "patterns": ["bullish engulfing"],
        "reasoning": "higher highs",
    }
)
NEWS_JSON = json.dumps({"sentiment": "BULLISH", "intensity": 0.8, "key_factors": ["revenue +12%"]})
INVALID_NEWS = json.dumps({"sentiment": "EUPHORIC", "intensity": 0.5})
PROMPT_TOKENS, EVAL_TOKENS = 42, 17


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (0, 128, 0)).save(buf, format="PNG")
    return buf.getvalue()


def ndjson_reply(model: str, content: str) -> httpx.Response:
    """The documented streaming shape: message chunks, then a final ``done`` line with counts."""
    stamp = "2024-12-06T10:00:00.000000Z"
    cut = max(1, len(content) // 2)
    lines = [
        {"model": model, "created_at": stamp, "message": {"role": "assistant", "content": part}, "done": False}
        for part in (content[:cut], content[cut:])
    ]
    lines.append(
        {
            "model": model,
            "created_at": stamp,
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "total_duration": 1_000_000,
            "load_duration": 1000,
            "prompt_eval_count": PROMPT_TOKENS,
            "prompt_eval_duration": 1000,
            "eval_count": EVAL_TOKENS,
            "eval_duration": 1000,
        }
    )
    body = "".join(json.dumps(line) + "\n" for line in lines)
    return httpx.Response(200, text=body, headers={"content-type": "application/x-ndjson"})


class FakeOllama:
    """An ``/api/chat`` endpoint that checks the request shape and replays scripted answers.

    ``answers`` maps a schema title to the texts returned in turn (the last one repeats).
    A request that breaks the documented shape gets HTTP 400 naming the problem.
    """

    def __init__(self, settings: Settings, answers: Optional[dict[str, list[str]]] = None):
        self.settings = settings
        self.answers = answers or {"ChartSignal": [CHART_JSON], "NewsSentiment": [NEWS_JSON]}
        self.requests: list[dict] = []
        self.paths: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.paths.append(request.url.path)
        self.requests.append(body)
        problem = self.shape_problem(request, body)
        if problem:
            return httpx.Response(400, json={"error": problem})
        replies = self.answers[body["format"]["title"]]
        calls = sum(1 for r in self.requests if r["format"]["title"] == body["format"]["title"])
        return ndjson_reply(body["model"], replies[min(calls, len(replies)) - 1])

    def shape_problem(self, request: httpx.Request, body: dict) -> str:
        pipeline = self.settings.pipeline
        schemas = {"ChartSignal": ChartSignal, "NewsSentiment": NewsSentiment}
        schema = schemas.get(body.get("format", {}).get("title"))
        checks = [
            (request.method == "POST" and request.url.path == "/api/chat", "expected POST /api/chat"),
            (body.get("model") == MODEL, f"model {body.get('model')!r}"),
            (schema is not None and body["format"] == schema.model_json_schema(), "format is not the schema"),
            (body.get("options", {}).get("temperature") == pipeline.temperature, "temperature"),
            (body.get("options", {}).get("num_predict") == pipeline.max_tokens, "num_predict"),
            (isinstance(body.get("messages"), list) and body["messages"], "messages"),
        ]
        return "; ".join(what for ok, what in checks if not ok)


def make_backend(settings: Settings, handler: Callable[[httpx.Request], httpx.Response]) -> OllamaBackend:
    backend = get_backend(f"ollama:{MODEL}", settings)
    assert isinstance(backend, OllamaBackend)
    backend.client_kwargs["transport"] = httpx.MockTransport(handler)
    return backend


@pytest.fixture
def settings() -> Settings:
    return Settings(pipeline={"max_tokens": 160, "max_retries": 2})


@pytest.fixture
def fake(settings: Settings) -> FakeOllama:
    return FakeOllama(settings)


@pytest.fixture
def backend(settings: Settings, fake: FakeOllama) -> OllamaBackend:
    return make_backend(settings, fake)


@pytest.fixture
def chart_input() -> ChartInput:
    return ChartInput(image=png_bytes(), mime="image/png", ticker="AAPL")


class TestOllamaContract(BackendContract):
    """The shared backend contract, over the documented Ollama wire format."""


def test_spec_keeps_model_tag_and_host(settings: Settings) -> None:
    backend = get_backend("ollama:qwen2.5vl:3b", settings)
    assert isinstance(backend, OllamaBackend)
    assert backend.model_name == "qwen2.5vl:3b"
    assert backend.host == settings.backends.ollama_host
    assert backend.client_kwargs["timeout"] == settings.backends.request_timeout_s


def test_spec_without_model_is_a_config_error(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="ollama:<model>"):
        get_backend("ollama:", settings)


async def test_chart_request_carries_schema_and_bare_base64_image(
    backend: OllamaBackend, fake: FakeOllama, chart_input: ChartInput
) -> None:
    signal = await backend.analyze_chart(chart_input)

    assert signal == ChartSignal.model_validate_json(CHART_JSON)
    assert fake.paths == ["/api/chat"]
    body = fake.requests[0]
    assert body["format"] == ChartSignal.model_json_schema()
    assert body["options"]["temperature"] == 0.0 and body["options"]["num_predict"] == 160
    images = [img for message in body["messages"] for img in message.get("images") or []]
    assert images == [base64.b64encode(chart_input.image).decode("ascii")]
    assert not any(img.startswith("data:") for img in images)


async def test_news_text_reaches_the_model_and_tokens_reach_callbacks(
    backend: OllamaBackend, fake: FakeOllama
) -> None:
    usage = UsageMetadataCallbackHandler()
    news = NewsInput(items=("Apple beats expectations with +12% revenue", "Fed holds rates"), ticker="AAPL")

    result = await backend.analyze_news(news, config={"callbacks": [usage]})

    assert result == NewsSentiment.model_validate_json(NEWS_JSON)
    body = fake.requests[0]
    assert body["format"] == NewsSentiment.model_json_schema()
    sent = "\n".join(str(m["content"]) for m in body["messages"])
    assert "Apple beats expectations with +12% revenue" in sent and "Fed holds rates" in sent
    assert not any(m.get("images") for m in body["messages"])
    counts = usage.usage_metadata[MODEL]
    assert (counts["input_tokens"], counts["output_tokens"]) == (PROMPT_TOKENS, EVAL_TOKENS)


async def test_invalid_answer_is_re_asked_with_the_validation_error(settings: Settings) -> None:
    fake = FakeOllama(settings, {"NewsSentiment": [INVALID_NEWS, NEWS_JSON]})
    backend = make_backend(settings, fake)

    result = await backend.analyze_news(NEWS)

    assert result.sentiment == "BULLISH"
    assert len(fake.requests) == 2
    second = fake.requests[1]["messages"]
    assert second[-2] == {"role": "assistant", "content": INVALID_NEWS}
    assert second[-1]["role"] == "user"
    assert "That answer is invalid: sentiment: Input should be 'BULLISH'" in second[-1]["content"]


async def test_always_invalid_raises_with_the_raw_output(settings: Settings) -> None:
    fake = FakeOllama(settings, {"NewsSentiment": [INVALID_NEWS]})
    backend = make_backend(settings, fake)

    with pytest.raises(StructuredOutputError) as info:
        await backend.analyze_news(NEWS)

    assert info.value.raw_output == INVALID_NEWS
    assert info.value.attempts == settings.pipeline.max_retries + 1 == len(fake.requests)


async def test_connection_refused_says_start_ollama(settings: Settings) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    with pytest.raises(BackendUnavailable) as info:
        await make_backend(settings, refuse).analyze_news(NEWS)

    message = str(info.value)
    assert "ollama serve" in message and settings.backends.ollama_host in message
    assert "builtin" in message


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_real_closed_port_is_unavailable() -> None:
    host = f"http://127.0.0.1:{free_port()}"
    settings = Settings(backends={"ollama_host": host, "request_timeout_s": 5})
    backend = get_backend(f"ollama:{MODEL}", settings)

    with pytest.raises(BackendUnavailable, match="ollama serve") as info:
        await backend.analyze_news(NEWS)

    assert host in str(info.value)


async def test_slow_server_says_raise_the_timeout(settings: Settings) -> None:
    def stall(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(BackendUnavailable, match="request_timeout_s"):
        await make_backend(settings, stall).analyze_news(NEWS)


async def test_missing_model_says_ollama_pull(settings: Settings) -> None:
    def not_found(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": f'model "{MODEL}" not found, try pulling it first'})

    with pytest.raises(BackendUnavailable) as info:
        await make_backend(settings, not_found).analyze_news(NEWS)

    assert f"ollama pull {MODEL}" in str(info.value)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, "Failed to create new sequence: failed to process inputs: "
              "this model is missing data required for image input"),
        (400, f'"{MODEL}" does not support vision'),
    ],
    ids=["runner-missing-projector", "capability-check"],
)
async def test_text_only_model_asks_for_a_vision_model(
    settings: Settings, chart_input: ChartInput, status: int, error: str
) -> None:
    backend = make_backend(settings, lambda request: httpx.Response(status, json={"error": error}))

    with pytest.raises(CapabilityError, match="pick a vision model"):
        await backend.analyze_chart(chart_input)


async def test_other_server_errors_keep_status_and_text(settings: Settings) -> None:
    backend = make_backend(settings, lambda r: httpx.Response(500, json={"error": "out of memory"}))

    with pytest.raises(BackendError, match="HTTP 500: out of memory"):
        await backend.analyze_news(NEWS)


class _LoopbackOllama(BaseHTTPRequestHandler):
    """A real HTTP/1.1 (keep-alive) ``/api/chat`` on 127.0.0.1 that answers NEWS_JSON."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        reply = ndjson_reply(body["model"], NEWS_JSON).content
        self.send_response(200)
        self.send_header("content-type", "application/x-ndjson")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass


@pytest.fixture
def loopback_ollama() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LoopbackOllama)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_one_backend_serves_several_event_loops_without_leaking_sockets(loopback_ollama: str) -> None:
    # A cron runner calls asyncio.run once per tick with the same backend; pooled
    # connections from a finished loop would leak as unclosed sockets.
    settings = Settings(backends={"ollama_host": loopback_ollama, "request_timeout_s": 10})
    backend = get_backend(f"ollama:{MODEL}", settings)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = [asyncio.run(backend.analyze_news(NEWS)) for _ in range(2)]
        del backend
        gc.collect()

    assert [r.sentiment for r in results] == ["BULLISH", "BULLISH"]
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


# --- live: a real Ollama ------------------------------------------------------------------

OLLAMA_HOST = os.environ.get("OLLAMA_HOST", "http://127.0.0.1:11434")
if "://" not in OLLAMA_HOST:  # ollama accepts a bare host:port here
    OLLAMA_HOST = f"http://{OLLAMA_HOST}"


def ollama_version() -> Optional[str]:
    try:
        reply = httpx.get(f"{OLLAMA_HOST.rstrip('/')}/api/version", timeout=1.0)
        return reply.json().get("version") if reply.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


@pytest.mark.live
async def test_live_ollama_scores_news() -> None:
    version = ollama_version()
    if version is None:
        pytest.skip(f"no Ollama answers GET {OLLAMA_HOST}/api/version within 1 s")
    model = os.environ.get("ALPHASIGNAL_TEST_OLLAMA_MODEL")
    if not model:
        pytest.skip(f"Ollama {version} is up; set ALPHASIGNAL_TEST_OLLAMA_MODEL to a pulled model")
    settings = Settings(backends={"ollama_host": OLLAMA_HOST}, pipeline={"max_tokens": 160})

    result = await get_backend(f"ollama:{model}", settings).analyze_news(NEWS)

    assert isinstance(result, NewsSentiment)
    assert 0.0 <= result.intensity <= 1.0
