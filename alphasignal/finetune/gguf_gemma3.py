"""Convert a Gemma-3 vision-language checkpoint to GGUF: the text model and its vision projector (mmproj).

llama.cpp's own ``convert_hf_to_gguf.py`` cannot read checkpoints saved by
transformers 5.x (the SigLIP tower is saved as ``vision_tower.embeddings...``
without ``vision_model.``: "Can not map tensor"), nor byte-level BPE tokenizers it
has no hash for; this module writes both files itself, the way that converter
would, torch-free (safetensors are read with numpy, bf16 included):

* the text GGUF (architecture ``gemma3``): Gemma's RMSNorm scales by ``1 + w``, so
  every ``*norm.weight`` is stored as ``w + 1`` (llama.cpp multiplies by the stored
  weight); the tokenizer comes from ``tokenizer.json`` and the chat template from
  the checkpoint, so llama.cpp's generic ``MTMDChatHandler`` (server
  ``--chat_format mtmd``) renders the model's own turns;
* the mmproj GGUF (architecture ``clip``, projector ``gemma3``): SigLIP tensors as
  they are (its LayerNorms are standard), ``mm.soft_emb_norm`` as ``w + 1`` (a
  Gemma RMSNorm), ``mm.input_projection`` in the HF orientation ``(vision, text)``
  (clip.cpp transposes it).

llama.cpp hard-codes some of Gemma 3's layout (every 6th layer global, local rope
base 10 000, attention scale from ``head_dim``); a checkpoint that departs from
it is refused rather than converted into a model that computes something else.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import ExportError

GEMMA3_ARCHITECTURES = ("Gemma3ForConditionalGeneration",)
OUTTYPES = ("f32", "f16")
SWA_PATTERN = 6  # llama.cpp's gemma3 loader: layers 0-4 of every 6 slide, the 6th is global
SWA_ROPE_BASE = 10000.0  # llama.cpp's gemma3 loader: rope base of the sliding layers

_TEXT_PREFIXES = ("model.language_model.", "language_model.model.", "language_model.")
_VISION_PREFIXES = ("model.vision_tower.vision_model.", "model.vision_tower.",
                    "vision_tower.vision_model.", "vision_tower.")
_PROJ_PREFIXES = ("model.multi_modal_projector.", "multi_modal_projector.")
_LM_HEAD = ("lm_head.weight", "language_model.lm_head.weight")

_TEXT_LAYER = {
    "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm",
    "self_attn.k_norm": "attn_k_norm", "post_attention_layernorm": "post_attention_norm",
    "pre_feedforward_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "post_feedforward_layernorm": "post_ffw_norm",
}
_VISION_LAYER = {
    "layer_norm1": "ln1", "layer_norm2": "ln2", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v", "self_attn.out_proj": "attn_out", "mlp.fc1": "ffn_up", "mlp.fc2": "ffn_down",
}
_VISION_TOP = {
    "embeddings.patch_embedding": "v.patch_embd", "embeddings.position_embedding": "v.position_embd",
    "post_layernorm": "v.post_ln",
}
_PROJ = {"mm_input_projection_weight": "mm.input_projection.weight",
         "mm_soft_emb_norm.weight": "mm.soft_emb_norm.weight"}

# ---------------------------------------------------------------------------------------------
# reading the checkpoint


@dataclass
class _Entry:
    file: Path
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute byte offset in file
    end: int


_ST_DTYPES = {"F32": "<f4", "F16": "<f2", "BF16": "<u2", "F64": "<f8"}


def _safetensors_index(path: Path) -> dict[str, _Entry]:
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
    entries = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        entries[name] = _Entry(path, info["dtype"], tuple(info["shape"]), 8 + n + begin, 8 + n + end)
    return entries


def checkpoint_tensors(checkpoint: Path) -> dict[str, _Entry]:
    """Every tensor of the (possibly sharded) safetensors checkpoint, by name, without loading data."""
    files = sorted(checkpoint.glob("*.safetensors"))
    if not files:
        raise ExportError(
            f"{checkpoint} has no *.safetensors weights; save the model with save_pretrained "
            "(safe_serialization) first"
        )
    entries: dict[str, _Entry] = {}
    for file in files:
        entries.update(_safetensors_index(file))
    return entries


def load_tensor(entry: _Entry) -> Any:
    """The tensor as a float32 numpy array (bf16 widened bit-exactly)."""
    import numpy as np

    if entry.dtype not in _ST_DTYPES:
        raise ExportError(f"unsupported tensor dtype {entry.dtype} in {entry.file}; save the model in f32/f16/bf16")
    count = int(np.prod(entry.shape)) if entry.shape else 1
    data = np.fromfile(entry.file, dtype=_ST_DTYPES[entry.dtype], count=count, offset=entry.start)
    if entry.dtype == "BF16":
        data = (data.astype(np.uint32) << 16).view(np.float32)
    return data.astype(np.float32).reshape(entry.shape)


# ---------------------------------------------------------------------------------------------
# the checkpoint's configuration


def read_config(checkpoint: Path) -> dict[str, Any]:
    path = checkpoint / "config.json"
    if not path.is_file():
        raise ExportError(f"{checkpoint} has no config.json; point to a Hugging Face checkpoint folder")
    return json.loads(path.read_text())


def is_gemma3_vlm(checkpoint: Path) -> bool:
    """True when ``checkpoint`` holds a Gemma-3 vision-language model this module converts."""
    try:
        config = read_config(checkpoint)
    except (ExportError, ValueError):
        return False
    return any(a in GEMMA3_ARCHITECTURES for a in config.get("architectures") or [])


def _rope_bases(text: dict[str, Any]) -> tuple[float, float, Optional[dict]]:
    """(global base, local base, global rope scaling) from transformers 5 or 4 config layouts."""
    params = text.get("rope_parameters") or {}
    full = params.get("full_attention") or {}
    local = params.get("sliding_attention") or {}
    base = full.get("rope_theta", text.get("rope_theta", 1_000_000.0))
    local_base = local.get("rope_theta", text.get("rope_local_base_freq", SWA_ROPE_BASE))
    scaling = full if full.get("rope_type", "default") != "default" else text.get("rope_scaling")
    return float(base), float(local_base), scaling


def _layer_types(text: dict[str, Any]) -> list[str]:
    n = text["num_hidden_layers"]
    if text.get("layer_types"):
        return list(text["layer_types"])
    pattern = text.get("sliding_window_pattern") or text.get("_sliding_window_pattern") or SWA_PATTERN
    return ["full_attention" if (i + 1) % pattern == 0 else "sliding_attention" for i in range(n)]


def check_llama_cpp_layout(text: dict[str, Any]) -> None:
    """Refuse text configs whose attention layout llama.cpp's gemma3 graph would not reproduce."""
    n = text["num_hidden_layers"]
    expected = ["full_attention" if (i + 1) % SWA_PATTERN == 0 else "sliding_attention" for i in range(n)]
    if _layer_types(text) != expected:
        raise ExportError(
            f"layer_types {_layer_types(text)} differ from llama.cpp's fixed Gemma 3 pattern "
            f"(every {SWA_PATTERN}th layer global); this checkpoint cannot be converted faithfully"
        )
    _, local_base, _ = _rope_bases(text)
    if local_base != SWA_ROPE_BASE:
        raise ExportError(f"sliding-layer rope base {local_base} != {SWA_ROPE_BASE}, which llama.cpp hard-codes")
    head_dim = text.get("head_dim", 256)
    scalar = text.get("query_pre_attn_scalar", head_dim)
    allowed = {head_dim} | ({text["hidden_size"] // text["num_attention_heads"]} if n == 62 else set())
    if scalar not in allowed:
        raise ExportError(f"query_pre_attn_scalar {scalar} != head_dim {head_dim}, which llama.cpp assumes")
    if text.get("attn_logit_softcapping"):
        raise ExportError("attn_logit_softcapping is set; llama.cpp's gemma3 graph has none")


# ---------------------------------------------------------------------------------------------
# tensor plans: (gguf name, source entry, transform)


@dataclass
class _Planned:
    name: str
    entry: _Entry
    add_one: bool = False


def _strip(name: str, prefixes: tuple[str, ...]) -> Optional[str]:
    for prefix in prefixes:
        if name.startswith(prefix):
            return name[len(prefix):]
    return None


def _text_name(rest: str) -> Optional[str]:
    rest = rest[len("model."):] if rest.startswith("model.") else rest
    if rest == "embed_tokens.weight":
        return "token_embd.weight"
    if rest == "norm.weight":
        return "output_norm.weight"
    m = re.fullmatch(r"layers\.(\d+)\.(.+)\.(weight)", rest)
    if m and m.group(2) in _TEXT_LAYER:
        return f"blk.{m.group(1)}.{_TEXT_LAYER[m.group(2)]}.weight"
    return None


def _vision_name(rest: str) -> Optional[str]:
    m = re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)\.(weight|bias)", rest)
    if m and m.group(2) in _VISION_LAYER:
        return f"v.blk.{m.group(1)}.{_VISION_LAYER[m.group(2)]}.{m.group(3)}"
    stem, _, kind = rest.rpartition(".")
    if stem in _VISION_TOP:
        return f"{_VISION_TOP[stem]}.{kind}"
    return None


def plan_text(entries: dict[str, _Entry]) -> list[_Planned]:
    plan, embed, head = [], None, None
    for src, entry in entries.items():
        if src in _LM_HEAD:
            head = entry
            continue
        rest = _strip(src, _TEXT_PREFIXES)
        if rest is None:
            continue
        name = _text_name(rest)
        if name is None:
            raise ExportError(f"unknown Gemma-3 text tensor {src!r}; is this a Gemma-3 checkpoint?")
        plan.append(_Planned(name, entry, add_one=name.endswith("norm.weight")))
        embed = entry if name == "token_embd.weight" else embed
    if embed is None:
        raise ExportError("no token embedding found (language_model...embed_tokens.weight); not a Gemma-3 checkpoint")
    if head is not None and not _same_tensor(head, embed):
        plan.append(_Planned("output.weight", head))
    return plan


def _same_tensor(a: _Entry, b: _Entry) -> bool:
    if (a.file, a.start) == (b.file, b.start):
        return True
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    with open(a.file, "rb") as fa, open(b.file, "rb") as fb:
        fa.seek(a.start)
        fb.seek(b.start)
        return fa.read(a.end - a.start) == fb.read(b.end - b.start)


def plan_vision(entries: dict[str, _Entry]) -> list[_Planned]:
    plan = []
    for src, entry in entries.items():
        rest = _strip(src, _VISION_PREFIXES)
        if rest is not None:
            if rest.startswith("head."):  # the SigLIP pooling head; Gemma 3 does not use it
                continue
            name = _vision_name(rest)
            if name is None:
                raise ExportError(f"unknown SigLIP tensor {src!r} in a Gemma-3 checkpoint")
            plan.append(_Planned(name, entry))
            continue
        rest = _strip(src, _PROJ_PREFIXES)
        if rest is not None:
            if rest not in _PROJ:
                raise ExportError(f"unknown projector tensor {src!r} in a Gemma-3 checkpoint")
            plan.append(_Planned(_PROJ[rest], entry, add_one=rest.startswith("mm_soft_emb_norm")))
    if not any(p.name == "mm.input_projection.weight" for p in plan):
        raise ExportError("no multi_modal_projector.mm_input_projection_weight: the checkpoint has no vision part")
    return plan


def _out_dtype(name: str, shape: tuple[int, ...], outtype: str, vision: bool) -> Any:
    import numpy as np

    if outtype == "f32" or len(shape) < 2:
        return np.float32
    if vision and name.startswith(("v.patch_embd", "v.position_embd")):
        return np.float32  # as llama.cpp's converter keeps the SigLIP embeddings
    return np.float16


def _write(writer: Any, plan: list[_Planned], outtype: str, vision: bool,
           progress: Optional[Callable[[str], None]]) -> None:
    import numpy as np

    dtypes = []
    for p in plan:
        dtype = np.dtype(_out_dtype(p.name, p.entry.shape, outtype, vision))
        writer.add_tensor_info(p.name, p.entry.shape, dtype, int(np.prod(p.entry.shape)) * dtype.itemsize)
        dtypes.append(dtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for i, (p, dtype) in enumerate(zip(plan, dtypes)):
        data = load_tensor(p.entry)
        if p.add_one:
            data = data + 1.0
        writer.write_tensor_data(np.ascontiguousarray(data.astype(dtype)))
        if progress and (i + 1) % 50 == 0:
            progress(f"  {i + 1}/{len(plan)} tensors")
    writer.close()


# ---------------------------------------------------------------------------------------------
# the two files


@dataclass
class GemmaCheckpoint:
    """A Gemma-3 VLM checkpoint folder with its parsed config."""

    path: Path
    config: dict[str, Any]
    entries: dict[str, _Entry] = field(repr=False, default_factory=dict)

    @classmethod
    def open(cls, path: Path | str) -> "GemmaCheckpoint":
        path = Path(path)
        if not path.is_dir():
            raise ExportError(f"checkpoint folder not found: {path}")
        config = read_config(path)
        if not any(a in GEMMA3_ARCHITECTURES for a in config.get("architectures") or []):
            raise ExportError(
                f"{path} is a {config.get('architectures')} checkpoint, not Gemma-3; "
                "convert it with llama.cpp's converter (--llama-cpp DIR)"
            )
        return cls(path, config, checkpoint_tensors(path))

    @property
    def text(self) -> dict[str, Any]:
        return self.config.get("text_config") or {}

    @property
    def vision(self) -> dict[str, Any]:
        return self.config.get("vision_config") or {}


def _text_metadata(writer: Any, text: dict[str, Any]) -> None:
    arch = "gemma3"
    head_dim = text.get("head_dim", 256)
    base, _, scaling = _rope_bases(text)
    writer.add_uint32(f"{arch}.context_length", text.get("max_position_embeddings", 131072))
    writer.add_uint32(f"{arch}.embedding_length", text["hidden_size"])
    writer.add_uint32(f"{arch}.block_count", text["num_hidden_layers"])
    writer.add_uint32(f"{arch}.feed_forward_length", text["intermediate_size"])
    writer.add_uint32(f"{arch}.attention.head_count", text["num_attention_heads"])
    writer.add_uint32(f"{arch}.attention.head_count_kv", text.get("num_key_value_heads", 4))
    writer.add_uint32(f"{arch}.attention.key_length", head_dim)
    writer.add_uint32(f"{arch}.attention.value_length", head_dim)
    writer.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", text.get("rms_norm_eps", 1e-6))
    writer.add_float32(f"{arch}.rope.freq_base", base)
    if "sliding_attention" in _layer_types(text):
        writer.add_uint32(f"{arch}.attention.sliding_window", text["sliding_window"])
    if scaling and scaling.get("rope_type", scaling.get("type")) == "linear":
        writer.add_string(f"{arch}.rope.scaling.type", "linear")
        writer.add_float32(f"{arch}.rope.scaling.factor", float(scaling["factor"]))
    if text.get("final_logit_softcapping"):
        writer.add_float32(f"{arch}.final_logit_softcapping", float(text["final_logit_softcapping"]))


def write_text_gguf(ckpt: GemmaCheckpoint, out: Path, *, outtype: str = "f16", name: str = "model",
                    progress: Optional[Callable[[str], None]] = None) -> Path:
    """Write the Gemma-3 text model (weights, tokenizer, chat template) as a GGUF file."""
    import gguf

    from .gguf_vocab import read_vocab

    _check_outtype(outtype)
    check_llama_cpp_layout(ckpt.text)
    vocab = read_vocab(ckpt.path)
    plan = plan_text(ckpt.entries)
    vocab.pad_to(next(p.entry.shape[0] for p in plan if p.name == "token_embd.weight"))
    writer = gguf.GGUFWriter(str(out), arch="gemma3")
    writer.add_type("model")
    writer.add_name(name)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32 if outtype == "f32" else gguf.LlamaFileType.MOSTLY_F16)
    _text_metadata(writer, ckpt.text)
    vocab.add_to(writer)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _write(writer, plan, outtype, vision=False, progress=progress)
    return out


def projector_scale_factor(ckpt: GemmaCheckpoint) -> int:
    """Patches per side pooled into one image token (the HF ``mm_tokens_per_image`` sets the tokens per side)."""
    vision = ckpt.vision
    per_side = int(round(ckpt.config.get("mm_tokens_per_image", 256) ** 0.5))
    patches = vision["image_size"] // vision["patch_size"]
    if per_side * per_side != ckpt.config.get("mm_tokens_per_image", 256) or patches % per_side:
        raise ExportError(
            f"mm_tokens_per_image {ckpt.config.get('mm_tokens_per_image')} is not a square dividing "
            f"{patches}x{patches} patches; llama.cpp's gemma3 projector pools by a whole factor"
        )
    return patches // per_side


def _image_norm(ckpt: GemmaCheckpoint) -> tuple[list[float], list[float]]:
    """Pixel mean/std: preprocessor_config.json, or processor_config.json as transformers 5 saves it."""
    pre: dict[str, Any] = {}
    for file, key in (("preprocessor_config.json", None), ("processor_config.json", "image_processor")):
        path = ckpt.path / file
        if path.is_file():
            data = json.loads(path.read_text())
            pre = (data.get(key) or {}) if key else data
            if "image_mean" in pre:
                break
    return list(pre.get("image_mean", [0.5, 0.5, 0.5])), list(pre.get("image_std", [0.5, 0.5, 0.5]))


def write_mmproj_gguf(ckpt: GemmaCheckpoint, out: Path, *, outtype: str = "f16", name: str = "model",
                      progress: Optional[Callable[[str], None]] = None) -> Path:
    """Write the SigLIP tower and the Gemma-3 projector as an mmproj GGUF (``clip``/``gemma3``)."""
    import gguf

    _check_outtype(outtype)
    vision, text = ckpt.vision, ckpt.text
    plan = plan_vision(ckpt.entries)
    mean, std = _image_norm(ckpt)
    writer = gguf.GGUFWriter(str(out), arch="clip")
    writer.add_type("mmproj")
    writer.add_name(f"{name} projector")
    writer.add_string("clip.projector_type", "gemma3")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.use_gelu", vision.get("hidden_act", "gelu_pytorch_tanh").startswith("gelu"))
    for key, value in {
        "embedding_length": vision["hidden_size"], "attention.head_count": vision["num_attention_heads"],
        "feed_forward_length": vision["intermediate_size"], "block_count": vision["num_hidden_layers"],
        "projection_dim": text["hidden_size"], "image_size": vision["image_size"],
        "patch_size": vision["patch_size"], "projector.scale_factor": projector_scale_factor(ckpt),
    }.items():
        writer.add_uint32(f"clip.vision.{key}", value)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", vision.get("layer_norm_eps", 1e-6))
    writer.add_array("clip.vision.image_mean", mean)
    writer.add_array("clip.vision.image_std", std)
    _write(writer, plan, outtype, vision=True, progress=progress)
    return out


def _check_outtype(outtype: str) -> None:
    if outtype not in OUTTYPES:
        raise ExportError(f"unknown GGUF output type {outtype!r}; use one of {', '.join(OUTTYPES)}")


def convert_gemma3(checkpoint: Path | str, text_out: Path, mmproj_out: Path, *, outtype: str = "f16",
                   name: str = "model", progress: Optional[Callable[[str], None]] = None) -> tuple[Path, Path]:
    """Convert a Gemma-3 VLM checkpoint into ``text_out`` (text GGUF) and ``mmproj_out`` (projector GGUF)."""
    ckpt = GemmaCheckpoint.open(checkpoint)
    write_text_gguf(ckpt, Path(text_out), outtype=outtype, name=name, progress=progress)
    write_mmproj_gguf(ckpt, Path(mmproj_out), outtype=outtype, name=name, progress=progress)
    return Path(text_out), Path(mmproj_out)
