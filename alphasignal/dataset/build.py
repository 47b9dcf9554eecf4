"""``build_dataset``: prices in, a versioned fine-tuning dataset out.

Output folder::

    images/<id>.png                 one chart per sample
    train.jsonl val.jsonl test.jsonl chat rows (see ``records``)
    manifest.json                   config, source hashes, counts, label balance, versions, dataset hash

The dataset is built in a hidden sibling folder and renamed into place at the
end, so an interrupted build never leaves a half-written dataset where a
finished one is expected; a later build removes the leftovers of a dead one.
Two builds from the same config and sources give byte-identical JSONL files and
images (``dataset_sha256`` in the manifest is the same); only ``manifest.build``
(time, duration, workers) differs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from ..config import DatasetConfig
from ..errors import ConfigError, PriceDataError
from . import records
from .news import load_news
from .output import check_target, publish, staging_dir
from .plan import Plan, Sample, chart_data, make_plan, pair_hard_negatives, pair_news, render_spec, window_frame
from .render import check_styles
from .sources import PriceSource, load_sources
from .splits import SPLITS, class_balance
from .windows import check_timeframes
from .workers import render_all

BUILD_VERSION = "1"
FORMAT = "alphasignal.chart-dataset"


@dataclass
class BuildReport:
    """What a build made: counts, class balance per split, timing, where."""

    out: Path
    samples: int
    splits: dict[str, int]
    class_balance: dict[str, dict[str, int]]
    timeframes: dict[str, int]
    tickers: dict[str, int]
    purged: int
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    hard_negatives: int = 0
    news_paired: int = 0
    workers: int = 1
    seconds: float = 0.0
    render_seconds: float = 0.0
    charts_per_s: float = 0.0
    dataset_sha256: str = ""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["out"] = str(self.out)
        return data

    def summary(self) -> str:
        split_text = " / ".join(f"{name} {self.splits.get(name, 0):,}" for name in SPLITS)
        lines = [
            f"dataset: {self.samples:,} samples in {self.out} ({split_text}); "
            f"{len(self.tickers)} ticker(s), timeframes {', '.join(self.timeframes) or '-'}",
            f"{'class balance':14}{'BUY':>8}{'SELL':>8}{'HOLD':>8}",
        ]
        for name in SPLITS:
            row = self.class_balance.get(name, {})
            lines.append(f"  {name:12}" + "".join(f"{row.get(a, 0):>8,}" for a in ("BUY", "SELL", "HOLD")))
        lines.append(f"purged {self.purged:,} window(s) straddling a split cut or its embargo")
        if self.hard_negatives or self.news_paired:
            lines.append(f"hard negatives {self.hard_negatives:,}; samples with news {self.news_paired:,}")
        lines += [f"skipped: {text}" for text in self.skipped]
        lines += [f"warning: {text}" for text in self.warnings]
        lines.append(
            f"rendered {self.samples:,} charts in {self.render_seconds:.1f} s ({self.charts_per_s:.1f} charts/s, "
            f"{self.workers} worker(s)); total {self.seconds:.1f} s"
        )
        return "\n".join(lines)


def build_dataset(
    cfg: DatasetConfig,
    *,
    out: Path,
    csv: Optional[list[Path]] = None,
    tickers: Optional[list[str]] = None,
    workers: Optional[int] = None,
    progress: bool = True,
) -> BuildReport:
    """Build the dataset described by ``cfg`` into ``out``; ``csv`` / ``tickers`` / ``workers`` override it."""
    start = time.perf_counter()
    out = Path(out)
    cfg = _effective(cfg, csv, tickers, workers)
    check_timeframes(cfg.timeframes)
    check_styles(cfg.styles)
    check_target(out)
    sources = load_sources(cfg)
    plan = make_plan(sources, cfg, _progress_iter(progress))
    if not plan.samples:
        raise PriceDataError(
            f"no samples: all {plan.purged} window(s) straddle a split cut; use a longer history, "
            "a smaller window or horizon, or smaller val/test fractions"
        )
    extras = _extras(plan, cfg)
    n_workers = cfg.workers or os.cpu_count() or 1
    staging = staging_dir(out)
    try:
        t_render = time.perf_counter()
        hashes = _render(plan, cfg, staging, n_workers, progress)
        render_s = time.perf_counter() - t_render
        digest = _write_rows(plan, cfg, staging, hashes, {s.ticker: s.sha256 for s in sources})
        report = _report(out, plan, sources, extras, n_workers, render_s, digest)
        report.seconds = round(time.perf_counter() - start, 2)
        _write_manifest(staging, cfg, sources, plan, report)
        publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def _effective(
    cfg: DatasetConfig, csv: Optional[Sequence[Path]], tickers: Optional[Sequence[str]], workers: Optional[int]
) -> DatasetConfig:
    update: dict[str, Any] = {}
    if csv is not None:
        update["csv"] = tuple(Path(p) for p in csv)
    if tickers is not None:
        update["tickers"] = tuple(tickers)
    if workers is not None:
        if workers < 1:
            raise ConfigError(f"workers must be at least 1, got {workers}")
        update["workers"] = workers
    return cfg.model_copy(update=update) if update else cfg


def _extras(plan: Plan, cfg: DatasetConfig) -> dict[str, int]:
    paired = pair_news(plan.samples, load_news(cfg.news_file), cfg) if cfg.news_file else 0
    negatives = pair_hard_negatives(plan.samples) if cfg.hard_negatives else 0
    return {"news_paired": paired, "hard_negatives": negatives}


def _render(plan: Plan, cfg: DatasetConfig, staging: Path, workers: int, progress: bool) -> dict[str, str]:
    bar = _bar(progress, len(plan.samples), "render")
    try:
        hashes, _ = render_all(chart_data(plan.samples, cfg), staging, render_spec(cfg), workers, bar.update)
    finally:
        bar.close()
    return hashes


# -------------------------------------------------------------------- rows


def _write_rows(plan: Plan, cfg: DatasetConfig, staging: Path, hashes: dict[str, str], source_sha: dict[str, str]) -> str:
    """Write train/val/test.jsonl; returns the dataset hash (sha256 over the three files)."""
    digest = hashlib.sha256()
    for split in SPLITS:
        path = staging / f"{split}.jsonl"
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            for sample in (s for s in plan.samples if s.split == split):
                fh.write(records.dumps(_row(sample, cfg, hashes[sample.image], source_sha)) + "\n")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _row(sample: Sample, cfg: DatasetConfig, image_sha: str, source_sha: dict[str, str]) -> dict[str, Any]:
    win = sample.window
    system, text = records.chart_prompt(win.series.ticker, window_frame(win) if sample.price_context else None)
    if cfg.news_in_prompt and sample.news:
        text += records.news_block(sample.news)
    return records.chat_row(sample.id, sample.split, sample.image, system, text, sample.labels.target,
                            _meta(sample, image_sha, source_sha[win.series.ticker]))


def _meta(sample: Sample, image_sha: str, source_sha: str) -> dict[str, Any]:
    win, labels = sample.window, sample.labels
    return {
        "ticker": win.series.ticker,
        "timeframe": win.series.timeframe,
        "bars": win.length,
        "horizon": win.horizon,
        "start": win.start_time.isoformat(),
        "end": win.end_time.isoformat(),
        "label_end": win.label_end_time.isoformat(),
        "style": sample.style,
        "price_context": sample.price_context,
        "forward_return": round(labels.forward_return, 6),
        "forward_atr": round(labels.forward_atr, 4),
        "patterns": [{"name": name, "sign": sign} for name, sign in labels.patterns],
        "states": labels.states,
        "readings": labels.readings,
        "news": list(sample.news),
        "hard_negative": sample.hard_negative,
        "hard_negative_distance": sample.hard_negative_distance,
        "image_sha256": image_sha,
        "source_sha256": source_sha,
    }


# ------------------------------------------------------------ manifest, report


def _report(out: Path, plan: Plan, sources: list[PriceSource], extras: dict[str, int], workers: int,
            render_s: float, digest: str) -> BuildReport:
    samples = plan.samples
    return BuildReport(
        out=out,
        samples=len(samples),
        splits={name: sum(s.split == name for s in samples) for name in SPLITS},
        class_balance=class_balance((s.split, s.labels.action) for s in samples),
        timeframes=_count(s.window.series.timeframe for s in samples),
        tickers=_count(s.window.series.ticker for s in samples),
        purged=plan.purged,
        skipped=list(plan.skipped),
        warnings=[w for src in sources for w in src.warnings],
        hard_negatives=extras["hard_negatives"],
        news_paired=extras["news_paired"],
        workers=workers,
        render_seconds=round(render_s, 2),
        charts_per_s=round(len(samples) / render_s, 1) if render_s > 0 else 0.0,
        dataset_sha256=digest,
    )


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def _write_manifest(staging: Path, cfg: DatasetConfig, sources: list[PriceSource], plan: Plan, report: BuildReport) -> None:
    from .. import __version__

    manifest = {
        "format": FORMAT,
        "build_version": BUILD_VERSION,
        "alphasignal_version": __version__,
        "libraries": _library_versions(),
        "config": cfg.model_dump(mode="json", exclude={"workers", "output_dir"}),  # what shapes the data
        "sources": [src.describe() for src in sources],
        "files": {name: f"{name}.jsonl" for name in SPLITS} | {"images": "images/"},
        "counts": report.splits | {"total": report.samples},
        "label_distribution": report.class_balance,
        "timeframes": report.timeframes,
        "tickers": report.tickers,
        "purged": report.purged,
        "skipped": report.skipped,
        "splits": {t: {"gap_bars": r.gap, "bounds": _bounds(r)} for t, r in plan.regions.items()},
        "hard_negatives": report.hard_negatives,
        "news_paired": report.news_paired,
        "dataset_sha256": report.dataset_sha256,
        "build": {
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seconds": report.seconds,
            "render_seconds": report.render_seconds,
            "charts_per_s": report.charts_per_s,
            "workers": report.workers,
        },
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _bounds(regions: Any) -> dict[str, list[str]]:
    """Each split's first and last source-bar time, for people reading the manifest."""
    import pandas as pd

    out = {}
    for name, (lo, hi) in regions.bounds.items():
        if hi > lo:
            out[name] = [pd.Timestamp(regions.timeline[lo]).isoformat(), pd.Timestamp(regions.timeline[hi - 1]).isoformat()]
    return out


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("matplotlib", "mplfinance", "numpy", "pandas", "pillow", "TA-Lib", "pydantic"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "unknown"
    return found


# ---------------------------------------------------------------- progress


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(enabled: bool, total: int, desc: str) -> Any:
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc, unit="chart" if desc == "render" else "window", file=sys.stderr,
                dynamic_ncols=True, mininterval=0.5)


def _progress_iter(enabled: bool) -> Any:
    def wrap(items: Iterable[Any], total: int, desc: str) -> Iterable[Any]:
        bar = _bar(enabled, total, desc)
        try:
            for item in items:
                yield item
                bar.update(1)
        finally:
            bar.close()

    return wrap
