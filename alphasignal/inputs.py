"""Validation where input enters: chart images and news items.

Every problem is an ``ImageError`` or ``NewsError`` with a one-line message;
nothing past this module has to wonder whether an image decodes or a news item
is empty. (Price data is validated in ``chart.ohlc``.)
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable, Optional, Union

from .errors import ImageError, NewsError
from .schemas import NewsInput

ImageSource = Union[str, Path, bytes]

# Pillow format name -> MIME type; the formats every backend (stb_image, Ollama, OpenAI) reads.
_MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif", "BMP": "image/bmp"}


def _read_bytes(source: ImageSource, max_bytes: int) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray)):
        data, name = bytes(source), "image bytes"
    else:
        path = Path(source)
        name = str(path)
        if not path.exists():
            raise ImageError(f"image not found: {path}")
        if not path.is_file():
            raise ImageError(f"image path is not a file: {path}")
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageError(f"image too large: {path} is {size:,} bytes (limit {max_bytes:,})")
        data = path.read_bytes()
    if not data:
        raise ImageError(f"image is empty (0 bytes): {name}")
    if len(data) > max_bytes:
        raise ImageError(f"image too large: {name} is {len(data):,} bytes (limit {max_bytes:,})")
    return data, name


def load_image(source: ImageSource, *, max_bytes: int, max_pixels: int) -> tuple[bytes, str]:
    """Read and fully decode an image; returns (bytes, mime) or raises ImageError."""
    from PIL import Image, UnidentifiedImageError

    data, name = _read_bytes(source, max_bytes)
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or ""
            width, height = img.size
            if width * height > max_pixels:
                raise ImageError(
                    f"image too large: {name} is {width}x{height} pixels (limit {max_pixels:,} pixels)"
                )
            img.load()  # a truncated file fails here, not later inside a model
    except UnidentifiedImageError:
        raise ImageError(f"not an image: {name} (expected PNG, JPEG, WEBP, GIF or BMP)") from None
    except Image.DecompressionBombError:
        raise ImageError(f"image too large: {name} exceeds the decompression limit") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"image is truncated or corrupt: {name} ({exc})") from None
    mime = _MIME.get(fmt)
    if mime is None:
        raise ImageError(f"unsupported image format {fmt or 'unknown'}: {name} (use PNG or JPEG)")
    return data, mime


def clean_news(
    items: Union[str, Iterable[str], None],
    *,
    max_items: int,
    max_chars: int,
    ticker: Optional[str] = None,
) -> Optional[NewsInput]:
    """Strip and check news items; None when no news was given at all."""
    if items is None:
        return None
    if isinstance(items, str):
        items = [items]
    cleaned = []
    for raw in items:
        if not isinstance(raw, str):
            raise NewsError(f"news items must be text, got {type(raw).__name__}")
        text = " ".join(raw.split())
        if not text:
            continue
        if len(text) > max_chars:
            raise NewsError(
                f"news item too long: {len(text):,} characters (limit {max_chars:,}): {text[:60]!r}..."
            )
        cleaned.append(text)
    if not cleaned:
        raise NewsError("news is empty: give at least one non-blank item (or omit --news)")
    if len(cleaned) > max_items:
        raise NewsError(f"too many news items: {len(cleaned)} (limit {max_items})")
    return NewsInput(items=tuple(cleaned), ticker=ticker)


def read_news_file(path: Union[str, Path]) -> list[str]:
    """One news item per line; blank lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise NewsError(f"news file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise NewsError(f"news file is not UTF-8 text: {path}") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise NewsError(f"news file is empty: {path}")
    return lines
