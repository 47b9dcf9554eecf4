"""Pixels -> candles: find the price panel and recover each bar's OHLC in pixel rows.

The reader works on structure, not on one style's colours:

1. **Background and ink.** The panel's background is the most common colour in the
   middle of the image; *ink* is anything that differs from it by more than
   ``INK_DELTA`` on some channel; fainter ink (over ``WEAK_DELTA``) counts only where it
   runs vertically into sure ink, which keeps thin anti-aliased wicks and drops light
   gridlines broken up by JPEG noise.
2. **Panel.** Axis spines are long straight runs of ink. The left/right spines bound
   the plot horizontally; horizontal spines of the same colour split the figure into
   panels (price, volume) and the tallest is the price panel. Without spines the
   whole image is used.
3. **Grid.** Rows or columns of the panel mostly covered by one colour are gridlines;
   that colour stops counting as ink (candles are drawn over it).
4. **Candle slots.** Candles sit on an evenly spaced x grid. Humps of the column ink
   profile give first centres; a least-squares line through them (``x = x0 + k*s``)
   is refined twice, so the spacing stays exact over hundreds of bars.
5. **Each candle.** In the slot's columns, rows much wider than the wick are the body
   (filled or hollow: the span between its edges counts); the wick column is walked
   up and down from the body, tolerating short occlusions by overlays of another
   colour, to the high and the low.
6. **Up or down.** Body fill colours are split into two clusters; which cluster is
   "up" is chosen so that each close lies nearest the next open (true for daily bars).

All coordinates are pixel rows (y grows downwards): a bar's ``high`` is its
*smallest* row. ``price.py``-style mapping to real prices happens in ``axis``.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional

import numpy as np

from ...errors import ImageError
from .lines import (Blends, Line, clean_ink, colour_distance, erase_cols, erase_rows, groups, hysteresis, keep_box,
                    plot_box)
from .direction import assign_direction
from .measure import measure_many
from .panel import Panel, find_panel
from .candles import (
    RawCandle,
    Slots,
    body_threshold,
    candle_ink,
    find_slots,
    measure,
    measure_hidden,
    palette,
)

INK_DELTA = 72  # channel difference from the background that is surely ink
WEAK_DELTA = 48  # faint ink (anti-aliased wicks), kept only where it continues sure ink vertically
FAINT_DELTA = 32  # a thin candle blurred under both, read only in an empty slot between two candles
_MAX_SIDE = 4000  # larger images are downscaled before reading
_MIN_BARS = 2
_SAMPLE = 30  # candles measured to learn the candles' own colours
FLUSH_SHARE = 0.15  # of the candles ending within 2 rows of their lower wick's end: bodies drawn with a stroke
_STUB_CANDLES = 5  # such candles needed to tell how bodies are drawn


@dataclass(frozen=True)
class PixelBar:
    """One candle in pixel coordinates: x is its centre column, prices are rows."""

    x: float
    open: float
    high: float
    low: float
    close: float
    up: bool
    body_width: float


@dataclass
class Digitized:
    """What the digitizer recovered from one image."""

    bars: list[PixelBar]
    panel: Panel
    spacing: float
    background: tuple[int, int, int]
    image_size: tuple[int, int]  # (width, height) of the image read
    scale: float = 1.0  # image pixels per analysed pixel (1.0 unless downscaled)
    fit_residual: float = 0.0  # rms of hump centres about the fitted grid, in spacings
    occupancy: float = 0.0  # share of the panel's ink inside the candles' columns
    wick_share: float = 0.0  # share of bars with a wick beyond the body
    baseline_share: float = 0.0  # share of bars whose low is the panel's lowest row (bar charts)
    colour_split: float = 0.0  # distance between the two body-colour clusters
    body_ratio: float = 0.0  # body width over wick width
    continuity: float = 1.0  # median |close - next open| over the median bar range (small for candles)
    background_share: float = 0.0  # share of panel pixels that are background
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------- image I/O


def decode_rgb(image: bytes, max_pixels: int = 40_000_000) -> tuple[np.ndarray, float]:
    """(H x W x 3 int16 array, scale) from image bytes; huge images are downscaled."""
    from PIL import Image, UnidentifiedImageError

    if not isinstance(image, (bytes, bytearray)) or not image:
        raise ImageError("chart image is empty: pass the bytes of a PNG or JPEG chart")
    fast = _png_rgb8(image, max_pixels)
    if fast is not None:
        return fast.astype(np.int16), 1.0
    try:
        with Image.open(io.BytesIO(image)) as img:
            if img.width * img.height > max_pixels:
                raise ImageError(
                    f"image too large: {img.width}x{img.height} pixels (limit {max_pixels:,}): crop or resize it"
                )
            return _pixels(img)
    except UnidentifiedImageError:
        raise ImageError("not an image: expected PNG, JPEG, WEBP, GIF or BMP bytes") from None
    except Image.DecompressionBombError:
        raise ImageError("image too large: it exceeds the decompression limit") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"image is truncated or corrupt ({exc}): export the chart again") from None


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_rgb8(image: bytes, max_pixels: int) -> Optional[np.ndarray]:
    """The RGB pixels of an 8-bit RGB or RGBA PNG decoded by libspng (``pyspng``), else None.

    Charts are mostly such PNGs, and libspng decodes them in about two thirds of
    PIL's time with the same pixels (alpha dropped, as ``convert("RGB")`` does; no
    gamma applied, as in PIL). Anything else (other PNG types, images that must be
    downscaled or refused, a file libspng rejects, no ``pyspng``) is left to PIL,
    which also words the errors.
    """
    if len(image) < 33 or image[:8] != _PNG_SIGNATURE or image[12:16] != b"IHDR":
        return None
    width, height, depth, colour = struct.unpack(">IIBB", image[16:26])
    if depth != 8 or colour not in (2, 6) or width * height > max_pixels or max(width, height) > _MAX_SIDE:
        return None
    try:
        import pyspng
    except ImportError:
        return None
    try:
        rgb = pyspng.load(bytes(image), format="RGB")
    except Exception:  # noqa: BLE001 - PIL reads it again and says what is wrong
        return None
    return rgb if rgb.shape == (height, width, 3) and rgb.dtype == np.uint8 else None


def _pixels(img: Any) -> tuple[np.ndarray, float]:
    """(H x W x 3 int16 array, scale) of an opened PIL image; huge images are downscaled."""
    from PIL import Image

    img.load()
    # converted in PIL (RGBA -> RGB drops the alpha channel): a contiguous uint8 array widens to int16
    # several times faster than a strided slice of the RGBA array
    rgb = img if img.mode == "RGB" else img.convert("RGB")
    scale = 1.0
    if max(rgb.size) > _MAX_SIDE:
        scale = max(rgb.size) / _MAX_SIDE
        rgb = rgb.resize((round(rgb.width / scale), round(rgb.height / scale)), Image.BILINEAR)
    return np.asarray(rgb).astype(np.int16), scale


def background_colour(rgb: np.ndarray) -> np.ndarray:
    """The most common colour (5-bit bins) in the central half of the image."""
    h, w, _ = rgb.shape
    step = 2 if min(h, w) >= 64 else 1  # every other pixel: the mode is the same, four times faster
    centre = rgb[h // 4 : max(h // 4 + 1, 3 * h // 4) : step, w // 4 : max(w // 4 + 1, 3 * w // 4) : step]
    r, g, b = (centre[..., c].astype(np.int32) for c in range(3))
    keys = (r >> 3) * 1024 + (g >> 3) * 32 + (b >> 3)
    mode = int(np.bincount(keys.ravel()).argmax())
    # the low 3 bits of the pixels in that bin, without gathering the pixels themselves
    low = ((r & 7) << 6) | ((g & 7) << 3) | (b & 7)
    return _hist_median(np.bincount(low[keys == mode], minlength=512), mode)


def _bin_median(pixels: np.ndarray, key: int) -> np.ndarray:
    """``np.median(pixels, axis=0).astype(np.int16)`` for pixels (N x 3, N > 0) all in the 5-bit bin ``key``."""
    low = ((pixels[:, 0] & 7) << 6) | ((pixels[:, 1] & 7) << 3) | (pixels[:, 2] & 7)
    return _hist_median(np.bincount(low, minlength=512), key)


def _hist_median(hist: np.ndarray, key: int) -> np.ndarray:
    """The channel medians (as ``np.median(...).astype(np.int16)``) of pixels all in the 5-bit bin
    ``key``, from the histogram (512 bins) of their low 3 bits per channel.

    Each channel then takes one of 8 values: the medians come from one histogram (ten
    times faster than a partition over strided channels).
    """
    hist = hist.reshape(8, 8, 8)
    n = int(hist.sum())
    out = np.empty(3, dtype=np.int16)
    for c, (axes, top) in enumerate((((1, 2), key >> 10), ((0, 2), (key >> 5) & 31), ((0, 1), key & 31))):
        cumulative = np.cumsum(hist.sum(axis=axes))
        below, above = np.searchsorted(cumulative, [(n - 1) // 2, n // 2], side="right")
        out[c] = (top << 3) + int((float(below) + float(above)) / 2.0)
    return out


# --------------------------------------------------------------------------- main


def digitize(image: bytes, *, max_pixels: int = 40_000_000) -> Digitized:
    """Recover every candle of a chart image in pixel rows; see the module docstring.

    Raises ``ImageError`` when the bytes are not a readable image. An image with no
    candle-like structure gives a ``Digitized`` with no bars (the guard scores it 0).
    """
    return digitize_rgb(*decode_rgb(image, max_pixels))


def digitize_rgb(rgb: np.ndarray, scale: float = 1.0) -> Digitized:
    """``digitize`` on an already decoded (H x W x 3 int16) image."""
    h, w, _ = rgb.shape
    background = background_colour(rgb)
    distance = colour_distance(rgb, background)
    raw_all = distance > INK_DELTA
    background_share = float((raw_all.size - np.count_nonzero(raw_all)) / raw_all.size)
    box = plot_box(raw_all)
    keep_box(raw_all, box)
    blends: Blends = {}  # each line's colour test, computed once for both masks
    weak, rows, cols = clean_ink(rgb, keep_box(distance > WEAK_DELTA, box), background, blends)
    strong = raw_all.copy()
    erase_cols(rgb, strong, cols, background, blends)
    erase_rows(rgb, strong, rows, background, blends)
    ink_all = hysteresis(weak, strong)
    inset = find_panel(ink_all, rows, cols, rgb)
    region = rgb[inset.top : inset.bottom, inset.left : inset.right]
    ink = ink_all[inset.top : inset.bottom, inset.left : inset.right]
    off_lines = ~_line_rows(rows, inset, h)[:, None]
    raw = raw_all[inset.top : inset.bottom, inset.left : inset.right] & off_lines
    local_bg = background_colour(region)
    strength = distance[inset.top : inset.bottom, inset.left : inset.right]
    faint = (strength > FAINT_DELTA) & off_lines
    result = Digitized([], inset, 0.0, tuple(int(v) for v in local_bg), (w, h), scale,
                       background_share=background_share)
    slots = find_slots(ink, raw, faint)
    if slots is None or slots.centres.size < _MIN_BARS:
        result.warnings.append("no evenly spaced candles found: not enough to read a chart")
        return result
    body_thr, body_w, wick_w = body_threshold(ink, slots.centres, slots.spacing)
    sampled: dict[int, Any] = {}  # the candles measured on all ink to learn their colours, by slot
    replaced: dict[int, RawCandle] = {}  # first readings of the bars read again (``_reread_strays``)
    measured, span = _on_candle_colours(ink, region, np.asarray(local_bg), slots, body_thr, body_w, sampled,
                                        strength, replaced)
    if span != (0, slots.centres.size):  # slots at the ends with none of the candles' colours
        slots = replace(slots, centres=slots.centres[span[0] : span[1]])
        sampled = {i - span[0]: r for i, r in sampled.items() if span[0] <= i < span[1]}
    if measured is None:
        replaced.clear()
        measured = _on_all_ink(ink, raw, region, np.asarray(local_bg), slots, body_thr, body_w, result.warnings,
                               sampled, strength, faint, replaced)
    if measured is None:
        result.warnings.append("fewer than 2 candles could be measured")
        return result
    raws, up, split = measured
    on_lines = _wickless_on_lines(raws, cols, inset)
    read = [i for i, line in on_lines if _wick_through_dashes(raws[i], line, raw_all, inset)]
    lost = [i for i, _ in on_lines if i not in read]
    if read:
        result.warnings.append(
            f"{len(read)} bar(s) lie on a dashed vertical gridline of their colour (bar {read[0] + 1} first): "
            "their wick ends were read from the gaps between dashes they fill, to within half a dash"
        )
    if lost:
        result.warnings.append(
            f"{len(lost)} bar(s) lie on a vertical gridline (bar {lost[0] + 1} first) and show no wick "
            "beside it: their highs and lows are their bodies' ends, the wicks may be longer"
        )
    shift = _bottom_shift(raws)
    result.bars = [_to_bar(r, u, inset, scale, shift) for r, u in zip(raws, up)]
    result.spacing, result.fit_residual = slots.spacing * scale, slots.residual
    result.occupancy = slots.block_share
    result.colour_split = split
    result.wick_share = float(np.mean([(r.high < r.body_top) or (r.low > r.body_bottom) for r in raws]))
    lows = np.array([r.low for r in raws])
    result.baseline_share = float(np.mean(np.abs(lows - lows.max()) <= 1))
    result.body_ratio = body_w / max(wick_w, 1.0)
    if replaced:  # the guard's continuity from the first readings (see ``_reread_strays``)
        first = [replaced.get(i, r) for i, r in enumerate(raws)]
        first_up, _ = assign_direction(first, np.asarray(local_bg))
        result.continuity = _continuity([_to_bar(r, u, inset, scale, shift) for r, u in zip(first, first_up)])
    else:
        result.continuity = _continuity(result.bars)
    if body_w - wick_w < 1.5:
        result.warnings.append(
            f"bodies ({body_w:.0f} px) are hardly wider than wicks ({wick_w:.0f} px): open/close are approximate"
        )
    return result


def _wickless_on_lines(raws: list[RawCandle], cols: list[Line], panel: Panel) -> list[tuple[int, Line]]:
    """(index, line) of the bars centred on a vertical gridline that show no wick: a wick of the
    line's colour went with it."""
    out = []
    for i, r in enumerate(raws):
        if r.high < r.body_top or r.low > r.body_bottom - 0.5:
            continue
        for line in cols:
            if line.first - 1 <= r.x + panel.left <= line.last + 1:
                out.append((i, line))
                break
    return out


def _wick_through_dashes(candle: RawCandle, line: Line, raw: np.ndarray, panel: Panel) -> bool:
    """Read the wicks of a candle lying on a dashed gridline of its colour from the gaps between
    dashes that they fill; True when either end moved.

    Along the line's densest column the ink runs on from the body through the gaps
    the wick fills and stops at the first gap it does not. The wick's end lies in the
    dash after that gap (the next gap, filled, is within the wick), so it is put in
    the middle of that dash. A run no longer than a dash fills no gap: the wick may
    be as short as nothing, and that end is left at the body. A solid line has no
    gaps to read.
    """
    strip = raw[line.start : line.end + 1, max(0, line.first) : line.last + 1]
    if strip.size == 0:
        return False
    col = strip[:, int(np.argmax(strip.sum(axis=0)))]
    gaps = groups(np.flatnonzero(~col))
    if len(gaps) < 4:
        return False
    starts = np.array([a for a, _ in gaps])
    period = float(np.median(np.diff(starts)))
    dash = period - float(np.median([b - a + 1 for a, b in gaps]))
    if dash < 2 or period > 0.2 * col.size:
        return False
    top = int(candle.body_top) + panel.top - line.start
    bottom = int(round(candle.body_bottom - 0.5)) + panel.top - line.start
    lo, hi = max(0, panel.top - line.start), min(col.size, panel.bottom - line.start)
    if not (lo <= top <= bottom < hi):
        return False
    moved = False
    up = top
    while up - 1 >= lo and col[up - 1]:
        up -= 1
    if top - up > dash and up > lo:
        candle.high = float(up + dash / 2 + line.start - panel.top)
        moved = True
    down = bottom
    while down + 1 < hi and col[down + 1]:
        down += 1
    if down - bottom > dash and down < hi - 1:
        candle.low = float(down - dash / 2 + line.start - panel.top)
        moved = True
    return moved


def _line_rows(rows: list[Line], panel: Panel, height: int) -> np.ndarray:
    """Panel rows on a horizontal line (with their anti-aliased neighbours)."""
    mask = np.zeros(height, dtype=bool)
    for line in rows:
        mask[max(0, line.first - 1) : line.last + 2] = True
    return mask[panel.top : panel.bottom]


def _continuity(bars: list[PixelBar]) -> float:
    """How well each bar opens where the previous one closed, in bar ranges (0 = perfectly)."""
    if len(bars) < 3:
        return 1.0
    gaps = np.abs(np.array([a.close - b.open for a, b in zip(bars, bars[1:])]))
    ranges = np.array([b.low - b.high for b in bars])
    return float(np.median(gaps) / max(float(np.median(ranges)), 1.0))


def _on_all_ink(ink, raw, region, background, slots, body_thr, body_w, warnings,  # type: ignore[no-untyped-def]
                sampled=None, strength=None, faint=None, replaced=None):
    """(candles, up flags, colour split) measured on all the panel's ink; None if fewer than 2.

    ``sampled`` holds candles already measured the same way, by slot: each candle's
    measurement depends on its own window only, so they are not measured again. A slot
    with no ink is measured on the raw ink (a candle under a gridline of its colour),
    else on ``faint`` (a thin candle blurred under the ink thresholds).
    """
    sampled = sampled or {}
    rest = [i for i in range(slots.centres.size) if i not in sampled]
    fresh = iter(measure_many(ink, region, slots.centres[rest], slots.spacing, body_thr, body_w, strength=strength))
    raws = [sampled[i] if i in sampled else next(fresh) for i in range(slots.centres.size)]
    hidden = [i for i, r in enumerate(raws) if r is None]
    for i in hidden:
        raws[i] = measure_hidden(raw, region, slots.centres[i], slots.spacing, body_thr, body_w)
    faded = [i for i in hidden if raws[i] is None and faint is not None]
    for i in faded:
        raws[i] = measure(faint, region, slots.centres[i], slots.spacing, body_thr, body_w)
    faded = [i for i in faded if raws[i] is not None]
    hidden = [i for i in hidden if raws[i] is not None and i not in faded]
    if hidden:
        warnings.append(
            f"{len(hidden)} bar(s) lie under a gridline of their own colour (bar {hidden[0] + 1} first): "
            "their wicks were not read"
        )
    if faded:
        warnings.append(
            f"{len(faded)} bar(s) are blurred almost to the background's colour (bar {faded[0] + 1} first): "
            "they were read from faint pixels, their prices are approximate"
        )
    keep = [i for i, r in enumerate(raws) if r is not None]
    raws = [raws[i] for i in keep]
    if len(raws) < _MIN_BARS:
        return None
    centres = slots.centres[keep]
    _reread_strays(raws, lambda idx: measure_many(ink, region, centres[idx], slots.spacing, body_thr, body_w,
                                                  strength=strength, attach=True), replaced)
    up, split = assign_direction(raws, background)
    return raws, up, split


STRAY_SHARE = 0.1  # more bars than this read far from both neighbours: a photo's blobs, not misreads


def _reread_strays(raws: list[RawCandle], remeasure: Callable[[np.ndarray], list[Optional[RawCandle]]],
                   replaced: Optional[dict[int, RawCandle]] = None) -> None:
    """Read again, in place, the bars read far from both neighbours, taking their bodies on their
    wicks (``measure_many(..., attach=True)``), and keep the new reading when it lies near a
    neighbour; ``replaced`` gets the first readings of the bars read again, by index.

    An overlay line lying flat across a candle's window (a Bollinger band at its peak)
    can be the longest group of wide rows there, so the candle was read as a flat bar
    on the band, far from the bars beside it. "Far" is a gap of more than the median
    bar's range (3 px at least) to each neighbour. Left alone when more than
    ``STRAY_SHARE`` of the bars are far from theirs: not a chart's exception then.

    The guard judges continuity on the first readings: a reading chosen for being near
    its neighbours is no evidence that bars follow each other (a photograph's blobs,
    read again, could pass for candles).
    """
    n = len(raws)
    if n < 3:
        return
    high = np.array([r.high for r in raws], dtype=float)
    low = np.array([r.low for r in raws], dtype=float)
    far = max(3.0, float(np.median(low - high)))

    def alone(i: int, hi: float, lo: float) -> bool:
        return all(max(hi - low[j], high[j] - lo) > far for j in (i - 1, i + 1) if 0 <= j < n)

    strays = [i for i in range(n) if alone(i, high[i], low[i])]
    if not strays or len(strays) > max(2, STRAY_SHARE * n):
        return
    for i, again in zip(strays, remeasure(np.array(strays))):
        if again is not None and not alone(i, again.high, again.low):
            if replaced is not None:
                replaced[i] = raws[i]
            raws[i] = again


def _on_candle_colours(ink, region, background, slots, body_thr, body_w,  # type: ignore[no-untyped-def]
                       sampled=None, strength=None, replaced=None):
    """(measured, span): measure on the candles' own colours when overlays (moving averages, bands)
    add ink.

    The colours come from a sample of candles spread over the chart (measured on all
    ink, and kept by slot in ``sampled`` when given). ``measured`` is None when the
    panel holds nothing but candles (then all ink is measured once), or when a candle
    inside the run has none of those colours. ``span`` (first, end) are the slots from
    the first to the last that hold the candles' colours: slots at the ends without
    them held only an overlay's end, a legend or axis labels on the candles' grid.
    """
    n = slots.centres.size
    sample = np.unique(np.linspace(0, n - 1, min(n, _SAMPLE)).round().astype(int))
    first = measure_many(ink, region, slots.centres[sample], slots.spacing, body_thr, body_w, strength=strength)
    if sampled is not None:
        sampled.update(zip(sample.tolist(), first))
    found = [r for r in first if r is not None]
    if len(found) < _MIN_BARS:
        return None, (0, n)
    colours = palette(found, assign_direction(found, background)[0], ink, region, background)
    if not colours:
        return None, (0, n)
    own = candle_ink(ink, region, colours, background)
    if own.sum() > 0.985 * ink.sum():  # nothing but candles
        return None, _coloured_span(own, slots)
    thr, width, _ = body_threshold(own, slots.centres, slots.spacing)
    again = measure_many(own, region, slots.centres, slots.spacing, thr, width, occluded=ink & ~own,
                         strength=strength)
    kept = [i for i, r in enumerate(again) if r is not None]
    if len(kept) < _MIN_BARS or kept[-1] - kept[0] + 1 != len(kept):
        return None, (0, n)
    again = again[kept[0] : kept[-1] + 1]
    centres = slots.centres[kept[0] : kept[-1] + 1]
    _reread_strays(again, lambda idx: measure_many(own, region, centres[idx], slots.spacing, thr, width,
                                                   occluded=ink & ~own, strength=strength, attach=True), replaced)
    up, split = assign_direction(again, background)
    return (again, up, split), (kept[0], kept[-1] + 1)


def _coloured_span(own: np.ndarray, slots: Slots) -> tuple[int, int]:
    """(first, end) of the slots whose central columns (a quarter spacing each side) hold candle ink
    (all slots when fewer than two do)."""
    n = slots.centres.size
    half = max(0, int(0.25 * slots.spacing))
    cols = np.clip(np.round(slots.centres).astype(int)[:, None] + np.arange(-half, half + 1)[None, :], 0,
                   own.shape[1] - 1)
    held = np.flatnonzero(own.any(axis=0)[cols].any(axis=1))
    if held.size < _MIN_BARS:
        return 0, n
    return int(held[0]), int(held[-1]) + 1


def _bottom_shift(raws: list[RawCandle]) -> float:
    """Rows to move every body's bottom by, from how the chart draws bodies (0 when undecided).

    Bottoms are put half a row below a body's last row, halfway between two ways of
    drawing. A body drawn with an edge stroke (mplfinance) ends on the row of its
    bottom price, so a candle whose low is at, or within the stroke of, that price
    ends flush with its wick: a fair share of a chart's candles show no lower wick
    (``FLUSH_SHARE`` of those ending within 2 rows of it); their bottoms move up half
    a row. A body drawn as a plain rectangle (TradingView-like) ends one row above its
    bottom price while its wick runs down to the low, so no candle ends flush: every
    one shows a row of wick or more below its body; their bottoms move down half a row.
    """
    stubs = np.array([r.low - (r.body_bottom - 0.5) for r in raws if r.body_bottom - r.body_top >= 2])
    flush, short = int((stubs <= 0).sum()), int(((stubs >= 1) & (stubs <= 2)).sum())
    if flush + short < _STUB_CANDLES:
        return 0.0
    if flush == 0:
        return 0.5
    return -0.5 if flush / (flush + short) >= FLUSH_SHARE else 0.0


def _to_bar(r: RawCandle, up: bool, panel: Panel, scale: float, shift: float = 0.0) -> PixelBar:
    def y(v: float) -> float:
        return (panel.top + v) * scale

    bottom = r.body_bottom + shift
    opening, closing = (bottom, r.body_top) if up else (r.body_top, bottom)
    return PixelBar(
        x=(panel.left + r.x) * scale,
        open=y(opening),
        high=y(min(r.high, r.body_top)),
        low=y(max(r.low, bottom)),
        close=y(closing),
        up=bool(up),
        body_width=r.width * scale,
    )
