"""``alphasignal finetune eval``: chart models on the dataset's test split, through our own pipeline.

Each test row's chart is sent to a backend's chart branch exactly as ``analyze``
sends it (``Backend.analyze_chart`` with the same prompt, schema constraint,
validation and bounded re-asks) and the action is compared with the row's
``target`` (the label the dataset builder computed from the bars that follow).

Per model: the schema-valid rate (an answer that never validated, or a chart the
backend refused to read, is *invalid*, and invalid counts as wrong), action
accuracy with a 95 % Wilson interval, the test split's majority-class baseline,
macro-F1, ECE of ``confidence`` against correctness, the distribution of the
predictions with a ``collapsed`` flag (one class >= 90 % of the valid answers: a
fine-tune that learnt the class prior, not the chart), and latency. Two models
are compared on the rows both answered with an exact McNemar test.

A model *beats the majority class* when the lower end of its accuracy's 95 %
Wilson interval lies above the majority class's accuracy on the same rows (a
one-sided score test at alpha = 0.025 against a fixed rate); the majority
baseline's own interval is reported too, and an exact McNemar test against the
constant majority predictor on the same rows.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ..errors import ConfigError, InputError, StructuredOutputError, TrainingError
from ..schemas import ChartInput
from .eval_stats import (
    expected_calibration_error,
    macro_f1,
    majority,
    mcnemar_exact,
    percentile,
    wilson_interval,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..backends.base import Backend
    from ..config import Settings

LABELS = ("BUY", "SELL", "HOLD")
COLLAPSE_SHARE = 0.9
ECE_BINS = 10
ALPHA = 0.05
BEATS_TEST = (
    "Wilson 95% lower bound of the model's accuracy > the majority class's accuracy "
    "(one-sided score test, alpha 0.025)"
)
TEST_FILE = "test.jsonl"


@dataclass(frozen=True)
class EvalRow:
    """One test chart: its image, the asset and the label to match."""

    id: str
    image: Path
    ticker: Optional[str]
    target: str


@dataclass(frozen=True)
class Answer:
    """What one model said about one row; ``action`` is None when the answer was invalid."""

    action: Optional[str]
    confidence: Optional[float]
    latency_ms: float
    error: Optional[str] = None


# --- the test split -----------------------------------------------------------------------


def load_test_rows(dataset_dir: Path, limit: Optional[int] = None) -> list[EvalRow]:
    """The rows of ``<dataset_dir>/test.jsonl``, every image checked; ``limit`` spreads N picks over the file."""
    folder = Path(dataset_dir)
    path = folder / TEST_FILE
    if not path.is_file():
        raise TrainingError(
            f"{folder} has no {TEST_FILE}: point --dataset at a folder written by `alphasignal dataset build`"
        )
    rows = [_parse_row(folder, line, number) for number, line in _lines(path)]
    if not rows:
        raise TrainingError(
            f"{path} is empty: rebuild the dataset with a larger test_fraction or more data"
        )
    if limit is not None:
        if limit < 1:
            raise ConfigError(f"--limit must be at least 1, got {limit}")
        rows = spread(rows, limit)
    return rows


def _lines(path: Path) -> list[tuple[int, str]]:
    text = path.read_text(encoding="utf-8")
    return [(i, line) for i, line in enumerate(text.splitlines(), 1) if line.strip()]


def _parse_row(folder: Path, line: str, number: int) -> EvalRow:
    where = f"{folder / TEST_FILE}:{number}"
    try:
        row = json.loads(line)
        image = folder / row["images"][0]
        target = row["target"]["action"]
        ticker = (row.get("meta") or {}).get("ticker")
        row_id = str(row.get("id", number))
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise TrainingError(
            f"{where} is not a dataset row ({type(exc).__name__}: {exc}); rebuild with `alphasignal dataset build`"
        ) from exc
    if target not in LABELS:
        raise TrainingError(f"{where}: target action {target!r} is not one of {', '.join(LABELS)}")
    if not image.is_file():
        raise TrainingError(f"{where}: image {image} is missing; rebuild the dataset or restore its images/ folder")
    return EvalRow(id=row_id, image=image, ticker=ticker, target=target)


def spread(rows: list[EvalRow], limit: int) -> list[EvalRow]:
    """``limit`` rows evenly spaced over the file (test files run ticker by ticker, in time order)."""
    if limit >= len(rows):
        return rows
    step = len(rows) / limit
    return [rows[int(i * step)] for i in range(limit)]


# --- asking the models --------------------------------------------------------------------


async def ask_model(
    backend: "Backend", rows: list[EvalRow], label: str = "", progress: bool = True
) -> list[Answer]:
    """One answer per row, in order; invalid answers are recorded, server failures raise."""
    from tqdm import tqdm

    answers = []
    with tqdm(total=len(rows), desc=label or backend.spec.label, unit="chart", file=sys.stderr,
              disable=not progress) as bar:
        for row in rows:
            answers.append(await _ask_one(backend, row))
            bar.update(1)
    return answers


async def _ask_one(backend: "Backend", row: EvalRow) -> Answer:
    chart = ChartInput(image=row.image.read_bytes(), ticker=row.ticker, source="image")
    start = time.perf_counter()
    try:
        signal = await backend.analyze_chart(chart)
    except (StructuredOutputError, InputError) as exc:
        # never validated, or the backend refused this chart: no answer, counted wrong
        elapsed = (time.perf_counter() - start) * 1000
        return Answer(None, None, elapsed, f"{type(exc).__name__}: {exc}")
    elapsed = (time.perf_counter() - start) * 1000
    return Answer(signal.action, float(signal.confidence), elapsed)


def resolve_model(spec: str, settings: "Settings") -> tuple[str, "Settings"]:
    """A backend spec as given, or an export folder turned into its ``llamacpp:`` spec plus projector."""
    path = Path(spec).expanduser()
    if not path.is_dir():
        return spec, settings  # a provider:model spec: get_backend validates it
    from .serve import read_export

    export = read_export(path)
    backends = settings.backends.model_copy(update={"llamacpp_mmproj": export.mmproj})
    return f"llamacpp:{export.model}", settings.model_copy(update={"backends": backends})


# --- scoring -------------------------------------------------------------------------------


def score_model(rows: list[EvalRow], answers: list[Answer]) -> dict[str, Any]:
    """The per-model figures (see the module docstring)."""
    truth = [row.target for row in rows]
    predicted = [answer.action for answer in answers]
    n = len(rows)
    correct = [p == t for p, t in zip(predicted, truth)]
    hits = sum(correct)
    valid = [a for a in answers if a.action is not None]
    lo, hi = wilson_interval(hits, n)
    base_label, base_hits = majority(truth)
    base_rate = base_hits / n
    model_only = sum(c and t != base_label for c, t in zip(correct, truth))
    base_only = sum((not c) and t == base_label for c, t in zip(correct, truth))
    result = {
        "n": n,
        "valid": len(valid),
        "schema_valid_rate": len(valid) / n,
        "accuracy": hits / n,
        "ci95": [lo, hi],
        "beats_majority": lo > base_rate,
        "vs_majority": {
            "model_only_correct": model_only,
            "majority_only_correct": base_only,
            "mcnemar_p": mcnemar_exact(model_only, base_only),
        },
        "macro_f1": macro_f1(truth, predicted),
        "ece": expected_calibration_error(
            [a.confidence for a in valid], [a.action == r.target for a, r in zip(answers, rows) if a.action],
            ECE_BINS,
        ),
        **distribution(predicted),
        "latency_ms": latency([a.latency_ms for a in answers]),
        "invalid_reasons": dict(Counter(a.error.split(":", 1)[0] for a in answers if a.error)),
        "first_error": next((a.error for a in answers if a.error), None),
    }
    return result


def distribution(predicted: list[Optional[str]]) -> dict[str, Any]:
    """Shares of each action and of invalid answers over all rows, and whether the valid ones collapsed."""
    n = len(predicted)
    counts = Counter(p if p is not None else "invalid" for p in predicted)
    shares = {key: counts.get(key, 0) / n for key in (*LABELS, "invalid")}
    valid = n - counts.get("invalid", 0)
    dominant, dominant_share = None, None
    if valid:
        dominant = max(LABELS, key=lambda label: counts.get(label, 0))
        dominant_share = counts.get(dominant, 0) / valid
    return {
        "distribution": shares,
        "dominant": dominant,
        "dominant_share": dominant_share,
        "collapsed": dominant_share is not None and dominant_share >= COLLAPSE_SHARE,
    }


def latency(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95)}


def compare(rows: list[EvalRow], first: list[Answer], second: list[Answer]) -> dict[str, Any]:
    """Exact McNemar on the rows both models answered validly."""
    pairs = [(a, b, r.target) for a, b, r in zip(first, second, rows) if a.action and b.action]
    only_first = sum(a.action == t and b.action != t for a, b, t in pairs)
    only_second = sum(a.action != t and b.action == t for a, b, t in pairs)
    n = len(pairs)
    p = mcnemar_exact(only_first, only_second)
    better = None
    if p < ALPHA:
        better = "first" if only_first > only_second else "second"
    return {
        "n_paired": n,
        "first_accuracy": sum(a.action == t for a, _, t in pairs) / n if n else None,
        "second_accuracy": sum(b.action == t for _, b, t in pairs) / n if n else None,
        "first_only_correct": only_first,
        "second_only_correct": only_second,
        "mcnemar_p": p,
        "better": better,
    }


def baseline(rows: list[EvalRow]) -> dict[str, Any]:
    truth = [row.target for row in rows]
    label, hits = majority(truth)
    lo, hi = wilson_interval(hits, len(truth))
    counts = Counter(truth)
    return {
        "action": label,
        "accuracy": hits / len(truth),
        "ci95": [lo, hi],
        "class_balance": {k: counts.get(k, 0) for k in LABELS},
    }


# --- the whole evaluation ------------------------------------------------------------------


def evaluate_models(
    dataset_dir: Path,
    specs: dict[str, str],
    settings: "Settings",
    limit: Optional[int] = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate each ``label -> backend spec`` on the test split; see the module docstring for the figures.

    A spec may also be an export folder (``alphasignal export``'s output): its GGUF
    and projector are run in process by the ``llamacpp`` backend.
    """
    if not specs:
        raise ConfigError("nothing to evaluate: give --base and/or --tuned (a backend spec or an export folder)")
    rows = load_test_rows(dataset_dir, limit)
    answers = asyncio.run(_answer_all(rows, specs, settings, progress))
    return summarise(Path(dataset_dir), rows, specs, answers)


async def _answer_all(
    rows: list[EvalRow], specs: dict[str, str], settings: "Settings", progress: bool
) -> dict[str, list[Answer]]:
    from ..backends.base import backend_class, get_backend, parse_spec

    resolved = {label: resolve_model(spec, settings) for label, spec in specs.items()}
    for spec, _ in resolved.values():  # a typo in the second spec must not wait for the first model
        backend_class(parse_spec(spec).provider)
    answers = {}
    for label, (spec, model_settings) in resolved.items():
        backend = get_backend(spec, model_settings)
        try:
            answers[label] = await ask_model(backend, rows, label, progress)
        finally:
            backend.close()  # free one model's weights before the next is loaded
    return answers


def summarise(
    dataset_dir: Path, rows: list[EvalRow], specs: dict[str, str], answers: dict[str, list[Answer]]
) -> dict[str, Any]:
    models = {}
    for label, model_answers in answers.items():
        models[label] = {"spec": specs[label], **score_model(rows, model_answers)}
        models[label]["predictions"] = [
            {"id": r.id, "target": r.target, "action": a.action, "confidence": a.confidence,
             "latency_ms": round(a.latency_ms, 1), **({"error": a.error} if a.error else {})}
            for r, a in zip(rows, model_answers)
        ]
    result: dict[str, Any] = {
        "dataset": str(dataset_dir),
        "split": "test",
        "n": len(rows),
        "majority": baseline(rows),
        "beats_majority_test": BEATS_TEST,
        "collapse_share": COLLAPSE_SHARE,
        "models": models,
        "comparison": None,
    }
    labels = list(answers)
    if len(labels) >= 2:
        first, second = ("base", "tuned") if {"base", "tuned"} <= set(labels) else labels[:2]
        result["comparison"] = {"first": first, "second": second,
                                **compare(rows, answers[first], answers[second])}
        better = result["comparison"]["better"]
        result["comparison"]["better"] = {"first": first, "second": second}.get(better) if better else None
    return result


# --- output --------------------------------------------------------------------------------


def _pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:5.1f}%"


def _num(value: Optional[float], fmt: str = ".3f") -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def eval_table(result: dict[str, Any]) -> str:
    """The evaluation as a small plain-text table (stdout of ``finetune eval``)."""
    base = result["majority"]
    balance = ", ".join(f"{k} {v}" for k, v in base["class_balance"].items())
    lines = [
        f"test split: {result['dataset']}  n={result['n']}  ({balance})",
        f"majority class {base['action']}: accuracy {_pct(base['accuracy'])} "
        f"[95% CI {_pct(base['ci95'][0])} - {_pct(base['ci95'][1])}]",
        f"{'model':10s} {'valid':>6s} {'accuracy':>8s} {'95% CI':>15s} {'>maj':>5s} {'macroF1':>7s} "
        f"{'ECE':>6s} {'BUY':>6s} {'SELL':>6s} {'HOLD':>6s} {'invalid':>7s} {'p50 ms':>7s} {'p95 ms':>7s}",
    ]
    for label, m in result["models"].items():
        share = m["distribution"]
        lines.append(
            f"{label:10s} {_pct(m['schema_valid_rate']):>6s} {_pct(m['accuracy']):>8s} "
            f"{_pct(m['ci95'][0]) + '-' + _pct(m['ci95'][1]).strip():>15s} {'yes' if m['beats_majority'] else 'no':>5s} "
            f"{_num(m['macro_f1']):>7s} {_num(m['ece']):>6s} {_pct(share['BUY']):>6s} {_pct(share['SELL']):>6s} "
            f"{_pct(share['HOLD']):>6s} {_pct(share['invalid']):>7s} {_num(m['latency_ms']['p50'], '.0f'):>7s} "
            f"{_num(m['latency_ms']['p95'], '.0f'):>7s}"
        )
    lines += _notes(result)
    return "\n".join(lines)


def _notes(result: dict[str, Any]) -> list[str]:
    notes = []
    for label, m in result["models"].items():
        if m["collapsed"]:
            notes.append(
                f"! {label} collapsed: {_pct(m['dominant_share']).strip()} of its {m['valid']} valid answers are "
                f"{m['dominant']} (it predicts the class prior, not the chart)"
            )
        if m["first_error"]:
            reasons = ", ".join(f"{k} x{v}" for k, v in m["invalid_reasons"].items())
            notes.append(f"  {label} invalid answers ({reasons}); first: {m['first_error'][:160]}")
    comp = result.get("comparison")
    if comp:
        verdict = f"{comp['better']} is better" if comp["better"] else "no significant difference"
        notes.append(
            f"{comp['first']} vs {comp['second']} on {comp['n_paired']} rows both answered: "
            f"{comp['first_only_correct']} vs {comp['second_only_correct']} rows only one got right, "
            f"exact McNemar p={comp['mcnemar_p']:.4f} ({verdict} at alpha {ALPHA})"
        )
    notes.append(f">maj: {result['beats_majority_test']}")
    return notes


def cmd_eval(args: Any) -> int:
    """``finetune eval``: args has dataset, base, tuned, limit, json, config (and optionally mmproj)."""
    from ..config import load_settings

    specs = {label: spec for label, spec in (("base", args.base), ("tuned", args.tuned)) if spec}
    if not specs:
        raise ConfigError("give --base and/or --tuned: a backend spec (e.g. ollama:my-model) or an export folder")
    overrides: dict[str, Any] = {}
    if getattr(args, "mmproj", None):
        overrides["backends"] = {"llamacpp_mmproj": args.mmproj}
    settings = load_settings(getattr(args, "config", None), **overrides)
    result = evaluate_models(args.dataset, specs, settings, limit=args.limit, progress=True)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(eval_table(result))
    return 0
