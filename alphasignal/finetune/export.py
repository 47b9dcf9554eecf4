"""``alphasignal export``: a fine-tuning run (or any HF checkpoint) -> GGUF + mmproj -> Ollama Modelfile.

Steps, all offline:

1. a run folder (``adapter/`` + ``summary.json``): load the base model from its
   local path (or the local HF cache), apply the LoRA adapter, ``merge_and_unload``
   and save the merged checkpoint with its processor and chat template
   (``merged/``); a plain checkpoint folder is exported as it is;
2. convert: Gemma-3 VLMs with our own converter (``gguf_gemma3``), anything else
   with llama.cpp's ``convert_hf_to_gguf.py`` from a local checkout;
3. quantize the text model with llama.cpp's quantizer (the projector stays
   f16/f32, as llama.cpp ships them);
4. load the pair the way the ``llamacpp`` backend will, so a projector that does
   not fit the model fails here and not at analysis time;
5. write ``Modelfile`` (two FROM lines, template, parameters) and ``export.json``.

Everything is written into a hidden sibling folder first and renamed at the end:
a failed export leaves no half-written output folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import ExportError
from . import gguf_tools
from .gguf_gemma3 import checkpoint_tensors, convert_gemma3, is_gemma3_vlm, read_config

FINETUNE_HINT = "pip install 'alphasignal[finetune-cpu]'"
F32_LIMIT = 100_000_000  # parameters; smaller models are converted in f32 (exact, and still small files)
NUM_CTX = 4096

_GEMMA_TEMPLATE = """{{- $system := "" }}
{{- range .Messages }}{{ if eq .Role "system" }}{{ $system = .Content }}{{ end }}{{ end }}
{{- $first := true }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<start_of_turn>user
{{ if and $first $system }}{{ $system }}

{{ end }}{{ .Content }}<end_of_turn>
{{ $first = false }}{{ if $last }}<start_of_turn>model
{{ end }}
{{- else if eq .Role "assistant" }}<start_of_turn>model
{{ .Content }}{{ if not $last }}<end_of_turn>
{{ end }}
{{- end }}
{{- end }}"""
_CHATML_TEMPLATE = """{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ if and $last (ne .Role "assistant") }}<|im_start|>assistant
{{ end }}
{{- end }}"""
# model_type prefix -> (Go template for Ollama, stop token); same turns as the checkpoint's chat template
_TEMPLATES = {"gemma": (_GEMMA_TEMPLATE, "<end_of_turn>"), "qwen": (_CHATML_TEMPLATE, "<|im_end|>")}


@dataclass
class ExportReport:
    """What an export wrote and how to use it."""

    out_dir: Path
    name: str
    quant: str
    source: str
    converter: str
    model: Path
    mmproj: Path
    full_precision: Path
    merged: Optional[Path]
    files: list[dict[str, Any]]
    seconds: float
    steps: dict[str, float] = field(default_factory=dict)

    @property
    def ollama_command(self) -> str:
        return f"ollama create {self.name} -f {self.out_dir / 'Modelfile'}"

    @property
    def llamacpp_spec(self) -> str:
        return f"llamacpp:{self.model}"

    @property
    def analyze_command(self) -> str:
        return f"alphasignal analyze --demo --chart-backend {self.llamacpp_spec} --mmproj {self.mmproj}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "quant": self.quant, "source": self.source, "converter": self.converter,
            "out_dir": str(self.out_dir), "model": str(self.model), "mmproj": str(self.mmproj),
            "full_precision": str(self.full_precision), "merged": str(self.merged) if self.merged else None,
            "files": self.files, "ollama_create": self.ollama_command, "llamacpp_spec": self.llamacpp_spec,
            "llamacpp_mmproj": str(self.mmproj), "analyze": self.analyze_command,
            "seconds": round(self.seconds, 3), "steps": {k: round(v, 3) for k, v in self.steps.items()},
        }

    def summary(self) -> str:
        lines = [f"exported {self.name} ({self.quant}, {self.converter}) to {self.out_dir} in {self.seconds:.1f} s"]
        lines += [f"  {f['path']:<40} {f['bytes']:>14,d} bytes" for f in self.files if "/" not in f["path"]]
        lines += ["", "Ollama:    " + self.ollama_command, f"llama.cpp: --chart-backend {self.llamacpp_spec} "
                  f"--mmproj {self.mmproj}"]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# what to export


@dataclass(frozen=True)
class Source:
    """A checkpoint folder, or a base model plus a LoRA adapter to merge into it."""

    path: Path
    checkpoint: Optional[Path] = None
    adapter: Optional[Path] = None
    base: Optional[Path] = None


def resolve_base(candidates: list[Optional[str]]) -> Path:
    """The first candidate that is a local checkpoint folder or a hub id in the local HF cache."""
    from .train import local_snapshot

    for candidate in filter(None, candidates):
        local = Path(candidate).expanduser()
        if (local / "config.json").is_file():
            return local
        if candidate.count("/") == 1 and not local.exists() and (cached := local_snapshot(candidate)):
            return cached
    shown = ", ".join(str(c) for c in candidates if c) or "none recorded"
    raise ExportError(f"base model not found locally ({shown}); pass --base DIR with the base checkpoint "
                      "(16-bit weights, not a 4-bit bnb copy)")


def resolve_source(path: Path | str, base_model: Optional[str] = None) -> Source:
    """Decide whether ``path`` is a run folder, an adapter folder or a checkpoint folder."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise ExportError(f"nothing to export: {path} is not a folder; pass a run folder or a checkpoint folder")
    adapter = path / "adapter" if (path / "adapter" / "adapter_config.json").is_file() else None
    adapter = adapter or (path if (path / "adapter_config.json").is_file() else None)
    if adapter is not None:
        summary_path = adapter.parent / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        if not summary and base_model is None and adapter != path:
            raise ExportError(f"{path} has no summary.json (unfinished run?); finish training or pass --base DIR")
        adapter_cfg = json.loads((adapter / "adapter_config.json").read_text())
        base = resolve_base([base_model, summary.get("base_path"), summary.get("base_model"),
                             adapter_cfg.get("base_model_name_or_path")])
        return Source(path, adapter=adapter, base=base)
    if (path / "config.json").is_file():
        return Source(path, checkpoint=path)
    raise ExportError(f"{path} is neither a run folder (adapter/ + summary.json) nor a checkpoint (config.json)")


def merge_adapter(base: Path, adapter: Path, out: Path) -> Path:
    """Load ``base``, apply the LoRA ``adapter``, merge it into the weights and save the result to ``out``."""
    try:
        from peft import PeftModel
        from transformers import AutoModelForImageTextToText, AutoProcessor
    except ImportError as exc:
        raise ExportError(f"merging an adapter needs transformers and peft: {FINETUNE_HINT}") from exc
    try:
        model = AutoModelForImageTextToText.from_pretrained(base, dtype="auto", local_files_only=True)
        with warnings.catch_warnings():
            # peft reads transformers' deprecated `is_gradient_checkpointing` (a FutureWarning in 5.2x)
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
        merged.save_pretrained(out)
        # the processor carries the tokenizer, chat template and image settings (unsloth#2478)
        has_processor = any((adapter / f).is_file() for f in ("processor_config.json", "preprocessor_config.json"))
        AutoProcessor.from_pretrained(adapter if has_processor else base).save_pretrained(out)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ExportError(f"could not merge {adapter} into {base}: {type(exc).__name__}: {exc}") from exc
    return out


# ---------------------------------------------------------------------------------------------
# the steps


def default_name(source: Source) -> str:
    """An Ollama-friendly model name from the folder name (lowercase letters, digits, . _ -)."""
    stem = source.path.resolve().name
    return re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-._") or "alphasignal-chart"


def _check_name(name: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name):
        raise ExportError(f"model name {name!r} is not valid for Ollama; use lowercase letters, digits, '.', '_', '-'")
    return name


def parameter_count(checkpoint: Path) -> int:
    total = 0
    for entry in checkpoint_tensors(checkpoint).values():
        count = 1
        for dim in entry.shape:
            count *= dim
        total += count
    return total


def convert(checkpoint: Path, work: Path, name: str, llama_cpp: Optional[Path],
            progress: Callable[[str], None]) -> tuple[Path, Path, str, str]:
    """Text GGUF + mmproj in ``work``; returns (text, mmproj, outtype, converter)."""
    outtype = "f32" if parameter_count(checkpoint) < F32_LIMIT else "f16"
    text_out, mmproj_out = work / f"{name}.{outtype}.gguf", work / f"mmproj-{name}.gguf"
    if is_gemma3_vlm(checkpoint):
        progress(f"converting {checkpoint.name} (Gemma 3) to GGUF {outtype} + mmproj")
        convert_gemma3(checkpoint, text_out, mmproj_out, outtype=outtype, name=name, progress=progress)
        return text_out, mmproj_out, outtype, "alphasignal-gemma3"
    architectures = read_config(checkpoint).get("architectures") or []
    progress(f"converting {checkpoint.name} ({', '.join(architectures) or '?'}) with llama.cpp's converter")
    gguf_tools.convert_with_llama_cpp(checkpoint, llama_cpp, text_out, mmproj_out, outtype, architectures)
    return text_out, mmproj_out, outtype, "llama.cpp"


def modelfile_text(model_file: str, mmproj_file: str, model_type: str, num_ctx: int = NUM_CTX) -> str:
    """An Ollama Modelfile: the model and its projector as two FROM lines, turns, greedy decoding."""
    lines = [f"FROM ./{model_file}", f"FROM ./{mmproj_file}"]
    family = next((k for k in _TEMPLATES if model_type.startswith(k)), None)
    if family:
        template, stop = _TEMPLATES[family]
        lines += [f'TEMPLATE """{template}"""', f'PARAMETER stop "{stop}"']
    lines += ["PARAMETER temperature 0", f"PARAMETER num_ctx {num_ctx}"]
    return "\n".join(lines) + "\n"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_records(root: Path) -> list[dict[str, Any]]:
    """Every file under ``root`` (relative path, size, sha256), top-level files first."""
    files = sorted((p for p in root.rglob("*") if p.is_file()), key=lambda p: (len(p.relative_to(root).parts), p))
    return [{"path": p.relative_to(root).as_posix(), "bytes": p.stat().st_size, "sha256": _sha256(p)} for p in files]


def _stderr_progress(message: str) -> None:
    print(f"[export] {message}", file=sys.stderr, flush=True)


def _prepare_out(out_dir: Path) -> Path:
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} already exists and is not empty; choose another --out or remove it")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def export_run(run_dir_or_checkpoint: Path | str, out_dir: Path | str, quant: str = "q4_k_m",
               llama_cpp: Optional[Path | str] = None, name: Optional[str] = None, *,
               base_model: Optional[str] = None, verify: bool = True, progress: bool = True) -> ExportReport:
    """Export a run folder or checkpoint to ``out_dir``: GGUF + mmproj + quantized GGUF + Modelfile."""
    started = time.perf_counter()
    say = _stderr_progress if progress else (lambda message: None)
    quant = gguf_tools.check_quant(quant)
    source = resolve_source(run_dir_or_checkpoint, base_model)
    name = _check_name(name or default_name(source))
    out = _prepare_out(Path(out_dir))
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        report = _export(source, work, out, quant, Path(llama_cpp) if llama_cpp else None, name, verify, say)
        report.seconds = time.perf_counter() - started
        (work / "export.json").write_text(json.dumps(report.as_dict(), indent=2) + "\n")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(work, 0o777 & ~umask)  # mkdtemp made it private
        if out.exists():
            out.rmdir()
        os.replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    say(f"done in {report.seconds:.1f} s: {out}")
    return report


def _export(source: Source, work: Path, out: Path, quant: str, llama_cpp: Optional[Path], name: str,
            verify: bool, say: Callable[[str], None]) -> ExportReport:
    steps: dict[str, float] = {}
    clock = time.perf_counter()
    checkpoint, merged = source.checkpoint, None
    if source.adapter is not None:
        say(f"merging adapter {source.adapter} into {source.base}")
        checkpoint = merged = merge_adapter(source.base, source.adapter, work / "merged")
        steps["merge"], clock = time.perf_counter() - clock, time.perf_counter()
    text, mmproj, outtype, converter = convert(checkpoint, work, name, llama_cpp, say)
    steps["convert"], clock = time.perf_counter() - clock, time.perf_counter()
    model = text
    if quant != outtype:
        say(f"quantizing {text.name} to {quant}")
        model = gguf_tools.quantize(text, work / f"{name}.{quant}.gguf", quant)
        steps["quantize"], clock = time.perf_counter() - clock, time.perf_counter()
    if verify:
        say(f"loading {model.name} with {mmproj.name} in llama.cpp")
        gguf_tools.check_pair(model, mmproj)
        steps["verify"] = time.perf_counter() - clock
    model_type = str(read_config(checkpoint).get("model_type", ""))
    (work / "Modelfile").write_text(modelfile_text(model.name, mmproj.name, model_type))

    def final(path: Path) -> Path:  # where the file will be after the rename
        return out / path.relative_to(work)

    return ExportReport(
        out_dir=out, name=name, quant=quant, source=str(source.path), converter=converter, model=final(model),
        mmproj=final(mmproj), full_precision=final(text), merged=final(merged) if merged else None,
        files=file_records(work), seconds=0.0, steps=steps,
    )
