"""llama.cpp's own tools, used without downloading anything: its converter (from a local checkout),
its quantizer and its multimodal loader (in process, through llama-cpp-python).

* ``convert_with_llama_cpp`` runs ``convert_hf_to_gguf.py`` from a local llama.cpp
  checkout twice (text model, then ``--mmproj``) for architectures our own
  Gemma-3 converter does not handle (the GPU path's Qwen2.5-VL).
* ``quantize`` calls ``llama_model_quantize`` — the same code as ``llama-quantize``.
  k-quants work on rows of 256 values; llama.cpp falls back to a legacy type for
  tensors whose rows are shorter (all of them in the tiny model).
* ``check_pair`` loads the text GGUF and its projector the way the ``llamacpp``
  backend will, so a projector that does not fit the model fails the export.
"""

from __future__ import annotations

import ctypes
import subprocess
import sys
from pathlib import Path
from typing import Optional

from ..errors import ExportError

QUANT_FTYPES = {"q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M", "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
                "f16": "LLAMA_FTYPE_MOSTLY_F16"}
LLAMA_CPP_HINT = (
    "get llama.cpp's converter without building anything: `git clone https://github.com/ggml-org/llama.cpp` "
    "(or unpack the llama-cpp-python sdist: `pip download --no-deps --no-binary :all: llama-cpp-python` "
    "and use its vendor/llama.cpp), then pass --llama-cpp DIR or set ALPHASIGNAL_LLAMA_CPP; "
    "Qwen2.5-VL needs a llama.cpp from May 2025 or later (PR #13209 added its --mmproj conversion)"
)
# transformers' base-model classes, which Unsloth's merged save can leave in config.json (llama.cpp#13802)
_BARE_MODEL_CLASSES = {"Qwen2_5_VLModel": "Qwen2_5_VLForConditionalGeneration",
                       "Qwen2VLModel": "Qwen2VLForConditionalGeneration"}
INSTALL_HINT = "pip install 'alphasignal[llamacpp]'"


def check_quant(quant: str) -> str:
    """The normalised quantization name, or an ExportError naming the choices."""
    key = quant.lower()
    if key not in QUANT_FTYPES:
        raise ExportError(f"unknown quantization {quant!r}; use one of {', '.join(QUANT_FTYPES)}")
    return key


def converter_script(llama_cpp: Optional[Path]) -> Path:
    """``convert_hf_to_gguf.py`` in the local llama.cpp folder, or an ExportError saying how to get one."""
    if llama_cpp is None:
        raise ExportError(f"this architecture needs llama.cpp's converter; {LLAMA_CPP_HINT}")
    script = Path(llama_cpp).expanduser() / "convert_hf_to_gguf.py"
    if not script.is_file():
        raise ExportError(f"{script} not found: --llama-cpp must point at a llama.cpp source folder; {LLAMA_CPP_HINT}")
    return script


def check_architecture(architectures: list[str]) -> None:
    """Refuse a config naming a bare base-model class, which llama.cpp's converter does not register."""
    for arch in architectures:
        if arch in _BARE_MODEL_CLASSES:
            raise ExportError(
                f"config.json names {arch}, the bare model class, which llama.cpp cannot convert "
                f"(llama.cpp#13802); export the run folder (we merge with the full "
                f"{_BARE_MODEL_CLASSES[arch]}) or set architectures to [\"{_BARE_MODEL_CLASSES[arch]}\"]"
            )


def converter_commands(script: Path, checkpoint: Path, text_out: Path, mmproj_out: Path,
                       outtype: str) -> list[list[str]]:
    """The two converter invocations: the text model, then the vision projector."""
    base = [sys.executable, str(script), str(checkpoint), "--outtype", outtype]
    return [base + ["--outfile", str(text_out)], base + ["--mmproj", "--outfile", str(mmproj_out)]]


def _last_error_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no output"])[-1][:300]


def convert_with_llama_cpp(checkpoint: Path, llama_cpp: Optional[Path], text_out: Path, mmproj_out: Path,
                           outtype: str = "f16", architectures: Optional[list[str]] = None) -> tuple[Path, Path]:
    """Run the local llama.cpp converter for the text model and the mmproj; return both paths."""
    script = converter_script(llama_cpp)
    check_architecture(architectures or [])
    for cmd, out in zip(converter_commands(script, checkpoint, text_out, mmproj_out, outtype),
                        (text_out, mmproj_out)):
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            detail = _last_error_line(result.stderr + "\n" + result.stdout)
            hint = f"; {LLAMA_CPP_HINT}" if "not supported" in detail else ""
            raise ExportError(f"llama.cpp's converter failed on {checkpoint}: {detail}{hint}")
        if not out.is_file():
            raise ExportError(f"llama.cpp's converter exited 0 but wrote no {out.name}; check its version ({script})")
    return text_out, mmproj_out


def _llama_cpp():
    try:
        import llama_cpp
    except ImportError as exc:
        raise ExportError(f"quantizing needs llama-cpp-python: {INSTALL_HINT}") from exc
    from ..backends.llamacpp import route_native_logs

    route_native_logs(llama_cpp)  # keep llama.cpp's per-tensor log off our stderr
    return llama_cpp


def quantize(src: Path, dst: Path, quant: str, threads: int = 0) -> Path:
    """Quantize a GGUF with llama.cpp's quantizer (``llama_model_quantize``) into ``dst``."""
    llama_cpp = _llama_cpp()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANT_FTYPES[check_quant(quant)])
    params.nthread = threads
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0 or not dst.is_file():
        raise ExportError(f"llama.cpp could not quantize {src.name} to {quant} (code {rc}); try --quant f16 or q8_0")
    return dst


def check_pair(model: Path, mmproj: Path) -> None:
    """Load the text GGUF and initialise its projector on it, as the ``llamacpp`` backend does."""
    llama_cpp = _llama_cpp()
    from llama_cpp import mtmd_cpp

    try:
        llm = llama_cpp.Llama(model_path=str(model), n_ctx=256, n_threads=1, verbose=False)
    except ValueError as exc:
        raise ExportError(f"llama.cpp cannot load the exported {model.name}: {exc}") from exc
    try:
        params = mtmd_cpp.mtmd_context_params_default()
        params.use_gpu = False
        params.n_threads = 1
        params.warmup = False
        ctx = mtmd_cpp.mtmd_init_from_file(str(mmproj).encode(), llm.model, params)
        if not ctx:
            raise ExportError(
                f"llama.cpp's mtmd cannot load {mmproj.name} with {model.name} (projector width or type does "
                "not match the model); the checkpoint's vision part is unusable"
            )
        try:
            if not mtmd_cpp.mtmd_support_vision(ctx):
                raise ExportError(f"{mmproj.name} loads but has no vision encoder")
        finally:
            mtmd_cpp.mtmd_free(ctx)
    finally:
        llm.close()
