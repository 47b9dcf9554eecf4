"""A Hugging Face ``tokenizer.json`` as GGUF tokenizer metadata, the way llama.cpp's loader reads it.

Two tokenizer shapes are supported, the ones Gemma-family checkpoints carry:

* byte-level BPE (``ByteLevel`` pre-tokenizer with the GPT-2 regex, as trained
  with ``tokenizers`` for the tiny model) -> ``tokenizer.ggml.model = "gpt2"``,
  ``pre = "gpt-2"`` (llama.cpp applies the same regex), tokens + merges;
* SentencePiece-style BPE with byte fallback (Gemma's own ``tokenizer.json``) ->
  ``model = "llama"``: llama.cpp merges by token score, so each ordinary token
  scores ``-id`` (merge order), specials ``-1000`` and ``<0xNN>`` byte pieces are
  typed as bytes, as in Google's GGUFs.

Special tokens (``special: true`` in ``added_tokens``) are typed CONTROL, other
added tokens USER_DEFINED, so llama.cpp parses both from text when asked to.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..errors import ExportError

# gguf.TokenType values (kept here so that reading a vocabulary needs no gguf import)
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
_SPECIAL_KEYS = ("bos", "eos", "unk", "pad")
_BYTE_PIECE = re.compile(r"<0x[0-9A-Fa-f]{2}>")


@dataclass
class Vocab:
    """Everything llama.cpp needs to tokenize like the checkpoint's tokenizer."""

    model: str  # "gpt2" | "llama"
    pre: str
    tokens: list[str]
    types: list[int]
    scores: Optional[list[float]] = None
    merges: list[str] = field(default_factory=list)
    special_ids: dict[str, int] = field(default_factory=dict)
    add_bos: bool = False
    add_eos: bool = False
    chat_template: Optional[str] = None

    def pad_to(self, n: int) -> None:
        """Pad with unused ``[PAD<i>]`` tokens up to the embedding's row count."""
        if n < len(self.tokens):
            raise ExportError(
                f"the tokenizer has {len(self.tokens)} tokens but the model only {n} embeddings; "
                "save the tokenizer that belongs to this checkpoint"
            )
        for i in range(len(self.tokens), n):
            self.tokens.append(f"[PAD{i}]")
            self.types.append(UNUSED)
            if self.scores is not None:
                self.scores.append(-1000.0)

    def add_to(self, writer: Any) -> None:
        writer.add_tokenizer_model(self.model)
        writer.add_tokenizer_pre(self.pre)
        writer.add_token_list(self.tokens)
        writer.add_token_types(self.types)
        if self.scores is not None:
            writer.add_token_scores(self.scores)
        if self.merges:
            writer.add_token_merges(self.merges)
        for key, token_id in self.special_ids.items():
            writer.add_uint32(f"tokenizer.ggml.{key}_token_id", token_id)
        writer.add_add_bos_token(self.add_bos)
        writer.add_add_eos_token(self.add_eos)
        if self.model == "llama":
            writer.add_add_space_prefix(False)  # Gemma's tokenizer adds no leading "▁"
        if self.chat_template:
            writer.add_chat_template(self.chat_template)


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def read_chat_template(checkpoint: Path) -> Optional[str]:
    """The checkpoint's chat template: chat_template.jinja, chat_template.json or tokenizer_config.json."""
    jinja = checkpoint / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    template = _read_json(checkpoint / "chat_template.json").get("chat_template")
    template = template or _read_json(checkpoint / "tokenizer_config.json").get("chat_template")
    if isinstance(template, list):  # named templates: take the default one
        named = {t.get("name"): t.get("template") for t in template}
        template = named.get("default") or next(iter(named.values()), None)
    return template or None


def _token_text(value: Any) -> Optional[str]:
    return value.get("content") if isinstance(value, dict) else value


def _special_ids(checkpoint: Path, tokens: dict[str, int]) -> dict[str, int]:
    config = _read_json(checkpoint / "tokenizer_config.json")
    model_config = _read_json(checkpoint / "config.json")
    ids = {}
    for key in _SPECIAL_KEYS:
        text = _token_text(config.get(f"{key}_token"))
        if text in tokens:
            ids[key] = tokens[text]
        elif isinstance(model_config.get(f"{key}_token_id"), int):
            ids[key] = model_config[f"{key}_token_id"]
    if "<end_of_turn>" in tokens:  # Gemma's end of a turn: llama.cpp stops generating on it
        ids["eot"] = tokens["<end_of_turn>"]
    return ids


def _adds_bos(checkpoint: Path, tok: dict[str, Any], bos: Optional[int]) -> bool:
    config = _read_json(checkpoint / "tokenizer_config.json")
    if isinstance(config.get("add_bos_token"), bool):
        return config["add_bos_token"]
    post = tok.get("post_processor") or {}
    single = post.get("single") or []
    first = single[0].get("SpecialToken") if single and isinstance(single[0], dict) else None
    if first is None or bos is None:
        return False
    return any(bos in spec.get("ids", []) for name, spec in post.get("special_tokens", {}).items()
               if name == first.get("id"))


def _pre_tokenizers(tok: dict[str, Any]) -> list[dict[str, Any]]:
    pre = tok.get("pre_tokenizer") or {}
    return list(pre.get("pretokenizers", [])) if pre.get("type") == "Sequence" else ([pre] if pre else [])


def _kind(tok: dict[str, Any]) -> str:
    model = tok.get("model") or {}
    if model.get("type") != "BPE":
        raise ExportError(f"tokenizer model {model.get('type')!r} is not BPE; only BPE tokenizers convert here")
    pre = _pre_tokenizers(tok)
    if len(pre) == 1 and pre[0].get("type") == "ByteLevel" and pre[0].get("use_regex", True) \
            and not pre[0].get("add_prefix_space"):
        return "gpt2"
    if model.get("byte_fallback") and not any(p.get("type") == "ByteLevel" for p in pre):
        return "llama"
    raise ExportError(
        "the tokenizer's pre-tokenizer is neither GPT-2 byte-level nor SentencePiece-style; "
        "convert this checkpoint with llama.cpp's converter (--llama-cpp DIR)"
    )


def read_vocab(checkpoint: Path) -> Vocab:
    """Read ``checkpoint/tokenizer.json`` (+ tokenizer_config.json, chat template) into a ``Vocab``."""
    path = checkpoint / "tokenizer.json"
    if not path.is_file():
        raise ExportError(f"{checkpoint} has no tokenizer.json; save the tokenizer next to the weights")
    tok = json.loads(path.read_text(encoding="utf-8"))
    kind = _kind(tok)
    by_text: dict[str, int] = dict(tok["model"]["vocab"])
    added = {a["id"]: a for a in tok.get("added_tokens", [])}
    by_text.update({a["content"]: i for i, a in added.items()})
    tokens = [f"[PAD{i}]" for i in range(max(by_text.values()) + 1)]
    types = [UNUSED] * len(tokens)
    for text, i in by_text.items():
        tokens[i] = text
        types[i] = NORMAL
    for i, a in added.items():
        types[i] = CONTROL if a.get("special") else USER_DEFINED
    special = _special_ids(checkpoint, by_text)
    vocab = Vocab(kind, "gpt-2" if kind == "gpt2" else "default", tokens, types, special_ids=special,
                  add_bos=_adds_bos(checkpoint, tok, special.get("bos")),
                  chat_template=read_chat_template(checkpoint))
    if kind == "gpt2":
        vocab.merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    else:
        _spm_scores(vocab, tok, special.get("unk"))
    return vocab


def _spm_scores(vocab: Vocab, tok: dict[str, Any], unk: Optional[int]) -> None:
    """Scores and byte/unknown types for a SentencePiece-style vocabulary (merge order = -id)."""
    scores = []
    for i, text in enumerate(vocab.tokens):
        if vocab.types[i] != UNUSED and _BYTE_PIECE.fullmatch(text):
            vocab.types[i] = BYTE
        scores.append(-float(i) if vocab.types[i] == NORMAL else (0.0 if vocab.types[i] == BYTE else -1000.0))
    if unk is not None:
        vocab.types[unk] = UNKNOWN
    vocab.scores = scores
