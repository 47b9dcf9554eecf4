"""``alphasignal sentiment``: score a list of headlines, one result per headline, in order.

With the builtin backend each result carries the calibrated probabilities and
the phrases that drove the label; with a chat backend, the backend's own
``NewsSentiment`` for that headline. Injection-looking headlines are scored
like any other (this is a scoring tool, not the agent) and flagged.
"""

from __future__ import annotations

import asyncio
from typing import Any, Iterator, Optional, Sequence

from ..errors import AlphaSignalError
from ..schemas import NewsInput, NewsSentiment
from .injection import scan

_LABEL = {"BEARISH": "negative", "NEUTRAL": "neutral", "BULLISH": "positive"}


def score_builtin(texts: Sequence[str], phrases: bool = True, batch: int = 32) -> Iterator[dict[str, Any]]:
    """One result per text from the packaged model; blank texts give an error entry."""
    from .model import default_model

    model = default_model()
    for start in range(0, len(texts), batch):
        chunk = list(texts[start : start + batch])
        filled = [i for i, t in enumerate(chunk) if t.strip()]
        if phrases:  # one forward pass per text gives the probabilities and the phrases
            rows = {i: model.explain(chunk[i]) for i in filled}
        else:
            probs = model.predict_proba([chunk[i] for i in filled]) if filled else []
            rows = {i: (p, []) for i, p in zip(filled, probs)}
        for i, text in enumerate(chunk):
            yield _builtin_result(start + i, text, *rows[i]) if i in rows else _blank(start + i, text)


def _builtin_result(i: int, text: str, probs, factors: list[str]) -> dict[str, Any]:
    from .model import LABELS, SENTIMENT_OF

    label = int(probs.argmax())
    sentiment = NewsSentiment(
        sentiment=SENTIMENT_OF[LABELS[label]], intensity=round(float(probs[label]), 4), key_factors=factors
    )
    return _result(i, text, sentiment, probabilities={n: round(float(x), 4) for n, x in zip(LABELS, probs)})


def score_with_backend(texts: Sequence[str], backend, ticker: Optional[str] = None) -> Iterator[dict[str, Any]]:
    """One result per text from any backend's ``analyze_news``; a failure is an error entry, not NEUTRAL."""
    for i, text in enumerate(texts):
        if not text.strip():
            yield _blank(i, text)
            continue
        try:
            result = asyncio.run(backend.analyze_news(NewsInput(items=(" ".join(text.split()),), ticker=ticker)))
        except AlphaSignalError as exc:
            yield {"line": i + 1, "text": text, "sentiment": None, "error": exc.one_line()}
            continue
        yield _result(i, text, result)


def _result(i: int, text: str, result: NewsSentiment, probabilities: Optional[dict] = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "line": i + 1,
        "text": text,
        "sentiment": result.sentiment,
        "label": _LABEL[result.sentiment],
        "confidence": result.intensity,
    }
    if probabilities is not None:
        out["probabilities"] = probabilities
    out["key_factors"] = list(result.key_factors)
    kinds, excerpt = scan(text)
    if kinds:
        out["flags"] = [f"reads like an instruction to a model: {'/'.join(kinds)} ({excerpt!r})"]
    return out


def _blank(i: int, text: str) -> dict[str, Any]:
    return {"line": i + 1, "text": text, "sentiment": None, "error": "empty line: nothing to score"}
