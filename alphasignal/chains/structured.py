"""Structured output: constrain first, validate always, re-ask a bounded number of times, then fail loudly.

The chat model handed in is already constrained to the schema by its backend
(Ollama ``format``, llama.cpp ``response_format``, vLLM structured outputs).
Constraints are not enough (llama.cpp does not enforce numeric bounds and may
fall back to plain JSON), so every answer is validated with Pydantic; an invalid
one is sent back with the validation error, and after the last attempt a
``StructuredOutputError`` carries the raw output.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Optional, TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import StructuredOutputError

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.messages import BaseMessage
    from langchain_core.runnables import Runnable, RunnableConfig

T = TypeVar("T", bound=BaseModel)


def message_text(message: Any) -> str:
    """The text of a chat model reply, whatever shape its content has."""
    content = getattr(message, "content", message)
    if isinstance(content, list):
        return "".join(
            part.get("text", "") if isinstance(part, dict) else str(part) for part in content
        )
    return str(content)


def extract_json(text: str) -> str:
    """The outermost JSON object in ``text`` (models sometimes wrap it in prose or fences)."""
    start, end = text.find("{"), text.rfind("}")
    if start == -1 or end <= start:
        raise ValueError("no JSON object in the answer")
    return text[start : end + 1]


def validation_summary(exc: Exception, limit: int = 5) -> str:
    """A short, model-readable description of why an answer was rejected."""
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors()[:limit]:
            where = ".".join(str(p) for p in err["loc"]) or "object"
            parts.append(f"{where}: {err['msg']}")
        return "; ".join(parts)
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON ({exc.msg} at position {exc.pos})"
    return str(exc)


def parse_answer(text: str, schema: type[T]) -> T:
    return schema.model_validate_json(extract_json(text))


async def ainvoke_structured(
    model: "Runnable",
    messages: list["BaseMessage"],
    schema: type[T],
    *,
    max_retries: int,
    config: Optional["RunnableConfig"] = None,
) -> T:
    """Ask ``model`` until its answer validates as ``schema``; at most ``max_retries`` re-asks."""
    from langchain_core.messages import AIMessage, HumanMessage

    history = list(messages)
    raw, problem = "", ""
    attempts = max_retries + 1
    for _ in range(attempts):
        reply = await model.ainvoke(history, config=config)
        raw = message_text(reply)
        try:
            return parse_answer(raw, schema)
        except (ValidationError, ValueError) as exc:
            problem = validation_summary(exc)
            history += [
                AIMessage(content=raw),
                HumanMessage(
                    content=f"That answer is invalid: {problem}. Reply again with only one JSON "
                    f"object that follows the {schema.__name__} schema and fixes these problems."
                ),
            ]
    snippet = " ".join(raw.split())[:200]
    raise StructuredOutputError(
        f"model output never validated as {schema.__name__} after {attempts} attempt(s): "
        f"{problem}; last output: {snippet!r}",
        raw_output=raw,
        attempts=attempts,
    )
