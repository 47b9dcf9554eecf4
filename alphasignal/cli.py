"""The command line: parse, call the library, print. Results on stdout, messages on stderr.

Exit codes: 0 ok; 1 an alphasignal error or a failed decision; 2 a usage or config error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

PROG = "alphasignal"


def _add_backend_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--chart-backend", metavar="SPEC", help="provider:model for the chart (default builtin)")
    p.add_argument("--news-backend", metavar="SPEC", help="provider:model for the news (default builtin)")
    p.add_argument("--mmproj", type=Path, metavar="GGUF", help="vision projector for a llamacpp chart backend")
    p.add_argument("--config", type=Path, metavar="TOML", help="settings file (default ./alphasignal.toml)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Chart + news -> one validated JSON trading decision.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    a = sub.add_parser("analyze", help="analyse a chart and news into a decision")
    src = a.add_argument_group("chart (one of)")
    src.add_argument("--image", type=Path, help="candlestick chart image (PNG/JPEG)")
    src.add_argument("--csv", type=Path, help="OHLCV CSV; the chart is rendered from it and the prices kept")
    src.add_argument("--ticker", help="fetch prices with yfinance (online only); also names the asset")
    src.add_argument("--demo", action="store_true", help="bundled AAPL chart, prices and headlines")
    a.add_argument("--news", action="append", metavar="TEXT", help="a news item (repeatable)")
    a.add_argument("--news-file", type=Path, metavar="FILE", help="news items, one per line")
    a.add_argument("--output", "-o", type=Path, metavar="FILE", help="write the decision here (atomic, locked)")
    a.add_argument("--history", type=Path, metavar="FILE", help="JSONL history (default decisions.jsonl beside --output)")
    a.add_argument("--json", action="store_true", help="print only the decision JSON on stdout")
    a.add_argument("--chart-weight", type=float, metavar="W")
    a.add_argument("--news-weight", type=float, metavar="W")
    a.add_argument("--min-confidence", type=float, metavar="C")
    _add_backend_flags(a)

    c = sub.add_parser("config", help="settings")
    csub = c.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show = csub.add_parser("show", help="print the effective settings (flag > env > file > default)")
    show.add_argument("--json", action="store_true")
    _add_backend_flags(show)

    b = sub.add_parser("backends", help="list backend providers and what they can do")
    b.add_argument("--json", action="store_true")

    bench = sub.add_parser("bench", help="benchmarks")
    bsub = bench.add_subparsers(dest="bench_command", required=True, metavar="WHAT")
    bp = bsub.add_parser("pipeline", help="warm latency, cold CLI time, branch concurrency")
    bp.add_argument("--runs", type=int, default=50, help="warm decisions to time (default 50)")
    bp.add_argument("--cold-runs", type=int, default=5, help="cold CLI runs to time (default 5)")
    bp.add_argument("--delay", type=float, default=0.4, help="model-server delay per branch, seconds")
    bp.add_argument("--json", action="store_true")

    t = sub.add_parser("train", help="train the builtin models")
    tsub = t.add_subparsers(dest="train_command", required=True, metavar="WHAT")
    th = tsub.add_parser("news-head", help="fit the news head on the Financial PhraseBank train split")
    th.add_argument("--data", type=Path, default=Path("datasets/financial_phrasebank/fpb_split.csv"))
    th.add_argument("--out", type=Path, default=None, help="weights folder (default: the package's)")
    th.add_argument("--seed", type=int, default=0)

    e = sub.add_parser("eval", help="evaluations")
    esub = e.add_subparsers(dest="eval_command", required=True, metavar="WHAT")
    es = esub.add_parser("sentiment", help="accuracy on the Financial PhraseBank test split")
    es.add_argument("--data", type=Path, default=Path("datasets/financial_phrasebank/fpb_split.csv"))
    es.add_argument("--weights", type=Path, default=None, help="head folder (default: the package's)")
    es.add_argument("--save", action="store_true", help="also write metrics.json beside the weights")
    es.add_argument("--json", action="store_true")
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def _settings(args: argparse.Namespace, **pipeline: Any):
    from .config import load_settings

    pipeline.update(chart_backend=getattr(args, "chart_backend", None), news_backend=getattr(args, "news_backend", None))
    overrides: dict[str, Any] = {"pipeline": {k: v for k, v in pipeline.items() if v is not None}}
    if getattr(args, "mmproj", None):
        overrides["backends"] = {"llamacpp_mmproj": args.mmproj}
    return load_settings(getattr(args, "config", None), **overrides)


def cmd_analyze(args: argparse.Namespace) -> int:
    from .errors import InputError

    if not (args.image or args.csv or args.ticker or args.demo):
        raise InputError("nothing to analyse: give --image, --csv, --ticker or --demo")
    if args.output is not None and not args.output.parent.resolve().is_dir():
        from .errors import OutputError

        raise OutputError(f"output directory does not exist: {args.output.parent}")
    settings = _settings(
        args, chart_weight=args.chart_weight, news_weight=args.news_weight, min_confidence=args.min_confidence
    )
    request = {
        "image": args.image, "csv": args.csv, "ticker": args.ticker, "demo": args.demo,
        "news": args.news, "news_file": args.news_file,
    }
    if args.output is None:
        decision = _decide(settings, args, request)
    else:
        from .agent.cron import run_lock, save_decision

        with run_lock(args.output, settings.pipeline.lock_timeout_s):
            decision = _decide(settings, args, request)
            save_decision(decision, args.output, args.history or settings.pipeline.history_file)
    return _report(decision, args)


def _decide(settings, args: argparse.Namespace, request: dict):
    from .agent.graph import build_agent

    agent = build_agent(settings)
    try:
        return agent.invoke(request)
    finally:
        agent.close()


def _report(decision, args: argparse.Namespace) -> int:
    from .render_text import summary

    if args.json:
        print(decision.model_dump_json(indent=2))
    else:
        print(summary(decision, args.output))
    if not decision.ok:
        print(f"{PROG}: error: {decision.reasons[0]}", file=sys.stderr)
        return 1
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    settings = _settings(args)
    data = settings.model_dump(mode="json")
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        from .render_text import toml_text

        print(toml_text(data))
    return 0


def cmd_backends(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from .backends.base import available_providers, backend_class

    rows = {name: asdict(backend_class(name).capabilities) for name in available_providers()}
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for name, caps in rows.items():
        flags = ", ".join(k for k, v in caps.items() if v)
        print(f"{name:10s} {flags}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_pipeline_bench

    return run_pipeline_bench(args)


def cmd_train(args: argparse.Namespace) -> int:
    from .news.model import WEIGHTS_DIR
    from .news.train import train_head

    metrics = train_head(args.data, args.out or WEIGHTS_DIR, seed=args.seed)
    print(json.dumps(metrics, indent=2))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .news.model import WEIGHTS_DIR, SentimentModel
    from .news.train import METRICS_FILE, evaluate

    weights = args.weights or WEIGHTS_DIR
    out = weights / METRICS_FILE if args.save else None
    metrics = evaluate(args.data, SentimentModel.load(weights), out_path=out, progress=True)
    if args.json:
        print(json.dumps(metrics, indent=2))
        return 0
    from .render_text import metrics_table

    print(metrics_table(metrics))
    return 0


COMMANDS = {
    "analyze": cmd_analyze, "config": cmd_config, "backends": cmd_backends,
    "bench": cmd_bench, "train": cmd_train, "eval": cmd_eval,
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    from .errors import AlphaSignalError

    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except AlphaSignalError as exc:
        print(f"{PROG}: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
