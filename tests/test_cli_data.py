"""CLI: dataset build, chart read (with overlay), eval chart-reader, bench dataset."""

import json
from pathlib import Path

import pytest
from PIL import Image

from alphasignal.chart.ohlc import demo_paths
from alphasignal.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_chart_read_json_and_overlay(capsys, tmp_path):
    _, _, png = demo_paths()
    overlay = tmp_path / "overlay.png"
    code, stdout, _ = run(capsys, "chart", "read", png, "--json", "--overlay", overlay)
    reading = json.loads(stdout)
    assert code == 0 and reading["guard_score"] >= 0.5
    assert reading["bars"] == 90 and len(reading["ohlc"]) == 90 and reading["units"] == "price"
    with Image.open(overlay) as img:
        assert img.size == (800, 600)


def test_chart_read_rejects_a_text_file(capsys, tmp_path):
    fake = tmp_path / "x.png"
    fake.write_text("not an image")
    code, _, stderr = run(capsys, "chart", "read", fake)
    assert code == 1 and "not an image" in stderr


def test_dataset_build_small(capsys, tmp_path):
    out = tmp_path / "ds"
    code, stdout, _ = run(capsys, "dataset", "build", "--csv", ROOT / "datasets/ohlcv/ford_2012.csv", "--out", out, "--no-progress", "--json", "--workers", "1")
    report = json.loads(stdout)
    manifest = json.loads((out / "manifest.json").read_text())
    assert code == 0 and (out / "train.jsonl").is_file()
    assert report and manifest["counts"] and manifest["dataset_sha256"]


def test_dataset_build_bad_csv(capsys, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("Date;Open\n2024-01-01;1\n")
    code, _, stderr = run(capsys, "dataset", "build", "--csv", bad, "--out", tmp_path / "ds", "--no-progress")
    assert code in (1, 2) and stderr.startswith("alphasignal: error: ")
    assert not (tmp_path / "ds").exists()


def test_eval_chart_reader_missing_folder(capsys, tmp_path):
    code, _, stderr = run(capsys, "eval", "chart-reader", "--data", tmp_path / "nope")
    assert code == 1 and "OHLCV folder not found" in stderr


@pytest.mark.slow
def test_eval_chart_reader_small(capsys):
    code, stdout, _ = run(capsys, "eval", "chart-reader", "--data", ROOT / "datasets/ohlcv", "--charts", "6", "--json")
    metrics = json.loads(stdout)
    assert code == 0 and metrics


def test_eval_chart_reader_sweep(capsys):
    # one random chart of each of the 18 styles on the bundled demo prices, read without OCR
    code, stdout, _ = run(capsys, "eval", "chart-reader", "--sweep", "1", "--per-style", "1", "--json")
    metrics = json.loads(stdout)
    assert code == 0 and metrics["charts"] == 18 and metrics["seeds"] == [1]
    assert metrics["bar_count_exact"] == 18 - len(metrics["failures"])
    assert metrics["bar_count_exact_rate"] >= 0.8  # 15 of 18 when measured: three dense 640x480 JPEG+resized charts
    for failure in metrics["failures"]:
        assert failure["bars_read"] != failure["bars"] and "(seed 1)" in failure["chart"]


def test_eval_chart_reader_sweep_rejects_no_charts(capsys):
    code, _, stderr = run(capsys, "eval", "chart-reader", "--sweep", "1", "--per-style", "0")
    assert code == 1 and "--per-style must be at least 1" in stderr
