"""Price data loading and validation: every bad input is a one-line PriceDataError naming the row."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphasignal.chart.ohlc import (
    COLUMNS,
    PriceDataWarning,
    demo_paths,
    fetch_ticker,
    load_csv,
    validate_ohlc,
)
from alphasignal.errors import PriceDataError

DATA = Path(__file__).parent / "data"
GOOD = """Date,Open,High,Low,Close,Volume
2024-01-02,10.0,11.0,9.5,10.5,1000
2024-01-03,10.5,11.5,10.0,11.0,1200
2024-01-04,11.0,11.2,10.1,10.2,900
"""


def write(tmp_path: Path, text: str, name: str = "prices.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def assert_contract(df: pd.DataFrame) -> None:
    assert list(df.columns) == list(COLUMNS)
    assert isinstance(df.index, pd.DatetimeIndex) and df.index.name == "date"
    assert df.index.tz is None
    assert df.index.is_monotonic_increasing and df.index.is_unique
    assert all(dtype == np.float64 for dtype in df.dtypes)
    assert not df.isna().any().any()
    assert (df[["open", "high", "low", "close"]] > 0).all().all()
    assert (df["low"] <= df[["open", "close"]].min(axis=1)).all()
    assert (df["high"] >= df[["open", "close"]].max(axis=1)).all()


def load_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(PriceDataError) as info:
        load_csv(path)
    message = str(info.value)
    assert "\n" not in message, "messages are one line"
    assert str(path) in message, "messages name the source file"
    return message


# ------------------------------------------------------------------ good input


def test_loads_real_csv_into_the_contract():
    df = load_csv(DATA / "ford_2012.csv")
    assert_contract(df)
    assert len(df) == 250
    assert df.index[0] == pd.Timestamp("2012-01-03")
    assert df.loc["2012-01-03", "close"] == pytest.approx(11.13)
    assert df.loc["2012-01-03", "volume"] == 45709900.0


def test_spy_quirk_is_repaired_with_a_warning():
    with pytest.warns(PriceDataWarning, match=r"2 bar\(s\) have open/close outside \[low, high\].*2015-03-05"):
        df = load_csv(DATA / "spy_2015_quirk.csv")
    assert_contract(df)
    raw = pd.read_csv(DATA / "spy_2015_quirk.csv", index_col="Date", parse_dates=True)
    bad = raw.index[(raw[["Open", "Close"]].max(axis=1) > raw["High"]) | (raw[["Open", "Close"]].min(axis=1) < raw["Low"])]
    assert [d.strftime("%Y-%m-%d") for d in bad] == ["2015-03-05", "2015-03-30"]
    for day in bad:
        row, src = df.loc[day], raw.loc[day]
        assert row["high"] == max(src["High"], src["Open"], src["Close"])
        assert row["low"] == min(src["Low"], src["Open"], src["Close"])
        assert row["open"] == src["Open"] and row["close"] == src["Close"]
    assert "adj close" not in [c.lower() for c in df.columns]


def test_semicolon_and_tab_files_give_the_same_frame(tmp_path):
    comma = load_csv(write(tmp_path, GOOD, "comma.csv"))
    tab = load_csv(write(tmp_path, GOOD.replace(",", "\t"), "tab.tsv"))
    # semicolon exports usually write decimal commas
    semi = load_csv(write(tmp_path, GOOD.replace(",", ";").replace(".", ","), "semi.csv"))
    pd.testing.assert_frame_equal(comma, tab)
    pd.testing.assert_frame_equal(comma, semi)


def test_headers_match_case_insensitively_and_volume_defaults_to_zero(tmp_path):
    text = "DATE,OPEN,high,Low,CLOSE,Adj Close\n2024-01-02,10,11,9,10.5,10.4\n2024-01-03,10.5,11,10,10.8,10.7\n"
    df = load_csv(write(tmp_path, text))
    assert_contract(df)
    assert df["volume"].tolist() == [0.0, 0.0]
    assert df["close"].tolist() == [10.5, 10.8]


def test_separate_date_and_time_columns_are_joined(tmp_path):
    text = "Date,Time,Open,High,Low,Close,Volume\n2024-01-02,09:30,10,11,9,10.5,5\n2024-01-02,09:35,10.5,11,10,10.8,7\n"
    df = load_csv(write(tmp_path, text))
    assert list(df.index) == [pd.Timestamp("2024-01-02 09:30"), pd.Timestamp("2024-01-02 09:35")]


def test_epoch_timestamps_are_parsed(tmp_path):
    text = "timestamp,open,high,low,close\n1704153600,10,11,9,10.5\n1704240000,10.5,11,10,10.8\n"
    df = load_csv(write(tmp_path, text))
    assert list(df.index) == [pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-03")]


def test_unsorted_dates_are_sorted_with_a_warning(tmp_path):
    lines = GOOD.splitlines()
    text = "\n".join([lines[0], lines[3], lines[1], lines[2]]) + "\n"
    with pytest.warns(PriceDataWarning, match="not in ascending order"):
        df = load_csv(write(tmp_path, text))
    assert_contract(df)
    assert df["close"].tolist() == [10.5, 11.0, 10.2]


def test_validate_accepts_yfinance_shaped_frames_without_mutating_them():
    idx = pd.date_range("2024-01-02", periods=3, freq="D", tz="America/New_York", name="Date")
    cols = pd.MultiIndex.from_product([["Open", "High", "Low", "Close", "Volume"], ["AAPL"]], names=["Price", "Ticker"])
    values = [[10, 11, 9, 10.5, 100], [10.5, 11, 10, 10.8, 200], [10.8, 11.5, 10.7, 11.2, 300]]
    raw = pd.DataFrame(values, index=idx, columns=cols)
    before = raw.copy()
    df = validate_ohlc(raw, source="Yahoo Finance AAPL")
    assert_contract(df)
    assert df.index[0] == pd.Timestamp("2024-01-02 00:00")  # exchange wall time kept, zone dropped
    assert df["volume"].tolist() == [100.0, 200.0, 300.0]
    pd.testing.assert_frame_equal(raw, before)


# ------------------------------------------------------------------- bad input


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(PriceDataError, match=r"price file not found: .*nope\.csv"):
        load_csv(path)


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_empty_file(tmp_path, text):
    assert "is empty" in load_error(tmp_path, text)


def test_header_only_file(tmp_path):
    assert "has no data rows" in load_error(tmp_path, "Date,Open,High,Low,Close,Volume\n")


def test_wrong_delimiter_leaving_one_column(tmp_path):
    message = load_error(tmp_path, GOOD.replace(",", "|"))
    assert "single column" in message and "semicolon" in message


def test_missing_columns_are_named(tmp_path):
    message = load_error(tmp_path, "Date,Open,Close\n2024-01-02,10,10.5\n2024-01-03,10.5,11\n")
    assert "missing column(s) high, low" in message
    assert "found: Date, Open, Close" in message


def test_missing_date_column(tmp_path):
    assert "no date column" in load_error(tmp_path, "Open,High,Low,Close\n10,11,9,10.5\n10.5,11,10,11\n")


@pytest.mark.parametrize(("day", "row"), [("2024-01-02", 1), ("2024-01-03", 2)])
def test_unparsable_date_names_the_row(tmp_path, day, row):
    text = GOOD.replace(day, "31/02/2024x")
    assert f"unparsable date '31/02/2024x' at data row {row}" in load_error(tmp_path, text)


def test_utc_offsets_keep_the_exchange_wall_time(tmp_path):
    text = (
        "Datetime,Open,High,Low,Close\n"
        "2024-03-08 09:30:00-05:00,10,11,9,10.5\n"
        "2024-03-11 09:30:00-04:00,10.5,11,10,10.8\n"  # after the DST switch
    )
    df = load_csv(write(tmp_path, text))
    assert list(df.index) == [pd.Timestamp("2024-03-08 09:30"), pd.Timestamp("2024-03-11 09:30")]


def test_non_numeric_value_names_column_and_row(tmp_path):
    text = GOOD.replace("11.5,10.0,11.0", "11.5,10.0,abc")
    assert "non-numeric close value 'abc' at 2024-01-03 (data row 2)" in load_error(tmp_path, text)


def test_nan_names_column_and_row(tmp_path):
    text = GOOD.replace("11.2,10.1,10.2", "11.2,,10.2")
    assert "missing low at 2024-01-04 (data row 3)" in load_error(tmp_path, text)


@pytest.mark.parametrize("row", ["2024-01-03,10.5,11.5,0,11.0,1200", "2024-01-03,-1,11.5,10.0,11.0,1200"])
def test_non_positive_prices(tmp_path, row):
    text = GOOD.replace("2024-01-03,10.5,11.5,10.0,11.0,1200", row)
    assert "price <= 0 at 2024-01-03 (data row 2)" in load_error(tmp_path, text)


def test_high_below_low(tmp_path):
    text = GOOD.replace("2024-01-04,11.0,11.2,10.1", "2024-01-04,11.0,10.0,10.1")
    assert "high < low at 2024-01-04 (data row 3)" in load_error(tmp_path, text)


def test_negative_volume(tmp_path):
    assert "negative volume at 2024-01-02" in load_error(tmp_path, GOOD.replace(",1000", ",-5"))


def test_duplicate_dates(tmp_path):
    text = GOOD.replace("2024-01-04", "2024-01-03")
    assert "duplicate date at 2024-01-03 (data row 3)" in load_error(tmp_path, text)


def test_too_few_bars(tmp_path):
    text = "\n".join(GOOD.splitlines()[:2]) + "\n"
    assert "has 1 bar(s), 2 needed" in load_error(tmp_path, text)
    with pytest.raises(PriceDataError, match=r"has 3 bar\(s\), 60 needed"):
        validate_ohlc(load_csv(write(tmp_path, GOOD, "ok.csv")), source="ok.csv", min_bars=60)


def test_two_columns_mapping_to_one_name(tmp_path):
    text = "Date,Close,close_,Open,High,Low\n2024-01-02,10,10,10,11,9\n2024-01-03,10,10,10,11,9\n"
    assert "two close columns" in load_error(tmp_path, text)


# -------------------------------------------------------------------- download


def test_fetch_offline_fails_fast_with_the_fix():
    """On this offline machine the real download fails; with internet the symbol does not exist."""
    start = time.monotonic()
    with pytest.raises(PriceDataError) as info:
        fetch_ticker("NO-SUCH-TICKER-ZZQX", period="1mo", timeout=5)
    assert time.monotonic() - start < 8
    message = str(info.value)
    assert "NO-SUCH-TICKER-ZZQX" in message and "--csv FILE" in message and "\n" not in message


class _FakeTicker:
    """Stands in for yfinance.Ticker: returns a given frame, or blocks until released."""

    frame: pd.DataFrame | None = None
    error: Exception | None = None
    release = threading.Event()

    def __init__(self, symbol: str):
        self.symbol = symbol

    def history(self, **kwargs):
        if self.error is not None:
            raise self.error
        if self.frame is None:
            self.release.wait(30)
            return pd.DataFrame()
        return self.frame


@pytest.fixture
def fake_yfinance(monkeypatch):
    yfinance = pytest.importorskip("yfinance")
    monkeypatch.setattr(yfinance, "Ticker", _FakeTicker)
    monkeypatch.setattr(_FakeTicker, "release", threading.Event())
    yield _FakeTicker
    _FakeTicker.release.set()


def test_fetch_that_hangs_is_cut_at_the_deadline(fake_yfinance):
    fake_yfinance.frame = None
    start = time.monotonic()
    with pytest.raises(PriceDataError, match=r"could not download AAPL from Yahoo Finance within 0.5s.*--csv FILE"):
        fetch_ticker("AAPL", timeout=0.5)
    assert time.monotonic() - start < 3


def test_fetch_flattens_multiindex_columns(fake_yfinance, monkeypatch):
    idx = pd.date_range("2024-01-02", periods=3, freq="D", tz="America/New_York", name="Date")
    cols = pd.MultiIndex.from_tuples([(c, "AAPL") for c in ("Close", "High", "Low", "Open", "Volume", "Dividends")])
    values = [[10.5, 11, 9, 10, 100, 0], [10.8, 11, 10, 10.5, 200, 0], [11.2, 11.5, 10.7, 10.8, 300, 0]]
    monkeypatch.setattr(fake_yfinance, "frame", pd.DataFrame(values, index=idx, columns=cols))
    df = fetch_ticker("AAPL")
    assert_contract(df)
    assert df["close"].tolist() == [10.5, 10.8, 11.2]


def test_fetch_empty_result_says_so(fake_yfinance, monkeypatch):
    monkeypatch.setattr(fake_yfinance, "frame", pd.DataFrame())
    with pytest.raises(PriceDataError, match="returned no data for ZZZZ.*--csv FILE"):
        fetch_ticker("ZZZZ")


def test_fetch_unknown_symbol_says_check_the_symbol(fake_yfinance, monkeypatch):
    from yfinance.exceptions import YFPricesMissingError

    monkeypatch.setattr(fake_yfinance, "error", YFPricesMissingError("ZZZZ", "period=6mo"))
    with pytest.raises(PriceDataError, match=r"no prices for ZZZZ \[YFPricesMissingError.*check the symbol"):
        fetch_ticker("ZZZZ")


def test_fetch_rejects_empty_ticker():
    with pytest.raises(PriceDataError, match="empty ticker"):
        fetch_ticker("  ")


# ------------------------------------------------------------------------ demo


def test_demo_files_are_shipped_and_valid():
    from PIL import Image

    csv, news, png = demo_paths()
    df = load_csv(csv)
    assert_contract(df)
    assert len(df) == 150 and df.index[-1] == pd.Timestamp("2018-01-19")
    headlines = news.read_text(encoding="utf-8").splitlines()
    assert len(headlines) == 3 and headlines[0] == "Apple beats expectations with +12% revenue"
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == (800, 600)


def test_importing_the_chart_modules_loads_no_plotting_or_download_library():
    code = (
        "import sys, alphasignal.chart.ohlc, alphasignal.chart.render, alphasignal.chart.analysis; "
        "print(sorted(m for m in ('matplotlib', 'mplfinance', 'yfinance') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parent.parent)
    assert out.stdout.strip() == "[]"
