"""Spines and gridlines: find them as rows or columns mostly covered by one colour, and erase them.

Only the line's own colour (and its anti-aliased mixes with the background) is
erased, so candles drawn over a gridline survive; a row is rebuilt where ink
crosses it vertically. A column of a candle's colour that is part of a wider shape
(a wick running into its body, a column of volume bars) is not a line.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Iterator, Optional

import numpy as np

GRID_DELTA = 36  # a pixel this close to a line's colour (or a mix of it with the background) is line


def channel_max(values: np.ndarray) -> np.ndarray:
    """The largest of the three channels (last axis) of each pixel.

    Three element-wise maxima over strided channel views: a reduction over a
    last axis of length 3 is an order of magnitude slower in numpy.
    """
    out = np.maximum(values[..., 0], values[..., 1])
    return np.maximum(out, values[..., 2], out=out)


def colour_distance(rgb: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Largest per-channel difference between each pixel and ``colour``."""
    c = np.asarray(colour).reshape(-1)
    out = np.abs(rgb[..., 0] - c[0])
    np.maximum(out, np.abs(rgb[..., 1] - c[1]), out=out)
    return np.maximum(out, np.abs(rgb[..., 2] - c[2]), out=out)


def groups(indices: np.ndarray, gap: int = 1) -> list[tuple[int, int]]:
    """Integers grouped into (first, last) pairs where neighbours differ by <= gap."""
    if indices.size == 0:
        return []
    splits = np.flatnonzero(np.diff(indices) > gap)
    starts = np.concatenate((indices[:1], indices[splits + 1]))
    ends = np.concatenate((indices[splits], indices[-1:]))
    return list(zip(starts.tolist(), ends.tolist()))


def _mode_colour(pixels: np.ndarray) -> Optional[np.ndarray]:
    """The dominant colour of ``pixels`` when >= 35 % of them lie within 40 levels of it.

    It is sought around the median colour and around the most common 5-bit bin, so
    that JPEG noise does not split it. (A gridline drawn at candle positions shares
    its column with candles and volume bars.)
    """
    if len(pixels) == 0:
        return None
    for seed in _seeds(pixels):
        near = colour_distance(pixels, seed) <= 40
        if near.mean() >= 0.35:
            return channel_medians(pixels[near]).astype(np.int16)
    return None


def channel_medians(pixels: np.ndarray) -> np.ndarray:
    """``np.median(pixels, axis=0)`` of N x 3 integer pixels (N > 0): one partition of the channels laid
    out as rows (numpy's median partitions each strided channel with more overhead)."""
    n = len(pixels)
    lo, hi = (n - 1) // 2, n // 2
    part = np.partition(np.ascontiguousarray(pixels.T), [lo, hi], axis=1)
    return (part[:, lo].astype(np.float64) + part[:, hi]) / 2.0


def _seeds(pixels: np.ndarray) -> Iterator[np.ndarray]:
    """The median colour, then (only if asked for) the mean of the most common 5-bit bin."""
    yield channel_medians(pixels)
    keys = (pixels[:, 0] >> 3) * 1024 + (pixels[:, 1] >> 3) * 32 + (pixels[:, 2] >> 3)
    yield pixels[keys == np.bincount(keys).argmax()].mean(axis=0)


@dataclass(frozen=True)
class Line:
    first: int
    last: int
    start: int  # extent along the line
    end: int
    colour: np.ndarray


_BLANK_GAP = 12  # background pixels in a row that end a line


def _extent(indices: np.ndarray, inked: Optional[Callable[[], np.ndarray]] = None) -> tuple[int, int]:
    """First and last index of the pieces of a line at least 15 pixels long (dashes joined).

    Candles drawn over a gridline break it into long pieces; text beside or under the
    plot (tick labels) adds only short specks of a similar colour, which are ignored.
    Given the line's ``inked`` pixels (any colour; a callable, as they are needed only
    when the line has several long pieces), pieces separated by more than
    ``_BLANK_GAP`` pixels of background are not one line (what covers a line is ink;
    rotated date labels under a spine are apart from it): a short chain of pieces at
    either end, apart from the rest, is dropped.
    """
    pieces = groups(indices, gap=6)
    long = [g for g in pieces if g[1] - g[0] >= 15] or [max(pieces, key=lambda g: g[1] - g[0])]
    if inked is None or len(long) == 1:
        return long[0][0], long[-1][1]
    covered = inked()
    chains = [[long[0]]]
    for prev, piece in zip(long, long[1:]):
        if _longest_false(covered[prev[1] + 1 : piece[0]]) > _BLANK_GAP:
            chains.append([piece])
        else:
            chains[-1].append(piece)

    def span(c: list[tuple[int, int]]) -> int:
        return c[-1][1] - c[0][0]

    while len(chains) > 1:  # a short chain at either end, apart from the rest, is not the line
        total = chains[-1][-1][1] - chains[0][0][0]
        if span(chains[0]) < 0.15 * total:
            chains.pop(0)
        elif span(chains[-1]) < 0.15 * total:
            chains.pop()
        else:
            break
    return chains[0][0][0], chains[-1][-1][1]


def _longest_false(flags: np.ndarray) -> int:
    """Length of the longest run of False in ``flags``."""
    padded = np.r_[True, flags, True]
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return int((edges[1::2] - edges[::2]).max()) if edges.size else 0


def _find_lines(rgb: np.ndarray, ink: np.ndarray, min_cover: float) -> list[Line]:
    """Rows of ``ink`` covered over >= min_cover of their length by one colour (spines, gridlines).

    A row covered half as much joins them when it has the colour of a line already
    found and reaches as far (a gridline partly hidden by candles); a long wick does not.
    """
    counts = ink.sum(axis=1, dtype=np.int32)
    strong = _line_candidates(rgb, ink, counts, min_cover)
    if not strong:
        return []
    # lines span the whole plot; a tall candle of a gridline's colour reaches less far
    longest = max(l.end - l.start for l in strong)
    strong = [l for l in strong if l.end - l.start >= 0.7 * longest]
    # a long wick, with no line of its colour beside it, spans a third of a figure; a spine or a
    # gridline that has no sibling spans the plot, at least half the figure
    strong = [l for l in strong if l.end - l.start >= 0.5 * ink.shape[1]
              or any(m is not l and np.abs(m.colour - l.colour).max() < 16 for m in strong)]
    if not strong:
        return []
    reach = 0.8 * float(np.median([l.end - l.start for l in strong]))

    def wanted(first: int, last: int) -> bool:  # what the test below needs, known before any colour work
        return last - first <= 1 and all(first > s.last or last < s.first for s in strong)

    weak = _line_candidates(rgb, ink, counts, 0.5 * min_cover, wanted, reach)
    extra = [l for l in weak if all(l.first > s.last or l.last < s.first for s in strong)
             and l.end - l.start >= reach and l.last - l.first <= 1
             and any(np.abs(l.colour - s.colour).max() < 16 for s in strong)]
    return sorted(strong + extra, key=lambda l: l.first)


def _line_candidates(rgb: np.ndarray, ink: np.ndarray, counts: np.ndarray, cover: float,
                     wanted: Optional[Callable[[int, int], bool]] = None, reach: float = 0.0) -> list[Line]:
    """Lines among the row groups covered >= ``cover``; ``wanted`` (first, last) and ``reach``
    (the least extent) skip groups early that the caller would drop anyway."""
    lines = []
    found = groups(np.flatnonzero(counts >= cover * ink.shape[1]))
    thin = np.zeros(ink.shape[0], dtype=bool)  # the rows of every thin group: lines, maybe
    for first, last in found:
        if last - first <= 3:
            thin[first : last + 1] = True
    for first, last in found:
        if last - first > 3:  # a thick band is content (a wide body, text), not a line
            continue
        if wanted is not None and not wanted(first, last):
            continue
        row = int(first + np.argmax(counts[first : last + 1]))
        if reach > 0:
            inked = np.flatnonzero(ink[row])
            if inked[-1] + 1 - inked[0] < reach:  # the line's extent lies within its row's ink
                continue
        colour = _mode_colour(rgb[row][ink[row]])
        if colour is None:
            continue
        near = colour_distance(rgb[row], colour) <= GRID_DELTA
        same = ink[row] & near
        # the line's pixels: inked and near its colour, or near it alone where nothing lies two rows away
        # (JPEG lightens a faint dashed line's dashes under the ink threshold; a label's glyphs on the
        # line's row are taller); what is not blank: ink, or near the line's colour
        clear = np.ones_like(near)
        for r in (first - 2, last + 2):
            if 0 <= r < ink.shape[0]:
                clear &= ~ink[r] & (colour_distance(rgb[r], colour) > GRID_DELTA)
        start, end = _extent(np.flatnonzero(same | (near & clear)), lambda: ink[row] | near)
        if _in_a_wider_shape(rgb, ink, first, last, same, colour, thin):
            continue
        lines.append(Line(first, last, start, end + 1, colour))
    return lines


def _in_a_wider_shape(rgb: np.ndarray, ink: np.ndarray, first: int, last: int, same: np.ndarray,
                      colour: np.ndarray, thin: Optional[np.ndarray] = None) -> bool:
    """True when a third of the line's pixels have ink of its colour two rows away on either side.

    That is a wick running into its body, or a column of volume bars, not a line:
    a gridline has its colour beside it only where another line crosses it, or where
    another line runs close beside it (two panels' spines, a gridline next to a spine):
    rows of other ``thin`` groups do not count.
    """
    n = ink.shape[0]
    beside = np.zeros_like(same)
    for r in (first - 2, last + 2):
        if 0 <= r < n and not (thin is not None and thin[r]):
            beside |= ink[r] & (colour_distance(rgb[r], colour) <= GRID_DELTA)
    return bool(same.sum()) and (beside & same).sum() > same.sum() / 3


GREY_CHROMA = 16  # a line or background whose channels differ by at most this is grey
COLOUR_CHROMA = 32  # a pixel whose channels differ by more is no mix of two greys


def _blend(rgb: np.ndarray, line: np.ndarray, background: np.ndarray,
           coloured_kept: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(is the line's colour or an anti-aliased mix of it with the background, share of line colour).

    A grey line on a grey background mixes to greys only: a coloured pixel within
    ``GRID_DELTA`` of a grey (a muted green body drawn over a white gridline on black)
    is not the line's.
    """
    axis = (line - background).astype(float)
    norm = float(axis @ axis) or 1.0
    t = np.clip(((rgb - background).astype(float) @ axis) / norm, 0.0, 1.0)
    mix = background + t[..., None] * axis
    same = channel_max(np.abs(rgb - mix)) <= GRID_DELTA
    if coloured_kept and np.ptp(line) <= GREY_CHROMA and np.ptp(background) <= GREY_CHROMA:
        same &= np.ptp(rgb, axis=-1) <= COLOUR_CHROMA
    return same, t


Blends = dict[tuple[str, int, int], tuple[np.ndarray, np.ndarray]]


def _blend_at(rgb: np.ndarray, line: Line, background: np.ndarray, key: tuple[str, int, int],
              blends: Optional[Blends], coloured_kept: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``_blend`` of a line's pixels, kept in ``blends`` (when given) for the next mask erased."""
    if blends is None:
        return _blend(rgb, line.colour, background, coloured_kept)
    if key not in blends:
        blends[key] = _blend(rgb, line.colour, background, coloured_kept)
    return blends[key]


def erase_rows(rgb: np.ndarray, ink: np.ndarray, lines: list[Line], background: np.ndarray,
               blends: Optional[Blends] = None) -> None:
    """Remove horizontal lines from ``ink`` in place, keeping what crosses them.

    ``blends`` keeps each line's colour test for the next mask erased from the same image.
    """
    h = ink.shape[0]
    for line in lines:
        a, b = max(0, line.first - 1), min(h, line.last + 2)
        above, below = ink[max(0, a - 1)], ink[min(h - 1, b)]
        other = ~_blend_at(rgb[a:b], line, background, ("row", a, b), blends)[0]
        for r, colour in _darker_rows(rgb, line, background):
            other[r - a] &= ~_blend_at(rgb[r : r + 1], replace(line, colour=colour), background, ("dark", r, r + 1),
                                       blends)[0][0]
        ink[a:b] = (ink[a:b] & other) | (above & below)[None, :]


def _darker_rows(rgb: np.ndarray, line: Line, background: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(row, its colour) of a line's rows whose own colour lies further from the background than the
    line's, by more than ``GRID_DELTA``: a spine resized across two rows is a pale row (whose colour
    the line may take) and a dark one, which is no mix of the pale colour and the background."""
    if line.last == line.first:
        return []
    own = int(np.abs(line.colour - background).max())
    out = []
    for r in range(line.first, line.last + 1):
        colour = np.median(rgb[r, line.start : line.end + 1], axis=0).astype(np.int16)
        if int(np.abs(colour - background).max()) > own + GRID_DELTA:
            out.append((r, colour))
    return out


def erase_cols(rgb: np.ndarray, ink: np.ndarray, lines: list[Line], background: np.ndarray,
               blends: Optional[Blends] = None) -> None:
    """Remove vertical lines from ``ink`` in place, keeping pixels of another colour (wicks)
    and bodies drawn over it (ink right beside it on the same row); ``blends`` as in ``erase_rows``."""
    w = ink.shape[1]
    for line in lines:
        a, b = max(0, line.first - 1), min(w, line.last + 2)
        left, right = ink[:, max(0, a - 1)], ink[:, min(w - 1, b)]
        # a body drawn over a vertical line keeps its colour (only vertical lines: measured on the tune split)
        blend, t = _blend_at(rgb[:, a:b], line, background, ("col", a, b), blends, coloured_kept=True)
        # a thin line is solid in one column per row; a body of its colour fills several
        body = ((blend & (t >= 0.8)).sum(axis=1) >= line.last - line.first + 2) | left | right
        ink[:, a:b] = (ink[:, a:b] & ~blend) | (ink[:, a:b] & body[:, None])


def clean_ink(rgb: np.ndarray, ink: np.ndarray, background: np.ndarray,
              blends: Optional[Blends] = None) -> tuple[np.ndarray, list[Line], list[Line]]:
    """(ink without spines and gridlines, horizontal lines, vertical lines); ``blends`` as in ``erase_rows``."""
    ink = ink.copy()
    cols = _find_lines(np.swapaxes(rgb, 0, 1), ink.T, 0.3)
    erase_cols(rgb, ink, cols, background, blends)
    rows = _find_lines(rgb, ink, 0.3)
    erase_rows(rgb, ink, rows, background, blends)
    return ink, rows, cols


def hysteresis(weak: np.ndarray, strong: np.ndarray) -> np.ndarray:
    """``weak`` pixels in vertical runs that contain a ``strong`` one (plus every strong one)."""
    mask = weak | strong
    starts = mask.copy()
    starts[1:] &= ~mask[:-1]
    # a label per vertical run: its rank in its column plus the runs of the columns before
    per_column = starts.sum(axis=0, dtype=np.int32)
    offset = np.r_[np.int32(0), np.cumsum(per_column, dtype=np.int32)[:-1]]
    ids = starts.astype(np.int32)
    np.add.accumulate(ids, axis=0, out=ids)  # in place: twice as fast as cumsum along axis 0
    ids += offset[None, :]
    has_strong = np.zeros(int(per_column.sum()) + 1, dtype=bool)
    has_strong[ids[strong]] = True
    out = strong.copy()
    only = weak & ~strong  # ink is sparse: look up the runs of these pixels alone
    out[only] = has_strong[ids[only]]
    return out


def plot_box(ink: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right), ends exclusive, of the plot's background rectangle (a coloured plot
    on a white figure): outside it is not read. The whole image when no row or column is plain."""
    h, w = ink.shape
    # a share of plain pixels: the integer count over the length, as ``(~ink).mean`` gives it
    cols = np.flatnonzero((h - ink.sum(axis=0, dtype=np.int32)) / h >= 0.3)
    rows = np.flatnonzero((w - ink.sum(axis=1, dtype=np.int32)) / w >= 0.3)
    if cols.size == 0 or rows.size == 0:
        return 0, h, 0, w
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def keep_box(mask: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """``mask`` cleared, in place, outside ``box`` (see ``plot_box``); returned for chaining."""
    top, bottom, left, right = box
    mask[:top] = False
    mask[bottom:] = False
    mask[:, :left] = False
    mask[:, right:] = False
    return mask
