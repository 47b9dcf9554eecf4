"""The builtin news sentiment model: fine-tuned MiniLM + a calibrated softmax head.

The packaged weights (``weights/``) are a LoRA delta for all-MiniLM-L6-v2
(``adapter.npz``, merged into the numpy encoder at load) and a linear head with
a temperature (``head.npz``), trained by ``alphasignal train news-model`` on the
Financial PhraseBank train split. Both record the sha256 of the MiniLM weights
they were trained on, and the head records the delta's; any mismatch is refused.
Nothing here imports torch.

How a list of headlines becomes one ``NewsSentiment``:

* each item gets calibrated probabilities over (negative, neutral, positive):
  temperature-scaled, so "0.8" is right about 80 % of the time;
* items are weighed by recency and relevance (``NewsInput.details[i].weight``,
  set where the news comes in; equal weights when absent), and the aggregate is
  the weighted mean of their probability vectors;
* the sentiment is the label with the largest aggregate probability (BULLISH,
  BEARISH or NEUTRAL; a tie between the two directions is NEUTRAL) and
  ``intensity`` is that probability: for one item, the calibrated confidence;
* ``agreement`` is the weighted share of items whose own label is the overall one;
* ``key_factors``: for one item, the phrases whose removal most weakens the label
  (occlusion); for several, the items that weighed most for the winning label.
  Both are verbatim substrings of the input, never invented tags.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..errors import BackendUnavailable, NewsError
from ..schemas import ItemScore, NewsInput, NewsSentiment
from .adapter import ADAPTER_FILE, EncoderAdapter
from .encoder import Encoder, MiniLMEncoder

LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
MODEL_ID = "minilm-l6-v2-lora-fpb"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
HEAD_FILE = "head.npz"
MAX_FACTORS = 3
MAX_FACTOR_CHARS = 120
_RETRAIN = "retrain with `alphasignal train news-model`"
SENTIMENT_OF = {"negative": "BEARISH", "neutral": "NEUTRAL", "positive": "BULLISH"}


@dataclass(frozen=True)
class Head:
    """A linear softmax classifier over sentence embeddings; rows follow ``LABELS``."""

    weight: np.ndarray  # (3, dim)
    bias: np.ndarray  # (3,)
    encoder_identity: str
    meta: dict = field(default_factory=dict)

    @property
    def temperature(self) -> float:
        """Logits are divided by this before the softmax (1.0: uncalibrated)."""
        return float(self.meta.get("temperature", 1.0))

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        return embeddings.astype(np.float64) @ self.weight.T + self.bias

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        logits = self.logits(embeddings) / self.temperature
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
        wanted, merged = head.meta.get("adapter_sha256"), getattr(encoder, "adapter_sha256", None)
        if wanted != merged:
            raise BackendUnavailable(
                f"the news head expects encoder delta {str(wanted)[:12]}…, the encoder has {str(merged)[:12]}…; "
                f"{_RETRAIN}"
            )
        if head.weight.shape[1] != encoder.dim:
            raise BackendUnavailable(f"the news head expects {head.weight.shape[1]}-d embeddings; {_RETRAIN}")
        self.encoder = encoder
        self.head = head

    @classmethod
    def load(cls, weights_dir: Optional[Path] = None, encoder: Optional[Encoder] = None) -> "SentimentModel":
        """The head (and encoder delta) from ``weights_dir`` (default: the packaged weights).

        With ``encoder`` given it is used as it is; otherwise MiniLM is loaded with the
        delta in ``weights_dir`` merged in when the head was trained with one.
        """
        folder = Path(weights_dir or WEIGHTS_DIR)
        head = Head.load(folder / HEAD_FILE)
        if encoder is None:
            adapter = None
            if head.meta.get("adapter_sha256"):  # the head says which delta it was trained with
                adapter_path = folder / ADAPTER_FILE
                if not adapter_path.is_file():
                    raise BackendUnavailable(f"the news head needs {adapter_path}, which is missing; {_RETRAIN}")
                adapter = EncoderAdapter.load(adapter_path)
            encoder = MiniLMEncoder.load(adapter=adapter)
        return cls(encoder, head)

    @property
    def model_id(self) -> str:
        return str(self.head.meta.get("model_id", MODEL_ID))

    @property
    def labels(self) -> tuple[str, ...]:
        return LABELS

    def predict_proba(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """(n, 3) calibrated probabilities, columns (negative, neutral, positive), rows summing to 1."""
        if isinstance(texts, str):
            raise TypeError("predict_proba() takes a list of strings, not one string")
        if not texts:
            return np.zeros((0, len(LABELS)))
        return self.head.predict_proba(self.encoder.encode(list(texts), batch_size=batch_size))

    def predict(self, texts: Sequence[str]) -> list[str]:
        """The most probable label of each text."""
        return [LABELS[i] for i in self.predict_proba(texts).argmax(axis=1)]

    def score(self, news: NewsInput, explain: bool = True) -> NewsSentiment:
        """One sentiment for all the news items (see the module docstring for the rules)."""
        keep = [i for i, item in enumerate(news.items) if isinstance(item, str) and item.strip()]
        if not keep:
            raise NewsError("no news to score; pass at least one non-empty headline")
        items = [news.items[i] for i in keep]
        weights = item_weights(news, keep)
        if not (explain and len(items) == 1 and hasattr(self.encoder, "token_states")):
            return aggregate(items, self.predict_proba(items), weights=weights, indices=keep)
        probs, phrases = self.explain(items[0])  # one forward pass gives both
        result = aggregate(items, probs[None, :], weights=weights, indices=keep)
        if not phrases:
            return result
        scores = [s.model_copy(update={"phrases": phrases}) for s in result.items]
        return result.model_copy(update={"key_factors": phrases, "items": scores})

    def explain(self, text: str, limit: int = MAX_FACTORS) -> tuple[np.ndarray, list[str]]:
        """Probabilities of one text and up to ``limit`` verbatim phrases that pushed it to its label.

        The head is linear on the normalised mean of the tokens' final states, so the
        label's logit margin (over the mean of the other labels) is exactly a sum of one
        share per token. Shares are summed per word, and the strongest words grow into
        phrases with the neighbours that push the same way.
        """
        hidden, offsets, special = self.encoder.token_states(text)
        pooled = hidden.mean(axis=0)
        norm = max(float(np.linalg.norm(pooled)), 1e-12)
        probs = self.head.predict_proba((pooled / norm)[None, :])[0]
        label = int(probs.argmax())
        others = [i for i in range(len(LABELS)) if i != label]
        direction = self.head.weight[label] - self.head.weight[others].mean(axis=0)
        shares = hidden @ direction / (len(hidden) * norm)
        return probs, grow_phrases(text, word_scores(text, offsets, special, shares), limit)

    def phrases(self, text: str, label: Optional[int] = None, limit: int = MAX_FACTORS) -> list[str]:
        """The phrases behind ``text``'s label (see ``explain``); [] for an encoder without token states."""
        if not text.strip() or not hasattr(self.encoder, "token_states"):
            return []
        probs, phrases = self.explain(text, limit)
        return phrases if label is None or label == int(probs.argmax()) else []


_LABEL_OF = {v: k for k, v in SENTIMENT_OF.items()}
_FILLER = frozenset(
    "a an the to of in on at by for from with and or but as is are was were be been its it this that "
    "will has have had after before over than into".split()
)


def _is_filler(word: str) -> bool:
    return word.lower().strip(".,;:()\"'") in _FILLER


def _has_content(phrase: str) -> bool:
    """A phrase of filler words only ("to a", "in the") explains nothing."""
    return not all(_is_filler(w) for w in phrase.split())


def word_scores(
    text: str, offsets: Sequence[tuple[int, int]], special: Sequence[bool], shares: np.ndarray
) -> list[tuple[int, int, float]]:
    """(start, end, score) per whitespace-separated word, summing its tokens' shares."""
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    scores = [0.0] * len(words)
    w = 0
    for (a, b), is_special, share in zip(offsets, special, shares):
        if is_special or b <= a or not words:
            continue
        while w < len(words) - 1 and a >= words[w][1]:
            w += 1
        scores[w] += float(share)
    return [(a, b, s) for (a, b), s in zip(words, scores)]


def grow_phrases(text: str, words: list[tuple[int, int, float]], limit: int, max_words: int = 5) -> list[str]:
    """Seed at the strongest unused word, extend to neighbours pushing the same way; strongest first."""
    used = [False] * len(words)
    top = max((s for _, _, s in words), default=0.0)
    phrases: list[str] = []
    while len(phrases) < limit and top > 0:
        candidates = [i for i in range(len(words)) if not used[i] and words[i][2] >= 0.5 * top]
        if not candidates:
            break
        seed = max(candidates, key=lambda i: words[i][2])
        lo = hi = seed
        while hi - lo + 1 < max_words:
            left = words[lo - 1][2] if lo > 0 and not used[lo - 1] else -1.0
            right = words[hi + 1][2] if hi + 1 < len(words) and not used[hi + 1] else -1.0
            if max(left, right) < 0.35 * words[seed][2]:
                break
            if right >= left:
                hi += 1
            else:
                lo -= 1
        for i in range(lo, hi + 1):
            used[i] = True
        while lo < seed and _is_filler(text[words[lo][0] : words[lo][1]]):
            lo += 1
        while hi > seed and _is_filler(text[words[hi][0] : words[hi][1]]):
            hi -= 1
        phrase = trim(text[words[lo][0] : words[hi][1]].strip(" ,.;:()\"'"))
        if phrase and phrase not in phrases and _has_content(phrase):
            phrases.append(phrase)
    return phrases


def item_weights(news: NewsInput, keep: Sequence[int]) -> np.ndarray:
    """Normalised weights of the kept items (recency x relevance from ``news.details``; else equal)."""
    raw = np.ones(len(keep))
    if len(news.details) == len(news.items):
        raw = np.array([news.details[i].weight if news.details[i].weight is not None else 1.0 for i in keep])
    raw = np.clip(raw, 0.0, None)
    total = raw.sum()
    return raw / total if total > 0 else np.full(len(keep), 1.0 / len(keep))


def aggregate(
    items: Sequence[str],
    probs: np.ndarray,
    weights: Optional[np.ndarray] = None,
    indices: Optional[Sequence[int]] = None,
) -> NewsSentiment:
    """Per-item probabilities (columns in ``LABELS`` order) → one ``NewsSentiment``."""
    n = len(items)
    w = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, dtype=np.float64) / np.sum(weights)
    mean = w @ probs
    p_neg, p_neu, p_pos = (float(x) for x in mean)
    if p_pos > max(p_neg, p_neu):
        winner = LABELS.index("positive")
    elif p_neg > max(p_pos, p_neu):
        winner = LABELS.index("negative")
    else:
        winner = LABELS.index("neutral")
    own = probs.argmax(axis=1)
    indices = list(indices) if indices is not None else list(range(n))
    scores = [
        ItemScore(
            index=int(indices[i]),
            sentiment=SENTIMENT_OF[LABELS[int(own[i])]],
            confidence=round(float(probs[i, own[i]]), 4),
            weight=round(float(w[i]), 4),
        )
        for i in range(n)
    ]
    return NewsSentiment(
        sentiment=SENTIMENT_OF[LABELS[winner]],
        intensity=round(min(max(float(mean[winner]), 0.0), 1.0), 4),
        key_factors=key_factors(items, probs, winner, w),
        agreement=round(float(w[own == winner].sum()), 4),
        items=scores,
    )


def key_factors(
    items: Sequence[str], probs: np.ndarray, winner: int, weights: Optional[np.ndarray] = None
) -> list[str]:
    """Up to three items that weighed most for label ``winner`` (weight x probability), trimmed."""
    w = np.ones(len(items)) if weights is None else np.asarray(weights)
    support = probs[:, winner] * w
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
