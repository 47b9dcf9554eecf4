"""The dataset builder's JSONL rows as chat conversations for vision fine-tuning.

A row (see ``alphasignal.dataset.records``) holds ``messages`` (system, user with one
image item and the prompt, assistant with the target JSON) and ``images`` (paths
relative to the dataset folder). ``read_split`` checks every row where it enters —
a missing folder, file, image or an empty split is a ``TrainingError`` naming the
path — and keeps only what training needs, with absolute image paths.
``conversation`` turns such a row into the messages a processor's chat template
reads, each image item carrying the real PIL image, shrunk to ``max_pixels``.

Pure Python + Pillow: no torch here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

from ..errors import TrainingError

SPLITS = ("train", "val", "test")
ROLES = ("system", "user", "assistant")


def split_file(dataset: Path, split: str) -> Path:
    """``<dataset>/<split>.jsonl``, checking the folder exists (not the file)."""
    root = Path(dataset)
    if not root.is_dir():
        raise TrainingError(
            f"dataset folder not found: {root} (build one with `alphasignal dataset build --out {root}`)"
        )
    return root / f"{split}.jsonl"


def read_split(dataset: Path, split: str, *, max_samples: Optional[int] = None, required: bool = True) -> list[dict]:
    """The split's rows as ``{"id", "images", "messages"}`` with absolute image paths.

    ``required=False`` returns ``[]`` for a missing or empty split (the val split);
    otherwise either is a ``TrainingError``.
    """
    path = split_file(dataset, split)
    if not path.is_file():
        if not required:
            return []
        raise TrainingError(f"no {split} split in the dataset: {path} is missing (rebuild with `alphasignal dataset build`)")
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                rows.append(_training_row(_parse(line, path, number), Path(dataset).resolve(), path, number))
            if max_samples is not None and len(rows) >= max_samples:
                break
    if not rows and required:
        raise TrainingError(f"the {split} split is empty: {path} has no rows (build a larger dataset)")
    return rows


def _parse(line: str, path: Path, number: int) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TrainingError(f"{path}:{number} is not valid JSON ({exc.msg}); rebuild the dataset") from exc
    if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
        raise TrainingError(f"{path}:{number} has no 'messages' list; is this a dataset built by alphasignal?")
    return row


def _training_row(row: dict, root: Path, path: Path, number: int) -> dict:
    """Absolute image paths (checked to exist), the messages in a fixed shape, and the id."""
    messages = [_message(m, root, path, number) for m in row["messages"]]
    if not messages or messages[-1]["role"] != "assistant":
        raise TrainingError(f"{path}:{number} does not end with an assistant answer; rebuild the dataset")
    images = [part["image"] for m in messages for part in m["content"] if part["type"] == "image"]
    if not images:
        raise TrainingError(f"{path}:{number} has no image in its messages; rebuild the dataset")
    return {"id": str(row.get("id", f"{path.stem}-{number}")), "images": images, "messages": messages}


def _message(message: dict, root: Path, path: Path, number: int) -> dict:
    role = message.get("role")
    if role not in ROLES:
        raise TrainingError(f"{path}:{number} has a message with role {role!r}; expected one of {', '.join(ROLES)}")
    content = message.get("content")
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    return {"role": role, "content": [_part(p, root, path, number) for p in content or []]}


def _part(part: dict, root: Path, path: Path, number: int) -> dict:
    # One fixed key set, so Hugging Face `datasets` infers a single schema for every row.
    if part.get("type") != "image":
        return {"type": "text", "text": str(part.get("text") or ""), "image": None}
    image = root / str(part.get("image") or "")
    if not image.is_file():
        raise TrainingError(f"{path}:{number}: image not found: {image} (rebuild the dataset or restore its images/)")
    return {"type": "image", "text": None, "image": str(image)}


def load_image(path: str, max_pixels: int):
    """The image as RGB, shrunk (aspect kept) so that width * height <= ``max_pixels``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as raw:
            image = raw.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise TrainingError(f"cannot read image {path}: {exc} (rebuild the dataset)") from exc
    width, height = image.size
    if width * height > max_pixels:
        scale = math.sqrt(max_pixels / (width * height))
        size = (max(1, int(width * scale)), max(1, int(height * scale)))
        image = image.resize(size, Image.Resampling.BICUBIC)
    return image


def conversation(row: dict, max_pixels: int) -> list[dict[str, Any]]:
    """The row's messages for a chat template: text items as text, image items with the PIL image."""
    messages = []
    for message in row["messages"]:
        content = []
        for part in message["content"]:
            if part["type"] == "image":
                content.append({"type": "image", "image": load_image(part["image"], max_pixels)})
            else:
                content.append({"type": "text", "text": part["text"] or ""})
        messages.append({"role": message["role"], "content": content})
    return messages


def answer_text(row: dict) -> str:
    """The assistant's answer (the target JSON) as one string."""
    return "".join(p["text"] or "" for p in row["messages"][-1]["content"] if p["type"] == "text")
