"""Load a built dataset with Hugging Face ``datasets`` (imported here, lazily)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Union

from ..errors import InputError

SPLITS = ("train", "val", "test")


def load_hf(path: Union[str, Path], *, absolute_images: bool = True, cache_dir: Optional[Union[str, Path]] = None) -> Any:
    """The dataset at ``path`` as a ``datasets.DatasetDict`` (train / val / test).

    With ``absolute_images`` the image paths (``images`` and the user turn's
    ``image``) are made absolute, so the rows work from any working directory;
    cast ``images`` to ``datasets.Image()`` to get PIL images.
    """
    root = Path(path).resolve()
    manifest = root / "manifest.json"
    if not manifest.is_file():
        raise InputError(f"{root} is not a built dataset (no manifest.json): run `alphasignal dataset build` first")
    files = json.loads(manifest.read_text(encoding="utf-8"))["files"]
    data_files = {name: str(root / files[name]) for name in SPLITS if (root / files[name]).stat().st_size > 0}
    try:
        from datasets import load_dataset
    except ImportError as exc:
        raise InputError("Hugging Face datasets is not installed: pip install datasets") from exc
    kwargs: dict[str, Any] = {"cache_dir": str(cache_dir)} if cache_dir is not None else {}
    ds = load_dataset("json", data_files=data_files, **kwargs)
    return ds.map(_absolute, fn_kwargs={"root": str(root)}) if absolute_images else ds


def _absolute(row: dict[str, Any], root: str) -> dict[str, Any]:
    row["images"] = [f"{root}/{p}" for p in row["images"]]
    for message in row["messages"]:
        for part in message["content"]:
            if part.get("image"):
                part["image"] = f"{root}/{part['image']}"
    return row
