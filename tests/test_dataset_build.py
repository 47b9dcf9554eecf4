"""A small dataset build end to end: valid targets, a leak-free embargo, determinism, `datasets` loads it."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from alphasignal.config import DatasetConfig
from alphasignal.dataset import build_dataset, load_hf
from alphasignal.dataset.bench import random_walk
from alphasignal.errors import OutputError, PriceDataError
from alphasignal.schemas import ChartSignal

SPLIT_ORDER = ("train", "val", "test")


def write_prices(folder: Path, ticker: str, seed: int, bars: int = 600) -> Path:
    dates, ohlcv = random_walk(bars, seed=seed)
    frame = pd.DataFrame(ohlcv, columns=["Open", "High", "Low", "Close", "Volume"], index=pd.DatetimeIndex(dates))
    path = folder / f"{ticker}.csv"
    frame.to_csv(path, index_label="Date", float_format="%.6f")
    return path


def write_news(path: Path, dates: pd.DatetimeIndex) -> Path:
    rows = [{"date": d.strftime("%Y-%m-%d"), "ticker": "AAA", "headline": f"AAA news on {d:%Y-%m-%d}"} for d in dates[::7]]
    rows.append({"date": "2000-06-01", "ticker": "", "headline": "market-wide item"})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


CFG = dict(
    windows=(30,), stride=20, horizon=5, timeframes=("1d", "1w"), image_width=192, image_height=192,
    styles=("charles", "yahoo"), val_fraction=0.2, test_fraction=0.2, hard_negatives=True, news_in_prompt=True,
)


@pytest.fixture(scope="module")
def prices(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("prices")
    write_prices(folder, "AAA", 1)
    write_prices(folder, "BBB", 2)
    return folder


@pytest.fixture(scope="module")
def built(prices, tmp_path_factory):
    root = tmp_path_factory.mktemp("build")
    news = write_news(root / "news.jsonl", pd.bdate_range("2000-01-03", periods=600))
    cfg = DatasetConfig(news_file=news, **CFG)
    report = build_dataset(cfg, out=root / "ds", csv=[prices], workers=1, progress=False)
    return cfg, report, root / "ds"


def rows(path: Path) -> list[dict]:
    out = []
    for split in SPLIT_ORDER:
        out += [json.loads(line) for line in (path / f"{split}.jsonl").read_text().splitlines()]
    return out


def test_layout_and_counts(built):
    cfg, report, path = built
    assert sorted(p.name for p in path.iterdir()) == ["images", "manifest.json", "test.jsonl", "train.jsonl", "val.jsonl"]
    all_rows = rows(path)
    assert report.samples == len(all_rows) == len(list((path / "images").iterdir())) >= 40
    assert all(report.splits[s] > 0 for s in SPLIT_ORDER)
    assert set(report.timeframes) == {"1d", "1w"} and set(report.tickers) == {"AAA", "BBB"}
    for split in SPLIT_ORDER:
        assert sum(report.class_balance[split].values()) == report.splits[split]
    text = report.summary()
    assert "class balance" in text and "train" in text and "charts/s" in text
    assert json.loads(json.dumps(report.as_dict()))["samples"] == report.samples


def test_every_target_validates_and_matches_its_row(built):
    _, _, path = built
    for row in rows(path):
        system, user, assistant = row["messages"]
        assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
        signal = ChartSignal.model_validate_json(assistant["content"][0]["text"])
        assert signal.model_dump(mode="json", exclude={"indicators"}) == row["target"]
        assert signal.action in ("BUY", "SELL", "HOLD") and signal.indicators is None
        image = user["content"][0]
        assert image == {"type": "image", "image": row["images"][0]}
        png = (path / image["image"]).read_bytes()
        assert hashlib.sha256(png).hexdigest() == row["meta"]["image_sha256"]
        assert Image.open(io.BytesIO(png)).size == (192, 192)
        assert "Answer with the JSON object described by this schema" in user["content"][1]["text"]


def test_prompt_is_the_pipelines_chart_prompt(built):
    from alphasignal.chains.prompts import chart_messages
    from alphasignal.schemas import ChartInput

    _, _, path = built
    with_prices = next(r for r in rows(path) if r["meta"]["price_context"] and not r["meta"]["news"])
    bare = next(r for r in rows(path) if not r["meta"]["price_context"] and not r["meta"]["news"])
    system, human = chart_messages(ChartInput(image=b"", ticker=bare["meta"]["ticker"]))
    assert bare["messages"][0]["content"][0]["text"] == system.content
    assert bare["messages"][1]["content"][1]["text"] == human.content[1]["text"]
    assert "Last bars:" in with_prices["messages"][1]["content"][1]["text"]


def test_embargo_no_window_overlaps_another_splits_label_period(built, prices):
    cfg, _, path = built
    table = pd.DataFrame([{**r["meta"], "split": r["split"]} for r in rows(path)])
    for col in ("start", "end", "label_end"):
        table[col] = pd.to_datetime(table[col])
    manifest = json.loads((path / "manifest.json").read_text())
    for ticker, group in table.groupby("ticker"):
        source = pd.read_csv(prices / f"{ticker}.csv", parse_dates=["Date"])["Date"]
        gap = manifest["splits"][ticker]["gap_bars"]
        assert gap >= cfg.horizon * 5  # weekly bars are built: the embargo counts weekly bars
        for a in SPLIT_ORDER:
            for b in SPLIT_ORDER:
                if a == b:
                    continue
                x, y = group[group.split == a], group[group.split == b]
                if x.empty or y.empty:
                    continue
                # no window of one split overlaps the label period of another ...
                overlap = (x.start.to_numpy()[:, None] <= y.label_end.to_numpy()[None, :]) & (
                    x.end.to_numpy()[:, None] >= y.end.to_numpy()[None, :]
                )
                assert not overlap.any(), f"{ticker}: a {a} window overlaps a {b} label period"
            # ... and consecutive splits are at least the embargo apart, in source bars
        for earlier, later in zip(SPLIT_ORDER, SPLIT_ORDER[1:]):
            before, after = group[group.split == earlier], group[group.split == later]
            between = ((source > before.label_end.max()) & (source < after.start.min())).sum()
            assert between >= gap >= cfg.embargo_bars


def test_news_is_never_later_than_the_window(built):
    _, report, path = built
    with_news = [r for r in rows(path) if r["meta"]["news"]]
    assert report.news_paired == len(with_news) > 0
    for row in with_news:
        end = pd.Timestamp(row["meta"]["end"])
        assert row["meta"]["ticker"] == "AAA"
        for item in row["meta"]["news"]:
            day = pd.Timestamp(item.rsplit(" ", 1)[-1])
            assert end - pd.Timedelta(days=3) <= day <= end
        assert "Recent news about the asset" in row["messages"][1]["content"][1]["text"]


def test_hard_negatives_stay_in_split_with_another_action(built):
    _, report, path = built
    by_id = {r["id"]: r for r in rows(path)}
    paired = [r for r in by_id.values() if r["meta"]["hard_negative"]]
    assert report.hard_negatives == len(paired) > 0
    for row in paired:
        other = by_id[row["meta"]["hard_negative"]]
        assert other["split"] == row["split"] and other["target"]["action"] != row["target"]["action"]


def test_same_input_same_dataset_with_two_workers(built, prices, tmp_path):
    cfg, report, path = built
    again = build_dataset(cfg, out=tmp_path / "again", csv=[prices], workers=2, progress=False)
    assert again.workers == 2
    assert again.dataset_sha256 == report.dataset_sha256
    for split in SPLIT_ORDER:
        assert (tmp_path / "again" / f"{split}.jsonl").read_bytes() == (path / f"{split}.jsonl").read_bytes()
    for image in (path / "images").iterdir():
        assert (tmp_path / "again" / "images" / image.name).read_bytes() == image.read_bytes()
    one = json.loads((path / "manifest.json").read_text())
    two = json.loads((tmp_path / "again" / "manifest.json").read_text())
    one.pop("build"), two.pop("build")
    assert one == two


def test_datasets_loads_it(built, tmp_path):
    pytest.importorskip("datasets")
    _, report, path = built
    ds = load_hf(path, cache_dir=tmp_path / "hf-cache")
    assert {name: len(ds[name]) for name in ds} == report.splits
    row = ds["train"][0]
    assert Path(row["images"][0]).is_absolute() and Path(row["images"][0]).is_file()
    assert row["messages"][1]["content"][0]["image"] == row["images"][0]
    ChartSignal.model_validate_json(row["messages"][2]["content"][0]["text"])


def test_manifest_records_what_was_built(built):
    cfg, report, path = built
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format"] == "alphasignal.chart-dataset" and manifest["build_version"] == "1"
    assert manifest["counts"] == {**report.splits, "total": report.samples}
    assert manifest["label_distribution"] == report.class_balance
    assert manifest["dataset_sha256"] == report.dataset_sha256
    assert {s["ticker"] for s in manifest["sources"]} == {"AAA", "BBB"}
    assert all(len(s["sha256"]) == 64 for s in manifest["sources"])
    assert manifest["config"]["windows"] == [30] and manifest["libraries"]["mplfinance"]


def small(prices: Path, **kw) -> DatasetConfig:
    return DatasetConfig(**{**CFG, "stride": 150, "timeframes": ("1d",), "hard_negatives": False, **kw})


def test_rebuild_replaces_the_old_dataset_and_cleans_dead_leftovers(prices, tmp_path):
    out = tmp_path / "ds"
    build_dataset(small(prices), out=out, csv=[prices], workers=1, progress=False)
    (out / "stale.txt").write_text("from the first build")
    dead = tmp_path / ".ds.building-999999999"
    (dead / "images").mkdir(parents=True)
    report = build_dataset(small(prices, stride=120), out=out, csv=[prices], workers=1, progress=False)
    assert not (out / "stale.txt").exists() and not dead.exists()
    assert json.loads((out / "manifest.json").read_text())["counts"]["total"] == report.samples
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_refuses_to_replace_a_folder_that_is_not_a_dataset(prices, tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(OutputError, match="exists and is not an alphasignal dataset"):
        build_dataset(small(prices), out=tmp_path, csv=[prices], workers=1, progress=False)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_failed_build_leaves_no_partial_output(prices, tmp_path, monkeypatch):
    from alphasignal.dataset import build as build_mod

    def boom(*args, **kwargs):
        raise OutputError("disk full")

    monkeypatch.setattr(build_mod, "_write_rows", boom)
    with pytest.raises(OutputError, match="disk full"):
        build_dataset(small(prices), out=tmp_path / "ds", csv=[prices], workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_window_longer_than_the_data_is_named(tmp_path):
    ford = Path(__file__).parent / "data" / "ford_2012.csv"
    with pytest.raises(PriceDataError, match=r"ford_2012.csv: too short for any timeframe \(250 bars; a window of 300 bars needs 315"):
        build_dataset(DatasetConfig(windows=(300,)), out=tmp_path / "ds", csv=[ford], workers=1, progress=False)
    assert not (tmp_path / "ds").exists()


def test_windows_that_never_fit_a_split_are_explained(prices, tmp_path):
    with pytest.raises(PriceDataError, match=r"no samples: all \d+ window\(s\) straddle a split cut"):
        build_dataset(small(prices, windows=(400,)), out=tmp_path / "ds", csv=[prices], workers=1, progress=False)


def test_weekly_too_short_is_skipped_and_reported(prices, tmp_path):
    report = build_dataset(
        small(prices, timeframes=("1d", "1w"), windows=(120,)), out=tmp_path / "ds", csv=[prices], workers=1, progress=False
    )
    assert any("1w" in text and "skipped" in text for text in report.skipped)
    assert set(report.timeframes) == {"1d"}
    assert os.listdir(tmp_path / "ds" / "images")
    assert np.isfinite(report.charts_per_s)
