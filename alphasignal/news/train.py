"""Train and evaluate news heads on the Financial PhraseBank.

The data is ``datasets/financial_phrasebank/fpb_split.csv`` (columns sentence,
label, max_agreement_level, split; Malo et al. 2014, CC BY-NC-SA 3.0).
``train_head`` fits a logistic-regression head on frozen sentence embeddings
(``alphasignal train news-head``; the packaged model is the fine-tuned one from
``news.finetune``, ``alphasignal train news-model``). Training reads only
``split == "train"`` rows: the regularisation strength C is chosen by stratified
cross-validation on those rows (by log-loss, since the probabilities feed the
sentiment intensity), then the head is refit on all of them. ``evaluate`` is the
only reader of the test rows.

    >>> info = train_head(Path("datasets/financial_phrasebank/fpb_split.csv"), Path("/tmp/head"))
    >>> metrics = evaluate(Path("datasets/financial_phrasebank/fpb_split.csv"),
    ...                    out_path=WEIGHTS_DIR / "metrics.json")
"""

from __future__ import annotations

import csv
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..errors import BackendUnavailable, InputError
from .encoder import MODEL_NAME, Encoder, MiniLMEncoder
from .model import HEAD_FILE, LABELS, WEIGHTS_DIR, Head, SentimentModel, default_model

COLUMNS = ("sentence", "label", "max_agreement_level", "split")
DEFAULT_CS = tuple(float(c) for c in np.logspace(-2, 2, 9))
METRICS_FILE = "metrics.json"
LOGREG_MODEL_ID = "minilm-l6-v2+fpb-logreg"

__all__ = ["train_head", "evaluate", "load_split", "classification_metrics", "WEIGHTS_DIR", "METRICS_FILE"]


@dataclass(frozen=True)
class Split:
    texts: list[str]
    labels: np.ndarray  # indices into LABELS
    agreement: np.ndarray  # max_agreement_level, e.g. 50, 66, 75, 100


def load_split(data_csv: Path, split: str) -> Split:
    """The rows of ``data_csv`` whose ``split`` column equals ``split``."""
    path = Path(data_csv)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise InputError(f"{path} lacks columns {missing}; expected {','.join(COLUMNS)}")
            rows = [r for r in reader if r["split"] == split]
    except OSError as exc:
        raise InputError(f"cannot read {path} ({exc}); pass the Financial PhraseBank fpb_split.csv") from exc
    bad = sorted({r["label"] for r in rows} - set(LABELS))
    if bad:
        raise InputError(f"{path} has unknown labels {bad}; expected {', '.join(LABELS)}")
    if not rows:
        raise InputError(f"{path} has no rows with split == {split!r}")
    return Split(
        texts=[r["sentence"] for r in rows],
        labels=np.array([LABELS.index(r["label"]) for r in rows]),
        agreement=np.array([int(r["max_agreement_level"]) for r in rows]),
    )


def train_head(
    data_csv: Path,
    out_dir: Path,
    seed: int = 0,
    progress: bool = True,
    *,
    encoder: Optional[Encoder] = None,
    cs: Sequence[float] = DEFAULT_CS,
    folds: int = 5,
) -> dict:
    """Fit the head on the train rows, save ``out_dir/head.npz``, return the training record."""
    started = time.perf_counter()
    _logreg(1.0, seed)  # fail before minutes of embedding when scikit-learn is missing
    train = load_split(data_csv, "train")
    absent = [label for i, label in enumerate(LABELS) if not (train.labels == i).any()]
    if absent:
        raise InputError(f"{data_csv} has no training rows labelled {absent}; every label needs examples")
    encoder = encoder if encoder is not None else MiniLMEncoder.load()
    x = embed(encoder, train.texts, progress=progress, desc="embedding train")
    with _single_threaded_blas():
        best_c, cv = select_c(x, train.labels, cs=cs, folds=folds, seed=seed)
        clf = _logreg(best_c, seed).fit(x, train.labels)
    record = {
        "model_id": LOGREG_MODEL_ID,
        "encoder": MODEL_NAME,
        "encoder_sha256": encoder.identity,
        "data": Path(data_csv).name,
        "n_train": len(train.texts),
        "train_label_counts": {LABELS[i]: int((train.labels == i).sum()) for i in range(len(LABELS))},
        "seed": seed,
        "C": best_c,
        "cv_folds": folds,
        "cv_selection": "neg_log_loss",
        "cv": cv,
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    head = Head(weight=clf.coef_, bias=clf.intercept_, encoder_identity=encoder.identity, meta=record)
    record["head_path"] = str(head.save(Path(out_dir) / HEAD_FILE))
    return record


def select_c(
    x: np.ndarray, y: np.ndarray, cs: Sequence[float], folds: int, seed: int
) -> tuple[float, list[dict]]:
    """Pick C by stratified k-fold log-loss on the training rows only."""
    from sklearn.metrics import accuracy_score, log_loss
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    results = []
    for c in cs:
        losses, accs = [], []
        for fit_idx, val_idx in splitter.split(x, y):
            proba = _logreg(c, seed).fit(x[fit_idx], y[fit_idx]).predict_proba(x[val_idx])
            losses.append(log_loss(y[val_idx], proba, labels=list(range(len(LABELS)))))
            accs.append(accuracy_score(y[val_idx], proba.argmax(axis=1)))
        loss, acc = round(float(np.mean(losses)), 5), round(float(np.mean(accs)), 5)
        results.append({"C": float(c), "log_loss": loss, "accuracy": acc})
    best = min(results, key=lambda r: r["log_loss"])
    return best["C"], results


def _single_threaded_blas():
    """These fits are small: on a shared 2-core machine, BLAS threads fighting for
    cores made one cross-validation fold 100x slower (33 s against 0.3 s)."""
    _logreg(1.0, 0)  # imports scikit-learn (and scipy's BLAS) first, so the limit covers it
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    return threadpool_limits(limits=1, user_api="blas")


def _logreg(c: float, seed: int):
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError as exc:
        raise BackendUnavailable(
            "training the news head needs scikit-learn; install it with `pip install 'alphasignal[train]'`"
        ) from exc
    # lbfgs on 3 classes fits the multinomial (softmax) model.
    return LogisticRegression(C=c, max_iter=5000, random_state=seed)


def embed(
    encoder: Encoder, texts: Sequence[str], progress: bool = True, desc: str = "embedding", chunk: int = 256
) -> np.ndarray:
    """Encode ``texts`` in chunks, with a tqdm bar on stderr when ``progress``."""
    bar = _progress_bar(len(texts), desc) if progress else None
    parts = []
    for start in range(0, len(texts), chunk):
        batch = list(texts[start : start + chunk])
        parts.append(encoder.encode(batch))
        if bar is not None:
            bar.update(len(batch))
    if bar is not None:
        bar.close()
    return np.concatenate(parts) if parts else np.zeros((0, encoder.dim), dtype=np.float32)


def _progress_bar(total: int, desc: str):
    try:
        from tqdm import tqdm
    except ImportError:  # progress is a nicety; training works without it
        return None
    return tqdm(total=total, desc=desc, unit="sent", file=sys.stderr)


def evaluate(
    data_csv: Path,
    model: Optional[SentimentModel] = None,
    *,
    out_path: Optional[Path] = None,
    progress: bool = False,
) -> dict:
    """Accuracy, macro-F1, per-class recall and ECE on the test rows, plus per-headline latency.

    Headlines are scored one at a time, as the CLI scores news, so the latency
    figures are what one headline costs on a warm model. With ``out_path`` the
    metrics are also written there as JSON (e.g. ``WEIGHTS_DIR / METRICS_FILE``).
    """
    from .evaluation import evaluate_scorer

    model = model if model is not None else default_model()
    extra = {
        "encoder_sha256": model.encoder.identity,
        "adapter_sha256": getattr(model.encoder, "adapter_sha256", None),
        "head": {
            k: model.head.meta[k]
            for k in ("C", "n_train", "n_validation", "seed", "cv_selection", "chosen", "validation", "temperature")
            if k in model.head.meta
        },
    }
    return evaluate_scorer(data_csv, model, out_path=out_path, progress=progress, extra=extra)


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """n, accuracy, macro-F1 and per-class recall/precision/F1 (numpy only)."""
    per_class = {}
    for i, label in enumerate(LABELS):
        tp = int(np.sum((y_pred == i) & (y_true == i)))
        support, predicted = int(np.sum(y_true == i)), int(np.sum(y_pred == i))
        recall = tp / support if support else 0.0
        precision = tp / predicted if predicted else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {
            "support": support,
            "recall": round(recall, 4),
            "precision": round(precision, 4),
            "f1": round(f1, 4),
        }
    return {
        "n": int(len(y_true)),
        "accuracy": round(float(np.mean(y_true == y_pred)), 4) if len(y_true) else 0.0,
        "macro_f1": round(float(np.mean([c["f1"] for c in per_class.values()])), 4),
        "recall": {label: c["recall"] for label, c in per_class.items()},
        "per_class": per_class,
    }
