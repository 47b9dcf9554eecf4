"""Price data: load a CSV or download a ticker, and validate it into one OHLC frame.

The frame every other module receives (the *OHLC contract*):

* a tz-naive ``DatetimeIndex`` named ``date``, ascending and unique;
* float columns exactly ``open, high, low, close, volume`` (volume 0.0 when the
  source has none), no NaN, all prices > 0, volume >= 0;
* ``low <= min(open, close) <= max(open, close) <= high`` on every bar.

Problems are reported where the data enters, as a one-line ``PriceDataError``
naming the source and the first bad row. Two quirks of real data are repaired
with a ``PriceDataWarning`` instead: unsorted dates, and open/close a hair outside
[low, high] (Yahoo's SPY history has two such bars).
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import pandas as pd

from ..errors import PriceDataError

COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
_EXPECTED = "Date, Open, High, Low, Close[, Volume]"
_DELIMITERS = (",", ";", "\t")
# normalised header (lower case, no spaces/underscores/dashes) -> contract name
_ALIASES = {
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "volume": "volume",
    "vol": "volume",
}
# date-like headers, best first; "date" + "time" columns are joined (intraday exports)
_DATE_ALIASES = ("datetime", "timestamp", "date", "time")

PathLike = Union[str, Path]


class PriceDataWarning(UserWarning):
    """Price data had a harmless quirk that was repaired (sorted, high/low widened)."""


# --------------------------------------------------------------------------- CSV


def load_csv(path: PathLike) -> pd.DataFrame:
    """Read an OHLC(V) CSV (comma, semicolon or tab separated) into a validated frame.

    Headers are matched case-insensitively: Date/Datetime/Timestamp/Time become the
    index; Open, High, Low, Close, Volume the columns; anything else (Adj Close,
    Dividends, ...) is ignored.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise PriceDataError(f"price file not found: {source}: pass an existing CSV with {_EXPECTED}")
    try:
        sample = path.read_bytes()[:8192].decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise PriceDataError(f"cannot read {source}: {exc}: pass a UTF-8 text CSV") from exc
    header = next((line for line in sample.splitlines() if line.strip()), "")
    if not header:
        raise PriceDataError(f"{source} is empty: pass a CSV with a header row {_EXPECTED}")
    sep = _sniff_delimiter(header)
    frame = _read_frame(path, sep)
    if frame.shape[1] == 1:
        raise PriceDataError(
            f"{source} has a single column ({header.strip()[:60]!r}): "
            f"use a comma-, semicolon- or tab-separated file with {_EXPECTED}"
        )
    return validate_ohlc(frame, source=source)


def _sniff_delimiter(header: str) -> str:
    """The delimiter that splits the header into the most fields (comma on a tie)."""
    counts = {sep: header.count(sep) for sep in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def _read_frame(path: Path, sep: str) -> pd.DataFrame:
    # Everything is read as text so that a bad cell is reported by validate_ohlc
    # with its row, instead of pandas silently turning a column into objects.
    try:
        frame = pd.read_csv(path, sep=sep, dtype=str, encoding="utf-8-sig")
    except pd.errors.EmptyDataError as exc:
        raise PriceDataError(f"{path} is empty: pass a CSV with a header row {_EXPECTED}") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:160]
        raise PriceDataError(f"cannot parse {path}: {reason}: fix the file or export it again") from exc
    if sep == ";":  # a semicolon file is usually European: "1,5" means 1.5
        for col in frame.columns:
            if _key(col) in _ALIASES:
                frame[col] = frame[col].str.replace(",", ".", regex=False)
    return frame


# --------------------------------------------------------------------- validation


def validate_ohlc(df: pd.DataFrame, source: str, min_bars: int = 2) -> pd.DataFrame:
    """Check and normalise price data into the OHLC contract (see the module docstring).

    ``df`` may carry its dates as a DatetimeIndex or as a Date/Datetime/Timestamp
    column, with column names in any case (MultiIndex columns from yfinance are
    flattened). Returns a new frame; the input is not modified.

    Raises ``PriceDataError`` naming ``source`` and the first bad row; repairs
    unsorted dates and open/close outside [low, high] with a ``PriceDataWarning``.
    """
    if not isinstance(df, pd.DataFrame):
        raise PriceDataError(f"{source}: expected a pandas DataFrame, got {type(df).__name__}")
    frame, raw_dates = _normalise_columns(_flatten_columns(df), source)
    frame.index = _parse_dates(raw_dates, source)
    if frame.empty:
        raise PriceDataError(f"{source} has no data rows: pass at least {min_bars} bars")
    for name in COLUMNS:
        frame[name] = _to_float(frame[name], name, source).to_numpy()
    _check_values(frame, source)
    frame = _sort_dates(frame, source)
    frame = _widen_high_low(frame, source)
    if len(frame) < min_bars:
        raise PriceDataError(
            f"{source} has {len(frame)} bar(s), {min_bars} needed: pass a longer history"
        )
    frame.index = frame.index.rename("date")
    return frame


def _flatten_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Keep the column level holding the price names (yfinance: ('Close', 'AAPL'))."""
    if not isinstance(df.columns, pd.MultiIndex):
        return df
    for level in range(df.columns.nlevels):
        names = {_key(v) for v in df.columns.get_level_values(level)}
        if "close" in names:
            out = df.copy()
            out.columns = df.columns.get_level_values(level)
            return out
    return df


def _key(name: Any) -> str:
    return "".join(ch for ch in str(name).lower() if ch not in " _-")


def _normalise_columns(df: pd.DataFrame, source: str) -> tuple[pd.DataFrame, Any]:
    """(frame with columns open..volume in row order, the raw dates), names matched loosely."""
    keys = [_key(c) for c in df.columns]
    picked: dict[str, Any] = {}
    for col, key in zip(df.columns, keys):
        name = _ALIASES.get(key)
        if name is None:
            continue
        if name in picked:
            raise PriceDataError(f"{source} has two {name} columns ({picked[name]!r}, {col!r}): keep one")
        picked[name] = col
    missing = [c for c in PRICE_COLUMNS if c not in picked]
    if missing:
        found = ", ".join(str(c) for c in df.columns) or "none"
        raise PriceDataError(
            f"{source} is missing column(s) {', '.join(missing)} (found: {found[:120]}): "
            f"expected {_EXPECTED}"
        )
    out = pd.DataFrame({name: df[picked[name]].to_numpy() for name in picked}, index=range(len(df)))
    if "volume" not in picked:
        out["volume"] = 0.0
    return out[list(COLUMNS)], _raw_dates(df, keys, source)


def _raw_dates(df: pd.DataFrame, keys: list[str], source: str) -> Any:
    if isinstance(df.index, pd.DatetimeIndex):
        return df.index
    by_key = {k: c for k, c in zip(reversed(keys), reversed(list(df.columns)))}
    if "date" in by_key and "time" in by_key and "datetime" not in by_key:
        date, time = df[by_key["date"]].astype(str), df[by_key["time"]].astype(str)
        return (date + " " + time).to_numpy()
    for alias in _DATE_ALIASES:
        if alias in by_key:
            return df[by_key[alias]].to_numpy()
    if _key(df.index.name or "") in _DATE_ALIASES:
        return df.index.to_numpy()
    raise PriceDataError(f"{source} has no date column: add a Date (or Datetime/Timestamp) column")


def _where(dates: Any, pos: int) -> str:
    """'2015-03-05 (data row 1807)': a bad row, for messages; rows count from 1 after the header."""
    value = dates[pos]
    if isinstance(value, pd.Timestamp) and not pd.isna(value):
        text = value.strftime("%Y-%m-%d") if value == value.normalize() else str(value)
    else:
        text = repr(value) if isinstance(value, str) else str(value)
    return f"{text} (data row {pos + 1})"


def _parse_dates(raw: Any, source: str) -> pd.DatetimeIndex:
    parsed = raw if isinstance(raw, pd.DatetimeIndex) else _to_datetime(raw)
    bad = np.flatnonzero(pd.isna(parsed))
    if bad.size:
        pos = int(bad[0])
        raise PriceDataError(
            f"{source}: unparsable date {raw[pos]!r} at data row {pos + 1}: "
            "use ISO dates such as 2024-01-31 or 2024-01-31 15:30"
        )
    if parsed.tz is not None:  # keep the exchange's wall-clock time, drop the zone
        parsed = parsed.tz_localize(None)
    return parsed.as_unit("ns")  # one resolution whatever the source


def _to_datetime(values: Any) -> pd.DatetimeIndex:
    """Parse dates: one inferred format, else mixed formats, else one by one (mixed UTC offsets)."""
    series = pd.Series(values)
    epoch = _epoch_unit(series)
    if epoch is not None:
        return pd.DatetimeIndex(pd.to_datetime(pd.to_numeric(series), unit=epoch, errors="coerce"))
    parsed = None
    for kwargs in ({}, {"format": "mixed"}):
        with warnings.catch_warnings():
            # pandas warns when it cannot infer one format; the next attempt handles that
            warnings.filterwarnings("ignore", "Could not infer format", UserWarning)
            try:
                parsed = pd.DatetimeIndex(pd.to_datetime(series, errors="coerce", **kwargs))
            except (ValueError, TypeError, OverflowError):  # e.g. mixed UTC offsets
                continue
        if not parsed.isna().any():
            return parsed
    return pd.DatetimeIndex([_wall_time(v) for v in series]) if parsed is None else parsed


def _wall_time(value: Any) -> pd.Timestamp:
    """One date with its UTC offset dropped (09:30-05:00 -> 09:30), NaT when unparsable."""
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        return pd.NaT
    return stamp.tz_localize(None) if stamp.tzinfo is not None else stamp


def _epoch_unit(series: pd.Series) -> Optional[str]:
    """'s' or 'ms' when every date is a Unix timestamp; compact dates like 20240131 are not."""
    if series.empty or pd.api.types.is_datetime64_any_dtype(series):
        return None
    numbers = pd.to_numeric(series, errors="coerce")
    if numbers.isna().any() or (numbers < 1e9).any():
        return None
    return "ms" if numbers.max() > 1e11 else "s"


def _to_float(column: pd.Series, name: str, source: str) -> pd.Series:
    if pd.api.types.is_float_dtype(column):
        return column.astype(np.float64)
    numbers = pd.to_numeric(column, errors="coerce")
    bad = np.flatnonzero(numbers.isna().to_numpy() & column.notna().to_numpy())
    if bad.size:
        pos = int(bad[0])
        raise PriceDataError(
            f"{source}: non-numeric {name} value {column.iloc[pos]!r} at "
            f"{_where(column.index, pos)}: fix or remove that row"
        )
    return numbers.astype(np.float64)


def _first(mask: np.ndarray) -> Optional[int]:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def _check_values(frame: pd.DataFrame, source: str) -> None:
    values = frame[list(COLUMNS)].to_numpy()
    nan_rows = np.isnan(values).any(axis=1)
    if (pos := _first(nan_rows)) is not None:
        cols = [c for c, v in zip(COLUMNS, values[pos]) if np.isnan(v)]
        raise PriceDataError(
            f"{source}: missing {', '.join(cols)} at {_where(frame.index, pos)}: fill or remove that row"
        )
    if (pos := _first(~np.isfinite(values).all(axis=1))) is not None:
        raise PriceDataError(f"{source}: infinite value at {_where(frame.index, pos)}: fix or remove that row")
    if (pos := _first((values[:, :4] <= 0).any(axis=1))) is not None:
        raise PriceDataError(
            f"{source}: price <= 0 at {_where(frame.index, pos)}: prices must be positive"
        )
    if (pos := _first(frame["high"].to_numpy() < frame["low"].to_numpy())) is not None:
        raise PriceDataError(f"{source}: high < low at {_where(frame.index, pos)}: fix or remove that row")
    if (pos := _first(frame["volume"].to_numpy() < 0)) is not None:
        raise PriceDataError(f"{source}: negative volume at {_where(frame.index, pos)}: fix or remove that row")
    if (pos := _first(frame.index.duplicated())) is not None:
        raise PriceDataError(
            f"{source}: duplicate date at {_where(frame.index, pos)}: keep one bar per date"
        )


def _sort_dates(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    if frame.index.is_monotonic_increasing:
        return frame
    pos = _first(np.diff(frame.index.asi8) < 0)
    where = _where(frame.index, pos + 1) if pos is not None else "?"
    warnings.warn(
        f"{source}: dates are not in ascending order (first at {where}): sorted them",
        PriceDataWarning,
        stacklevel=3,
    )
    return frame.sort_index(kind="stable")


def _widen_high_low(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    o, h, l, c = (frame[name].to_numpy() for name in PRICE_COLUMNS)
    top, bottom = np.maximum(o, c), np.minimum(o, c)
    bad = (top > h) | (bottom < l)
    if not bad.any():
        return frame
    warnings.warn(
        f"{source}: {int(bad.sum())} bar(s) have open/close outside [low, high] "
        f"(first at {_where(frame.index, int(np.flatnonzero(bad)[0]))}): widened high/low to include them",
        PriceDataWarning,
        stacklevel=3,
    )
    frame = frame.copy()
    frame["high"] = np.maximum(h, top)
    frame["low"] = np.minimum(l, bottom)
    return frame


# ---------------------------------------------------------------------- download


def fetch_ticker(ticker: str, period: str = "6mo", interval: str = "1d", timeout: float = 10) -> pd.DataFrame:
    """Download ``ticker`` from Yahoo Finance (yfinance) into a validated OHLC frame.

    The whole download runs under a ``timeout``-second deadline, so an offline
    machine or a stalled DNS answers with a ``PriceDataError`` instead of hanging.
    """
    symbol = (ticker or "").strip()
    if not symbol:
        raise PriceDataError("empty ticker: pass a symbol such as AAPL, or --csv FILE")
    if not timeout or timeout <= 0:
        raise PriceDataError(f"download timeout must be positive, got {timeout}")
    try:
        import yfinance as yf
    except ImportError as exc:
        raise PriceDataError(
            "yfinance is not installed: pip install 'alphasignal[yfinance]', or pass --csv FILE instead"
        ) from exc
    _quiet_yfinance_logger()

    def download() -> pd.DataFrame:
        return yf.Ticker(symbol).history(
            period=period, interval=interval, timeout=timeout, raise_errors=True, auto_adjust=True
        )

    source = f"Yahoo Finance {symbol}"
    frame = _run_with_deadline(download, timeout, symbol)
    if frame is None or frame.empty:
        raise PriceDataError(
            f"Yahoo Finance returned no data for {symbol} (unknown ticker, or period {period!r} "
            f"too short for interval {interval!r}?): check the symbol, or pass --csv FILE instead"
        )
    return validate_ohlc(frame, source=source)


def _quiet_yfinance_logger() -> None:
    # yfinance logs each failed request; with no logging configured Python prints
    # those to stderr. A NullHandler stops that fallback while still letting the
    # records reach handlers an application has configured.
    import logging

    logger = logging.getLogger("yfinance")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())


def _run_with_deadline(call: Callable[[], pd.DataFrame], timeout: float, symbol: str) -> pd.DataFrame:
    """Run ``call`` in a daemon thread; PriceDataError if it fails or outlives ``timeout``."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - re-raised below as PriceDataError
            box["error"] = exc

    worker = threading.Thread(target=target, name=f"yfinance-{symbol}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise PriceDataError(
            f"could not download {symbol} from Yahoo Finance within {timeout:g}s (offline?): "
            "pass --csv FILE instead"
        )
    if "error" in box:
        exc = box["error"]
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:160]
        if type(exc).__module__.startswith("yfinance") and "RateLimit" not in type(exc).__name__:
            # Yahoo answered, but not with prices: unknown symbol, bad period, delisted
            raise PriceDataError(
                f"Yahoo Finance has no prices for {symbol} [{reason}]: check the symbol, or pass --csv FILE instead"
            ) from exc
        raise PriceDataError(
            f"could not download {symbol} from Yahoo Finance (offline?) [{reason}]: pass --csv FILE instead"
        ) from exc
    return box.get("value")


# -------------------------------------------------------------------------- demo


def demo_paths() -> tuple[Path, Path, Path]:
    """The bundled demo inputs: (OHLCV CSV, news headlines, pre-rendered chart PNG)."""
    data = Path(__file__).resolve().parent.parent / "data"
    return data / "demo_ohlcv.csv", data / "demo_news.txt", data / "demo_chart.png"
