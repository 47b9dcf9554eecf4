"""The examples run as written."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_python_api_example_runs():
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "python_api.py")], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0].split()
    assert first[0] in {"BUY", "SELL", "HOLD"} and 0.0 <= float(first[1]) <= 1.0
    assert any(line.startswith(("BULLISH", "BEARISH", "NEUTRAL")) for line in proc.stdout.splitlines())


def test_crontab_example_uses_real_flags():
    from alphasignal.cli import build_parser

    line = next(l for l in (ROOT / "examples" / "crontab.txt").read_text().splitlines() if l and not l.startswith("#"))
    argv = line.split("bin/alphasignal ", 1)[1].split(">")[0].split()
    args = build_parser().parse_args(argv)
    assert args.command == "analyze" and args.output and args.news_file and args.json


@pytest.mark.parametrize("name", ["dataset.toml", "dataset-tiny.toml", "training.toml", "training-tiny.toml"])
def test_example_settings_files_load(name):
    from alphasignal.config import load_settings

    settings = load_settings(ROOT / "examples" / name)
    if name.startswith("dataset"):
        assert all((ROOT / p).exists() for p in settings.dataset.csv)
    else:
        assert settings.training.method in ("cpu", "unsloth")
