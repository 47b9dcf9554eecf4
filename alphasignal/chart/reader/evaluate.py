"""Measure the chart reader on charts rendered from real prices it was not tuned on.

``evaluate_reader`` renders windows of real OHLCV history in many styles (every
built-in mplfinance style and TradingView-like light and dark themes; with and
without a volume panel, moving averages or Bollinger bands; some re-encoded as
JPEG and resized), reads them back, and reports:

* per-bar OHLC error in % of the visible price range (digitizer alone, through the
  exact pixel -> price mapping matplotlib used), median and p95;
* the share of charts whose bar count is exact;
* candlestick-pattern agreement with TA-Lib on the true prices, per pattern and
  macro-F1 (engulfing, hammer, inverted hammer, shooting star, doji, morning and
  evening star, harami, inside and outside bar); and, for scale, the macro-F1 of the
  true prices rounded to whole pixel rows (what a perfect whole-pixel reader would
  score: prices closer than a pixel cannot be told apart);
* the share of charts whose axis was read, and the axis error (% of the range);
* guard accuracy on these charts against offline negatives (``synth.negatives``);
* latency per chart, p50 and p95, with and without OCR.

**Held-out windows.** Two splits that never share a bar: ``split="tune"`` draws
windows that end before ``HELD_OUT_FROM`` (2012-01-01) from the AAPL, GOOG and SPY
histories and the INTC file (1995-2004): the reader is developed on these.
``split="eval"`` (the default, and the only figures to quote) draws windows that
start on or after it (AAPL, GOOG, SPY, and the Ford 2012 file).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pandas as pd

from ..ohlc import demo_paths, load_csv
from . import synth
from .digitize import digitize
from .guard import DEFAULT_THRESHOLD, guard_score
from .read import read_chart

HELD_OUT_FROM = pd.Timestamp("2012-01-01")
EVAL_FILES = (
    "yahoofinance-AAPL-20040819-20180120.csv",
    "yahoofinance-GOOG-20040819-20180120.csv",
    "yahoofinance-SPY-20080101-20180101.csv",
    "ford_2012.csv",
)
TUNE_FILES = (
    "yahoofinance-AAPL-20040819-20180120.csv",
    "yahoofinance-GOOG-20040819-20180120.csv",
    "yahoofinance-SPY-20080101-20180101.csv",
    "yahoofinance-INTC-19950101-20040412.csv",
)
SPLITS = ("tune", "eval")
STYLES = synth.MPF_STYLES + tuple(synth.THEMES)
PATTERNS = ("engulfing", "hammer", "inverted hammer", "shooting star", "doji", "morning star",
            "evening star", "harami", "inside bar", "outside bar")
_SIZES = ((800, 600), (1000, 700), (640, 480), (1200, 800))


@dataclass(frozen=True)
class Case:
    file: str
    start: int
    bars: int
    style: str
    volume: bool
    overlay: str  # "", "mav" or "bollinger"
    size: tuple[int, int]
    damage: str  # "", "jpeg" or "jpeg+resize"


def plan(frames: dict[str, pd.DataFrame], n: int, seed: int = 7, held_out: bool = True) -> list[Case]:
    """``n`` chart cases, styles in turn, windows drawn from the held-out dates.

    ``held_out=False`` draws from the dates before ``HELD_OUT_FROM`` instead: the
    windows to develop on.
    """
    rng = np.random.default_rng(seed)
    cases = []
    names = sorted(frames)
    for i in range(n):
        name = names[i % len(names)]
        df = frames[name]
        if not held_out and not (df.index < HELD_OUT_FROM).sum() > 130:
            name = names[0]
            df = frames[name]
        bars = int(rng.choice((40, 60, 90, 120)))
        allowed = np.flatnonzero(df.index >= HELD_OUT_FROM) if held_out else np.flatnonzero(df.index < HELD_OUT_FROM)
        ends = np.flatnonzero(df.index < HELD_OUT_FROM)[-1] + 1 if not held_out and len(allowed) else len(df)
        allowed = allowed[allowed + bars <= ends]
        start = int(rng.choice(allowed))
        damage = ("", "", "jpeg", "jpeg+resize")[int(rng.integers(4))]
        overlay = ("", "", "mav", "bollinger")[int(rng.integers(4))]
        cases.append(Case(name, start, bars, STYLES[i % len(STYLES)], bool(rng.integers(2)), overlay,
                          _SIZES[int(rng.integers(len(_SIZES)))], damage))
    return cases


def load_frames(data_dir: Path, split: str = "eval") -> dict[str, pd.DataFrame]:
    """The OHLCV files of ``split`` found in ``data_dir``, by file name."""
    import warnings

    from ..ohlc import PriceDataWarning

    frames = {}
    for name in (TUNE_FILES if split == "tune" else EVAL_FILES):
        path = Path(data_dir) / name
        if path.is_file():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PriceDataWarning)  # SPY's two repaired bars
                frames[name] = load_csv(path)
    return frames


# ---------------------------------------------------------------- one chart


def _render(case: Case, df: pd.DataFrame) -> tuple[bytes, synth.Rendered, float]:
    window = df.iloc[case.start : case.start + case.bars]
    mav = (10, 20) if case.overlay == "mav" else ()
    width, height = case.size
    r = synth.render(window, case.style, volume=case.volume, mav=mav, bollinger=case.overlay == "bollinger",
                     width=width, height=height)
    if case.damage == "jpeg":
        return synth.jpeg(r.png, 85), r, 1.0
    if case.damage == "jpeg+resize":
        return synth.jpeg(r.png, 85, scale=0.8), r, 0.8
    return r.png, r, 1.0


def _measure_case(case: Case, df: pd.DataFrame, ocr: bool = True) -> dict[str, Any]:
    image, r, scale = _render(case, df)
    window = df.iloc[case.start : case.start + case.bars]
    t0, c0 = time.perf_counter(), time.process_time()
    plain = read_chart(image, ocr=False)
    t1, c1 = time.perf_counter(), time.process_time()
    with_ocr = read_chart(image, ocr=True) if ocr else None
    t2, c2 = time.perf_counter(), time.process_time()
    visible = abs(r.ylim[1] - r.ylim[0])
    out: dict[str, Any] = {"case": case, "n": len(plain.bars), "ms": (t1 - t0) * 1e3, "cpu_ms": (c1 - c0) * 1e3,
                           "guard": plain.guard_score}
    if with_ocr is not None:
        out["ms_ocr"], out["cpu_ms_ocr"] = (t2 - t1) * 1e3, (c2 - c1) * 1e3
    truth_all = window[["open", "high", "low", "close"]].to_numpy(float)
    # the best any reader of whole pixels could do: the true prices rounded to pixel rows
    rounded = (np.round((r.y0 + truth_all * r.dy) * scale) / scale - r.y0) / r.dy
    out["ceiling"] = (_pattern_hits(truth_all), _pattern_hits(rounded))
    if len(plain.bars) == len(window):
        rows = np.array([[b.open, b.high, b.low, b.close] for b in plain.bars]) / scale
        prices = (rows - r.y0) / r.dy
        out["err"] = (np.abs(prices - truth_all) / visible * 100).ravel()
        out["patterns"] = (out["ceiling"][0], _pattern_hits(prices))
    if with_ocr is not None and with_ocr.axis is not None:
        rows = np.linspace(plain.digitized.panel.top, plain.digitized.panel.bottom, 9) * plain.digitized.scale
        true_prices = (rows / scale - r.y0) / r.dy
        out["axis_err"] = float(np.max(np.abs(with_ocr.axis.price(rows) - true_prices)) / visible * 100)
    return out


# ---------------------------------------------------------------- patterns


def _pattern_hits(ohlc: np.ndarray) -> dict[str, np.ndarray]:
    """Per pattern, a boolean per bar: TA-Lib's candlestick functions, and inside/outside bars."""
    import talib

    o, h, l, c = (np.ascontiguousarray(ohlc[:, i], dtype=float) for i in range(4))
    calls: dict[str, Callable[..., np.ndarray]] = {
        "engulfing": talib.CDLENGULFING, "hammer": talib.CDLHAMMER, "inverted hammer": talib.CDLINVERTEDHAMMER,
        "shooting star": talib.CDLSHOOTINGSTAR, "doji": talib.CDLDOJI, "morning star": talib.CDLMORNINGSTAR,
        "evening star": talib.CDLEVENINGSTAR, "harami": talib.CDLHARAMI,
    }
    hits = {name: fn(o, h, l, c) != 0 for name, fn in calls.items()}
    inside = np.r_[False, (h[1:] < h[:-1]) & (l[1:] > l[:-1])]
    outside = np.r_[False, (h[1:] > h[:-1]) & (l[1:] < l[:-1])]
    hits["inside bar"], hits["outside bar"] = inside, outside
    return hits


def _f1(pairs: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]) -> dict[str, dict[str, float]]:
    table = {}
    for name in PATTERNS:
        tp = fp = fn = 0
        for truth, got in pairs:
            t, g = truth[name], got[name]
            tp += int((t & g).sum())
            fp += int((~t & g).sum())
            fn += int((t & ~g).sum())
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        table[name] = {"f1": round(f1, 4), "precision": round(precision, 4), "recall": round(recall, 4),
                       "true": tp + fn}
    return table


# -------------------------------------------------------------------- report


def evaluate_reader(
    data_dir: Path,
    *,
    charts: int = 80,
    seed: int = 7,
    guard_threshold: float = DEFAULT_THRESHOLD,
    progress: Optional[Callable[[int, int], None]] = None,
    split: str = "eval",
    ocr: bool = True,
) -> dict[str, Any]:
    """Render, read back and score ``charts`` charts of ``split``; see the module docstring.

    ``ocr=False`` skips the price-axis reads (no axis figures, no OCR latency): a
    quick run while developing.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    frames = load_frames(Path(data_dir), split)
    if not frames:
        files = TUNE_FILES if split == "tune" else EVAL_FILES
        raise FileNotFoundError(f"no OHLCV files from {', '.join(files)} in {data_dir}")
    warm = synth.render(next(iter(frames.values())).iloc[-60:], "charles").png
    read_chart(warm, ocr=ocr)  # load the OCR model and warm the caches before timing
    results = []
    cases = plan(frames, charts, seed, held_out=split == "eval")
    for i, case in enumerate(cases):
        results.append(_measure_case(case, frames[case.file], ocr))
        if progress:
            progress(i + 1, len(cases))
    negatives = synth.negatives(seed, closes=frames[sorted(frames)[0]].iloc[-120:])
    neg_scores = {name: guard_score(img) for name, img in negatives.items()}
    report = _report(results, neg_scores, guard_threshold, ocr)
    report["split"] = split
    return report


def _pct(values: list[float], q: float) -> Optional[float]:
    return round(float(np.percentile(values, q)), 4) if values else None


def _report(results: list[dict[str, Any]], neg_scores: dict[str, float], threshold: float,
            ocr: bool = True) -> dict[str, Any]:
    errors = np.concatenate([r["err"] for r in results if "err" in r]) if any("err" in r for r in results) else []
    exact = [r for r in results if "err" in r]
    axis = [r["axis_err"] for r in results if "axis_err" in r]
    patterns = _f1([r["patterns"] for r in exact])
    pos_ok = [r["guard"] >= threshold for r in results]
    neg_ok = [s < threshold for s in neg_scores.values()]
    styles = sorted({r["case"].style for r in results})
    return {
        "charts": len(results),
        "styles": styles,
        "held_out_from": str(HELD_OUT_FROM.date()),
        "ohlc_error_pct_of_range": {"median": _pct(list(errors), 50), "p95": _pct(list(errors), 95),
                                    "max": _pct(list(errors), 100)},
        "bar_count_exact_rate": round(len(exact) / len(results), 4),
        "patterns": patterns,
        "pattern_macro_f1": _macro(patterns),
        "pattern_macro_f1_whole_pixel_ceiling": _macro(_f1([r["ceiling"] for r in results if "ceiling" in r])),
        "axis_read_rate": round(len(axis) / len(results), 4) if ocr else None,
        "axis_error_pct_of_range": {"median": _pct(axis, 50), "p95": _pct(axis, 95), "max": _pct(axis, 100)},
        "guard": {"threshold": threshold, "accuracy": round((sum(pos_ok) + sum(neg_ok)) / (len(pos_ok) + len(neg_ok)), 4),
                  "charts_accepted": round(float(np.mean(pos_ok)), 4), "negatives_refused": round(float(np.mean(neg_ok)), 4),
                  "negatives": len(neg_ok),
                  "refused_charts": [_name(r["case"]) for r in results if r["guard"] < threshold],
                  "accepted_negatives": [k for k, s in neg_scores.items() if s >= threshold]},
        "latency_ms": _latency(results),
        "failures": [{"chart": _name(r["case"]), "bars_read": r["n"], "bars": r["case"].bars}
                     for r in results if "err" not in r],
    }


def _macro(table: dict[str, dict[str, float]]) -> float:
    return round(float(np.mean([p["f1"] for p in table.values()])), 4)


def _latency(results: list[dict[str, Any]]) -> dict[str, Optional[float]]:
    """Wall and CPU (this process) milliseconds per chart, p50 and p95, with OCR where measured."""
    out: dict[str, Optional[float]] = {}
    for key, name in (("ms", ""), ("ms_ocr", "_ocr"), ("cpu_ms", "_cpu"), ("cpu_ms_ocr", "_cpu_ocr")):
        values = [r[key] for r in results if key in r]
        out[f"p50{name}"], out[f"p95{name}"] = _pct(values, 50), _pct(values, 95)
    return out


def _name(case: Case) -> str:
    extras = [x for x in ("volume" if case.volume else "", case.overlay, case.damage) if x]
    return f"{case.file.split('-')[1] if '-' in case.file else case.file}@{case.start}+{case.bars} " \
           f"{case.style} {case.size[0]}x{case.size[1]}" + (f" ({', '.join(extras)})" if extras else "")


def sweep_reader(seeds: Sequence[int] = (1, 2, 3), per_style: int = 6,
                 progress: Optional[Callable[[int, int], None]] = None) -> dict[str, Any]:
    """Bar-count robustness on the bundled demo prices (not a tuning or evaluation window).

    For each seed, ``per_style`` charts of every style with a random window (40, 60, 90
    or 120 bars), size, volume panel, overlay (none, moving averages, Bollinger bands)
    and damage (PNG, JPEG, JPEG resized to 80 %) are rendered and read without OCR; the
    figure is the share read with exactly the true number of bars, and ``failures``
    names the others. The draws depend on the seed only.
    """
    prices = load_csv(demo_paths()[0])
    styles = list(synth.MPF_STYLES) + list(synth.THEMES)
    total, exact, failures = len(seeds) * len(styles) * per_style, 0, []
    done = 0
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for style in styles:
            for _ in range(per_style):
                bars = int(rng.choice([40, 60, 90, 120]))
                start = int(rng.integers(0, len(prices) - bars + 1))
                size = _SIZES[int(rng.integers(len(_SIZES)))]
                volume = bool(rng.integers(2))
                overlay = ("", "mav", "bollinger")[int(rng.integers(3))]
                damage = ("", "jpeg", "jpeg+resize")[int(rng.integers(3))]
                case = Case("demo", start, bars, style, volume, overlay, size, damage)
                read = len(digitize(_render(case, prices)[0]).bars)
                exact += read == bars
                if read != bars:
                    failures.append({"chart": f"{_name(case)} (seed {seed})", "bars_read": read, "bars": bars})
                done += 1
                if progress:
                    progress(done, total)
    return {"charts": total, "seeds": list(seeds), "per_style": per_style, "styles": len(styles),
            "bar_count_exact": exact, "bar_count_exact_rate": round(exact / max(total, 1), 4), "failures": failures}
