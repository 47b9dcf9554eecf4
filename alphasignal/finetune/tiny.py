"""A tiny random Gemma-3 vision-language model, built locally from a config.

Used by the CPU fine-tuning path and the tests to run the real recipe end to end
(train → merge → GGUF + mmproj → llama.cpp) in seconds, without any download.
The architecture is the real ``Gemma3ForConditionalGeneration`` (SigLIP vision
tower, soft-token projector, Gemma-3 text decoder), only very small; the
tokenizer is a byte-level BPE trained here on the pipeline's own chart prompt and
answers, so the model can be trained on the dataset builder's rows.

The checkpoint folder holds ``config.json``, ``model.safetensors``, the tokenizer
(``tokenizer.json`` + ``tokenizer_config.json`` with the chat template) and
``preprocessor_config.json`` — the same files a real base model has, so every
later step treats the two alike.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Optional

SPECIAL_TOKENS = (
    "<pad>", "<eos>", "<bos>", "<unk>",
    "<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>", "<image_soft_token>",
)

# Gemma's turn format; the system turn is folded into the first user turn, as Gemma 3 does.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set system = messages[0]['content'] if messages[0]['content'] is string "
    "else messages[0]['content'][0]['text'] -%}"
    "{%- set rest = messages[1:] -%}"
    "{%- else -%}{%- set system = '' -%}{%- set rest = messages -%}{%- endif -%}"
    "{%- for message in rest -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' }}"
    "{%- if loop.first and system -%}{{ system + '\n\n' }}{%- endif -%}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] in ('image', 'image_url') -%}{{ '<start_of_image>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] | trim }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


@dataclass(frozen=True)
class TinyConfig:
    """Sizes of the tiny model (defaults: ~0.2 M parameters, 16 image tokens)."""

    vocab_size: int = 1024
    hidden_size: int = 64
    intermediate_size: int = 128
    num_layers: int = 2
    num_heads: int = 2
    num_kv_heads: int = 1
    head_dim: int = 32
    vision_hidden: int = 32
    vision_intermediate: int = 64
    vision_layers: int = 2
    vision_heads: int = 2
    image_size: int = 64
    patch_size: int = 8
    image_tokens: int = 16
    # transformers' default (0.02) gives logits of std ~0.2 through the tied output embedding, too
    # flat for a model this small to learn under LoRA (the norms and embeddings stay frozen)
    initializer_range: float = 0.02
    seed: int = 0


def tokenizer_corpus() -> list[str]:
    """Text the tokenizer learns from: the pipeline's chart prompts and answers in every shape."""
    from ..chains.prompts import CHART_SYSTEM
    from ..dataset.records import chart_prompt

    system, user = chart_prompt("AAPL", None)
    answers = [
        '{"action":"BUY","confidence":0.72,"trend":"uptrend","patterns":["hammer"],"entry_price":182.5,'
        '"stop_loss":178.25,"take_profit":191.0,"reasoning":"Higher highs and a hammer at support."}',
        '{"action":"SELL","confidence":0.64,"trend":"downtrend","patterns":["bearish_engulfing"],'
        '"entry_price":41.3,"stop_loss":43.05,"take_profit":37.9,"reasoning":"Lower lows below the average."}',
        '{"action":"HOLD","confidence":0.5,"trend":"sideways","patterns":[],"entry_price":null,'
        '"stop_loss":null,"take_profit":null,"reasoning":"Range-bound; no edge."}',
    ]
    digits = " ".join(f"{i / 100:.2f}" for i in range(0, 100000, 37))
    return [CHART_SYSTEM, system, user, digits, *answers] * 4


def train_tokenizer(vocab_size: int, corpus: Optional[Iterable[str]] = None):
    """A byte-level BPE (GPT-2 pre-tokenizer) with Gemma's special tokens, as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus if corpus is not None else tokenizer_corpus()), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
        additional_special_tokens=list(SPECIAL_TOKENS[4:]),
        # Gemma3Processor finds the image markers through these names.
        extra_special_tokens={
            "boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>",
        },
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def model_config(cfg: TinyConfig, tokenizer):
    """The ``Gemma3Config`` for ``cfg`` with the tokenizer's special token ids."""
    from transformers import Gemma3Config

    ids = tokenizer.convert_tokens_to_ids
    text = dict(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_kv_heads,
        head_dim=cfg.head_dim, query_pre_attn_scalar=cfg.head_dim, max_position_embeddings=4096,
        sliding_window=512, initializer_range=cfg.initializer_range, pad_token_id=ids("<pad>"), bos_token_id=ids("<bos>"), eos_token_id=ids("<eos>"),
    )
    vision = dict(
        hidden_size=cfg.vision_hidden, intermediate_size=cfg.vision_intermediate,
        num_hidden_layers=cfg.vision_layers, num_attention_heads=cfg.vision_heads,
        image_size=cfg.image_size, patch_size=cfg.patch_size, vision_use_head=False,
    )
    return Gemma3Config(
        text_config=text, vision_config=vision, mm_tokens_per_image=cfg.image_tokens,
        image_token_index=ids("<image_soft_token>"), boi_token_index=ids("<start_of_image>"),
        eoi_token_index=ids("<end_of_image>"), pad_token_id=ids("<pad>"),
        bos_token_id=ids("<bos>"), eos_token_id=ids("<eos>"),
    )


def image_processor_config(cfg: TinyConfig) -> dict:
    """``preprocessor_config.json``: Gemma 3's image processor at the tiny size."""
    return {
        "image_processor_type": "Gemma3ImageProcessor",
        "processor_class": "Gemma3Processor",
        "do_resize": True, "size": {"height": cfg.image_size, "width": cfg.image_size},
        "resample": 2, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "do_convert_rgb": True,
        "do_pan_and_scan": False,
    }


def build_tiny_vlm(out_dir: Path | str, cfg: TinyConfig = TinyConfig()) -> Path:
    """Write a random tiny Gemma-3 VLM checkpoint to ``out_dir`` and return it."""
    import torch
    from transformers import Gemma3ForConditionalGeneration

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(cfg.vocab_size)
    torch.manual_seed(cfg.seed)
    model = Gemma3ForConditionalGeneration(model_config(cfg, tokenizer))
    # transformers starts the projector at zero, which would make images invisible to the model
    with torch.no_grad():
        torch.nn.init.normal_(model.model.multi_modal_projector.mm_input_projection_weight, std=cfg.vision_hidden**-0.5)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "preprocessor_config.json").write_text(json.dumps(image_processor_config(cfg), indent=2))
    (out / "processor_config.json").write_text(
        json.dumps({"processor_class": "Gemma3Processor", "image_seq_length": cfg.image_tokens}, indent=2)
    )
    (out / "alphasignal_tiny.json").write_text(json.dumps(asdict(cfg), indent=2))
    return out
