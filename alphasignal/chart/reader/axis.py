"""Read the price axis: tick labels beside the panel -> a pixel-row -> price mapping.

The labels are found without a text detector: beside the panel (right first, then
left) the first column band of ink wide enough to be text holds them, and each
run of inked rows in it is one label. Only the recognition model that
``rapidocr-onnxruntime`` ships (PP-OCRv4 rec, ONNX, offline) reads them, in one
batch. Each label's centre is snapped to its tick mark when one is drawn.

The mapping is fitted robustly (every pair of labels proposes a line; the one
most labels agree with wins, then least squares on those). A log axis is
recognised when the labels are geometric rather than arithmetic. Anything less
than three agreeing labels, or a mapping that is not monotonic, is refused with a
reason: the caller then keeps the series in relative units.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

_NUMBER = re.compile(r"^[-+]?(\d{1,3}(,\d{3})+|\d+)?(\.\d+)?$")
_LOCK = threading.Lock()
_ENGINE: Any = None
_MIN_LABELS = 3
_AGREE_PX = 2.0  # a label agrees with a mapping when it lies this close to its predicted row


@dataclass(frozen=True)
class AxisMapping:
    """price = intercept + slope * row (``kind`` linear), or exp of that (``kind`` log)."""

    intercept: float
    slope: float
    kind: str = "linear"
    source: str = "given"
    labels: int = 0  # tick labels that agree with the mapping
    residual_px: float = 0.0  # rms distance of those labels from the fitted rows

    def price(self, row: Any) -> np.ndarray:
        value = self.intercept + self.slope * np.asarray(row, dtype=float)
        return np.exp(value) if self.kind == "log" else value

    def row(self, price: Any) -> np.ndarray:
        p = np.asarray(price, dtype=float)
        value = np.log(p) if self.kind == "log" else p
        return (value - self.intercept) / self.slope


@dataclass(frozen=True)
class Label:
    text: str
    value: Optional[float]
    row: float  # centre row in image pixels
    score: float


@dataclass(frozen=True)
class AxisResult:
    mapping: Optional[AxisMapping]
    reason: Optional[str]
    labels: tuple[Label, ...] = ()
    side: Optional[str] = None


Recognizer = Callable[[list[np.ndarray]], list[tuple[str, float]]]


# ---------------------------------------------------------------------- the OCR


def default_recognizer() -> Recognizer:
    """The PP-OCRv4 recognition model bundled with rapidocr-onnxruntime (loaded once)."""
    global _ENGINE
    with _LOCK:
        if _ENGINE is None:
            try:
                from rapidocr_onnxruntime import RapidOCR
            except ImportError as exc:  # the reader still works, in relative units
                raise ImportError(
                    "rapidocr-onnxruntime is not installed: pip install rapidocr-onnxruntime to read price axes"
                ) from exc
            _ENGINE = RapidOCR(intra_op_num_threads=1)
        engine = _ENGINE

    def recognise(crops: list[np.ndarray]) -> list[tuple[str, float]]:
        results, _ = engine.text_rec(crops)
        return [(str(text), float(score)) for text, score in results]

    return recognise


def parse_number(text: str) -> Optional[float]:
    """A tick label's value: '1,234.5', '−3' (unicode minus), ' 8.0 '; None for anything else."""
    cleaned = text.strip().replace("\u2212", "-").replace(" ", "").replace("O", "0").replace("o", "0")
    cleaned = cleaned.lstrip("$€£")
    if not cleaned or not _NUMBER.match(cleaned) or not any(ch.isdigit() for ch in cleaned):
        return None
    return float(cleaned.replace(",", ""))


# ------------------------------------------------------------------ the labels


def _groups(indices: np.ndarray, gap: int) -> list[tuple[int, int]]:
    if indices.size == 0:
        return []
    splits = np.flatnonzero(np.diff(indices) > gap)
    return list(zip(np.r_[indices[0], indices[splits + 1]].tolist(), np.r_[indices[splits], indices[-1]].tolist()))


def _strip_ink(strip: np.ndarray) -> np.ndarray:
    flat = strip.reshape(-1, 3)
    keys = (flat[:, 0] >> 3) * 1024 + (flat[:, 1] >> 3) * 32 + (flat[:, 2] >> 3)
    background = np.median(flat[keys == np.bincount(keys).argmax()], axis=0)
    return np.abs(strip - background).max(axis=2) > 64


def _strokes(ink: np.ndarray) -> np.ndarray:
    """Ink in vertical runs of 3+ pixels, without spines: what digits are made of (ticks are not)."""
    up = np.zeros_like(ink)
    up[1:] = ink[:-1]
    down = np.zeros_like(ink)
    down[:-1] = ink[1:]
    up2 = np.zeros_like(ink)
    up2[2:] = ink[:-2]
    down2 = np.zeros_like(ink)
    down2[:-2] = ink[2:]
    strokes = ink & ((up & down) | (up & up2) | (down & down2))
    strokes[:, ink.mean(axis=0) > 0.5] = False
    return strokes


def _label_band(ink: np.ndarray, from_panel: int) -> Optional[tuple[int, int]]:
    """Columns of the first band of text, counted from the panel edge (``from_panel`` = +1 or -1)."""
    strokes = _strokes(ink)
    bands = _groups(np.flatnonzero(strokes.any(axis=0)), gap=6)
    for i in range(len(bands)) if from_panel > 0 else range(len(bands) - 1, -1, -1):
        a, b = bands[i]
        rows = np.flatnonzero(strokes[:, a : b + 1].any(axis=1))
        lines = [g for g in _groups(rows, gap=1) if 5 <= g[1] - g[0] + 1 <= 40]
        # text: several short lines; not a spine (one long run) nor tick marks (thin strokes)
        if b - a + 1 >= 4 and len(lines) >= _MIN_LABELS:
            return _with_narrow_neighbours(strokes, bands, i, lines)
    return None


def _with_narrow_neighbours(strokes: np.ndarray, bands: list[tuple[int, int]], i: int,
                            lines: list[tuple[int, int]]) -> tuple[int, int]:
    """Band ``i`` widened by the bands beside it too narrow to be text alone, whose strokes lie on the
    rows of its own (give or take a row) within a line's height: a leading '1', whose stem stands
    apart from the next digit by more than the bands' gap (every label "128" read as "28" otherwise)."""
    a, b = bands[i]
    on_lines = strokes[:, a : b + 1].any(axis=1)
    on_lines[1:] |= on_lines[:-1].copy()
    on_lines[:-1] |= on_lines[1:].copy()
    reach = max(6.0, float(np.median([y1 - y0 + 1 for y0, y1 in lines])))
    for step in (-1, 1):
        j = i + step
        while 0 <= j < len(bands):
            c, d = bands[j]
            gap = c - b - 1 if step > 0 else a - d - 1
            if d - c + 1 >= 4 or gap > reach or (strokes[:, c : d + 1].any(axis=1) & ~on_lines).any():
                break
            a, b = min(a, c), max(b, d)
            j += step
    return a, b


def find_labels(rgb: np.ndarray, top: int, bottom: int, left: int, right: int) -> list[tuple[int, int, int, int]]:
    """Boxes (top, bottom, left, right; exclusive ends) of the text lines in a strip of ``rgb``."""
    strip = rgb[top:bottom, left:right]
    if strip.size == 0:
        return []
    ink = _strip_ink(strip)
    side = 1 if left > 0 else -1
    band = _label_band(ink, side)
    if band is None:
        return []
    a, b = max(0, band[0] - 3), min(ink.shape[1] - 1, band[1] + 3)  # the '.' or '-' beside digits
    ink[:, ink.mean(axis=0) > 0.5] = False
    rows = np.flatnonzero(ink[:, a : b + 1].any(axis=1))
    boxes = []
    for y0, y1 in _groups(rows, gap=1):
        if 5 <= y1 - y0 + 1 <= 40:
            cols = np.flatnonzero(ink[y0 : y1 + 1, a : b + 1].any(axis=0))
            boxes.append((top + y0, top + y1 + 1, left + a + int(cols[0]), left + a + int(cols[-1]) + 1))
    if boxes:  # tick labels share one height; a rotated axis title or a unit is taller or shorter
        typical = float(np.median([b[1] - b[0] for b in boxes]))
        boxes = [b for b in boxes if 0.7 * typical <= b[1] - b[0] <= 1.4 * typical]
    return boxes


def _crop(rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    y0, y1, x0, x1 = box
    pad = max(2, (y1 - y0) // 3)
    h, w, _ = rgb.shape
    crop = rgb[max(0, y0 - pad) : min(h, y1 + pad), max(0, x0 - pad) : min(w, x1 + pad)]
    return np.ascontiguousarray(crop[:, :, ::-1].astype(np.uint8))  # BGR, as the model expects


def _tick_rows(rgb: np.ndarray, top: int, bottom: int, x0: int, x1: int) -> np.ndarray:
    """Centre rows of tick marks (short horizontal strokes) between the panel and the labels."""
    if x1 - x0 < 2:
        return np.zeros(0)
    ink = _strip_ink(rgb[top:bottom, x0:x1])
    full = ink.sum(axis=1) >= max(2, 0.6 * (x1 - x0))
    return np.array([top + (a + b) / 2 + 0.5 for a, b in _groups(np.flatnonzero(full), gap=0) if b - a <= 3])


# ---------------------------------------------------------------- the mapping


def fit_mapping(rows: Sequence[float], values: Sequence[float]) -> tuple[Optional[AxisMapping], str]:
    """The robust linear or log fit of ``values`` against ``rows``; (None, reason) when refused."""
    r, v = np.asarray(rows, dtype=float), np.asarray(values, dtype=float)
    if r.size < _MIN_LABELS:
        return None, f"only {r.size} numeric tick label(s) read ({_MIN_LABELS} needed)"
    best = _consensus(r, v, log=False)
    if (v > 0).all():
        log = _consensus(r, np.log(v), log=True)
        if log is not None and (best is None or log.labels > best.labels or
                                (log.labels == best.labels and log.residual_px < 0.5 * best.residual_px)):
            best = log
    if best is None or best.labels < _MIN_LABELS:
        return None, f"tick labels do not agree on one linear or log scale ({r.size} read)"
    if best.slope >= 0:
        return None, "tick labels grow downwards: not a price axis"
    return best, ""


def _consensus(r: np.ndarray, v: np.ndarray, log: bool) -> Optional[AxisMapping]:
    best_inliers: Optional[np.ndarray] = None
    for i in range(r.size):
        for j in range(i + 1, r.size):
            if abs(r[i] - r[j]) < 3 or v[i] == v[j]:
                continue
            slope = (v[j] - v[i]) / (r[j] - r[i])
            predicted_rows = r[i] + (v - v[i]) / slope
            inliers = np.abs(predicted_rows - r) <= _AGREE_PX
            if best_inliers is None or inliers.sum() > best_inliers.sum():
                best_inliers = inliers
    if best_inliers is None or best_inliers.sum() < 2:
        return None
    slope, intercept = np.polyfit(r[best_inliers], v[best_inliers], 1)
    resid = np.abs((v[best_inliers] - intercept) / slope - r[best_inliers])
    return AxisMapping(float(intercept), float(slope), "log" if log else "linear", "ocr",
                       int(best_inliers.sum()), float(np.sqrt(np.mean(resid**2))))


# -------------------------------------------------------------------- the read


def read_axis(
    rgb: np.ndarray,
    panel: tuple[int, int, int, int],
    recognizer: Optional[Recognizer] = None,
) -> AxisResult:
    """Read the price axis beside ``panel`` = (top, bottom, left, right) in ``rgb``'s pixels.

    ``left``/``right`` are where the labels may start (the plot's edges, or just
    beyond the first/last candle when no spine or gridline marks the plot).
    """
    top, bottom, left, right = panel
    h, w, _ = rgb.shape
    rows = (max(0, top - 12), min(h, bottom + 12))
    try:
        recognise = recognizer or default_recognizer()
    except ImportError as exc:
        return AxisResult(None, str(exc))
    reasons = []
    for side, (x0, x1) in (("right", (min(w, right + 1), w)), ("left", (0, max(0, left - 1)))):
        boxes = find_labels(rgb, rows[0], rows[1], x0, x1)
        if len(boxes) < _MIN_LABELS:
            reasons.append(f"{side}: {len(boxes)} label(s) found")
            continue
        ticks = _tick_rows(rgb, rows[0], rows[1], *(sorted((x0 + 1, min(b[2] for b in boxes) - 1)) if side == "right"
                                                    else (max(b[3] for b in boxes) + 1, x1 - 1)))
        crops = [_crop(rgb, box) for box in boxes]
        texts: list[tuple[str, float]] = [("", 0.0)] * len(boxes)
        # four labels spread over the axis usually suffice (about 17 ms each); else read them all
        for need, batch in ((4, _spread(len(boxes), 4)), (_MIN_LABELS, range(len(boxes)))):
            todo = [i for i in batch if not texts[i][0]]
            for i, result in zip(todo, recognise([crops[i] for i in todo]) if todo else []):
                texts[i] = result if result[0] else (" ", result[1])
            labels = tuple(_label(box, text, score, ticks) for box, (text, score) in zip(boxes, texts))
            numeric = [lab for lab in labels if lab.value is not None]
            mapping, reason = fit_mapping([lab.row for lab in numeric], [lab.value for lab in numeric])
            if mapping is not None and mapping.labels >= need and _spans_panel(mapping, numeric, top, bottom):
                return AxisResult(mapping, None, labels, side)
            if mapping is not None:
                reason = "the labels that agree cover less than a third of the panel's height"
        reasons.append(f"{side}: {reason}")
    return AxisResult(None, "price axis not read (" + "; ".join(reasons) + ")")


def _spans_panel(mapping: AxisMapping, labels: Sequence[Label], top: int, bottom: int) -> bool:
    """The agreeing labels reach over a third of the panel (a misread pair close together does not)."""
    rows = [lab.row for lab in labels if abs(float(mapping.row(lab.value)) - lab.row) <= _AGREE_PX]
    return len(rows) >= _MIN_LABELS and max(rows) - min(rows) >= (bottom - top) / 3


def _spread(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)``."""
    return sorted(set(np.linspace(0, n - 1, min(k, n)).round().astype(int).tolist()))


def _label(box: tuple[int, int, int, int], text: str, score: float, ticks: np.ndarray) -> Label:
    centre = (box[0] + box[1]) / 2.0
    if ticks.size:
        nearest = ticks[np.argmin(np.abs(ticks - centre))]
        if abs(nearest - centre) <= 4:
            centre = float(nearest)
    return Label(text=text, value=parse_number(text), row=centre, score=score)
