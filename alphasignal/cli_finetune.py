"""CLI for fine-tuning the chart VLM: ``finetune train``, ``finetune init-tiny``, ``finetune eval``.

``finetune`` takes an action, so that each one keeps its own options::

    alphasignal finetune init-tiny models/tiny-base            # a tiny random VLM for the CPU path
    alphasignal finetune train --config examples/training-tiny.toml [--max-steps 30] [--json]
    alphasignal finetune eval --dataset dataset --base SPEC --tuned SPEC

``train`` reads the ``[training]`` section of the TOML file; its flags override it.
Results go to stdout (``--json`` for machines), the progress bar to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_parsers(sub: Any) -> None:
    """Add ``finetune`` and its actions to the top-level subparsers ``sub``."""
    f = sub.add_parser("finetune", help="fine-tune the chart VLM (LoRA), build a tiny base, compare models")
    fsub = f.add_subparsers(dest="finetune_command", required=True, metavar="ACTION")
    _train_parser(fsub)
    _init_tiny_parser(fsub)
    _eval_parser(fsub)


def _train_parser(fsub: Any) -> None:
    t = fsub.add_parser("train", help="LoRA fine-tuning on a built dataset (Unsloth on a GPU, or the CPU path)")
    t.add_argument("--config", type=Path, metavar="TOML", help="settings file; its [training] section")
    t.add_argument("--dataset", type=Path, metavar="DIR", help="dataset folder (default training.dataset)")
    t.add_argument("--base", metavar="PATH_OR_ID", help="base model folder or cached hub id (training.base_model)")
    t.add_argument("--method", choices=("auto", "unsloth", "cpu"), help="training.method")
    t.add_argument("--max-steps", type=int, metavar="N", help="optimizer steps (overrides epochs)")
    t.add_argument("--max-samples", type=int, metavar="N", help="use at most N train (and N val) rows, for quick checks")
    t.add_argument("--run-name", metavar="NAME", help="run folder name (default: base name + timestamp)")
    t.add_argument("--output-dir", type=Path, metavar="DIR", help="where run folders go (training.output_dir)")
    again = t.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue the run from its latest checkpoint")
    again.add_argument("--overwrite", action="store_true", help="delete an existing run folder of that name first")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--json", action="store_true", help="print the run summary as JSON")


def _init_tiny_parser(fsub: Any) -> None:
    i = fsub.add_parser("init-tiny", help="write a tiny random Gemma-3 VLM (CPU path, setup checks, tests)")
    i.add_argument("dir", type=Path, metavar="DIR", help="folder to write the checkpoint to (new or empty)")
    i.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")


def _eval_parser(fsub: Any) -> None:
    e = fsub.add_parser("eval", help="base vs fine-tuned model on the dataset's test split, through the pipeline")
    e.add_argument("--dataset", type=Path, required=True, metavar="DIR", help="dataset folder (its test split)")
    e.add_argument("--base", metavar="SPEC", help="backend spec of the base model (llamacpp:..., ollama:..., openai:...@...)")
    e.add_argument("--tuned", metavar="SPEC", help="backend spec of the fine-tuned model")
    e.add_argument("--limit", type=int, metavar="N", help="score only N test rows")
    e.add_argument("--mmproj", type=Path, metavar="GGUF", help="vision projector for llamacpp: specs")
    e.add_argument("--config", type=Path, metavar="TOML", help="settings file (default ./alphasignal.toml)")
    e.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    """Run the ``finetune`` action in ``args``; returns the exit code."""
    return {"train": cmd_train, "init-tiny": cmd_init_tiny, "eval": cmd_eval}[args.finetune_command](args)


def training_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ``[training]`` values given as flags (None: not given)."""
    given = {
        "dataset": args.dataset, "base_model": args.base, "method": args.method, "max_steps": args.max_steps,
        "run_name": args.run_name, "output_dir": args.output_dir, "resume": True if args.resume else None,
    }
    return {key: value for key, value in given.items() if value is not None}


def cmd_train(args: argparse.Namespace) -> int:
    from .config import load_settings
    from .errors import InputError
    from .finetune.train import train_model

    if args.max_samples is not None and args.max_samples < 1:
        raise InputError("--max-samples must be at least 1")
    settings = load_settings(args.config, training=training_overrides(args))
    result = train_model(
        settings.training, overwrite=args.overwrite, max_samples=args.max_samples, progress=not args.no_progress
    )
    print(json.dumps(result.summary, indent=2, default=str) if args.json else result.summary_line())
    return 0


def cmd_init_tiny(args: argparse.Namespace) -> int:
    from .errors import TrainingError
    from .finetune.tiny import TinyConfig, build_tiny_vlm

    out: Path = args.dir
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TrainingError(f"{out} exists and is not an empty folder; choose a new DIR for the tiny model")
    path = build_tiny_vlm(out, TinyConfig(seed=args.seed))
    print(path)
    print(f"next: alphasignal finetune train --config examples/training-tiny.toml --base {path}", file=sys.stderr)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .finetune.evaluate import cmd_eval as evaluate_command

    return evaluate_command(args)
