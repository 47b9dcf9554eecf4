"""Fine-tuning: rows -> collator -> real CPU LoRA training of the tiny VLM -> run folder, resume, errors."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from alphasignal.config import DatasetConfig, TrainingConfig, load_settings
from alphasignal.errors import TrainingError

ROOT = Path(__file__).resolve().parents[1]
SUMMARY_KEYS = {
    "run_name", "base_model", "method", "dataset", "adapter", "steps", "epochs", "train_loss", "eval_loss",
    "final_eval_loss", "train_seconds", "steps_per_second", "samples", "config", "versions", "resumed_from_step",
}


def cli(argv: list[str]) -> int:
    from alphasignal.cli_finetune import add_parsers, run

    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="command"))
    return run(parser.parse_args(argv))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """The tiny base model, written by `finetune init-tiny`."""
    out = tmp_path_factory.mktemp("tiny") / "base"
    assert cli(["finetune", "init-tiny", str(out), "--seed", "1"]) == 0
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A real dataset-builder dataset (pipeline prompt, rendered charts) from a random-walk CSV."""
    from alphasignal.dataset import build_dataset
    from tests.test_dataset_build import write_prices

    root = tmp_path_factory.mktemp("built")
    write_prices(root, "AAA", 1, bars=300)
    cfg = DatasetConfig(windows=(30,), stride=20, horizon=5, timeframes=("1d",), image_width=128, image_height=128,
                        val_fraction=0.2, test_fraction=0.2)
    build_dataset(cfg, out=root / "ds", csv=[root / "AAA.csv"], workers=1, progress=False)
    return root / "ds"


@pytest.fixture(scope="module")
def short(built, tmp_path_factory) -> Path:
    """The built charts and targets with a short prompt, so a training step takes a fraction of a second."""
    out = tmp_path_factory.mktemp("short")
    shutil.copytree(built / "images", out / "images")
    rows = [json.loads(line) for line in (built / "train.jsonl").read_text().splitlines()]
    for row in rows:
        row["messages"][0]["content"][0]["text"] = "You read candlestick charts."
        row["messages"][1]["content"][1]["text"] = "Chart of AAA. Answer with the JSON object."
    (out / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:4]))
    (out / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[4:6]))
    (out / "test.jsonl").write_text("")
    return out


def tiny_config(tiny: Path, dataset: Path, out: Path, **kw) -> TrainingConfig:
    base = dict(method="cpu", base_model=str(tiny), dataset=dataset, output_dir=out, run_name="run", lora_r=8,
                lora_alpha=16, batch_size=2, grad_accum=1, learning_rate=5e-3, max_steps=4, save_steps=2,
                logging_steps=1, max_image_pixels=128 * 128, seed=0)
    return TrainingConfig(**{**base, **kw})


# ---------------------------------------------------------------- config and examples


def test_examples_load_as_training_settings():
    gpu = load_settings(ROOT / "examples" / "training.toml").training
    assert gpu.method == "unsloth" and gpu.base_model == "unsloth/Qwen2.5-VL-3B-Instruct"
    assert gpu.batch_size * gpu.grad_accum == 8 and not gpu.finetune_vision_layers
    cpu = load_settings(ROOT / "examples" / "training-tiny.toml", training={"max_steps": 3}).training
    assert cpu.method == "cpu" and cpu.run_name == "tiny-cpu" and cpu.max_steps == 3  # flag over file
    assert cpu.lora_r == 8  # the rest of the file is kept under an override


def test_training_config_rejects_bad_values():
    with pytest.raises(ValueError):
        TrainingConfig(run_name="a/b")
    with pytest.raises(ValueError):
        TrainingConfig(target_modules=())
    with pytest.raises(ValueError):
        TrainingConfig(method="tpu")


def test_lora_targets_language_model_only_unless_vision_asked():
    import re

    from alphasignal.finetune.train import lora_target_regex

    text = "model.language_model.layers.0.self_attn.q_proj"
    vision = "model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj"
    pattern = lora_target_regex(TrainingConfig())
    assert re.fullmatch(pattern, text) and not re.fullmatch(pattern, vision)
    both = lora_target_regex(TrainingConfig(finetune_vision_layers=True))
    assert re.fullmatch(both, text) and re.fullmatch(both, vision)
    assert not re.fullmatch(both, "model.vision_tower.vision_model.embeddings.patch_embedding")


# ---------------------------------------------------------------- rows and the collator


def test_read_split_gives_absolute_existing_images(built):
    from alphasignal.finetune.data import read_split

    rows = read_split(built, "train")
    assert len(rows) >= 3 and set(rows[0]) == {"id", "images", "messages"}
    assert all(Path(p).is_absolute() and Path(p).is_file() for r in rows for p in r["images"])
    assert [m["role"] for m in rows[0]["messages"]] == ["system", "user", "assistant"]
    assert len(read_split(built, "train", max_samples=2)) == 2


def test_images_shrunk_to_max_pixels(built):
    from alphasignal.finetune.data import conversation, read_split

    row = read_split(built, "train")[0]
    image = conversation(row, max_pixels=64 * 64)[1]["content"][0]["image"]
    assert image.mode == "RGB" and image.size[0] * image.size[1] <= 64 * 64 and image.size[0] == image.size[1]
    assert conversation(row, max_pixels=10**6)[1]["content"][0]["image"].size == (128, 128)


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_collator_trains_on_the_answer_only(tiny, built, padding_side):
    from transformers import AutoProcessor

    from alphasignal.finetune.collate import IGNORE_INDEX, ChatCollator
    from alphasignal.finetune.data import answer_text, read_split

    processor = AutoProcessor.from_pretrained(tiny)
    processor.tokenizer.padding_side = padding_side
    rows = read_split(built, "train")[:3]
    batch = ChatCollator(processor, 128 * 128, 4096)(rows)
    tok = processor.tokenizer
    assert batch["pixel_values"].shape[0] == 3 and batch["labels"].shape == batch["input_ids"].shape
    for b, row in enumerate(rows):
        labels = batch["labels"][b]
        kept = labels[labels != IGNORE_INDEX]
        assert tok.decode(kept) == answer_text(row) + "<end_of_turn>"
        json.loads(tok.decode(kept[:-1]))  # the unmasked part is exactly the target JSON + end-of-turn
    pads = batch["attention_mask"] == 0
    assert pads.any() and (batch["labels"][pads] == IGNORE_INDEX).all()
    image_token = tok.convert_tokens_to_ids("<image_soft_token>")
    assert (batch["labels"][batch["input_ids"] == image_token] == IGNORE_INDEX).all()


def test_collator_refuses_rows_over_max_seq_length(tiny, built):
    from transformers import AutoProcessor

    from alphasignal.finetune.collate import ChatCollator
    from alphasignal.finetune.data import read_split

    rows = read_split(built, "train")[:1]
    with pytest.raises(TrainingError, match="max_seq_length = 100"):
        ChatCollator(AutoProcessor.from_pretrained(tiny), 128 * 128, 100)(rows)


# ---------------------------------------------------------------- bad input


def test_missing_dataset_folder(tmp_path):
    from alphasignal.finetune.data import read_split

    with pytest.raises(TrainingError, match="dataset folder not found: .*nowhere"):
        read_split(tmp_path / "nowhere", "train")


def test_missing_and_empty_train_split(tmp_path):
    from alphasignal.finetune.data import read_split

    with pytest.raises(TrainingError, match=r"train\.jsonl is missing"):
        read_split(tmp_path, "train")
    (tmp_path / "train.jsonl").write_text("\n")
    with pytest.raises(TrainingError, match="train split is empty"):
        read_split(tmp_path, "train")
    assert read_split(tmp_path, "val", required=False) == []


def test_row_with_missing_image(short, tmp_path):
    from alphasignal.finetune.data import read_split

    shutil.copy(short / "train.jsonl", tmp_path / "train.jsonl")
    with pytest.raises(TrainingError, match=r"train\.jsonl:1: image not found: .*images/.*\.png"):
        read_split(tmp_path, "train")


def test_bad_json_row(tmp_path):
    from alphasignal.finetune.data import read_split

    (tmp_path / "train.jsonl").write_text("{not json\n")
    with pytest.raises(TrainingError, match=r"train\.jsonl:1 is not valid JSON"):
        read_split(tmp_path, "train")


def test_base_model_never_downloaded(tmp_path, monkeypatch):
    from alphasignal.finetune.train import resolve_base

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TrainingError, match="huggingface-cli download someone/no-such-vlm"):
        resolve_base("someone/no-such-vlm")
    with pytest.raises(TrainingError, match="no config.json"):
        resolve_base(str(tmp_path))
    with pytest.raises(TrainingError, match="init-tiny"):
        resolve_base(str(tmp_path / "missing" / "folder"))


def test_existing_run_folder_needs_resume_or_overwrite(tmp_path):
    from alphasignal.finetune.runs import open_run

    paths, checkpoint = open_run(tmp_path, "r1", "base")
    assert paths.root.is_dir() and checkpoint is None
    with pytest.raises(TrainingError, match="already exists.*--resume.*--overwrite"):
        open_run(tmp_path, "r1", "base")
    with pytest.raises(TrainingError, match="nothing to resume"):
        open_run(tmp_path, "r1", "base", resume=True)
    with pytest.raises(TrainingError, match="choose one"):
        open_run(tmp_path, "r1", "base", resume=True, overwrite=True)
    (paths.root / "notes.txt").write_text("mine")
    with pytest.raises(TrainingError, match="refusing to overwrite"):
        open_run(tmp_path, "r1", "base", overwrite=True)
    assert (paths.root / "notes.txt").read_text() == "mine"  # nothing half-removed


def test_resume_without_a_name_picks_the_newest_run_with_a_checkpoint(tmp_path):
    import os

    from alphasignal.finetune.runs import default_run_name, open_run

    older, newer = tmp_path / default_run_name("org/Base-VLM"), tmp_path / "Base-VLM-20990101-000000"
    for run, step, mtime in ((older, 7, 1_000), (newer, 3, 2_000)):
        (run / "checkpoints" / f"checkpoint-{step}").mkdir(parents=True)
        (run / "summary.json").write_text("{}")
        os.utime(run, (mtime, mtime))
    (tmp_path / "other-20990101-000000" / "checkpoints" / "checkpoint-9").mkdir(parents=True)
    paths, checkpoint = open_run(tmp_path, None, "org/Base-VLM", resume=True)
    assert paths.root == newer.resolve() and checkpoint.name == "checkpoint-3"
    assert not (newer / "summary.json").exists()  # a resumed run is unfinished until it writes a new one


# ---------------------------------------------------------------- the GPU path, without a GPU


def test_unsloth_without_cuda_fails_before_heavy_imports(tmp_path):
    code = (
        "import sys\n"
        "from alphasignal.config import TrainingConfig\n"
        "from alphasignal.errors import TrainingError\n"
        "from alphasignal.finetune.train import train_model\n"
        f"cfg = TrainingConfig(method='unsloth', dataset={str(tmp_path)!r}, output_dir={str(tmp_path)!r})\n"
        "try:\n    train_model(cfg)\nexcept TrainingError as exc:\n    print(exc)\n"
        "print(sorted(m for m in ('unsloth', 'transformers', 'peft', 'trl', 'datasets') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={"CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    message, modules = proc.stdout.strip().splitlines()
    assert "needs a CUDA GPU; use training.method = 'cpu'" in message
    assert modules == "[]"
    assert list(tmp_path.iterdir()) == []  # no run folder was created


def test_unsloth_missing_extra_says_what_to_install(monkeypatch):
    from alphasignal.finetune import train

    monkeypatch.setattr(train, "cuda_available", lambda: True)
    monkeypatch.setattr(train.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(TrainingError, match=r"pip install 'alphasignal\[finetune\]'"):
        train.check_gpu_path()
    assert train.resolve_method("auto") == "unsloth"
    monkeypatch.setattr(train, "cuda_available", lambda: False)
    assert train.resolve_method("auto") == "cpu"


# ---------------------------------------------------------------- real CPU training


@pytest.mark.slow
def test_cpu_training_overfits_and_writes_the_run_folder(tiny, short, tmp_path):
    from alphasignal.finetune.train import train_model

    cfg = tiny_config(tiny, short, tmp_path, max_steps=24, save_steps=12)
    result = train_model(cfg, progress=False)
    s = result.summary
    losses = [p["loss"] for p in s["train_loss"]]
    assert len(losses) == 24 and all(0 < x < 100 for x in losses)
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    # Memorising 4 answers: observed 6.81 -> 6.35. The tiny model's frozen tied embeddings (std 0.02) and final
    # norm bound its logits, so LoRA cannot take the loss far below ln(vocab) = 6.93 in 24 steps; a broken
    # recipe (labels on the prompt, masked answer, frozen adapter) shows no such drop.
    assert last < first - 0.25, losses
    root = tmp_path / "run"
    assert result.run_dir == root and {p.name for p in root.iterdir()} == {"adapter", "checkpoints", "summary.json", "loss.png"}
    assert (root / "adapter" / "adapter_config.json").is_file() and (root / "adapter" / "adapter_model.safetensors").is_file()
    assert (root / "adapter" / "tokenizer.json").is_file() and (root / "adapter" / "processor_config.json").is_file()
    assert (root / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written = json.loads((root / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(written) and written["steps"] == 24 and written["method"] == "cpu-lora"
    assert written["base_model"] == str(tiny) and written["samples"] == {"train": 4, "val": 2}
    assert [p["step"] for p in written["eval_loss"]] == [12, 24]  # val loss at each checkpoint, none twice
    assert written["final_eval_loss"] == written["eval_loss"][-1]["loss"]
    assert written["versions"]["trl"] and written["versions"]["peft"] and written["config"]["lora_r"] == 8
    adapter = json.loads((root / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 8 and "language_model" in adapter["target_modules"]


@pytest.mark.slow
def test_resume_continues_from_the_checkpoint(tiny, short, tmp_path):
    from alphasignal.finetune.train import train_model

    first = train_model(tiny_config(tiny, short, tmp_path, max_steps=2, save_steps=2), progress=False)
    assert first.summary["steps"] == 2 and (tmp_path / "run" / "checkpoints" / "checkpoint-2").is_dir()
    resumed = train_model(tiny_config(tiny, short, tmp_path, max_steps=3, save_steps=2, resume=True), progress=False)
    s = resumed.summary
    assert s["steps"] == 3 and s["resumed_from_step"] == 2
    assert [p["step"] for p in s["train_loss"]] == [1, 2, 3]  # history kept; training went on at step 3
    assert s["train_loss"][:2] == first.summary["train_loss"]
    assert (tmp_path / "run" / "checkpoints" / "checkpoint-3").is_dir()
    assert (tmp_path / "run" / "summary.json").is_file()


@pytest.mark.slow
def test_cli_train_json_and_refusals(tiny, short, tmp_path, capsys):
    toml = tmp_path / "t.toml"
    toml.write_text(f'[training]\nmethod = "cpu"\nbase_model = "{tiny}"\nlora_r = 4\nlearning_rate = 1e-3\n'
                    f'batch_size = 2\ngrad_accum = 1\nsave_steps = 1\noutput_dir = "{tmp_path / "runs"}"\n')
    argv = ["finetune", "train", "--config", str(toml), "--dataset", str(short), "--max-steps", "2",
            "--max-samples", "2", "--run-name", "c", "--no-progress", "--json"]
    assert cli(argv) == 0
    summary = json.loads(capsys.readouterr().out)  # stdout is the JSON and nothing else
    assert summary["steps"] == 2 and summary["samples"] == {"train": 2, "val": 2} and summary["config"]["lora_r"] == 4
    with pytest.raises(TrainingError, match="already exists"):
        cli(argv)
    summary_file = tmp_path / "runs" / "c" / "summary.json"
    before = summary_file.read_bytes()
    assert cli(argv[:-1] + ["--overwrite"]) == 0 and summary_file.read_bytes() != before
    assert "2 steps" in capsys.readouterr().out


def test_failed_run_leaves_no_summary(tiny, short, tmp_path, monkeypatch):
    from alphasignal.finetune import train

    def boom(*args, **kwargs):
        raise RuntimeError("killed mid-run")

    monkeypatch.setattr("transformers.Trainer.train", boom)
    with pytest.raises(RuntimeError, match="killed mid-run"):
        train.train_model(tiny_config(tiny, short, tmp_path), progress=False)
    assert (tmp_path / "run").is_dir() and not (tmp_path / "run" / "summary.json").exists()


# ---------------------------------------------------------------- CLI wiring


def test_init_tiny_refuses_a_used_folder(tmp_path):
    (tmp_path / "x").write_text("keep")
    with pytest.raises(TrainingError, match="not an empty folder"):
        cli(["finetune", "init-tiny", str(tmp_path)])


def test_eval_subcommand_passes_args_through(monkeypatch, tmp_path):
    seen = {}
    fake = types.ModuleType("alphasignal.finetune.evaluate")
    fake.cmd_eval = lambda args: seen.setdefault("args", args) and 0
    monkeypatch.setitem(sys.modules, "alphasignal.finetune.evaluate", fake)
    code = cli(["finetune", "eval", "--dataset", str(tmp_path), "--base", "llamacpp:/m.gguf",
                "--tuned", "openai:tuned@http://127.0.0.1:8080/v1", "--limit", "5", "--json"])
    args = seen["args"]
    assert code == 0 and args.dataset == tmp_path and args.limit == 5 and args.json
    assert args.base == "llamacpp:/m.gguf" and args.tuned.startswith("openai:tuned@") and args.config is None


def test_wired_into_the_main_cli(tmp_path, capsys):
    from alphasignal.cli import main

    (tmp_path / "x").write_text("keep")
    assert main(["finetune", "init-tiny", str(tmp_path)]) == 1
    assert "not an empty folder" in capsys.readouterr().err
    code = main(["finetune", "train", "--method", "unsloth", "--dataset", str(tmp_path), "--output-dir", str(tmp_path)])
    err = capsys.readouterr().err
    if "needs a CUDA GPU" in err:
        assert code == 1
    else:  # a CUDA machine without the extra
        assert code == 1 and "alphasignal[finetune]" in err
    with pytest.raises(SystemExit) as usage:
        main(["finetune", "train", "--resume", "--overwrite"])
    assert usage.value.code == 2
