"""The builtin news sentiment model: MiniLM sentence embeddings + a logistic-regression head.

The head (3×384 weights, trained on the Financial PhraseBank by
``alphasignal.news.train``) lives in ``weights/head.npz`` beside this module and
records the sha256 of the MiniLM weights it was trained on; a head never runs on
other encoder weights. Nothing here imports torch.

How a list of headlines becomes one ``NewsSentiment``:

* each item gets probabilities over (negative, neutral, positive);
* the aggregate is the mean of those vectors; the sentiment is BULLISH when
  positive has the largest aggregate probability, BEARISH when negative has,
  otherwise NEUTRAL (ties between the directions are NEUTRAL);
* intensity is the strength of that reading: ``|p_pos - p_neg|`` of the aggregate
  for BULLISH/BEARISH (how far the news leans one way, so 3 bullish items and 2
  bearish ones score lower than 5 bullish ones), and the aggregate neutral
  probability for NEUTRAL (how sure the model is that the news carries no direction);
* key_factors are up to three input items, quoted (trimmed to 120 characters, no
  ellipsis, so each is a substring of an input) that most support the sentiment:
  items whose own label is the winning one, by that label's probability.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..errors import BackendUnavailable, NewsError
from ..schemas import NewsInput, NewsSentiment
from .encoder import Encoder, MiniLMEncoder

LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
MODEL_ID = "minilm-l6-v2+fpb-logreg"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
HEAD_FILE = "head.npz"
MAX_FACTORS = 3
MAX_FACTOR_CHARS = 120
_RETRAIN = "retrain with `alphasignal train news-head`"
_SENTIMENT = {"negative": "BEARISH", "neutral": "NEUTRAL", "positive": "BULLISH"}


@dataclass(frozen=True)
class Head:
    """A linear softmax classifier over sentence embeddings; rows follow ``LABELS``."""

    weight: np.ndarray  # (3, dim)
    bias: np.ndarray  # (3,)
    encoder_identity: str
    meta: dict = field(default_factory=dict)

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        logits = embeddings.astype(np.float64) @ self.weight.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

    def save(self, path: Path) -> Path:
        """Write ``head.npz`` (no pickles: arrays and one JSON string)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {**self.meta, "encoder_sha256": self.encoder_identity, "labels": list(LABELS)}
        with open(path, "wb") as fh:
            np.savez_compressed(
                fh,
                weight=self.weight.astype(np.float32),
                bias=self.bias.astype(np.float32),
                labels=np.array(LABELS),
                meta=np.array(json.dumps(meta, sort_keys=True)),
            )
        return path

    @classmethod
    def load(cls, path: Path) -> "Head":
        if not path.is_file():
            raise BackendUnavailable(f"no trained news head at {path}; {_RETRAIN}")
        try:
            with np.load(path, allow_pickle=False) as data:
                weight, bias = data["weight"], data["bias"]
                labels = [str(x) for x in data["labels"]]
                meta = json.loads(str(data["meta"]))
        except (OSError, KeyError, ValueError) as exc:
            raise BackendUnavailable(f"the news head {path} is unreadable ({exc}); {_RETRAIN}") from exc
        if sorted(labels) != sorted(LABELS) or weight.shape != (len(LABELS), weight.shape[-1]):
            raise BackendUnavailable(f"the news head {path} has labels {labels}; {_RETRAIN}")
        order = [labels.index(label) for label in LABELS]
        return cls(
            weight=weight[order].astype(np.float64),
            bias=bias[order].astype(np.float64),
            encoder_identity=str(meta.get("encoder_sha256", "")),
            meta=meta,
        )


class SentimentModel:
    """Scores financial news: per-item probabilities and one aggregate ``NewsSentiment``."""

    def __init__(self, encoder: Encoder, head: Head):
        if head.encoder_identity != encoder.identity:
            raise BackendUnavailable(
                f"the news head was trained on encoder weights {head.encoder_identity[:12] or '?'}…, "
                f"but the installed MiniLM is {encoder.identity[:12]}…; {_RETRAIN}"
            )
        if head.weight.shape[1] != encoder.dim:
            raise BackendUnavailable(f"the news head expects {head.weight.shape[1]}-d embeddings; {_RETRAIN}")
        self.encoder = encoder
        self.head = head

    @classmethod
    def load(cls, weights_dir: Optional[Path] = None, encoder: Optional[Encoder] = None) -> "SentimentModel":
        """The head from ``weights_dir`` (default: the packaged weights) on ``encoder`` (default: MiniLM)."""
        head = Head.load(Path(weights_dir or WEIGHTS_DIR) / HEAD_FILE)
        return cls(encoder if encoder is not None else MiniLMEncoder.load(), head)

    @property
    def model_id(self) -> str:
        return MODEL_ID

    @property
    def labels(self) -> tuple[str, ...]:
        return LABELS

    def predict_proba(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """(n, 3) probabilities, columns (negative, neutral, positive), rows summing to 1."""
        if isinstance(texts, str):
            raise TypeError("predict_proba() takes a list of strings, not one string")
        if not texts:
            return np.zeros((0, len(LABELS)))
        return self.head.predict_proba(self.encoder.encode(list(texts), batch_size=batch_size))

    def predict(self, texts: Sequence[str]) -> list[str]:
        """The most probable label of each text."""
        return [LABELS[i] for i in self.predict_proba(texts).argmax(axis=1)]

    def score(self, news: NewsInput) -> NewsSentiment:
        """One sentiment for all the news items (see the module docstring for the rules)."""
        items = [item for item in news.items if isinstance(item, str) and item.strip()]
        if not items:
            raise NewsError("no news to score; pass at least one non-empty headline")
        return aggregate(items, self.predict_proba(items))


def aggregate(items: Sequence[str], probs: np.ndarray) -> NewsSentiment:
    """Per-item probabilities (columns in ``LABELS`` order) → one ``NewsSentiment``."""
    mean = probs.mean(axis=0)
    p_neg, p_neu, p_pos = (float(x) for x in mean)
    if p_pos > max(p_neg, p_neu):
        winner, intensity = LABELS.index("positive"), p_pos - p_neg
    elif p_neg > max(p_pos, p_neu):
        winner, intensity = LABELS.index("negative"), p_neg - p_pos
    else:
        winner, intensity = LABELS.index("neutral"), p_neu
    return NewsSentiment(
        sentiment=_SENTIMENT[LABELS[winner]],
        intensity=round(min(max(intensity, 0.0), 1.0), 4),
        key_factors=key_factors(items, probs, winner),
    )


def key_factors(items: Sequence[str], probs: np.ndarray, winner: int) -> list[str]:
    """Up to three items supporting label ``winner``, strongest first, trimmed."""
    support = probs[:, winner]
    ranked = sorted(range(len(items)), key=lambda i: -support[i])
    agreeing = [i for i in ranked if int(probs[i].argmax()) == winner] or ranked[:1]
    factors: list[str] = []
    for i in agreeing:
        text = trim(items[i])
        if text and text not in factors:
            factors.append(text)
        if len(factors) == MAX_FACTORS:
            break
    return factors


def trim(text: str, limit: int = MAX_FACTOR_CHARS) -> str:
    """``text`` stripped and cut to ``limit`` characters, at a word boundary when one is near."""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space >= limit // 2 else cut).rstrip()


_default: Optional[SentimentModel] = None
_default_lock = threading.Lock()


def default_model() -> SentimentModel:
    """The packaged model, loaded once per process (thread-safe)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = SentimentModel.load()
        return _default
