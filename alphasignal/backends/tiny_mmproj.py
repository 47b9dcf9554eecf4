"""GGUF helpers: read a few metadata keys fast, and write a tiny vision projector.

``write_tiny_mmproj`` writes a small but valid ``gemma3``-type projector (a
SigLIP-style ViT, average-pooled, RMS-normed and linearly projected to the text
model's embedding size) with random weights. llama.cpp's ``mtmd`` accepts it
next to any Gemma 3 text GGUF whose embedding length equals ``text_n_embd``, so
tests and setup checks can exercise the whole image path offline; it reads no
pixels meaningfully. ``gemma3`` is used because it is the simplest projector
type mtmd pairs with a plain ViT: one linear projection, no class token.

``read_gguf_metadata`` walks the key/value header only and stops as soon as it
has what it was asked for (``gguf.GGUFReader`` parses every tokenizer array,
which takes seconds on a real model). ``gguf`` and ``numpy`` are imported only
by the writer.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Union

GGUF_MAGIC = b"GGUF"

PathLike = Union[str, Path]

# GGUF value type -> struct format of one scalar (8 = string, 9 = array are handled apart)
_SCALARS = {
    0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d",
}
_STRING, _ARRAY = 8, 9


def is_gguf(path: PathLike) -> bool:
    """True when ``path`` is a file that starts with the GGUF magic bytes."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == GGUF_MAGIC
    except OSError:
        return False


def _read(fh: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = fh.read(size)
    if len(data) != size:
        raise ValueError("truncated GGUF header")
    return struct.unpack(fmt, data)[0]


def _read_string(fh: BinaryIO) -> str:
    length = _read(fh, "<Q")
    data = fh.read(length)
    if len(data) != length:
        raise ValueError("truncated GGUF header")
    return data.decode("utf-8", errors="replace")


def _read_value(fh: BinaryIO, vtype: int, keep: bool) -> Any:
    """Read (``keep``) or skip one value of GGUF type ``vtype``."""
    if vtype in _SCALARS:
        return _read(fh, _SCALARS[vtype])
    if vtype == _STRING:
        if keep:
            return _read_string(fh)
        fh.seek(_read(fh, "<Q"), 1)
        return None
    if vtype == _ARRAY:
        etype, count = _read(fh, "<I"), _read(fh, "<Q")
        if etype in _SCALARS and not keep:
            fh.seek(struct.calcsize(_SCALARS[etype]) * count, 1)
            return None
        items = [_read_value(fh, etype, keep) for _ in range(count)]
        return items if keep else None
    raise ValueError(f"unknown GGUF value type {vtype}")


def read_gguf_metadata(path: PathLike, keys: Iterable[str]) -> dict[str, Any]:
    """The values of ``keys`` found in the GGUF header of ``path`` (missing keys are left out)."""
    wanted = set(keys)
    found: dict[str, Any] = {}
    with open(path, "rb") as fh:
        if fh.read(4) != GGUF_MAGIC:
            raise ValueError(f"{path} is not a GGUF file")
        version = _read(fh, "<I")
        if version < 2:
            raise ValueError(f"{path}: GGUF version {version} is too old")
        _read(fh, "<Q")  # tensor count
        for _ in range(_read(fh, "<Q")):
            key = _read_string(fh)
            value = _read_value(fh, _read(fh, "<I"), keep=key in wanted)
            if key in wanted:
                found[key] = value
                if len(found) == len(wanted):
                    break
    return found


def gguf_n_embd(path: PathLike) -> int:
    """The embedding length of a text GGUF (``<architecture>.embedding_length``)."""
    arch = read_gguf_metadata(path, ["general.architecture"]).get("general.architecture")
    if not arch:
        raise ValueError(f"{path} has no general.architecture")
    key = f"{arch}.embedding_length"
    value = read_gguf_metadata(path, [key]).get(key)
    if value is None:
        raise ValueError(f"{path} has no {key}")
    return int(value)


def _vision_tensors(
    rng: Any, *, text_n_embd: int, n_embd: int, n_ff: int, n_layer: int, image_size: int, patch_size: int
) -> dict[str, Any]:
    """Name -> float32 array, in PyTorch shape order (gguf reverses it to ggml's)."""
    import numpy as np

    def rand(*shape: int) -> Any:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    def ones(n: int) -> Any:
        return np.ones(n, dtype=np.float32)

    def zeros(n: int) -> Any:
        return np.zeros(n, dtype=np.float32)

    n_patches = (image_size // patch_size) ** 2
    tensors = {
        "v.patch_embd.weight": rand(n_embd, 3, patch_size, patch_size),
        "v.patch_embd.bias": zeros(n_embd),
        "v.position_embd.weight": rand(n_patches, n_embd),
    }
    for i in range(n_layer):
        blk = f"v.blk.{i}"
        for norm in ("ln1", "ln2"):
            tensors[f"{blk}.{norm}.weight"] = ones(n_embd)
            tensors[f"{blk}.{norm}.bias"] = zeros(n_embd)
        for proj in ("attn_q", "attn_k", "attn_v", "attn_out"):
            tensors[f"{blk}.{proj}.weight"] = rand(n_embd, n_embd)
            tensors[f"{blk}.{proj}.bias"] = zeros(n_embd)
        tensors[f"{blk}.ffn_up.weight"], tensors[f"{blk}.ffn_up.bias"] = rand(n_ff, n_embd), zeros(n_ff)
        tensors[f"{blk}.ffn_down.weight"] = rand(n_embd, n_ff)
        tensors[f"{blk}.ffn_down.bias"] = zeros(n_embd)
    tensors["v.post_ln.weight"], tensors["v.post_ln.bias"] = ones(n_embd), zeros(n_embd)
    tensors["mm.soft_emb_norm.weight"] = ones(n_embd)
    tensors["mm.input_projection.weight"] = rand(n_embd, text_n_embd)
    return tensors


def write_tiny_mmproj(
    path: PathLike,
    *,
    text_n_embd: int = 640,
    n_embd: int = 64,
    n_ff: int = 128,
    n_head: int = 2,
    n_layer: int = 1,
    image_size: int = 64,
    patch_size: int = 8,
    scale_factor: int = 2,
    seed: int = 0,
) -> Path:
    """Write a random-weight gemma3 projector for a text model of width ``text_n_embd``; return its path.

    An image becomes ``(image_size / patch_size / scale_factor) ** 2`` tokens (16 by default).
    """
    import gguf
    import numpy as np

    if n_embd % n_head or image_size % patch_size or (image_size // patch_size) % scale_factor:
        raise ValueError("n_embd must divide by n_head and image_size/patch_size by scale_factor")
    if n_ff == n_embd:
        raise ValueError("n_ff must differ from n_embd (mtmd tells the FFN layout apart by shape)")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(out), arch="clip")
    writer.add_string("general.type", "mmproj")
    writer.add_string("general.name", "alphasignal tiny projector")
    writer.add_string("clip.projector_type", "gemma3")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.use_gelu", True)
    for key, value in {
        "embedding_length": n_embd,
        "attention.head_count": n_head,
        "feed_forward_length": n_ff,
        "block_count": n_layer,
        "projection_dim": text_n_embd,
        "image_size": image_size,
        "patch_size": patch_size,
        "projector.scale_factor": scale_factor,
    }.items():
        writer.add_uint32(f"clip.vision.{key}", value)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    writer.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    rng = np.random.default_rng(seed)
    tensors = _vision_tensors(
        rng, text_n_embd=text_n_embd, n_embd=n_embd, n_ff=n_ff, n_layer=n_layer,
        image_size=image_size, patch_size=patch_size,
    )
    for name, array in tensors.items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out
