"""The LoRA fine-tuning recipe: Unsloth QLoRA on a CUDA GPU, transformers + peft + TRL on the CPU.

Both paths read the dataset builder's ``train`` split (``val`` gives ``eval_loss``),
train a LoRA adapter with TRL's ``SFTTrainer`` on the answer tokens only, and write
the run folder described in ``runs``. ``train_model(cfg)`` is the entry point.

* ``cpu`` (``method = "cpu"``, or ``"auto"`` without CUDA): the base checkpoint (a
  local folder, typically the tiny model from ``finetune init-tiny``) is loaded in
  float32 with ``AutoModelForImageTextToText``; LoRA via peft; our ``ChatCollator``.
  Unsloth is not used: it refuses vision models on the CPU backend.
* ``unsloth`` (``method = "unsloth"``, or ``"auto"`` with CUDA): ``FastVisionModel``
  in 4 bit with Unsloth's gradient checkpointing, ``UnslothVisionDataCollator``
  given the processor as its tokenizer (unsloth#2478: with the bare tokenizer the
  exported model lost vision, unsloth#2248), 8-bit AdamW, bf16 where supported.

Base weights are never downloaded: a hub id is looked up in the local Hugging Face
cache only. Heavy imports (torch, transformers, peft, trl, unsloth) happen inside
the functions that need them; the GPU checks run before any of them.
"""

from __future__ import annotations

import importlib.util
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from ..config import TrainingConfig
from ..errors import TrainingError
from .data import conversation, read_split
from .runs import RunPaths, library_versions, loss_history, plan_run, plot_loss, start_run, write_summary

METHODS = {"cpu": "cpu-lora", "unsloth": "unsloth-qlora"}
CPU_LIBS = ("torch", "transformers", "peft", "trl", "accelerate")
# Vision-tower layers that get LoRA with finetune_vision_layers (SigLIP / Qwen-VL naming).
VISION_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "o_proj", "qkv", "proj", "fc1", "fc2",
                  "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class TrainResult:
    """A finished run: its folder and the summary written to ``summary.json``."""

    run_dir: Path
    summary: dict[str, Any]

    def summary_line(self) -> str:
        s = self.summary
        losses = [p["loss"] for p in s["train_loss"]]
        loss = f"loss {losses[0]:.4f} -> {losses[-1]:.4f}" if losses else "no loss logged"
        val = f", val loss {s['final_eval_loss']:.4f}" if s.get("final_eval_loss") is not None else ""
        return (f"{s['run_name']}: {s['steps']} steps ({s['epochs']:.2f} epochs) in {s['train_seconds']:.1f} s "
                f"({s['steps_per_second']:.2f} steps/s), {loss}{val}; adapter in {s['adapter']}")


# ---------------------------------------------------------------- choosing the path


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def resolve_method(method: str) -> str:
    """``cpu`` or ``unsloth`` for a configured method (``auto``: unsloth when CUDA is available)."""
    if method == "auto":
        return "unsloth" if cuda_available() else "cpu"
    if method not in METHODS:
        raise TrainingError(f"unknown training.method {method!r}; use auto, unsloth or cpu")
    return method


def check_gpu_path() -> None:
    """Raise before anything heavy is imported when the Unsloth path cannot run here."""
    if not cuda_available():
        raise TrainingError("training.method = 'unsloth' needs a CUDA GPU; use training.method = 'cpu' "
                            "(with a small base such as `alphasignal finetune init-tiny`) on this machine")
    if importlib.util.find_spec("unsloth") is None:
        raise TrainingError("Unsloth is not installed: pip install 'alphasignal[finetune]' (CUDA machines only)")


def resolve_base(base_model: str) -> Path:
    """A local checkpoint folder for ``base_model``: the folder itself, or the hub id's local HF cache copy."""
    local = Path(base_model).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise TrainingError(f"{local} is not a model checkpoint (no config.json); "
                                "point training.base_model at a saved model folder")
        return local.resolve()
    if local.is_absolute() or base_model.startswith((".", "~")) or base_model.count("/") != 1:
        raise TrainingError(f"base model not found: {base_model} is neither a folder nor a hub id "
                            "(like unsloth/Qwen2.5-VL-3B-Instruct); for a tiny CPU model run "
                            "`alphasignal finetune init-tiny DIR`")
    return _cached_snapshot(base_model)


def local_snapshot(repo_id: str) -> Optional[Path]:
    """The folder of ``repo_id`` in the local Hugging Face cache; None when it is not there
    (or huggingface_hub is missing). Never downloads."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except (ImportError, OSError, ValueError):  # LocalEntryNotFoundError is an OSError; a malformed id a ValueError
        return None


def _cached_snapshot(repo_id: str) -> Path:
    found = local_snapshot(repo_id)
    if found is None:
        raise TrainingError(f"base model {repo_id}: no such folder, and not in the local Hugging Face cache "
                            f"(weights are never downloaded during training); fetch it once with "
                            f"`huggingface-cli download {repo_id}`, or point training.base_model at a local folder "
                            "(`alphasignal finetune init-tiny DIR` writes a tiny one)")
    return found


def lora_target_regex(cfg: TrainingConfig) -> str:
    """peft's ``target_modules`` as a regex: the language model's projections (+ vision blocks when asked)."""
    names = "|".join(sorted(set(cfg.target_modules)))
    pattern = rf".*language_model.*\.({names})"
    if cfg.finetune_vision_layers:
        vision = "|".join(VISION_TARGETS)
        pattern = rf"(?:{pattern}|.*(?:vision_tower|visual|vision_model).*(?:layers|blocks)\.\d+\..*\.({vision}))"
    return pattern


# ---------------------------------------------------------------- the run


def train_model(
    cfg: TrainingConfig, *, overwrite: bool = False, max_samples: Optional[int] = None, progress: bool = True
) -> TrainResult:
    """Fine-tune ``cfg.base_model`` on ``cfg.dataset``; returns the finished run (see the module docstring)."""
    method = resolve_method(cfg.method)
    if method == "unsloth":
        check_gpu_path()
    base = resolve_base(cfg.base_model)
    train_rows = read_split(cfg.dataset, "train", max_samples=max_samples)
    val_rows = read_split(cfg.dataset, "val", max_samples=max_samples, required=False)
    paths, checkpoint = plan_run(cfg.output_dir, cfg.run_name, cfg.base_model, resume=cfg.resume, overwrite=overwrite)
    if method == "unsloth":
        model, processor, collator = _unsloth_model(base, cfg)
    else:
        model, processor, collator = _cpu_model(base, cfg)
    start_run(paths, checkpoint)  # only now, so a base that fails to load leaves no folder behind
    trainer = _trainer(model, processor, collator, cfg, method, paths, train_rows, val_rows, progress)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    seconds = time.perf_counter() - started
    final_eval = _final_eval_loss(trainer) if val_rows else None
    model.save_pretrained(paths.adapter)
    processor.save_pretrained(paths.adapter)
    summary = _summary(cfg, method, base, paths, trainer, seconds, final_eval, len(train_rows), len(val_rows), checkpoint)
    plot_loss(paths, summary["train_loss"], summary["eval_loss"], title=f"{paths.name} ({summary['method']})")
    write_summary(paths, summary)
    return TrainResult(paths.root, summary)


def _final_eval_loss(trainer) -> float:
    """The val loss of the final weights (evaluated now unless the last step already was)."""
    _, evals = loss_history(trainer.state.log_history)
    if evals and evals[-1]["step"] == trainer.state.global_step:
        return evals[-1]["loss"]
    return float(trainer.evaluate()["eval_loss"])


def _summary(cfg, method, base, paths: RunPaths, trainer, seconds, final_eval, n_train, n_val, checkpoint) -> dict:
    state = trainer.state
    train, evals = loss_history(state.log_history)
    start_step = int(checkpoint.name.split("-")[-1]) if checkpoint else 0
    libs = CPU_LIBS + (("unsloth", "unsloth_zoo", "bitsandbytes") if method == "unsloth" else ())
    return {
        "run_name": paths.name,
        "base_model": cfg.base_model,
        "base_path": str(base),
        "method": METHODS[method],
        "dataset": str(Path(cfg.dataset).resolve()),
        "adapter": str(paths.adapter),
        "steps": int(state.global_step),
        "epochs": float(state.epoch or 0.0),
        "resumed_from_step": start_step if checkpoint else None,
        "train_loss": train,
        "eval_loss": evals,
        "final_eval_loss": final_eval,
        "train_seconds": round(seconds, 3),
        "steps_per_second": round((state.global_step - start_step) / seconds, 4) if seconds > 0 else 0.0,
        "samples": {"train": n_train, "val": n_val},
        "config": cfg.model_dump(mode="json"),
        "versions": library_versions(libs),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


# ---------------------------------------------------------------- the two model set-ups


def _cpu_model(base: Path, cfg: TrainingConfig):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from .collate import ChatCollator

    try:
        processor = AutoProcessor.from_pretrained(base, local_files_only=True)
        model = AutoModelForImageTextToText.from_pretrained(base, local_files_only=True, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise TrainingError(f"cannot load the base model from {base}: {exc}".splitlines()[0]) from exc
    torch.manual_seed(cfg.seed)  # the LoRA weights are drawn here
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=lora_target_regex(cfg), bias="none", task_type="CAUSAL_LM")
    try:
        with warnings.catch_warnings():
            # peft reads the deprecated `is_gradient_checkpointing` property (transformers 5.2x warns)
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            model = get_peft_model(model, lora)
    except ValueError as exc:
        raise TrainingError(f"LoRA found no layer to adapt in {base}: {exc}; check training.target_modules") from exc
    return model, processor, ChatCollator(processor, cfg.max_image_pixels, cfg.max_seq_length)


def _unsloth_model(base: Path, cfg: TrainingConfig):
    # Unsloth must be imported before transformers / trl so that its patches apply.
    from unsloth import FastVisionModel
    from unsloth.trainer import UnslothVisionDataCollator

    model, processor = FastVisionModel.from_pretrained(
        str(base), load_in_4bit=True, use_gradient_checkpointing="unsloth", max_seq_length=cfg.max_seq_length,
    )
    targets = set(cfg.target_modules)
    model = FastVisionModel.get_peft_model(
        model,
        finetune_vision_layers=cfg.finetune_vision_layers,
        finetune_language_layers=True,
        finetune_attention_modules=bool(targets & {"q_proj", "k_proj", "v_proj", "o_proj"}),
        finetune_mlp_modules=bool(targets & {"gate_proj", "up_proj", "down_proj"}),
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, bias="none",
        random_state=cfg.seed,
    )
    FastVisionModel.for_training(model)
    # The processor, not its bare tokenizer, as the collator's tokenizer (unsloth#2478).
    inner = UnslothVisionDataCollator(model, processor, max_seq_length=cfg.max_seq_length)
    return model, processor, _ConversationCollator(inner, cfg.max_image_pixels)


class _ConversationCollator:
    """Feed Unsloth's collator the rows as ``{"messages": [... PIL images ...]}``."""

    def __init__(self, inner: Any, max_pixels: int):
        self.inner = inner
        self.max_pixels = max_pixels

    def __call__(self, rows: list[dict]) -> Any:
        return self.inner([{"messages": conversation(row, self.max_pixels)} for row in rows])


# ---------------------------------------------------------------- the trainer


def _trainer(model, processor, collator, cfg: TrainingConfig, method: str, paths: RunPaths, train_rows, val_rows, progress):
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl import SFTConfig, SFTTrainer

    trainer_class = _cpu_trainer_class() if method == "cpu" else SFTTrainer
    trainer = trainer_class(
        model=model,
        args=SFTConfig(**_trainer_args(cfg, method, paths, bool(val_rows))),
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(val_rows) if val_rows else None,
        data_collator=collator,
        processing_class=processor,  # a ProcessorMixin: TRL then treats the run as vision-language
    )
    # The Trainer prints its logs on stdout; results go there, so progress goes to stderr instead.
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if progress:
        trainer.add_callback(_progress_callback())
    return trainer


def _cpu_trainer_class():
    from transformers import Trainer
    from trl import SFTTrainer

    class CpuSFTTrainer(SFTTrainer):
        """SFTTrainer with the model's own loss.

        TRL 1.15 computes the SFT loss through a fused LM head whose kernel is Triton-only
        (``trl/kernels/chunked_logprob.py``); on a CPU-only torch it fails with
        ``'NoneType' object has no attribute 'apply'``. The model's loss on the same
        labels (-100 ignored) is the same quantity, computed from the full logits.
        """

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            return Trainer.compute_loss(
                self, model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )

    return CpuSFTTrainer


def _trainer_args(cfg: TrainingConfig, method: str, paths: RunPaths, has_val: bool) -> dict[str, Any]:
    args: dict[str, Any] = dict(
        output_dir=str(paths.checkpoints),
        run_name=paths.name,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        eval_strategy="steps" if has_val else "no",
        eval_steps=cfg.save_steps,
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to="none",
        disable_tqdm=True,  # our own bar, on stderr
        remove_unused_columns=False,  # the collator needs the raw rows
        dataset_kwargs={"skip_prepare_dataset": True},  # the collator tokenizes and loads images per batch
        dataset_text_field="",
        max_length=None,  # enforced by the collator (max_seq_length), which sees the image tokens
        dataloader_num_workers=0,
        weight_decay=0.0,
        lr_scheduler_type="linear",
        warmup_steps=0,
    )
    if method == "cpu":
        args.update(use_cpu=True, bf16=False, fp16=False, activation_checkpointing=False, optim="adamw_torch")
    else:
        args.update(_gpu_precision(), optim="adamw_8bit")
    return args


def _gpu_precision() -> dict[str, bool]:
    from unsloth import is_bf16_supported

    bf16 = bool(is_bf16_supported())
    return {"bf16": bf16, "fp16": not bf16}


def _progress_callback():
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class StderrProgress(TrainerCallback):
        """A tqdm bar on stderr with the latest loss; Trainer's own writes its log lines to stdout."""

        bar = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="training", unit="step",
                            file=sys.stderr, dynamic_ncols=True)

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.bar is not None and logs:
                shown = {k: f"{logs[k]:.4f}" for k in ("loss", "eval_loss") if isinstance(logs.get(k), float)}
                if shown:
                    self.bar.set_postfix(shown, refresh=False)

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return StderrProgress()
