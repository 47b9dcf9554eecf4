"""The whole CPU chain through the real CLI, as a user runs it:
dataset build -> finetune init-tiny -> finetune train -> export (tuned and base) -> finetune eval -> serve --print.

Each step reads what the previous one wrote, so a change in a folder layout, a summary key or an
export.json field that breaks the hand-over fails here even when each step's own tests pass.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alphasignal.cli import main
from alphasignal.config import DatasetConfig
from alphasignal.dataset import build_dataset
from tests.test_dataset_build import write_prices


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(argv)
    return code, capsys.readouterr().out


@pytest.mark.slow
def test_dataset_to_served_model_on_the_cpu(tmp_path: Path, capsys) -> None:
    write_prices(tmp_path, "AAA", 1, bars=500)
    cfg = DatasetConfig(windows=(30,), stride=10, horizon=5, timeframes=("1d",), image_width=128,
                        image_height=128, val_fraction=0.2, test_fraction=0.2)
    build_dataset(cfg, out=tmp_path / "ds", csv=[tmp_path / "AAA.csv"], workers=1, progress=False)
    n_test = len((tmp_path / "ds" / "test.jsonl").read_text().splitlines())
    assert n_test >= 2

    code, _ = run_cli(["finetune", "init-tiny", str(tmp_path / "base")], capsys)
    assert code == 0
    (tmp_path / "training.toml").write_text(
        "[training]\n"
        f'method = "cpu"\nbase_model = "{tmp_path / "base"}"\ndataset = "{tmp_path / "ds"}"\n'
        f'output_dir = "{tmp_path / "models"}"\nrun_name = "tiny"\n'
        "lora_r = 4\nlora_alpha = 8\nlearning_rate = 1e-3\nmax_steps = 2\nbatch_size = 1\ngrad_accum = 1\n"
        "save_steps = 2\nlogging_steps = 1\nmax_image_pixels = 16384\nmax_seq_length = 4096\n"
    )
    code, out = run_cli(["finetune", "train", "--config", str(tmp_path / "training.toml"), "--no-progress",
                         "--json"], capsys)
    assert code == 0
    summary = json.loads(out)
    assert summary["steps"] == 2 and summary["method"] == "cpu-lora"
    run = tmp_path / "models" / "tiny"
    assert (run / "summary.json").is_file() and (run / "adapter" / "adapter_config.json").is_file()

    for source, out_dir in ((run, "tuned"), (tmp_path / "base", "base-export")):
        code, out = run_cli(["export", str(source), "--out", str(tmp_path / out_dir), "--json"], capsys)
        assert code == 0
        report = json.loads(out)
        assert (tmp_path / out_dir / "Modelfile").is_file()
    modelfile = (tmp_path / "tuned" / "Modelfile").read_text().splitlines()
    froms = [line.split(maxsplit=1)[1] for line in modelfile if line.startswith("FROM ")]
    assert len(froms) == 2 and all((tmp_path / "tuned" / f).is_file() for f in froms)
    assert "ollama create" in json.dumps(report)

    code, out = run_cli(["finetune", "eval", "--dataset", str(tmp_path / "ds"), "--base",
                         str(tmp_path / "base-export"), "--tuned", str(tmp_path / "tuned"), "--limit", "2",
                         "--json"], capsys)
    assert code == 0
    result = json.loads(out)
    models = result["models"]
    assert set(models) == {"base", "tuned"}
    for name in ("base", "tuned"):
        m = models[name]
        assert m["n"] == 2
        shares = m["distribution"]
        assert abs(sum(shares.values()) - 1.0) < 1e-6   # BUY/SELL/HOLD/invalid cover every row
        assert m["schema_valid_rate"] == m["valid"] / 2
        assert m["ci95"][0] <= m["accuracy"] <= m["ci95"][1]

    code, out = run_cli(["serve", "llama-server", str(tmp_path / "tuned"), "--port", "8123", "--print"], capsys)
    assert code == 0
    assert "--clip_model_path" in out and "openai:" in out and "@http://127.0.0.1:8123/v1" in out
    code, out = run_cli(["serve", "ollama", str(tmp_path / "tuned"), "--name", "tiny-chart", "--print"], capsys)
    assert code == 0
    assert f"ollama create tiny-chart -f {tmp_path / 'tuned' / 'Modelfile'}" in out and "ollama:tiny-chart" in out
