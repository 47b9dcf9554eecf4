"""Price sources for the dataset: CSV files or folders, and yfinance tickers with a local cache.

Every source is validated where it enters, by ``chart.ohlc`` (``load_csv`` /
``fetch_ticker``): a bad file is rejected with the file and row named, safe
quirks (unsorted dates, open/close a hair outside [low, high]) are repaired and
the repair is kept as a warning for the build report. A downloaded ticker is
written to ``cache_dir`` so that a rebuild reads the same bytes instead of
asking Yahoo again; offline, a ticker with no cache fails with a message that
says to pass CSVs.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import pandas as pd

from ..chart import ohlc as ohlc_mod
from ..config import DatasetConfig
from ..errors import ConfigError, PriceDataError

_SYMBOL = re.compile(r"^[A-Z][A-Z0-9.^=]{0,9}$")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class PriceSource:
    """One validated price history and where it came from."""

    ticker: str
    frame: pd.DataFrame = field(repr=False)
    origin: str  # the CSV path, or "yfinance:SYMBOL period interval (cache FILE)"
    sha256: str  # of the bytes the frame was read from
    warnings: tuple[str, ...] = ()

    def describe(self) -> dict:
        idx = self.frame.index
        return {
            "ticker": self.ticker,
            "origin": self.origin,
            "sha256": self.sha256,
            "bars": len(self.frame),
            "first": idx[0].isoformat(),
            "last": idx[-1].isoformat(),
            "warnings": list(self.warnings),
        }


def load_sources(
    cfg: DatasetConfig,
    csv: Optional[Sequence[Path]] = None,
    tickers: Optional[Sequence[str]] = None,
    fetch: Callable[..., pd.DataFrame] = ohlc_mod.fetch_ticker,
) -> list[PriceSource]:
    """All price histories the build reads: ``csv`` / ``tickers`` override the config's lists."""
    csv_paths = list(cfg.csv if csv is None else csv)
    symbols = list(cfg.tickers if tickers is None else tickers)
    if not csv_paths and not symbols:
        raise ConfigError("no price source: pass --csv FILE_OR_DIR or --ticker SYMBOL (or set dataset.csv / dataset.tickers)")
    sources = [_from_csv(path) for path in expand_csv_paths(csv_paths)]
    sources += [_from_ticker(sym, cfg, fetch) for sym in symbols]
    sources = [_clip_dates(src, cfg) for src in sources]
    _check_unique(sources)
    return sources


def expand_csv_paths(paths: Iterable[Path]) -> list[Path]:
    """Files as given, folders as their ``*.csv`` files in name order."""
    out: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() == ".csv" and p.is_file())
            if not found:
                raise PriceDataError(f"folder {path} has no .csv files: pass a folder of OHLCV CSVs or a file")
            out.extend(found)
        elif path.is_file():
            out.append(path)
        else:
            raise PriceDataError(f"price file not found: {path}: pass an existing CSV file or folder")
    return out


def ticker_from_filename(path: Path) -> str:
    """A ticker name from a file name: the first all-caps token (yahoofinance-AAPL-2004... -> AAPL),
    else the first word upper-cased (ford_2012 -> FORD)."""
    tokens = [t for t in re.split(r"[-_ ]+", path.stem) if t]
    for token in tokens:
        if _SYMBOL.match(token):
            return token
    words = [t for t in tokens if t[:1].isalpha()]
    return (words[0] if words else path.stem).upper()


def safe_name(text: str) -> str:
    """``text`` usable in a file name (^GSPC -> _GSPC)."""
    return _SAFE.sub("_", text).strip("_") or "X"


# ----------------------------------------------------------------------- loading


def _from_csv(path: Path) -> PriceSource:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ohlc_mod.PriceDataWarning)
        frame = ohlc_mod.load_csv(path)
    return PriceSource(
        ticker=ticker_from_filename(path),
        frame=frame,
        origin=str(path),
        sha256=_sha256(path),
        warnings=_messages(caught),
    )


def _from_ticker(symbol: str, cfg: DatasetConfig, fetch: Callable[..., pd.DataFrame]) -> PriceSource:
    symbol = symbol.strip().upper()
    if not symbol:
        raise PriceDataError("empty ticker: pass a symbol such as AAPL, or --csv FILE")
    cache = cfg.cache_dir / f"{safe_name(symbol)}-{cfg.interval}-{cfg.period}.csv"
    origin = f"yfinance:{symbol} period={cfg.period} interval={cfg.interval} (cache {cache})"
    if not cache.is_file():
        _download(symbol, cfg, fetch, cache)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ohlc_mod.PriceDataWarning)
        frame = ohlc_mod.load_csv(cache)
    return PriceSource(symbol, frame, origin, _sha256(cache), _messages(caught))


def _download(symbol: str, cfg: DatasetConfig, fetch: Callable[..., pd.DataFrame], cache: Path) -> None:
    try:
        frame = fetch(symbol, period=cfg.period, interval=cfg.interval, timeout=cfg.download_timeout_s)
    except PriceDataError as exc:
        message = exc.one_line()
        if "offline" in message:
            raise PriceDataError(
                f"cannot download {symbol} (offline?) and no cached copy at {cache}: "
                "pass --csv FILE_OR_DIR with OHLCV CSVs instead"
            ) from exc
        raise
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".part")
    frame.rename(columns=str.capitalize).to_csv(tmp, index_label="Date", float_format="%.10g")
    tmp.replace(cache)


def _clip_dates(src: PriceSource, cfg: DatasetConfig) -> PriceSource:
    if cfg.start is None and cfg.end is None:
        return src
    idx = src.frame.index
    keep = pd.Series(True, index=idx)
    if cfg.start is not None:
        keep &= idx >= pd.Timestamp(cfg.start)
    if cfg.end is not None:
        keep &= idx < pd.Timestamp(cfg.end) + pd.Timedelta(days=1)
    frame = src.frame[keep.to_numpy()]
    if frame.empty:
        raise PriceDataError(
            f"{src.origin} has no bars between {cfg.start or 'the start'} and {cfg.end or 'the end'} "
            f"(data covers {idx[0]:%Y-%m-%d} to {idx[-1]:%Y-%m-%d}): widen --start/--end"
        )
    return PriceSource(src.ticker, frame, src.origin, src.sha256, src.warnings)


def _check_unique(sources: list[PriceSource]) -> None:
    seen: dict[str, str] = {}
    for src in sources:
        if src.ticker in seen:
            raise PriceDataError(
                f"two sources for ticker {src.ticker}: {seen[src.ticker]} and {src.origin}: "
                "keep one, or rename a file so its ticker differs"
            )
        seen[src.ticker] = src.origin


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _messages(caught: list[warnings.WarningMessage]) -> tuple[str, ...]:
    return tuple(" ".join(str(w.message).split()) for w in caught)
