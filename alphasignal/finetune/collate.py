"""Batches for the CPU path: the processor's chat template with the real image, loss on the answer only.

For each row the full conversation is rendered with the processor's chat template
and tokenized by the processor (which expands the image marker into the model's
image tokens). The labels are ``-100`` everywhere except the assistant's answer and
the end-of-turn token that closes it, so the model learns to answer, not to repeat
the prompt, the schema or the image tokens; padding is masked too.

The answer is located in the rendered text (prompt = the conversation without the
answer, with the generation prompt) and mapped to tokens through the tokenizer's
offsets; it is then checked against the processor's own token ids, so a template
that does not compose this way fails loudly instead of training on the wrong tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..errors import TrainingError
from .data import answer_text, conversation

IGNORE_INDEX = -100


@dataclass(frozen=True)
class AnswerSpan:
    """Where the trained tokens sit, counted back from the row's last real token."""

    trained_ids: tuple[int, ...]
    after: int  # tokens after the trained span (e.g. the newline after the end-of-turn)


def answer_span(processor: Any, messages: list[dict], answer: str) -> tuple[str, AnswerSpan]:
    """The rendered conversation and the token span to train on (answer + end-of-turn)."""
    full = processor.apply_chat_template(messages, tokenize=False)
    prompt = processor.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    if not full.startswith(prompt):
        raise TrainingError("the chat template does not render the prompt as a prefix of the conversation; "
                            "use a base model whose template supports add_generation_prompt")
    tail = full[len(prompt):]
    start = tail.find(answer.strip())
    if start < 0:
        raise TrainingError("the answer is not found in the rendered conversation; check the model's chat template")
    begin = len(prompt) + start
    end = len(prompt) + len(tail.rstrip())  # the answer and its end-of-turn, not the trailing newline
    tokenizer = getattr(processor, "tokenizer", processor)
    try:
        enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    except NotImplementedError as exc:  # slow (Python) tokenizers have no offsets
        raise TrainingError("the CPU path needs a fast tokenizer (tokenizer.json) in the base model folder") from exc
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    trained = tuple(i for i, (s, e) in zip(ids, offsets) if s >= begin and e <= end and e > s)
    after = sum(1 for s, e in offsets if s >= end)
    return full, AnswerSpan(trained, after)


class ChatCollator:
    """Turn dataset rows into model inputs with answer-only labels (see the module docstring)."""

    def __init__(self, processor: Any, max_pixels: int, max_length: Optional[int] = None):
        self.processor = processor
        self.max_pixels = max_pixels
        self.max_length = max_length
        tokenizer = getattr(processor, "tokenizer", processor)
        if tokenizer.pad_token_id is None:
            raise TrainingError("the base model's tokenizer has no pad token; set one in its tokenizer_config.json")
        self.pad_token_id = tokenizer.pad_token_id

    def __call__(self, rows: list[dict]) -> dict[str, Any]:
        texts, images, spans = [], [], []
        for row in rows:
            messages = conversation(row, self.max_pixels)
            text, span = answer_span(self.processor, messages, answer_text(row))
            texts.append(text)
            spans.append(span)
            images.append([p["image"] for m in messages for p in m["content"] if p["type"] == "image"])
        batch = self.processor(text=texts, images=images, padding=True, return_tensors="pt", add_special_tokens=False)
        self._check_length(batch, rows)
        batch["labels"] = self._labels(batch, spans, rows)
        return dict(batch)

    def _check_length(self, batch: Any, rows: list[dict]) -> None:
        if self.max_length is None:
            return
        lengths = batch["attention_mask"].sum(dim=1).tolist()
        for row, length in zip(rows, lengths):
            if length > self.max_length:
                raise TrainingError(
                    f"sample {row['id']} is {length} tokens, over training.max_seq_length = {self.max_length}; "
                    "raise max_seq_length or lower max_image_pixels"
                )

    def _labels(self, batch: Any, spans: list[AnswerSpan], rows: list[dict]):
        import torch

        input_ids = batch["input_ids"]
        labels = torch.full_like(input_ids, IGNORE_INDEX)
        for b, span in enumerate(spans):
            real = torch.nonzero(batch["attention_mask"][b], as_tuple=True)[0]
            stop = len(real) - span.after
            positions = real[stop - len(span.trained_ids):stop]
            if input_ids[b, positions].tolist() != list(span.trained_ids):
                raise TrainingError(
                    f"sample {rows[b]['id']}: the processor and the tokenizer split the answer differently; "
                    "this base model's processor is not supported by the CPU path"
                )
            labels[b, positions] = input_ids[b, positions]
        labels[batch["attention_mask"] == 0] = IGNORE_INDEX
        return labels
