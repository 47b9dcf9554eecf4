"""Time splits with an embargo: no sample's window or label period reaches into another split.

Each ticker's timeline (``split_scope="ticker"``; or the union of all
timelines, ``"global"``) is cut into train | val | test by ``val_fraction`` and
``test_fraction`` of its source bars. A sample belongs to a split only when its
whole footprint -- the first bar of its window to the last bar of its label
horizon -- lies inside that split's region; samples that straddle a cut are
dropped (*purged*). Before each cut, ``gap`` source bars belong to no split,
where ``gap = embargo * (most source bars in one bar of the coarsest timeframe
built)``: at least ``embargo >= horizon`` bars of every timeframe separate the
last label of one split from the first window of the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

import numpy as np
import pandas as pd

from ..config import DatasetConfig
from .windows import Series, Window, ns

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Regions:
    """Source-bar positions of one timeline's splits: [start, stop) each, and the timeline itself."""

    timeline: np.ndarray  # int64 ns, ascending
    bounds: dict[str, tuple[int, int]]
    gap: int

    def split_of(self, first: pd.Timestamp, last: pd.Timestamp) -> Optional[str]:
        """The split whose region holds [first, last] entirely, else None (purged)."""
        lo = int(np.searchsorted(self.timeline, first.value, side="left"))
        hi = int(np.searchsorted(self.timeline, last.value, side="right")) - 1
        for name, (start, stop) in self.bounds.items():
            if start <= lo and hi < stop:
                return name
        return None


def gap_bars(series: Iterable[Series], embargo: int) -> int:
    """``embargo`` bars of the coarsest series, in source bars (its longest bar counts)."""
    widest = 1
    for s in series:
        if len(s.base_bars) > 1:
            widest = max(widest, int(np.diff(s.base_bars).max()))
    return embargo * widest


def regions(timeline: np.ndarray, cfg: DatasetConfig, gap: int) -> Regions:
    """Cut ``timeline`` (source bar times) into train / val / test with ``gap`` bars before each cut."""
    n = len(timeline)
    cut_val = int(round(n * (1.0 - cfg.val_fraction - cfg.test_fraction)))
    cut_test = int(round(n * (1.0 - cfg.test_fraction)))
    bounds: dict[str, tuple[int, int]] = {}
    has_val, has_test = cut_test > cut_val, n > cut_test
    bounds["train"] = (0, cut_val - gap if (has_val or has_test) else n)
    if has_val:
        bounds["val"] = (cut_val, cut_test - gap if has_test else n)
    if has_test:
        bounds["test"] = (cut_test, n)
    return Regions(timeline, bounds, gap)


def plan_regions(
    frames: dict[str, pd.DataFrame], series: dict[str, list[Series]], cfg: DatasetConfig
) -> dict[str, Regions]:
    """Regions per ticker: each ticker's own timeline, or one shared timeline (global scope)."""
    gaps = {t: gap_bars(series.get(t, []), cfg.embargo_bars) for t in frames}
    if cfg.split_scope == "global":
        union = np.unique(np.concatenate([ns(f.index) for f in frames.values()]))
        shared = regions(union, cfg, max(gaps.values(), default=cfg.embargo_bars))
        return {t: shared for t in frames}
    return {t: regions(ns(f.index), cfg, gaps[t]) for t, f in frames.items()}


def assign(window: Window, plan: dict[str, Regions]) -> Optional[str]:
    """The split of a window (None: purged)."""
    return plan[window.series.ticker].split_of(window.start_time, window.label_end_time)


def class_balance(pairs: Iterable[tuple[str, str]]) -> dict[str, dict[str, int]]:
    """{split: {action: count}} from (split, action) pairs, every split and action listed."""
    table = {name: {"BUY": 0, "SELL": 0, "HOLD": 0} for name in SPLITS}
    for split, action in pairs:
        table[split][action] += 1
    return table
