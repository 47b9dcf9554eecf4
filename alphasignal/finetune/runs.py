"""The run folder of a fine-tuning run: layout, resume, the summary JSON and the loss plot.

``<output_dir>/<run_name>/`` holds::

    adapter/                      the LoRA adapter (peft save_pretrained) + the processor/tokenizer
    checkpoints/checkpoint-<step>/  Trainer checkpoints (adapter, optimizer, scheduler, RNG, trainer_state.json)
    summary.json                  written last, atomically: only a finished run has one
    loss.png                      train (and val) loss against the step

An existing folder is never reused silently: ``resume`` continues it from its
latest checkpoint, ``overwrite`` removes it first (only if it looks like a run
folder), anything else is a ``TrainingError``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Optional

from ..errors import TrainingError

SUMMARY = "summary.json"
LOSS_PLOT = "loss.png"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


@dataclass(frozen=True)
class RunPaths:
    """Where a run's files go."""

    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def adapter(self) -> Path:
        return self.root / "adapter"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def summary(self) -> Path:
        return self.root / SUMMARY

    @property
    def loss_plot(self) -> Path:
        return self.root / LOSS_PLOT


def default_run_name(base_model: str, now: Optional[datetime] = None) -> str:
    """The base model's last path part plus a timestamp, e.g. ``Qwen2.5-VL-3B-Instruct-20250101-120000``."""
    stem = base_model.rstrip("/\\").replace("\\", "/").split("/")[-1] or "run"
    return f"{stem}-{(now or datetime.now()):%Y%m%d-%H%M%S}"


def latest_checkpoint(paths: RunPaths) -> Optional[Path]:
    """The checkpoint with the highest step, or None."""
    if not paths.checkpoints.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in paths.checkpoints.iterdir() if (m := _CHECKPOINT.match(p.name)) and p.is_dir()]
    return max(found)[1] if found else None


def plan_run(
    output_dir: Path, run_name: Optional[str], base_model: str, *, resume: bool = False, overwrite: bool = False
) -> tuple[RunPaths, Optional[Path]]:
    """Check the run folder can be used, without touching it; returns it and the checkpoint to resume from.

    Called before the (slow) model load, so a refusal costs nothing; ``start_run`` then prepares it.
    """
    if resume and overwrite:
        raise TrainingError("choose one of resume and overwrite: resume continues a run, overwrite starts it again")
    if resume:
        paths = RunPaths(Path(output_dir).resolve() / run_name) if run_name else _newest_run(Path(output_dir), base_model)
        checkpoint = latest_checkpoint(paths)
        if checkpoint is None:
            raise TrainingError(f"nothing to resume: {paths.checkpoints} holds no checkpoint-<step> folder; "
                                "train without --resume (and with --overwrite to start that run again)")
        return paths, checkpoint
    paths = RunPaths(Path(output_dir).resolve() / (run_name or default_run_name(base_model)))
    if paths.root.exists():
        if not overwrite:
            raise TrainingError(f"run folder already exists: {paths.root}; pass --resume to continue it, "
                                "--overwrite to start it again, or --run-name NAME for a new run")
        _check_removable(paths)
    return paths, None


def start_run(paths: RunPaths, checkpoint: Optional[Path]) -> None:
    """Prepare a planned run folder: clear a resumed run's results, or (re)create a new run's folder."""
    if checkpoint is not None:
        for stale in (paths.summary, paths.loss_plot):  # a failed resume must not leave the old summary standing
            stale.unlink(missing_ok=True)
        return
    if paths.root.exists():
        _check_removable(paths)
        shutil.rmtree(paths.root)
    paths.root.mkdir(parents=True)


def open_run(
    output_dir: Path, run_name: Optional[str], base_model: str, *, resume: bool = False, overwrite: bool = False
) -> tuple[RunPaths, Optional[Path]]:
    """``plan_run`` then ``start_run``: the run folder, ready to train into."""
    paths, checkpoint = plan_run(output_dir, run_name, base_model, resume=resume, overwrite=overwrite)
    start_run(paths, checkpoint)
    return paths, checkpoint


def _newest_run(output_dir: Path, base_model: str) -> RunPaths:
    prefix = default_run_name(base_model, datetime(2000, 1, 1)).rsplit("-", 2)[0] + "-"
    runs = [RunPaths(p.resolve()) for p in output_dir.glob(prefix + "*") if p.is_dir()] if output_dir.is_dir() else []
    runs = [r for r in runs if latest_checkpoint(r) is not None]
    if not runs:
        raise TrainingError(f"nothing to resume: no run of {base_model} with a checkpoint under {output_dir}; "
                            "pass --run-name NAME of the run to continue")
    return max(runs, key=lambda r: r.root.stat().st_mtime)


def _check_removable(paths: RunPaths) -> None:
    known = {"adapter", "checkpoints", SUMMARY, LOSS_PLOT}
    extra = [p.name for p in paths.root.iterdir() if p.name not in known] if paths.root.is_dir() else [paths.root.name]
    if extra:
        raise TrainingError(f"refusing to overwrite {paths.root}: it holds {', '.join(sorted(extra)[:3])}, "
                            "so it is not a training run folder; choose another --run-name")


def loss_history(log_history: Iterable[dict]) -> tuple[list[dict], list[dict]]:
    """(train, eval) losses as ``[{"step", "loss"}]`` from the Trainer's ``state.log_history``."""
    train, evals = [], []
    for entry in log_history:
        if "loss" in entry and "step" in entry:
            train.append({"step": int(entry["step"]), "loss": float(entry["loss"])})
        if "eval_loss" in entry and "step" in entry:
            evals.append({"step": int(entry["step"]), "loss": float(entry["eval_loss"])})
    return train, evals


def write_summary(paths: RunPaths, summary: dict[str, Any]) -> Path:
    """Write ``summary.json`` atomically (temp file + rename), so a crash never leaves half of one."""
    tmp = paths.summary.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2, default=str, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, paths.summary)
    return paths.summary


def plot_loss(paths: RunPaths, train: list[dict], evals: list[dict], title: str = "") -> Path:
    """``loss.png``: train loss (and val loss when any) against the optimizer step."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5), dpi=100)
    FigureCanvasAgg(fig)  # Agg, without pyplot: no GUI backend, no global state
    ax = fig.add_subplot()
    if train:
        ax.plot([p["step"] for p in train], [p["loss"] for p in train], label="train", marker="." if len(train) < 50 else None)
    if evals:
        ax.plot([p["step"] for p in evals], [p["loss"] for p in evals], label="val", marker="o")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if train or evals:
        ax.legend()
    fig.tight_layout()
    fig.savefig(paths.loss_plot)
    return paths.loss_plot


def library_versions(names: Iterable[str]) -> dict[str, Optional[str]]:
    """Installed versions of ``names`` (None when absent), for the summary."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, Optional[str]] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out
