"""``alphasignal eval sentiment``: any backend on the Financial PhraseBank test split.

The builtin model is scored directly (its calibrated probabilities). A chat
backend (``ollama:…``, ``llamacpp:…``, ``openai:…@…``) is asked one headline at a
time through its ordinary ``analyze_news``, exactly as the agent asks it; its
answer becomes a probability vector with ``intensity`` on the label it chose and
the rest shared equally, so accuracy, macro-F1, recall, ECE and latency are
computed the same way for every backend. An answer that never validates counts
as wrong (and is counted in ``failures``), never as NEUTRAL.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Optional, Protocol, Sequence

import numpy as np

from ..errors import AlphaSignalError
from ..schemas import NewsInput, NewsSentiment
from .calibration import expected_calibration_error, reliability

LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
_INDEX = {"BEARISH": 0, "NEUTRAL": 1, "BULLISH": 2}


class Scorer(Protocol):
    model_id: str

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...  # pragma: no cover


def sentiment_to_proba(result: NewsSentiment) -> np.ndarray:
    """A chat answer as a probability vector: ``intensity`` on its label, the rest shared."""
    probs = np.full(len(LABELS), (1.0 - result.intensity) / (len(LABELS) - 1))
    probs[_INDEX[result.sentiment]] = result.intensity
    return probs


class BackendScorer:
    """Scores headlines with any backend's ``analyze_news``, one headline per request."""

    def __init__(self, backend, ticker: Optional[str] = None):
        self.backend = backend
        self.ticker = ticker
        self.failures: list[str] = []
        self.model_id = backend.news_model_name()

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([self._one(text) for text in texts])

    def _one(self, text: str) -> np.ndarray:
        try:
            result = asyncio.run(self.backend.analyze_news(NewsInput(items=(text,), ticker=self.ticker)))
        except AlphaSignalError as exc:
            self.failures.append(exc.one_line()[:200])
            return np.full(len(LABELS), np.nan)
        return sentiment_to_proba(result)


def evaluate_scorer(
    data_csv: Path,
    scorer: Scorer,
    *,
    limit: Optional[int] = None,
    out_path: Optional[Path] = None,
    progress: bool = False,
    extra: Optional[dict] = None,
) -> dict:
    """Accuracy, macro-F1, per-class recall, ECE and latency on the test rows (all, agreement 100)."""
    from .train import classification_metrics, load_split

    test = load_split(data_csv, "test")
    texts, labels, agreement = test.texts, test.labels, test.agreement
    if limit is not None and limit < len(texts):
        pick = _stratified_subset(labels, agreement, limit)
        texts, labels, agreement = [texts[i] for i in pick], labels[pick], agreement[pick]
    scorer.predict_proba([texts[0]])  # warm-up: the first call pays one-off costs
    probs, latencies = _one_by_one(scorer, texts, progress)
    failed = np.isnan(probs).any(axis=1)
    pred = np.where(failed, -1, np.nan_to_num(probs).argmax(axis=1))
    safe = np.where(failed[:, None], 0.0, np.nan_to_num(probs))
    top = agreement == 100
    metrics = {
        "model_id": scorer.model_id,
        **(extra or {}),
        "data": Path(data_csv).name,
        "test_all_agreement": _subset(classification_metrics, labels, pred, safe, failed),
        "test_agreement_100": _subset(classification_metrics, labels[top], pred[top], safe[top], failed[top]),
        "calibration": reliability(safe[~failed], labels[~failed]),
        "failures": int(failed.sum()),
        "latency_ms_per_headline": {
            "p50": round(float(np.percentile(latencies, 50)), 2),
            "p95": round(float(np.percentile(latencies, 95)), 2),
            "n": len(latencies),
        },
    }
    if limit is not None:
        metrics["subset"] = f"{len(texts)} of the test rows, stratified by label and agreement"
    if out_path is not None:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        Path(out_path).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return metrics


def _subset(metrics_fn, y: np.ndarray, pred: np.ndarray, probs: np.ndarray, failed: np.ndarray) -> dict:
    out = metrics_fn(y, pred)
    ok = ~failed
    # A failed answer has no confidence: ECE is over the answers given; failures are counted wrong above.
    out["ece"] = round(expected_calibration_error(probs[ok], y[ok]), 4) if ok.any() else None
    return out


def _stratified_subset(labels: np.ndarray, agreement: np.ndarray, limit: int) -> np.ndarray:
    """``limit`` rows in the test split's own label x agreement proportions (deterministic)."""
    rng = np.random.default_rng(0)
    order = rng.permutation(len(labels))
    groups: dict[tuple[int, int], list[int]] = {}
    for i in order:
        groups.setdefault((int(labels[i]), int(agreement[i])), []).append(int(i))
    share = limit / len(labels)
    pick = [i for rows in groups.values() for i in rows[: max(1, round(len(rows) * share))]]
    return np.array(sorted(pick[:limit]))


def _one_by_one(scorer: Scorer, texts: Sequence[str], progress: bool) -> tuple[np.ndarray, list[float]]:
    bar = _progress_bar(len(texts), "scoring test") if progress else None
    rows, latencies = [], []
    for text in texts:
        t0 = time.perf_counter()
        rows.append(scorer.predict_proba([text])[0])
        latencies.append((time.perf_counter() - t0) * 1000.0)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return np.array(rows, dtype=np.float64), latencies


def _progress_bar(total: int, desc: str):
    try:
        from tqdm import tqdm
    except ImportError:  # progress is a nicety
        return None
    return tqdm(total=total, desc=desc, unit="sent", file=sys.stderr)
