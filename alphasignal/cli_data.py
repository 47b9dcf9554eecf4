"""CLI commands for the data side: ``dataset build``, ``bench dataset``, ``chart read``, ``eval chart-reader``.

Kept apart from ``cli.py`` so that each file stays short; same conventions
(results on stdout, progress on stderr, ``--json`` for machines).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DEFAULT_OHLCV = Path("datasets/ohlcv")


def add_parsers(sub: Any, bench_sub: Any, eval_sub: Any) -> None:
    d = sub.add_parser("dataset", help="build fine-tuning datasets")
    dsub = d.add_subparsers(dest="dataset_command", required=True, metavar="ACTION")
    b = dsub.add_parser("build", help="prices -> charts -> labels -> train/val/test JSONL")
    b.add_argument("--config", type=Path, metavar="TOML", help="settings file; its [dataset] section")
    b.add_argument("--csv", type=Path, action="append", metavar="FILE_OR_DIR", help="OHLCV CSV file or folder (repeatable)")
    b.add_argument("--ticker", action="append", metavar="SYMBOL", help="yfinance symbol (repeatable; online or cached)")
    b.add_argument("--out", type=Path, metavar="DIR", help="output folder (default dataset.output_dir)")
    b.add_argument("--workers", type=int, help="render processes (default: CPU count)")
    b.add_argument("--no-progress", action="store_true")
    b.add_argument("--json", action="store_true")

    bd = bench_sub.add_parser("dataset", help="chart rendering throughput and memory")
    bd.add_argument("--n", type=int, default=400, help="charts to render (default 400)")
    bd.add_argument("--workers", type=int, default=None)
    bd.add_argument("--size", type=int, default=512)
    bd.add_argument("--bars", type=int, default=60)
    bd.add_argument("--no-baseline", action="store_true", help="skip timing plain mplfinance")
    bd.add_argument("--json", action="store_true")

    c = sub.add_parser("chart", help="the chart reader")
    csub = c.add_subparsers(dest="chart_command", required=True, metavar="ACTION")
    r = csub.add_parser("read", help="recover bars, price axis and patterns from a chart image")
    r.add_argument("image", type=Path)
    r.add_argument("--overlay", type=Path, metavar="PNG", help="draw the recovered candles over the image")
    r.add_argument("--no-ocr", action="store_true", help="do not read the price axis")
    r.add_argument("--config", type=Path, metavar="TOML")
    r.add_argument("--json", action="store_true")

    e = eval_sub.add_parser("chart-reader", help="render held-out charts, read them back, score against the truth")
    e.add_argument("--data", type=Path, default=DEFAULT_OHLCV, help="folder of OHLCV CSVs (default datasets/ohlcv)")
    e.add_argument("--charts", type=int, default=80)
    e.add_argument("--seed", type=int, default=7)
    e.add_argument("--guard-threshold", type=float, default=None)
    e.add_argument("--split", choices=("tune", "eval"), default="eval",
                   help="eval: the held-out windows the figures come from; tune: the windows the reader was tuned on")
    e.add_argument("--no-ocr", action="store_true", help="skip the price-axis read (faster; no axis figures)")
    e.add_argument("--sweep", type=int, nargs="+", metavar="SEED",
                   help="instead: bar-count robustness on the bundled demo prices, random charts of every style per seed")
    e.add_argument("--per-style", type=int, default=6, help="charts per style and seed with --sweep (default 6)")
    e.add_argument("--json", action="store_true")


def _progress(done: int, total: int) -> None:
    print(f"\r{done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)


def cmd_dataset(args: argparse.Namespace) -> int:
    from .config import load_settings
    from .dataset import build_dataset

    settings = load_settings(args.config)
    report = build_dataset(
        settings.dataset,
        out=args.out or settings.dataset.output_dir,
        csv=args.csv,
        tickers=args.ticker,
        workers=args.workers,
        progress=not args.no_progress,
    )
    print(json.dumps(report.as_dict(), indent=2, default=str) if args.json else report.summary())
    return 0


def cmd_bench_dataset(args: argparse.Namespace) -> int:
    from .dataset import run_render_benchmark

    result = run_render_benchmark(
        args.n, workers=args.workers, size=args.size, bars=args.bars, baseline=not args.no_baseline
    )
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print("\n".join(f"{key}: {value}" for key, value in result.items()))
    return 0


def cmd_chart(args: argparse.Namespace) -> int:
    from .chart.reader.read import read_chart
    from .config import load_settings
    from .inputs import load_image

    settings = load_settings(args.config)
    limits = settings.pipeline
    image, _ = load_image(args.image, max_bytes=limits.max_image_bytes, max_pixels=limits.max_image_pixels)
    reading = read_chart(
        image, ocr=not args.no_ocr, cfg=settings.builtin,
        max_pixels=limits.max_image_pixels, guard_threshold=limits.guard_threshold,
    )
    if args.overlay is not None:
        from .chart.reader.overlay import render_overlay

        render_overlay(image, reading, args.overlay)
    if args.json:
        print(json.dumps(reading.to_dict(), indent=2, default=str))
    else:
        axis = "axis read" if reading.axis is not None else f"axis not read ({reading.axis_reason})"
        signal = reading.signal
        print(f"{len(reading.bars)} bars, guard score {reading.guard_score:.2f}, {axis}")
        if reading.patterns:
            print("patterns: " + ", ".join(str(p) for p in reading.patterns))
        if signal is not None:
            print(f"signal: {signal.action} {signal.confidence:.2f} {signal.trend} - {signal.reasoning}")
        for warning in reading.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_eval_reader(args: argparse.Namespace) -> int:
    from .chart.reader.evaluate import evaluate_reader
    from .chart.reader.guard import DEFAULT_THRESHOLD
    from .errors import InputError

    if args.sweep:
        from .chart.reader.evaluate import sweep_reader

        if args.per_style < 1:
            raise InputError(f"--per-style must be at least 1, not {args.per_style}")
        metrics = sweep_reader(args.sweep, args.per_style, progress=_progress)
        print(json.dumps(metrics, indent=2) if args.json else _flat({k: v for k, v in metrics.items() if k != "failures"})
              + "".join(f"\nmiscounted: {f['chart']}: read {f['bars_read']} of {f['bars']}" for f in metrics["failures"]))
        return 0
    if not args.data.is_dir():
        raise InputError(f"OHLCV folder not found: {args.data} (pass --data DIR)")
    threshold = DEFAULT_THRESHOLD if args.guard_threshold is None else args.guard_threshold
    metrics = evaluate_reader(
        args.data, charts=args.charts, seed=args.seed, guard_threshold=threshold, progress=_progress,
        split=args.split, ocr=not args.no_ocr,
    )
    print(json.dumps(metrics, indent=2, default=str) if args.json else _flat(metrics))
    return 0


def _flat(metrics: dict, prefix: str = "") -> str:
    lines = []
    for key, value in metrics.items():
        if isinstance(value, dict):
            lines.append(_flat(value, f"{prefix}{key}."))
        else:
            lines.append(f"{prefix}{key}: {value}")
    return "\n".join(lines)
