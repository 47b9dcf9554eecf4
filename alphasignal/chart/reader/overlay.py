"""Draw what the reader recovered over the input image, so a person can check it.

Each bar is drawn as a thin outline of its body and a line from its high to its
low, in a colour that stands out from the chart (magenta for up bars, cyan for down
bars), with the panel outlined and the read axis labels marked. Pillow only.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Union

from ...errors import OutputError

UP, DOWN, PANEL, LABEL = (255, 0, 255), (0, 200, 255), (255, 140, 0), (255, 0, 0)


def overlay_image(image: bytes, reading: Any) -> bytes:
    """PNG bytes of ``image`` with ``reading`` (a ``ChartReading``) drawn over it."""
    from PIL import Image, ImageDraw

    with Image.open(io.BytesIO(image)) as img:
        canvas = img.convert("RGB")
    draw = ImageDraw.Draw(canvas)
    d = reading.digitized
    if d is not None:
        p, s = d.panel, d.scale
        draw.rectangle((p.left * s, p.top * s, p.right * s - 1, p.bottom * s - 1), outline=PANEL, width=1)
    for bar in reading.bars:
        colour = UP if bar.up else DOWN
        half = max(1.0, bar.body_width / 2)
        top, bottom = min(bar.open, bar.close), max(bar.open, bar.close)
        draw.line((bar.x, bar.high, bar.x, bar.low), fill=colour, width=1)
        draw.rectangle((bar.x - half, top, bar.x + half, max(bottom, top + 1)), outline=colour, width=1)
    for label in getattr(reading, "axis_labels", ()):
        if label.value is not None:
            draw.line((canvas.width - 6, label.row, canvas.width - 1, label.row), fill=LABEL, width=2)
    out = io.BytesIO()
    canvas.save(out, format="PNG")
    return out.getvalue()


def render_overlay(image: bytes, reading: Any, path: Union[str, Path]) -> Path:
    """Write ``overlay_image(image, reading)`` to ``path``; returns the path."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(overlay_image(image, reading))
    except OSError as exc:
        raise OutputError(f"cannot write the overlay to {target}: {exc.strerror or exc}: choose a writable path") from exc
    return target
