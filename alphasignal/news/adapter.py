"""A fine-tuning delta for the MiniLM encoder: LoRA factors plus a few full tensors.

Fine-tuning all of MiniLM would mean committing ~90 MB of weights. The builtin
model instead stores what training changed, small enough for git:

* ``lora.<key>.a`` (rank × in) and ``lora.<key>.b`` (out × rank), float16, for the
  attention and feed-forward matrices: the weight becomes ``W + scale · B @ A``
  (LoRA factors, or a fully fine-tuned matrix's change cut to low rank by SVD,
  :func:`low_rank_delta`, with scale 1);
* ``full.<key>``: tensors replaced outright (biases and LayerNorm parameters, a
  few thousand numbers each);
* ``meta``: a JSON string with the rank, the scale and the sha256 of the base
  ``model.safetensors`` the delta was trained on. Merging refuses another base,
  since a delta on the wrong weights would give confident nonsense.

Files are ``.npz`` without pickles. Merging happens once, at load, in numpy:
inference then costs exactly what the base encoder costs.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BackendUnavailable

ADAPTER_FILE = "adapter.npz"
FORMAT = "alphasignal-lora-1"
_RETRAIN = "retrain with `alphasignal train news-model`"


@dataclass(frozen=True)
class EncoderAdapter:
    """LoRA factors and replaced tensors for a BERT encoder (torch ``(out, in)`` layout)."""

    lora: dict[str, tuple[np.ndarray, np.ndarray]]  # key -> (A: rank×in, B: out×rank)
    full: dict[str, np.ndarray]
    scale: float
    base_sha256: str
    meta: dict = field(default_factory=dict)
    sha256: str = ""

    def apply(self, weights: dict[str, np.ndarray], base_sha256: str) -> dict[str, np.ndarray]:
        """A copy of ``weights`` with the delta merged in; refuses a different base."""
        if base_sha256 != self.base_sha256:
            raise BackendUnavailable(
                f"the news model's encoder delta was trained on MiniLM weights {self.base_sha256[:12]}…, "
                f"but the installed ones are {base_sha256[:12]}…; {_RETRAIN}"
            )
        merged = dict(weights)
        for key, (a, b) in self.lora.items():
            base = _require(weights, key)
            if base.shape != (b.shape[0], a.shape[1]):
                raise BackendUnavailable(f"the encoder delta does not fit {key} {base.shape}; {_RETRAIN}")
            merged[key] = base.astype(np.float32) + np.float32(self.scale) * (
                b.astype(np.float32) @ a.astype(np.float32)
            )
        for key, value in self.full.items():
            if _require(weights, key).shape != value.shape:
                raise BackendUnavailable(f"the encoder delta does not fit {key}; {_RETRAIN}")
            merged[key] = value.astype(np.float32)
        return merged

    def save(self, path: Path) -> Path:
        arrays: dict[str, np.ndarray] = {}
        for key, (a, b) in self.lora.items():
            arrays[f"lora.{key}.a"] = a.astype(np.float16)
            arrays[f"lora.{key}.b"] = b.astype(np.float16)
        for key, value in self.full.items():
            arrays[f"full.{key}"] = value.astype(np.float32)
        meta = {**self.meta, "format": FORMAT, "scale": self.scale, "base_sha256": self.base_sha256}
        arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:  # uncompressed: float16 factors barely compress, and it loads 4x faster
            np.savez(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: Path) -> "EncoderAdapter":
        try:
            raw = Path(path).read_bytes()
            with np.load(io.BytesIO(raw), allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                arrays = {k: data[k] for k in data.files if k != "meta"}
        except (OSError, KeyError, ValueError) as exc:
            raise BackendUnavailable(f"the encoder delta {path} is unreadable ({exc}); {_RETRAIN}") from exc
        if meta.get("format") != FORMAT:
            raise BackendUnavailable(f"the encoder delta {path} has format {meta.get('format')!r}; {_RETRAIN}")
        lora = {
            k[len("lora.") : -len(".a")]: (v, arrays[k[:-2] + ".b"])
            for k, v in arrays.items()
            if k.startswith("lora.") and k.endswith(".a")
        }
        full = {k[len("full.") :]: v for k, v in arrays.items() if k.startswith("full.")}
        return cls(
            lora=lora,
            full=full,
            scale=float(meta["scale"]),
            base_sha256=str(meta["base_sha256"]),
            meta=meta,
            sha256=hashlib.sha256(raw).hexdigest(),
        )


def low_rank_delta(delta: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """``(A, B)`` with ``B @ A`` the best rank-``rank`` approximation of ``delta`` (A: rank×in)."""
    u, s, vt = np.linalg.svd(delta.astype(np.float64), full_matrices=False)
    r = min(rank, len(s))
    return vt[:r].astype(np.float32), (u[:, :r] * s[:r]).astype(np.float32)


def _require(weights: dict[str, np.ndarray], key: str) -> np.ndarray:
    if key not in weights:
        raise BackendUnavailable(f"the encoder delta names {key!r}, which the base weights lack; {_RETRAIN}")
    return weights[key]
