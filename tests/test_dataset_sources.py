"""Dataset price sources: CSV files and folders, the yfinance cache, and clear errors for bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphasignal.config import DatasetConfig
from alphasignal.dataset.sources import expand_csv_paths, load_sources, ticker_from_filename
from alphasignal.errors import ConfigError, PriceDataError

DATA = Path(__file__).parent / "data"
FORD = DATA / "ford_2012.csv"
QUIRK = DATA / "spy_2015_quirk.csv"


def frame(n: int = 30) -> pd.DataFrame:
    close = np.linspace(10.0, 12.0, n)
    return pd.DataFrame(
        {"open": close, "high": close + 0.5, "low": close - 0.5, "close": close, "volume": np.full(n, 1e6)},
        index=pd.DatetimeIndex(pd.bdate_range("2020-01-01", periods=n), name="date"),
    )


def test_folder_expands_to_its_csv_files_in_name_order(tmp_path):
    for name in ("b.csv", "a.CSV", "notes.txt"):
        (tmp_path / name).write_text("x")
    assert [p.name for p in expand_csv_paths([tmp_path])] == ["a.CSV", "b.csv"]


def test_empty_folder_and_missing_file_are_named(tmp_path):
    with pytest.raises(PriceDataError, match=f"folder {tmp_path} has no .csv files"):
        expand_csv_paths([tmp_path])
    with pytest.raises(PriceDataError, match="price file not found: .*nope.csv"):
        expand_csv_paths([tmp_path / "nope.csv"])


@pytest.mark.parametrize(
    "name, ticker",
    [("yahoofinance-AAPL-20040819-20180120", "AAPL"), ("ford_2012", "FORD"), ("spy", "SPY"), ("BRK.B_daily", "BRK.B")],
)
def test_ticker_from_filename(name, ticker):
    assert ticker_from_filename(Path(f"{name}.csv")) == ticker


def test_csv_source_records_hash_and_repairs(tmp_path):
    (src,) = load_sources(DatasetConfig(), csv=[QUIRK])
    assert src.ticker == "SPY" and len(src.frame) > 20 and len(src.sha256) == 64
    assert any("widened high/low" in w for w in src.warnings)  # repaired, kept for the report
    (ford,) = load_sources(DatasetConfig(), csv=[FORD])
    assert ford.warnings == ()


@pytest.mark.parametrize(
    "text, message",
    [
        ("Date,Open,High,Low\n2024-01-02,1,2,0.5\n", r"bad.csv is missing column\(s\) close"),
        ("Date,Open,High,Low,Close\n2024-01-02,1,2,0.5,1.5\n2024-01-03,1,,0.5,1.5\n", r"bad.csv: missing high at 2024-01-03 \(data row 2\)"),
        ("Date,Open,High,Low,Close\n2024-01-02,1,2,0.5,1.5\n2024-01-03,1,0.4,0.5,1.5\n", r"bad.csv: high < low at 2024-01-03 \(data row 2\)"),
        ("Date|Open|High|Low|Close\n2024-01-02|1|2|0.5|1.5\n", r"bad.csv has a single column"),
    ],
)
def test_bad_csv_is_rejected_with_file_and_row(tmp_path, text, message):
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    with pytest.raises(PriceDataError, match=message):
        load_sources(DatasetConfig(), csv=[bad])


def test_unsorted_dates_are_sorted_with_a_warning(tmp_path):
    path = tmp_path / "rev.csv"
    frame().iloc[::-1].rename(columns=str.capitalize).to_csv(path, index_label="Date")
    (src,) = load_sources(DatasetConfig(), csv=[path])
    assert src.frame.index.is_monotonic_increasing
    assert any("not in ascending order" in w for w in src.warnings)


def test_no_source_is_a_config_error():
    with pytest.raises(ConfigError, match="no price source: pass --csv"):
        load_sources(DatasetConfig())


def test_date_range_that_selects_nothing_is_named():
    cfg = DatasetConfig(start="2030-01-01")
    with pytest.raises(PriceDataError, match=r"ford_2012.csv has no bars between 2030-01-01 and the end .*2012-01-03 to 2012-12-31"):
        load_sources(cfg, csv=[FORD])


def test_two_sources_for_one_ticker_are_refused(tmp_path):
    copy = tmp_path / "ford_copy.csv"
    copy.write_bytes(FORD.read_bytes())
    with pytest.raises(PriceDataError, match="two sources for ticker FORD"):
        load_sources(DatasetConfig(), csv=[FORD, copy])


def test_ticker_download_is_cached_and_not_refetched(tmp_path):
    calls = []

    def fetch(symbol, period, interval, timeout):
        calls.append((symbol, period, interval))
        return frame()

    cfg = DatasetConfig(cache_dir=tmp_path / "cache", period="1y")
    (first,) = load_sources(cfg, tickers=["msft"], fetch=fetch)
    (second,) = load_sources(cfg, tickers=["MSFT"], fetch=fetch)
    assert calls == [("MSFT", "1y", "1d")]
    assert first.sha256 == second.sha256 and len(second.frame) == 30
    assert (tmp_path / "cache" / "MSFT-1d-1y.csv").is_file()
    pd.testing.assert_frame_equal(first.frame, second.frame)


def test_offline_ticker_without_cache_says_to_pass_csv(tmp_path):
    # the real downloader; the test sandbox blocks the network, as being offline does
    cfg = DatasetConfig(cache_dir=tmp_path / "cache", download_timeout_s=5)
    with pytest.raises(PriceDataError, match=r"cannot download AAPL \(offline\?\) and no cached copy .*pass --csv"):
        load_sources(cfg, tickers=["AAPL"])
    assert not (tmp_path / "cache").exists()


def test_unknown_ticker_is_named(tmp_path, monkeypatch):
    yf = pytest.importorskip("yfinance")

    class EmptyTicker:
        def __init__(self, symbol):
            self.symbol = symbol

        def history(self, **kwargs):
            return pd.DataFrame()

    monkeypatch.setattr(yf, "Ticker", EmptyTicker)
    cfg = DatasetConfig(cache_dir=tmp_path / "cache")
    with pytest.raises(PriceDataError, match="returned no data for ZZZZQ .*unknown ticker"):
        load_sources(cfg, tickers=["ZZZZQ"])
