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
    a.add_argument(
        "--news-feed", action="append", metavar="URL_OR_FILE",
        help="an RSS/Atom feed, URL or file (repeatable; '{ticker}' is filled in)",
    )
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
    th = tsub.add_parser("news-head", help="logistic head on frozen MiniLM embeddings (the baseline; no torch)")
    th.add_argument("--data", type=Path, default=Path("datasets/financial_phrasebank/fpb_split.csv"))
    th.add_argument("--out", type=Path, required=True, help="weights folder (the package's holds the fine-tuned model)")
    th.add_argument("--seed", type=int, default=0)
    tm = tsub.add_parser("news-model", help="fine-tune MiniLM (LoRA) + calibrated head on the FPB train split (torch)")
    tm.add_argument("--data", type=Path, default=Path("datasets/financial_phrasebank/fpb_split.csv"))
    tm.add_argument("--out", type=Path, default=None, help="weights folder (default: the package's)")
    tm.add_argument("--epochs", type=int, default=None)
    tm.add_argument("--method", choices=("lora", "full"), default=None, help="LoRA factors, or every encoder matrix")
    tm.add_argument("--rank", type=int, default=None, help="LoRA rank (full: rank the saved delta is truncated to)")
    tm.add_argument("--lr", type=float, default=None, help="encoder learning rate (LoRA factors, or the top layer)")
    tm.add_argument("--layer-decay", type=float, default=None, help="full: lr factor per layer further down")
    tm.add_argument("--schedule", choices=("cosine", "linear"), default=None, help="decay after the warm-up")
    tm.add_argument("--seed", type=int, default=None)
    tm.add_argument("--soup", type=int, default=None, help="models to train and maybe average (default 3)")
    tm.add_argument("--threads", type=int, default=None, help="torch CPU threads")

    s = sub.add_parser("sentiment", help="score headlines: one result per item, in order")
    s_in = s.add_mutually_exclusive_group(required=True)
    s_in.add_argument("--news", action="append", metavar="TEXT", help="a headline (repeatable)")
    s_in.add_argument("--file", type=Path, metavar="FILE", help="headlines, one per line ('-': stdin)")
    s.add_argument("--backend", metavar="SPEC", default=None, help="provider:model (default: the news backend, builtin)")
    s.add_argument("--ticker", help="the asset the headlines are about (chat backends)")
    s.add_argument("--no-phrases", action="store_true", help="builtin: skip finding the phrases behind each label")
    s.add_argument("--json", action="store_true", help="one JSON object per line")
    s.add_argument("--config", type=Path, metavar="TOML", help="settings file (default ./alphasignal.toml)")

    e = sub.add_parser("eval", help="evaluations")
    esub = e.add_subparsers(dest="eval_command", required=True, metavar="WHAT")
    es = esub.add_parser("sentiment", help="accuracy on the Financial PhraseBank test split")
    es.add_argument("--data", type=Path, default=Path("datasets/financial_phrasebank/fpb_split.csv"))
    es.add_argument("--backend", metavar="SPEC", default="builtin", help="provider:model to evaluate (default builtin)")
    es.add_argument("--limit", type=int, default=None, help="score only N test rows (stratified), for slow backends")
    es.add_argument("--weights", type=Path, default=None, help="builtin: weights folder (default: the package's)")
    es.add_argument("--config", type=Path, metavar="TOML", help="settings file (default ./alphasignal.toml)")
    es.add_argument("--save", action="store_true", help="also write metrics.json beside the weights")
    es.add_argument("--json", action="store_true")

    from . import cli_data, cli_export, cli_finetune, cli_serve

    cli_data.add_parsers(sub, bsub, esub)
    for module in (cli_finetune, cli_export, cli_serve):
        module.add_parsers(sub)
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
        "news": args.news, "news_file": args.news_file, "news_feeds": args.news_feed,
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
        for note in (*decision.meta.news_warnings, *decision.meta.news_flags):
            print(f"{PROG}: warning: {note}", file=sys.stderr)
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
    if args.bench_command == "dataset":
        from .cli_data import cmd_bench_dataset

        return cmd_bench_dataset(args)
    from .bench import run_pipeline_bench

    return run_pipeline_bench(args)


def cmd_train(args: argparse.Namespace) -> int:
    from .news.model import WEIGHTS_DIR

    if args.train_command == "news-model":
        from dataclasses import replace

        from .news.finetune import FinetuneConfig, finetune

        flags = ("method", "epochs", "rank", "lr", "layer_decay", "schedule", "seed", "soup", "threads")
        given = {k: getattr(args, k) for k in flags if getattr(args, k) is not None}
        log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
        record = finetune(args.data, args.out or WEIGHTS_DIR, replace(FinetuneConfig(), **given), log=log)
    else:
        from .news.train import train_head

        record = train_head(args.data, args.out, seed=args.seed)
    print(json.dumps(record, indent=2))
    return 0


def cmd_sentiment(args: argparse.Namespace) -> int:
    texts = list(args.news) if args.news else _read_lines(args.file)
    settings = _settings(args)
    spec = args.backend or settings.pipeline.news_backend
    if spec == "builtin":
        from .news.score import score_builtin

        results = score_builtin(texts, phrases=not args.no_phrases)
    else:
        from .backends.base import get_backend
        from .news.score import score_with_backend

        results = score_with_backend(texts, get_backend(spec, settings), ticker=args.ticker)
    failed = 0
    for row in results:
        failed += row.get("sentiment") is None and bool(row["text"].strip())
        print(json.dumps(row, ensure_ascii=False) if args.json else _sentiment_line(row), flush=True)
    return 1 if failed else 0


def _read_lines(path: Path) -> list[str]:
    from .errors import NewsError

    if str(path) == "-":
        return sys.stdin.read().splitlines()
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise NewsError(f"news file not found: {path}") from None
    except UnicodeDecodeError:
        raise NewsError(f"news file is not UTF-8 text: {path}") from None
    except OSError as exc:
        raise NewsError(f"cannot read {path}: {exc.strerror}") from None


def _sentiment_line(row: dict) -> str:
    if row.get("sentiment") is None:
        return f"{row['line']:>4}  -        {row['error']}"
    factors = "; ".join(row.get("key_factors", []))
    flag = "  [flagged: instruction-like text]" if row.get("flags") else ""
    return f"{row['line']:>4}  {row['sentiment']:8s} {row['confidence']:.2f}  {row['text'][:90]}" + (
        f"\n      because: {factors}" if factors else ""
    ) + flag


def cmd_eval(args: argparse.Namespace) -> int:
    if args.eval_command == "chart-reader":
        from .cli_data import cmd_eval_reader

        return cmd_eval_reader(args)
    from .news.train import METRICS_FILE

    if args.backend == "builtin":
        from .news.model import WEIGHTS_DIR, SentimentModel
        from .news.train import evaluate

        weights = args.weights or WEIGHTS_DIR
        out = weights / METRICS_FILE if args.save else None
        model = SentimentModel.load(weights)
        if args.limit is None:
            metrics = evaluate(args.data, model, out_path=out, progress=True)
        else:
            from .news.evaluation import evaluate_scorer

            metrics = evaluate_scorer(args.data, model, limit=args.limit, progress=True)
    else:
        from .backends.base import get_backend
        from .news.evaluation import BackendScorer, evaluate_scorer

        backend = get_backend(args.backend, _settings(args))
        try:
            metrics = evaluate_scorer(args.data, BackendScorer(backend), limit=args.limit, progress=True, extra={"backend": args.backend})
        finally:
            backend.close()
    if args.json:
        print(json.dumps(metrics, indent=2))
        return 0
    from .render_text import metrics_table

    print(metrics_table(metrics))
    return 0


COMMANDS = {
    "analyze": cmd_analyze, "config": cmd_config, "backends": cmd_backends,
    "bench": cmd_bench, "train": cmd_train, "eval": cmd_eval, "sentiment": cmd_sentiment,
    "dataset": lambda args: _data_command("cmd_dataset", args),
    "chart": lambda args: _data_command("cmd_chart", args),
    "finetune": lambda args: _model_command("cli_finetune", args),
    "export": lambda args: _model_command("cli_export", args),
    "serve": lambda args: _model_command("cli_serve", args),
}


def _model_command(module: str, args: argparse.Namespace) -> int:
    import importlib

    return importlib.import_module(f".{module}", __package__).run(args)


def _data_command(name: str, args: argparse.Namespace) -> int:
    from . import cli_data

    return getattr(cli_data, name)(args)


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
