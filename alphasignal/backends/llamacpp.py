"""The ``llamacpp:<path.gguf>`` backend: a GGUF model run in this process by llama-cpp-python.

Text always works; charts need a vision projector GGUF in
``settings.backends.llamacpp_mmproj``. Decoding is constrained to the schema by
llama.cpp's JSON-schema grammar (``response_format={"type": "json_object",
"schema": ...}``); numeric bounds are not enforced by that grammar, so answers are
still validated by the shared structured-output loop.

One ``llama_cpp.Llama`` is loaded per backend on first use and shared by every
call on that backend behind a lock, because a ``Llama`` is not thread-safe.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import BaseModel, ConfigDict

from ..errors import AlphaSignalError, BackendError, BackendUnavailable, ConfigError
from .base import BackendSpec, Capabilities
from .chat import BUILTIN_HINT, ChatBackend
from .tiny_mmproj import is_gguf, read_gguf_metadata

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Settings

SEED = 20240601  # fixed so that runs are reproducible (0 would mean "random" to llama.cpp)
INSTALL_HINT = "pip install 'alphasignal[llamacpp]'"
CHAT_TEMPLATE_KEY = "tokenizer.chat_template"

_LOG = logging.getLogger(__name__)
# native warnings reach stderr only when the application configures logging
_LOG.addHandler(logging.NullHandler())
_GGML_LEVELS = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}  # 5 = continue
_native_log_callback: Any = None  # kept alive: llama.cpp holds a raw pointer to it


def route_native_logs(llama_cpp: Any) -> None:
    """Send llama.cpp and mtmd logs to Python logging, once per process.

    llama-cpp-python 0.3.36 maps ggml log levels with a stale enum (warnings print
    as errors, errors are dropped when quiet), and mtmd writes every prompt to
    stderr at debug level; a CLI must keep stderr for its own progress and errors.
    """
    global _native_log_callback
    if _native_log_callback is not None:
        return
    from llama_cpp import mtmd_cpp

    last = [logging.DEBUG]

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, user_data: Any) -> None:
        if level != 5:
            last[0] = _GGML_LEVELS.get(level, logging.DEBUG)
        if _LOG.isEnabledFor(last[0]):
            _LOG.log(last[0], text.decode("utf-8", errors="replace").rstrip())

    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    mtmd_cpp.mtmd_log_set(callback, ctypes.c_void_p(0))
    mtmd_cpp.mtmd_helper_log_set(callback, ctypes.c_void_p(0))
    _native_log_callback = callback


def _gemma_vision_handler_class() -> type:
    """A Llava15ChatHandler that renders Gemma turns.

    llama-cpp-python has no Gemma 3 vision handler, and the generic ``MTMDChatHandler``
    needs ``tokenizer.chat_template`` metadata, which base (non-instruct) Gemma GGUFs
    lack. Llava15ChatHandler takes the template as a class attribute; system messages
    are folded into the first user turn beforehand, as Gemma has no system role.
    """
    from llama_cpp.llama_chat_format import Llava15ChatHandler

    class GemmaVisionChatHandler(Llava15ChatHandler):
        DEFAULT_SYSTEM_MESSAGE = None
        CHAT_FORMAT = (
            "{% for message in messages %}"
            "{% if message.role == 'user' %}<start_of_turn>user\n"
            "{% if message.content is string %}{{ message.content }}{% else %}"
            "{% for part in message.content %}{% if part.type == 'image_url' %}"
            "{{ part.image_url.url if part.image_url is mapping else part.image_url }}"
            "{% endif %}{% endfor %}"
            "{% for part in message.content %}{% if part.type == 'text' %}{{ part.text }}"
            "{% endif %}{% endfor %}{% endif %}<end_of_turn>\n"
            "{% elif message.role == 'assistant' %}<start_of_turn>model\n"
            "{{ message.content }}<end_of_turn>\n"
            "{% endif %}{% endfor %}"
            "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
        )

    return GemmaVisionChatHandler


def _content_parts(content: Any) -> Any:
    """LangChain message content -> OpenAI-style content (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, str):
            parts.append({"type": "text", "text": part})
        elif part.get("type") == "text":
            parts.append({"type": "text", "text": part.get("text", "")})
        elif part.get("type") == "image_url":
            url = part["image_url"]
            parts.append(_image_part(url if isinstance(url, str) else url["url"]))
        elif part.get("type") == "image" and part.get("base64"):  # LangChain v1 data block
            mime = part.get("mime_type", "image/png")
            parts.append(_image_part(f"data:{mime};base64,{part['base64']}"))
        else:
            raise ValueError(f"unsupported message part type {part.get('type')!r}")
    return parts


def _image_part(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


_ROLES = {"system": "system", "human": "user", "ai": "assistant"}


def to_openai_messages(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages -> the OpenAI-style dicts ``create_chat_completion`` takes."""
    out = []
    for message in messages:
        role = _ROLES.get(message.type) or getattr(message, "role", None)
        if role not in ("system", "user", "assistant"):
            raise ValueError(f"unsupported message type {message.type!r} for llama.cpp")
        out.append({"role": role, "content": _content_parts(message.content)})
    return out


def fold_system(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Move system text into the first user turn (Gemma's own convention: it has no system role)."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system" and m["content"])
    rest = [m for m in messages if m["role"] != "system"]
    if not system:
        return rest
    for i, message in enumerate(rest):
        if message["role"] == "user":
            content = message["content"]
            if isinstance(content, str):
                content = f"{system}\n\n{content}"
            else:
                content = [{"type": "text", "text": f"{system}\n\n"}, *content]
            rest[i] = {**message, "content": content}
            return rest
    return [{"role": "user", "content": system}, *rest]


def _check_gguf(path: Path, what: str) -> Path:
    if not path.is_file():
        raise BackendUnavailable(f"{what} not found: {path}; check the path ({BUILTIN_HINT})")
    if not is_gguf(path):
        raise BackendUnavailable(
            f"{what} {path} is not a GGUF file (no GGUF magic bytes); "
            f"point to a .gguf model ({BUILTIN_HINT})"
        )
    return path


class LlamaHandle:
    """One lazily loaded ``llama_cpp.Llama``, used by one thread at a time."""

    def __init__(self, model_path: Path, mmproj: Optional[Path], n_ctx: int, n_threads: Optional[int]):
        self.model_path = model_path
        self.mmproj = mmproj
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self._lock = threading.Lock()
        self._llm: Any = None
        self._fold_system = False

    def _chat_setup(self) -> dict[str, Any]:
        """Llama kwargs for the chat template: the GGUF's own, else Gemma turns for Gemma models."""
        meta = read_gguf_metadata(self.model_path, [CHAT_TEMPLATE_KEY, "general.architecture"])
        has_template = bool(meta.get(CHAT_TEMPLATE_KEY))
        gemma = str(meta.get("general.architecture", "")).startswith("gemma")
        # our Gemma formatting has no system role (neither has Gemma): fold it into the first user turn
        self._fold_system = not has_template and (gemma or self.mmproj is not None)
        if self.mmproj is not None:
            from llama_cpp.llama_chat_format import MTMDChatHandler

            handler_cls = MTMDChatHandler if has_template else _gemma_vision_handler_class()
            return {"chat_handler": handler_cls(clip_model_path=str(self.mmproj), verbose=False)}
        if not has_template and gemma:
            # base Gemma GGUFs carry no template; llama.cpp would fall back to llama-2
            return {"chat_format": "gemma"}
        return {}

    def _load(self) -> Any:
        try:
            import llama_cpp
        except ImportError as exc:
            raise BackendUnavailable(
                f"llama-cpp-python is not installed ({exc}); run: {INSTALL_HINT} ({BUILTIN_HINT})"
            ) from exc
        route_native_logs(llama_cpp)
        try:
            return llama_cpp.Llama(
                model_path=str(self.model_path), n_ctx=self.n_ctx, n_threads=self.n_threads,
                seed=SEED, verbose=False, **self._chat_setup(),
            )
        except ValueError as exc:
            raise BackendUnavailable(
                f"llama.cpp could not load {self.model_path}: {exc}; the file may be truncated or of "
                f"an architecture this llama-cpp-python does not know (upgrade it: {INSTALL_HINT}) "
                f"({BUILTIN_HINT})"
            ) from exc

    def _projector_mismatch(self) -> BackendUnavailable:
        detail = "it was built for a different model (e.g. a different embedding size) or is corrupt"
        try:
            key = "clip.vision.projection_dim"
            proj = read_gguf_metadata(self.mmproj, [key]).get(key)
            n_embd = self._llm.n_embd()
            if proj is not None and proj != n_embd:
                detail = (
                    f"the projector outputs {proj}-wide embeddings but the model's embedding size "
                    f"is {n_embd}"
                )
        except (OSError, ValueError):
            pass
        return BackendUnavailable(
            f"vision projector {self.mmproj} does not match model {self.model_path}: {detail}; "
            f"use the mmproj GGUF released with this model or unset backends.llamacpp_mmproj "
            f"({BUILTIN_HINT})"
        )

    def complete(self, messages: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
        """``create_chat_completion`` on the shared model, loading it first if needed."""
        with self._lock:
            if self._llm is None:
                self._llm = self._load()
            if self._fold_system:
                messages = fold_system(messages)
            try:
                return self._llm.create_chat_completion(messages=messages, **params)
            except ValueError as exc:
                if "mtmd context" in str(exc):
                    raise self._projector_mismatch() from exc
                raise

    def close(self) -> None:
        with self._lock:
            if self._llm is not None:
                self._llm.close()
                self._llm = None


class LlamaCppChatModel(BaseChatModel):
    """A LangChain chat model over a shared ``LlamaHandle``, decoding constrained to ``json_schema``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    handle: Any
    json_schema: dict[str, Any]
    temperature: float = 0.0
    max_tokens: int = 512
    model_name: str = "llamacpp"

    @property
    def _llm_type(self) -> str:
        return "alphasignal-llamacpp"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: Optional[list[str]] = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        completion = self.handle.complete(
            to_openai_messages(messages),
            response_format={"type": "json_object", "schema": self.json_schema},
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            stop=stop or [],
        )
        choice = completion["choices"][0]
        usage = completion.get("usage") or {}
        tokens = {
            "input_tokens": int(usage.get("prompt_tokens", 0)),
            "output_tokens": int(usage.get("completion_tokens", 0)),
            "total_tokens": int(usage.get("total_tokens", 0)),
        }
        message = AIMessage(
            content=choice["message"].get("content") or "",
            usage_metadata=tokens,
            response_metadata={
                "finish_reason": choice.get("finish_reason"),
                "model_name": self.model_name,
            },
        )
        return ChatResult(
            generations=[ChatGeneration(message=message)], llm_output={"token_usage": usage}
        )

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: Optional[list[str]] = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        return await asyncio.to_thread(self._generate, messages, stop)


class LlamaCppBackend(ChatBackend):
    """``llamacpp:/path/to/model.gguf``; vision when ``backends.llamacpp_mmproj`` is set."""

    provider = "llamacpp"
    capabilities = Capabilities(vision=False, structured=True, in_process=True)

    def __init__(self, spec: BackendSpec, settings: "Settings"):
        super().__init__(spec, settings)
        if not spec.model:
            raise ConfigError("llamacpp needs a GGUF path: llamacpp:/path/to/model.gguf")
        model_path = _check_gguf(Path(spec.model).expanduser(), "GGUF model")
        mmproj = settings.backends.llamacpp_mmproj
        if mmproj is not None:
            what = "vision projector (backends.llamacpp_mmproj)"
            mmproj = _check_gguf(Path(mmproj).expanduser(), what)
            # per instance: vision depends on the configured projector
            self.capabilities = replace(type(self).capabilities, vision=True)
        backends = settings.backends
        self._handle = LlamaHandle(
            model_path, mmproj, backends.llamacpp_n_ctx, backends.llamacpp_n_threads
        )

    @property
    def model_name(self) -> str:
        return Path(self.spec.model).name

    def build_chat_model(self, schema: type[BaseModel]) -> LlamaCppChatModel:
        pipeline = self.settings.pipeline
        return LlamaCppChatModel(
            handle=self._handle,
            json_schema=schema.model_json_schema(),
            temperature=pipeline.temperature,
            max_tokens=pipeline.max_tokens,
            model_name=self.model_name,
        )

    def translate_error(self, exc: Exception) -> Optional[AlphaSignalError]:
        text = str(exc)
        if isinstance(exc, ValueError) and ("exceeds n_ctx" in text or "exceed context window" in text):
            return BackendError(
                f"{self.spec.label}: prompt too long for the context window ({exc}); raise "
                f"backends.llamacpp_n_ctx or send fewer news items ({BUILTIN_HINT})"
            )
        return None

    def close(self) -> None:
        self._handle.close()
