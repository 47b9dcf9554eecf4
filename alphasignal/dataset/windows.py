"""Timeframes and windows: resample a history to coarser bars, then cut it into chart windows.

A resampled bar is stamped with the time of the **last** source bar it contains
(a weekly bar of Mon-Fri is stamped Friday, or Thursday in a holiday week), so
its timestamp is when it became known, and it remembers the first source bar as
well: a sample's footprint in time (first bar of the window to last bar of the
label horizon) is exact whatever the timeframe, which is what the splits need.
The last resampled bar is dropped because it may be incomplete.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pandas as pd

from ..errors import ConfigError

# name -> (nominal duration, pandas floor rule or period code)
TIMEFRAMES: dict[str, tuple[pd.Timedelta, str]] = {
    "1m": (pd.Timedelta(minutes=1), "1min"),
    "5m": (pd.Timedelta(minutes=5), "5min"),
    "15m": (pd.Timedelta(minutes=15), "15min"),
    "30m": (pd.Timedelta(minutes=30), "30min"),
    "1h": (pd.Timedelta(hours=1), "1h"),
    "4h": (pd.Timedelta(hours=4), "4h"),
    "1d": (pd.Timedelta(days=1), "1D"),
    "1w": (pd.Timedelta(days=7), "W-FRI"),
    "1mo": (pd.Timedelta(days=30), "M"),
}
_AGG = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}


@dataclass(frozen=True)
class Series:
    """One ticker at one timeframe: bars, plus the first source timestamp of each bar."""

    ticker: str
    timeframe: str
    frame: pd.DataFrame = field(repr=False)  # the OHLC contract; index = last source bar's time
    first: pd.DatetimeIndex = field(repr=False)  # first source bar's time, per bar
    base_bars: np.ndarray = field(repr=False)  # position in the source history of each bar's last bar


@dataclass(frozen=True)
class Window:
    """A sample's place in its series: bars [end - length + 1, end] are charted, (end, end + horizon] decide."""

    series: Series = field(repr=False)
    end: int
    length: int
    horizon: int

    @property
    def start(self) -> int:
        return self.end - self.length + 1

    @property
    def start_time(self) -> pd.Timestamp:
        return self.series.first[self.start]

    @property
    def end_time(self) -> pd.Timestamp:
        return self.series.frame.index[self.end]

    @property
    def label_end_time(self) -> pd.Timestamp:
        return self.series.frame.index[self.end + self.horizon]


def ns(index: pd.DatetimeIndex) -> np.ndarray:
    """Times as int64 nanoseconds, whatever the index's unit (pandas 3 keeps s/ms/us units)."""
    return pd.DatetimeIndex(index).as_unit("ns").asi8


def check_timeframes(names: tuple[str, ...]) -> None:
    unknown = [n for n in names if n not in TIMEFRAMES]
    if unknown:
        raise ConfigError(f"unknown timeframe(s) {', '.join(unknown)}: choose from {', '.join(TIMEFRAMES)}")


def base_timeframe(frame: pd.DataFrame) -> str:
    """The listed timeframe closest to the median spacing of the bars (1d for daily data with weekends)."""
    if len(frame) < 2:
        return "1d"
    spacing = pd.Series(frame.index).diff().median()
    return min(TIMEFRAMES, key=lambda n: abs(np.log(TIMEFRAMES[n][0] / spacing)))


def build_series(ticker: str, frame: pd.DataFrame, timeframe: str) -> Optional[Series]:
    """``frame`` at ``timeframe``; None when the timeframe is finer than the data."""
    base = base_timeframe(frame)
    if TIMEFRAMES[timeframe][0] < TIMEFRAMES[base][0]:
        return None
    positions = np.arange(len(frame))
    if timeframe == base:
        return Series(ticker, timeframe, frame, frame.index, positions)
    groups = _group_keys(frame.index, timeframe)
    grouped = frame.groupby(groups, sort=True)
    bars = grouped.agg(_AGG)
    stamps = pd.Series(frame.index, index=frame.index).groupby(groups, sort=True)
    last, first = stamps.max(), stamps.min()
    pos = pd.Series(positions, index=frame.index).groupby(groups, sort=True).max()
    bars.index = pd.DatetimeIndex(last.to_numpy(), name="date").as_unit("ns")
    keep = slice(0, max(0, len(bars) - 1))  # the last bar may be incomplete
    return Series(
        ticker,
        timeframe,
        bars.iloc[keep].astype(np.float64),
        pd.DatetimeIndex(first.to_numpy()).as_unit("ns")[keep],
        pos.to_numpy()[keep],
    )


def _group_keys(index: pd.DatetimeIndex, timeframe: str) -> np.ndarray:
    """The bin of each bar as int64 nanoseconds: calendar weeks (ending Friday) and months, else clock bins."""
    rule = TIMEFRAMES[timeframe][1]
    if timeframe in ("1w", "1mo"):
        return index.to_period(rule).start_time.as_unit("ns").asi8
    return index.floor(rule).as_unit("ns").asi8


def windows_for(series: Series, lengths: tuple[int, ...], stride: int, horizon: int, warmup: int, seed: int) -> list[Window]:
    """Window ends every ``stride`` bars, leaving ``warmup`` bars of history and ``horizon`` bars after.

    With several ``lengths``, each window's length is picked by a hash of
    (seed, ticker, timeframe, end), so the choice does not depend on what else is built.
    """
    n = len(series.frame)
    first_end = max(max(lengths), warmup) - 1
    out = []
    for end in range(first_end, n - horizon, stride):
        length = lengths[stable_index(len(lengths), seed, series.ticker, series.timeframe, end)]
        out.append(Window(series, end, length, horizon))
    return out


def min_bars(lengths: tuple[int, ...], horizon: int, warmup: int) -> int:
    """Bars a series needs for one window."""
    return max(max(lengths), warmup) + horizon


def stable_index(n: int, *key: object) -> int:
    """A deterministic choice in range(n) from ``key`` (not Python's salted hash)."""
    if n <= 1:
        return 0
    digest = hashlib.blake2b(repr(key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n


def stable_fraction(*key: object) -> float:
    """A deterministic number in [0, 1) from ``key``."""
    digest = hashlib.blake2b(repr(key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
