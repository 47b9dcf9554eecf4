"""The ``ollama:<model>`` backend: a model served by a local Ollama.

Structured output goes through Ollama's ``format=<JSON schema>`` (the server
constrains decoding to the schema); the chart image travels as a message
``image_url`` part, which ChatOllama turns into base64 ``images``. Whether the
model can see images is known only to the server, so its refusal is turned
into a clear ``CapabilityError``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from pydantic import BaseModel

from ..errors import AlphaSignalError, BackendError, BackendUnavailable, CapabilityError, ConfigError
from .base import BackendSpec, Capabilities
from .chat import BUILTIN_HINT, ChatBackend

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.runnables import Runnable

    from ..config import Settings

# Phrases Ollama uses when a text-only model is sent an image (the runner's
# "this model is missing data required for image input", ollama/ollama#9967;
# the server's capability check "does not support vision").
_NO_VISION_MARKERS = ("image input", "does not support vision", "not support images")


def _http_options(settings: "Settings") -> dict[str, Any]:
    """httpx client options: the request timeout, and no idle connections kept.

    A model call takes seconds, so a fresh local connection costs nothing, while a
    pooled one would outlive the event loop of each ``asyncio.run`` (cron ticks)
    and leak as an unclosed socket.
    """
    import httpx

    return {
        "timeout": settings.backends.request_timeout_s,
        "limits": httpx.Limits(max_keepalive_connections=0),
    }


class OllamaBackend(ChatBackend):
    """Chart and news answers from a model served by Ollama (``ollama:qwen2.5vl:3b``)."""

    provider = "ollama"
    capabilities = Capabilities(vision=True, structured=True)

    def __init__(
        self,
        spec: BackendSpec,
        settings: "Settings",
        *,
        client_kwargs: Optional[dict[str, Any]] = None,
    ):
        super().__init__(spec, settings)
        if not spec.model:
            raise ConfigError(
                "the ollama backend needs a model: ollama:<model>, e.g. ollama:qwen2.5vl:3b"
            )
        self.host = settings.backends.ollama_host.rstrip("/")
        # Passed to both the sync and the async httpx client (ChatOllama's ainvoke
        # uses the async one); tests put an httpx.MockTransport here.
        self.client_kwargs: dict[str, Any] = {**_http_options(settings), **(client_kwargs or {})}

    def build_chat_model(self, schema: type[BaseModel]) -> "Runnable":
        try:
            from langchain_ollama import ChatOllama
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise BackendUnavailable(
                "the ollama backend needs langchain-ollama: pip install 'alphasignal[ollama]', "
                + BUILTIN_HINT
            ) from exc
        pipeline = self.settings.pipeline
        return ChatOllama(
            model=self.spec.model,
            base_url=self.host,
            temperature=pipeline.temperature,
            num_predict=pipeline.max_tokens,
            format=schema.model_json_schema(),
            client_kwargs=dict(self.client_kwargs),
        )

    def translate_error(self, exc: Exception) -> Optional[AlphaSignalError]:
        import httpx
        from ollama import ResponseError

        if isinstance(exc, ResponseError):
            return self._response_error(exc)
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, ConnectionError)):
            return self._unreachable()
        if isinstance(exc, httpx.TimeoutException):
            return BackendUnavailable(
                f"Ollama at {self.host} did not answer within "
                f"{self.settings.backends.request_timeout_s:g} s (the model may still be loading): "
                "raise backends.request_timeout_s (ALPHASIGNAL_BACKENDS__REQUEST_TIMEOUT_S), "
                + BUILTIN_HINT
            )
        if isinstance(exc, httpx.TransportError):
            return self._unreachable()
        return None

    def _unreachable(self) -> BackendUnavailable:
        return BackendUnavailable(
            f"cannot reach Ollama at {self.host}: start it with `ollama serve` "
            "(or set ALPHASIGNAL_BACKENDS__OLLAMA_HOST), "
            "or use --chart-backend builtin / --news-backend builtin"
        )

    def _response_error(self, exc: Any) -> AlphaSignalError:
        model = self.spec.model
        text = " ".join(str(exc.error).split())
        if exc.status_code == 404 and "not found" in text.lower():
            return BackendUnavailable(
                f"Ollama has no model {model!r}: run `ollama pull {model}` "
                f"(`ollama list` shows the installed ones), {BUILTIN_HINT}"
            )
        if any(marker in text.lower() for marker in _NO_VISION_MARKERS):
            return CapabilityError(
                f"Ollama model {model!r} cannot read images ({text}): pick a vision model for "
                "the chart branch, e.g. --chart-backend ollama:qwen2.5vl:3b, "
                "or use --chart-backend builtin"
            )
        status = f"HTTP {exc.status_code}" if exc.status_code > 0 else "an error"
        return BackendError(f"Ollama at {self.host} answered {status}: {text} ({BUILTIN_HINT})")
