"""Dated news for pairing with charts: a CSV or JSONL file keyed by date (and optionally ticker).

Columns (any case): a time column (``date``, ``datetime``, ``published`` or
``time``), a text column (``text``, ``headline`` or ``title``) and optionally
``ticker`` (blank or ``*`` means market-wide). A sample gets the newest items
stamped within ``news_days`` days up to its last bar's timestamp -- never
later, so news cannot leak the label. A date-only item counts as known on that
day's bar.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError

_TIME = ("datetime", "date", "published", "time", "timestamp")
_TEXT = ("text", "headline", "title")


@dataclass(frozen=True)
class NewsIndex:
    """News items by ticker ("*" = market-wide), each with int64 ns times ascending."""

    times: dict[str, np.ndarray]
    texts: dict[str, list[str]]

    def pick(self, ticker: str, end: pd.Timestamp, days: int, limit: int) -> tuple[str, ...]:
        """Up to ``limit`` items for ``ticker`` in [end - days, end], newest first."""
        lo_time = (end - pd.Timedelta(days=days)).value
        found: list[tuple[int, str]] = []
        for key in (ticker.upper(), "*"):
            times = self.times.get(key)
            if times is None:
                continue
            lo = int(np.searchsorted(times, lo_time, side="left"))
            hi = int(np.searchsorted(times, end.value, side="right"))
            found += list(zip(times[lo:hi].tolist(), self.texts[key][lo:hi]))
        found.sort(key=lambda item: item[0], reverse=True)
        return tuple(text for _, text in found[:limit])


def load_news(path: Path) -> NewsIndex:
    """Read a news file; ``InputError`` naming the file and the problem."""
    frame = _read(Path(path))
    cols = {str(c).strip().lower(): c for c in frame.columns}
    time_col = next((cols[k] for k in _TIME if k in cols), None)
    text_col = next((cols[k] for k in _TEXT if k in cols), None)
    if time_col is None or text_col is None:
        raise InputError(
            f"news file {path} needs a date column ({', '.join(_TIME)}) and a text column "
            f"({', '.join(_TEXT)}); found: {', '.join(map(str, frame.columns))[:120]}"
        )
    times = pd.to_datetime(frame[time_col], errors="coerce", utc=True, format="mixed")
    if times.isna().any():
        row = int(np.flatnonzero(times.isna().to_numpy())[0])
        raise InputError(f"news file {path}: unparsable date {frame[time_col].iloc[row]!r} at data row {row + 1}")
    tickers = frame[cols["ticker"]].fillna("*") if "ticker" in cols else pd.Series("*", index=frame.index)
    table = pd.DataFrame({
        "time": times.dt.tz_localize(None).dt.as_unit("ns"),
        "ticker": tickers.astype(str).str.strip().str.upper().replace("", "*"),
        "text": frame[text_col].fillna("").astype(str).str.strip(),
    })
    table = table[table["text"] != ""].sort_values(["ticker", "time", "text"], kind="stable")
    return NewsIndex(
        {k: g["time"].to_numpy().astype("int64") for k, g in table.groupby("ticker")},
        {k: g["text"].tolist() for k, g in table.groupby("ticker")},
    )


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(f"news file not found: {path}: pass a CSV or JSONL file with date and text columns")
    try:
        if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            return pd.DataFrame(rows)
        return pd.read_csv(path, dtype=str, encoding="utf-8-sig")
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        reason = " ".join(str(exc).split())[:160]
        raise InputError(f"cannot read news file {path}: {reason}: fix the file") from exc
