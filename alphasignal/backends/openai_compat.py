"""The ``openai:<model>@<base_url>`` backend: any OpenAI-compatible local server.

vLLM, LM Studio, llama.cpp's ``llama-server`` and llama-cpp-python's server all
speak ``POST /v1/chat/completions`` but constrain output in different ways, so
the structured-output option is chosen by ``backends.openai_structured``:

* ``json_schema``: ``response_format={"type": "json_schema", "json_schema": {...}}``
  (vLLM >= 0.6, LM Studio, llama-server);
* ``json_object``: ``response_format={"type": "json_object", "schema": {...}}``
  (llama-cpp-python's server, which rejects the ``json_schema`` form);
* ``guided_json``: ``extra_body={"guided_json": {...}}`` (older vLLM).

Images are OpenAI ``image_url`` parts carrying a data URI.
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any, Callable, Optional

from pydantic import BaseModel

from ..errors import (
    AlphaSignalError, BackendError, BackendUnavailable, CapabilityError, ConfigError, StructuredOutputError,
)
from .base import BackendSpec, Capabilities
from .chat import BUILTIN_HINT, ChatBackend

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.runnables import Runnable

    from ..config import Settings

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"

# The "@" that starts the base URL; model names keep any other "@".
_URL_SPLIT = re.compile(r"@(?=https?://)", re.IGNORECASE)
# "model@host:port" or "model@ftp://..." : a URL without a usable scheme.
_SCHEMELESS_URL = re.compile(r"@([a-z][a-z0-9+.-]*://|[\w.-]+:\d+)", re.IGNORECASE)


def split_model_url(model_spec: str) -> tuple[str, str]:
    """``<model>@<base_url>`` → (model, base_url); the URL defaults to ``DEFAULT_BASE_URL``."""
    parts = _URL_SPLIT.split(model_spec.strip(), maxsplit=1)
    model = parts[0].strip()
    if len(parts) == 1 and _SCHEMELESS_URL.search(model):
        raise ConfigError(
            f"invalid base URL in openai:{model_spec}: it must start with http:// or https://, "
            f"e.g. openai:<model>@{DEFAULT_BASE_URL}"
        )
    base_url = validate_base_url(parts[1]) if len(parts) == 2 else DEFAULT_BASE_URL
    if not model:
        raise ConfigError(
            f"the openai backend needs a model: openai:<model>@<base_url>, e.g. openai:gemma@{DEFAULT_BASE_URL}"
        )
    return model, base_url


def validate_base_url(url: str) -> str:
    """The URL without a trailing slash, or ConfigError if it has no host or bad port."""
    import httpx

    try:
        parsed = httpx.URL(url.strip())
        port_ok = parsed.port is None or 0 < parsed.port < 65536
        ok = parsed.scheme in ("http", "https") and bool(parsed.host) and port_ok
    except (httpx.InvalidURL, ValueError, TypeError):
        ok = False
    if not ok:
        raise ConfigError(
            f"invalid base URL {url!r}: expected http://host:port/v1, e.g. {DEFAULT_BASE_URL}"
        )
    return url.strip().rstrip("/")


def _json_schema_format(schema: type[BaseModel]) -> dict[str, Any]:
    return {
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": schema.__name__,
                "schema": schema.model_json_schema(),
                "strict": False,
            },
        }
    }


def _json_object_format(schema: type[BaseModel]) -> dict[str, Any]:
    return {"response_format": {"type": "json_object", "schema": schema.model_json_schema()}}


def _guided_json_format(schema: type[BaseModel]) -> dict[str, Any]:
    return {"extra_body": {"guided_json": schema.model_json_schema()}}


# backends.openai_structured -> the request options that constrain decoding to a schema
STRUCTURED_MODES: dict[str, Callable[[type[BaseModel]], dict[str, Any]]] = {
    "json_schema": _json_schema_format,
    "json_object": _json_object_format,
    "guided_json": _guided_json_format,
}

log = logging.getLogger(__name__)

_STATUS_PREFIX = re.compile(r"^Error code: \d+ - ")


def error_text(exc: Any) -> str:
    """The server's own words from an openai status error (``body`` is its ``error`` object)."""
    body = getattr(exc, "body", None)
    detail = (body.get("message") or body.get("detail")) if isinstance(body, dict) else None
    if detail is None:
        detail = _STATUS_PREFIX.sub("", str(getattr(exc, "message", exc)))
    text = detail if isinstance(detail, str) else json.dumps(detail, default=str)
    return " ".join(text.split())[:300]


_FORMAT_WORDS = ("response_format", "json_schema", "json_object", "guided_json", "guided_decoding", "grammar")
# How servers refuse an image: llama-server ("image input is not supported - hint: ...
# mmproj"), vLLM ("... is not a multimodal model"), others ("does not support image").
_NO_VISION_MARKERS = (
    "image input is not supported",
    "not a multimodal model",
    "does not support image",
    "images are not supported",
    "vision is not supported",
)


class StructuredModeRejected(BackendError):
    """The server refused the structured-output request option (``backends.openai_structured``)."""


class OpenAICompatBackend(ChatBackend):
    """Chart and news answers from an OpenAI-compatible server (``openai:gemma@http://127.0.0.1:8000/v1``)."""

    provider = "openai"
    capabilities = Capabilities(vision=True, structured=True)

    def __init__(
        self,
        spec: BackendSpec,
        settings: "Settings",
        *,
        http_client: Any = None,
        http_async_client: Any = None,
    ):
        import httpx

        super().__init__(spec, settings)
        self.model, self.base_url = split_model_url(spec.model)
        self.structured_mode = settings.backends.openai_structured
        # The caller's httpx clients (tests pass ones over an httpx.MockTransport), else
        # ours without keep-alive. langchain-openai's default is one cached client per
        # process: a second asyncio.run (a cron tick) reuses its pooled connection and
        # fails with "Event loop is closed". A model call takes seconds, so a fresh
        # local connection per call costs nothing.
        options = {
            "timeout": settings.backends.request_timeout_s,
            "limits": httpx.Limits(max_keepalive_connections=0),
        }
        self.http_client = http_client or httpx.Client(**options)
        self.http_async_client = http_async_client or httpx.AsyncClient(**options)

    @property
    def model_name(self) -> str:
        return self.model

    async def _ask(self, schema, messages, config):
        """As the base class; a server that refuses ``json_schema`` (llama-cpp-python's) is asked
        again with ``json_object`` + schema, which constrains decoding the same way, and the
        backend keeps that mode for its later calls."""
        try:
            return await super()._ask(schema, messages, config)
        except StructuredModeRejected:
            if self.structured_mode != "json_schema":
                raise
            log.info("%s refused response_format json_schema; using json_object + schema", self.base_url)
            self.structured_mode = "json_object"
            return await super()._ask(schema, messages, config)

    def build_chat_model(self, schema: type[BaseModel]) -> "Runnable":
        try:
            from langchain_openai import ChatOpenAI
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise BackendUnavailable(
                "the openai backend needs langchain-openai: pip install 'alphasignal[openai]', "
                + BUILTIN_HINT
            ) from exc
        pipeline, backends = self.settings.pipeline, self.settings.backends
        chat = ChatOpenAI(
            model=self.model,
            base_url=self.base_url,
            api_key=backends.openai_api_key,
            temperature=pipeline.temperature,
            max_tokens=pipeline.max_tokens,
            timeout=backends.request_timeout_s,
            max_retries=0,  # re-asks are ours; a down server should fail fast
            disable_streaming=True,  # one request whose reply carries the token usage
            http_client=self.http_client,
            http_async_client=self.http_async_client,
        )
        options = STRUCTURED_MODES[self.structured_mode](schema)
        # ChatOpenAI sends only `max_completion_tokens`; llama-cpp-python's server
        # and older vLLM know only `max_tokens` and would otherwise generate up to n_ctx.
        options["extra_body"] = {"max_tokens": pipeline.max_tokens, **options.get("extra_body", {})}
        return chat.bind(**options)

    def translate_error(self, exc: Exception) -> Optional[AlphaSignalError]:
        import openai

        if isinstance(exc, openai.APITimeoutError):
            return BackendUnavailable(
                f"the OpenAI-compatible server at {self.base_url} did not answer within "
                f"{self.settings.backends.request_timeout_s:g} s: raise backends.request_timeout_s "
                f"(ALPHASIGNAL_BACKENDS__REQUEST_TIMEOUT_S), {BUILTIN_HINT}"
            )
        if isinstance(exc, openai.APIConnectionError):
            return BackendUnavailable(
                f"cannot reach the OpenAI-compatible server at {self.base_url}: start it "
                "(e.g. `alphasignal serve` or `python -m llama_cpp.server --model M`) or fix the URL "
                f"in openai:<model>@<base_url>, {BUILTIN_HINT}"
            )
        if isinstance(exc, openai.APIStatusError):
            return self._status_error(exc)
        if isinstance(exc, openai.LengthFinishReasonError):
            return StructuredOutputError(
                f"{self.spec.label}: the answer was cut at pipeline.max_tokens "
                f"({self.settings.pipeline.max_tokens}) before its JSON closed: raise pipeline.max_tokens",
                raw_output="", attempts=1,
            )
        return None

    def _status_error(self, exc: Any) -> AlphaSignalError:
        import openai

        text = error_text(exc)
        if isinstance(exc, openai.NotFoundError):
            return BackendUnavailable(
                f"the server at {self.base_url} has no model {self.model!r} (or the URL lacks /v1): "
                f"list its models with `curl {self.base_url}/models` ({text}), {BUILTIN_HINT}"
            )
        if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
            return BackendUnavailable(
                f"the server at {self.base_url} refused the API key: set backends.openai_api_key "
                f"(ALPHASIGNAL_BACKENDS__OPENAI_API_KEY), {BUILTIN_HINT}"
            )
        return self._request_problem(text) or BackendError(
            f"the server at {self.base_url} answered HTTP {exc.status_code}: {text} ({BUILTIN_HINT})"
        )

    def _request_problem(self, text: str) -> Optional[AlphaSignalError]:
        """A rejected image or structured-output option (servers answer 400, 422, 500 or 501)."""
        lowered = text.lower()
        if any(marker in lowered for marker in _NO_VISION_MARKERS):
            return CapabilityError(
                f"the model {self.model!r} at {self.base_url} cannot read images ({text}): serve a "
                "vision model (with its mmproj) for the chart branch, or use --chart-backend builtin"
            )
        if any(word in lowered for word in _FORMAT_WORDS):
            others = ", ".join(m for m in STRUCTURED_MODES if m != self.structured_mode)
            return StructuredModeRejected(
                f"the server at {self.base_url} rejected structured-output mode "
                f"{self.structured_mode!r} ({text}): set backends.openai_structured to one of "
                f"{others} (ALPHASIGNAL_BACKENDS__OPENAI_STRUCTURED)"
            )
        return None
