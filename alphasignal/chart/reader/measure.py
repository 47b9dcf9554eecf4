"""Measure every candle of a grid at once: rows x slots x columns arrays, then a short pass per candle.

The rules are those of ``candles.measure`` (which calls this with one centre):

* the window of a candle is the columns within ``0.45 * spacing`` of its centre;
* a **body** row is wide (>= ``body_thr``), stays within the body's columns and is
  centred on the candle (a moving average crossing the window reaches beyond them,
  or drifts across them when steep); the largest group of such rows (gaps of 2
  rows bridged) is the body, or the wick's middle row when there is none;
* the **wick** is the inked column nearest the centre (within a quarter window)
  with the most ink; it is walked up and down from the body, tolerating gaps of
  up to 2 pixels, to the high and the low (plus the coverage of a tip blurred
  under the ink threshold, when the pixels' strength is given);
* the body's **edge** colour is the most common colour (5-bit bins) on its first
  and last inked columns, its **fill** that of the columns between them, the wick
  column left out (it may show through a hollow body).

All of it is computed for every candle at once in numpy (rows x candles x columns
arrays; the colour modes by one sort of (candle, colour bin) pairs): there is no
per-candle Python loop.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np


def colour_keys(rgb: np.ndarray) -> np.ndarray:
    """5-bit colour bin of each pixel (r, g, b >> 3 packed into 15 bits)."""
    r, g, b = (rgb[..., i].astype(np.int32) >> 3 for i in range(3))
    return (r << 10) | (g << 5) | b


def mode_colour(pixels: np.ndarray, keys: Optional[np.ndarray] = None) -> np.ndarray:
    """Mean of the most common colour (5-bit bins) of ``pixels`` (N x 3): an overlay crossing a body
    is a minority. ``keys`` are the pixels' bins when already known."""
    if keys is None:
        keys = colour_keys(pixels)
    return pixels[keys == np.bincount(keys).argmax()].mean(axis=0)


_BITS = 16  # windows up to this wide are coded as bit masks by ``row_extents``
_LOWEST_BIT = np.zeros(1 << _BITS, dtype=np.int32)
_HIGHEST_BIT = np.zeros(1 << _BITS, dtype=np.int32)
for _bit in range(_BITS):
    _LOWEST_BIT[(1 << _bit) :: 1 << (_bit + 1)] = _bit  # the codes whose lowest set bit is _bit
    _HIGHEST_BIT[1 << _bit : 1 << (_bit + 1)] = _bit


def window_codes(win: np.ndarray) -> Optional[np.ndarray]:
    """Each row of each window (rows x windows x columns booleans) as a bit mask (bit j: column j),
    or None when the windows are wider than 16 columns."""
    k = win.shape[2]
    if k > _BITS:
        return None
    return np.matmul(win.view(np.uint8), (1 << np.arange(k)).astype(np.uint16), dtype=np.uint16)


def _inked_rows(win: np.ndarray) -> np.ndarray:
    """``win.any(axis=2)`` (rows x windows), from the rows' bit masks when the windows are narrow."""
    code = window_codes(win)
    return win.any(axis=2) if code is None else code != 0


def row_extents(win: np.ndarray, code: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inked, first, last) of each row of each window (rows x windows x columns booleans): whether it
    holds ink, and its first and last inked column (0 and the last column when it holds none, as
    ``argmax`` from either end gives them). ``code`` is ``window_codes(win)`` when already known.

    Windows up to 16 columns wide are coded as bit masks and the columns looked up: three
    to four times faster than the reductions over a short last axis.
    """
    k = win.shape[2]
    code = window_codes(win) if code is None else code
    if code is None:
        return win.any(axis=2), np.argmax(win, axis=2), k - 1 - np.argmax(win[:, :, ::-1], axis=2)
    inked = code != 0
    return inked, _LOWEST_BIT[code], np.where(inked, _HIGHEST_BIT[code], k - 1)


def _any_of_three(picked: np.ndarray) -> np.ndarray:
    """``picked.any(axis=2)`` for a last axis of length 3, as two element-wise ors (several times faster)."""
    return picked[..., 0] | picked[..., 1] | picked[..., 2]


class _Batch:
    """The windows of all candles: ink as rows x candles x columns, and per-row extents.

    Rows are counted from each window's own first row, ``top[c]`` (see ``_row_band``):
    add it to get image rows.
    """

    def __init__(self, ink: np.ndarray, centres: np.ndarray, spacing: float, body_thr: float, body_w: float,
                 occluded: Optional[np.ndarray] = None, strength: Optional[np.ndarray] = None):
        self.half = max(1, int(0.45 * spacing))
        self.rounded = np.round(centres).astype(int)
        self.cols = self.rounded[:, None] + np.arange(-self.half, self.half + 1)[None, :]
        self.valid = (self.cols >= 0) & (self.cols < ink.shape[1])
        self.top, rows = _row_band(ink, occluded, self.cols, self.valid)
        win = _windows(ink, self.cols, self.top, rows) & self.valid[None]  # rows x candles x columns
        self.win = win
        k = win.shape[2]
        self.code = window_codes(win)  # rows x candles bit masks (None for windows over 16 columns)
        any_ink, first, last = row_extents(win, self.code)
        self.spans = np.where(any_ink, last - first + 1, 0)
        self.row_ink = any_ink
        offset = self.cols[:, 0][None, :] - centres[None, :]  # column 0 of each window, relative to cx
        mid = (first + last) / 2.0 + offset
        reach = 0.5 * body_w + 1.5
        centred = np.abs(mid) <= max(1.5, 0.2 * body_w)
        inside = (first + offset >= -reach) & (last + offset <= reach) & centred
        self.body_rows = (self.spans >= body_thr) & inside & any_ink
        self.counts = win.sum(axis=0, dtype=np.int32)  # candles x columns
        self.wick = self._wick_columns()
        n = len(centres)
        pick = np.clip(self.wick[:, None] + np.arange(-1, 2)[None, :], 0, k - 1)
        pick_ok = self.valid[np.arange(n)[:, None], pick] & (np.abs(pick - self.wick[:, None]) <= 1)
        self.column = _any_of_three(win[:, np.arange(n)[:, None], pick] & pick_ok[None])  # rows x candles
        if strength is not None and body_w <= NARROW_BODY:
            wide = self._coverage_rows(strength, first, last)
            if wide is not None:
                self.body_rows = wide & inside & any_ink
        self.hidden: Optional[np.ndarray] = None  # rows x candles: the wick column under an overlay
        self.hidden_rows: Optional[np.ndarray] = None  # rows x candles: the window crossed by an overlay
        if occluded is not None:
            occ = _windows(occluded, self.cols, self.top, rows) & self.valid[None]
            self.hidden = _any_of_three(occ[:, np.arange(n)[:, None], pick] & pick_ok[None]) & ~self.column
            self.hidden_rows = _inked_rows(occ) & ~self.body_rows

    def _coverage_rows(self, strength: np.ndarray, first: np.ndarray, last: np.ndarray) -> Optional[np.ndarray]:
        """Rows x candles: the inked rows whose coverage span is a body's (see ``coverage_spans``), or
        None when bodies and wicks do not differ enough in it. Only inked (row, candle) pairs are
        looked at."""
        y, c = np.nonzero(self.row_ink)
        at = np.clip(self.cols, 0, strength.shape[1] - 1)
        f, l = first[y, c], last[y, c]
        row = y + self.top[c]  # image rows
        centre = np.where(self.column[y, c], strength[row, at[c, self.wick[c]]], 0)
        cw = coverage_spans(strength[row, at[c, f]], strength[row, at[c, l]], centre, f, l, c, len(self.rounded))
        thr = coverage_threshold(cw, c, len(self.rounded))
        if thr is None:
            return None
        wide = np.zeros_like(self.row_ink)
        wide[y, c] = cw >= thr
        return wide

    def _wick_columns(self) -> np.ndarray:
        """Per candle, the window column nearest the centre (within a quarter window) with the most ink."""
        width = self.valid.sum(axis=1)
        quarter = np.maximum(1, width // 4)
        j = np.arange(self.cols.shape[1])[None, :]
        near = self.valid & (np.abs(j - self.half) <= quarter[:, None])
        scored = np.where(near, self.counts, -1)
        fallback = np.where(self.valid, self.counts, -1)
        return np.where(near.any(axis=1), np.argmax(scored, axis=1), np.argmax(fallback, axis=1))


BAND_SHARE = 0.8  # windows read in a band of rows (see ``_row_band``) when it is at most this share of the panel


def _row_band(ink: np.ndarray, occluded: Optional[np.ndarray], cols: np.ndarray,
              valid: np.ndarray) -> tuple[np.ndarray, int]:
    """(first row of each window, rows read per window): each window (``cols``, n x k) is read from
    the first row holding its ink (or occluded ink) for as many rows as the tallest window spans.

    A candle's window holds ink over its own range only, a fraction of the panel's
    height: the rows x candles x columns arrays shrink with it, and no row holding
    ink in a window is left out. When that band is over ``BAND_SHARE`` of the panel
    every window is read over all its rows.
    """
    h, w = ink.shape
    n = cols.shape[0]
    at = np.clip(cols, 0, w - 1)
    used, inverse = np.unique(at, return_inverse=True)
    if 2 * used.size < w:  # a sample of windows: only their columns are looked at
        ink, occluded, at = ink[:, used], None if occluded is None else occluded[:, used], inverse.reshape(at.shape)
    seen = ink if occluded is None else ink | occluded
    has = seen.any(axis=0)[at] & valid
    first = np.where(has, seen.argmax(axis=0)[at], h).min(axis=1)
    last = np.where(has, h - 1 - seen[::-1].argmax(axis=0)[at], -1).max(axis=1)
    held = last >= first
    rows = int((last - first + 1)[held].max()) if held.any() else 1
    if rows > BAND_SHARE * h:
        return np.zeros(n, dtype=int), h
    return np.where(held, first, 0), rows


def _windows(mask: np.ndarray, cols: np.ndarray, top: np.ndarray, rows: int) -> np.ndarray:
    """``mask`` in each window: rows x windows x columns, row ``y`` of window ``c`` being image row
    ``top[c] + y`` (blank past the image's edges)."""
    h, w = mask.shape
    if rows == h and not top.any():
        return mask[:, np.clip(cols, 0, w - 1)]
    k = cols.shape[1]
    padded = np.zeros((h + rows, w + 2 * k), dtype=bool)  # blank margins: windows may reach past the edges
    padded[:h, k : k + w] = mask
    blocks = np.lib.stride_tricks.sliding_window_view(padded, (rows, k))
    picked = blocks[top, np.clip(cols[:, 0], -k, w) + k]  # windows x rows x columns
    return np.ascontiguousarray(picked.transpose(1, 0, 2))


_BINS = 1 << 15  # 5-bit colour bins
NARROW_BODY = 4.0  # px: bodies this narrow are told from wicks by coverage span, not by binary span
COVERAGE_GAP = 0.6  # least difference between body and wick coverage spans for them to decide


def coverage_spans(s_first: np.ndarray, s_last: np.ndarray, s_centre: np.ndarray, first: np.ndarray,
                   last: np.ndarray, candle: np.ndarray, n: int) -> np.ndarray:
    """The *coverage span* of inked rows (flat arrays, one entry per (row, candle) pair): the binary
    span with its two end pixels counted by their coverage.

    A pixel's coverage is its strength (distance from the background) over the
    candle's strongest pixel on its ends or wick column. A blurred 1-px wick spread
    over 2 columns at half strength spans 1, where the binary span counts 2; a
    hollow body still spans its width.
    """
    strongest = np.maximum(np.maximum(s_first, s_last), s_centre).astype(np.float64)
    full = np.ones(n)
    np.maximum.at(full, candle, strongest)
    cover_first = np.minimum(1.0, s_first / full[candle])
    cover_last = np.minimum(1.0, s_last / full[candle])
    return np.where(last > first, (last - first - 1) + cover_first + cover_last, cover_first)


def coverage_threshold(spans: np.ndarray, candle: np.ndarray, n: int) -> Optional[float]:
    """Halfway between a body's and a wick's coverage span, or None when they differ by less than
    ``COVERAGE_GAP``: per candle (5 inked rows or more) the 90th and 10th percentiles of its rows'
    spans, and their medians over the candles."""
    count = np.bincount(candle, minlength=n)
    seen = np.flatnonzero(count >= 5)
    if seen.size < 2:
        return None
    order = np.lexsort((spans, candle))
    start = np.cumsum(count) - count
    k = count[seen] - 1
    body = float(np.median(spans[order[start[seen] + np.floor(0.9 * k).astype(int)]]))
    wick = float(np.median(spans[order[start[seen] + np.floor(0.1 * k).astype(int)]]))
    if body - wick < COVERAGE_GAP:
        return None
    return 0.5 * (body + wick)


def _close(mask: np.ndarray, gap: int) -> np.ndarray:
    """``mask`` (rows x candles) with blank runs of <= ``gap`` rows between inked rows filled."""
    h = mask.shape[0]
    idx = np.arange(h, dtype=np.int32)[:, None]  # 32-bit rows: the scans run over half the bytes
    prev = np.maximum.accumulate(np.where(mask, idx, -2 * h), axis=0)
    nxt = np.minimum.accumulate(np.where(mask, idx, 3 * h)[::-1], axis=0)[::-1]
    return mask | (nxt - prev <= gap + 1)


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first row, last row) of the run of ``mask`` each position is in (rows x candles)."""
    h = mask.shape[0]
    idx = np.broadcast_to(np.arange(h, dtype=np.int32)[:, None], mask.shape)
    above = np.zeros_like(mask)
    above[1:] = mask[:-1]
    below = np.zeros_like(mask)
    below[:-1] = mask[1:]
    first = np.maximum.accumulate(np.where(mask & ~above, idx, -1), axis=0)
    last = np.minimum.accumulate(np.where(mask & ~below, idx, h)[::-1], axis=0)[::-1]
    return first, last


def _nearest(column: np.ndarray, start: np.ndarray, step: int, reach: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, found) of the first inked row of each candle's column within ``reach`` rows of ``start``."""
    h, n = column.shape
    rows = start[None, :] + step * np.arange(1, reach + 1)[:, None]
    ok = (rows >= 0) & (rows < h)
    hit = column[np.clip(rows, 0, h - 1), np.arange(n)[None, :]] & ok
    k = np.argmax(hit, axis=0)
    return rows[k, np.arange(n)], hit.any(axis=0)


def _grouped_mode(candle: np.ndarray, keys: np.ndarray, pixels: np.ndarray, n: int) -> np.ndarray:
    """Per candle, the mean of its pixels in their most common colour bin (the lowest bin on ties)."""
    out = np.full((n, 3), np.nan)
    if candle.size == 0:
        return out
    # (candle, bin) pairs as one integer; 32 bits (sorted twice as fast) while they fit
    pair = candle.astype(np.int32 if n * _BINS < 2**31 else np.int64) * _BINS + keys
    uniq, counts = np.unique(pair, return_counts=True)
    owner = uniq // _BINS
    order = np.lexsort((uniq, -counts, owner))
    firsts = order[np.r_[True, owner[order][1:] != owner[order][:-1]]]
    chosen = np.zeros(n, dtype=np.int64) - 1
    chosen[owner[firsts]] = uniq[firsts]
    sel = pair == chosen[candle]
    size = np.bincount(candle[sel], minlength=n)
    for c in range(3):
        out[:, c] = np.bincount(candle[sel], weights=pixels[sel, c], minlength=n) / np.maximum(size, 1)
    return out


def _own_ends(own: np.ndarray, first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For runs (``first``, ``last`` rows per position, rows x candles) that bridge hidden rows: the
    first ``own`` row at or below each run's start and the last at or above its end."""
    h = own.shape[0]
    idx = np.arange(h, dtype=np.int32)[:, None]
    below = np.minimum.accumulate(np.where(own, idx, h)[::-1], axis=0)[::-1]
    above = np.maximum.accumulate(np.where(own, idx, -1), axis=0)
    return _at_rows(below, np.clip(first, 0, h - 1)), _at_rows(above, np.clip(last, 0, h - 1))


def _at_rows(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``values[rows[y, c], c]`` for every position (rows x candles), by a flat ``take`` (twice as
    fast as the two-axis fancy index)."""
    n = values.shape[1]
    return np.take(values, rows * n + np.arange(n)[None, :])


_ATTACH = 2  # rows between a body group and its wick's run for them to touch
_WICK_RUN = 3  # rows: a wick column run this long says where the candle is


def _body_groups(batch: _Batch, attach: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(top, bottom) rows of each candle's body: the largest group of body rows (gaps of 2 bridged,
    and rows crossed by an overlay), or the middle inked row of the wick column (of the window)
    when no row is wide enough. The group's ends are body rows.

    ``attach``: only groups that touch the wick column's longest run of ink are taken
    when there are any (see ``measure_many``)."""
    if batch.hidden_rows is None:
        closed = _close(batch.body_rows, 2)
        first, last = _runs(closed)
    else:
        closed = _close(batch.body_rows | batch.hidden_rows, 2)
        first, last = _own_ends(batch.body_rows, *_runs(closed))
        closed = closed & (first <= last)
    length = np.where(closed, last - first, -1)
    n = closed.shape[1]
    # a body is attached to its wick: rows apart from the wick column's run of ink (an overlay line
    # lying across the window above or below the candle) are not the body
    if attach:
        w_first, w_last = _runs(_close(batch.column, 2))
        w_len = np.where(batch.column, w_last - w_first, -1)
        w_at = np.argmax(w_len, axis=0)
        w_top, w_bottom = w_first[w_at, np.arange(n)], w_last[w_at, np.arange(n)]
        attached = (last >= w_top[None, :] - _ATTACH) & (first <= w_bottom[None, :] + _ATTACH)
        use = (w_bottom - w_top + 1 >= _WICK_RUN) & (attached & (length >= 0)).any(axis=0)
        length = np.where(use[None, :] & ~attached, -1, length)
    y = np.argmax(length, axis=0)  # the first of the longest runs
    top, bottom = first[y, np.arange(n)], last[y, np.arange(n)]
    src = np.where(batch.column.any(axis=0)[None, :], batch.column, batch.row_ink)
    cum = np.cumsum(src, axis=0, dtype=np.int32)
    mid = np.argmax(cum > (cum[-1] // 2)[None, :], axis=0)
    none = ~batch.body_rows.any(axis=0)
    return np.where(none, mid, top), np.where(none, mid, bottom)


def _walks(column: np.ndarray, top: np.ndarray, bottom: np.ndarray,
           hidden: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """(high, low) rows: the wick column walked up from the body's top and down from its bottom,
    skipping gaps of up to 2 blank rows, and any run of rows ``hidden`` under an overlay; the
    ends are the outermost rows of the wick's own ink."""
    h, n = column.shape
    if hidden is None:
        first, last = _runs(_close(column, 2))
        near = column
    else:
        near = column | hidden
        first, last = _runs(_close(near, 2))
        own_first, own_last = _own_ends(column, first, last)
        first = np.minimum(own_first, last)
        last = np.maximum(own_last, first)
    up, up_found = _nearest(near, top, -1, 3)
    down, down_found = _nearest(near, bottom, +1, 3)
    high = np.where(up_found, np.minimum(first[np.clip(up, 0, None), np.arange(n)], top), top)
    low = np.where(down_found, np.maximum(last[np.clip(down, None, h - 1), np.arange(n)], bottom), bottom)
    return high, low


def _widths(spans: np.ndarray, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """Median row span of each candle's body rows."""
    rows = np.arange(spans.shape[0])[:, None]
    inside = (rows >= top[None, :]) & (rows <= bottom[None, :])
    ranked = np.sort(np.where(inside, spans, np.iinfo(np.int32).max), axis=0)
    m = bottom - top + 1
    n = np.arange(spans.shape[1])
    return (ranked[(m - 1) // 2, n] + ranked[m // 2, n]) / 2.0


def _colours(batch: _Batch, rgb: np.ndarray, keys: Optional[np.ndarray], top: np.ndarray,
             bottom: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(edge colours, inside colours) of every body (n x 3); the wick column is avoided.

    The pixels are listed directly (edge: the inked rows of at most two columns per
    candle; fill: a rectangle of rows by inner columns per candle) rather than by
    ``nonzero`` over a rows x candles x columns mask: the modes do not depend on the
    order of the pixels (integer sums are exact).
    """
    h, n, k = batch.win.shape
    rows = np.arange(h)[:, None]
    in_body = (rows >= top[None, :]) & (rows <= bottom[None, :])
    # a body's columns are inked on at least half its rows: an overlay line crossing the window
    # beside a body inks a column on a few rows only
    counts = (batch.win & in_body[:, :, None]).sum(axis=0)  # candles x columns
    inked = 2 * counts >= in_body.sum(axis=0)[:, None]
    inked &= counts > 0
    j = np.arange(k)[None, :]
    left = np.argmax(inked, axis=1)[:, None]
    right = (k - 1 - np.argmax(inked[:, ::-1], axis=1))[:, None]
    edge_c, edge_j = np.nonzero(inked & ((j == left) | (j == right)))
    y, e = np.nonzero(batch.win[:, edge_c, edge_j] & in_body[:, edge_c])
    edge = _grouped(rgb, keys, y + batch.top[edge_c[e]], edge_c[e], batch.cols[edge_c[e], edge_j[e]], n)
    tall = (bottom - top + 1) > 2
    wick = batch.wick[:, None]
    between = batch.valid & (j > left) & (j < right)
    # a narrow body's inside is no wider than its wick: it is read there (a wick seen through a
    # hollow body is left out of wider ones)
    narrow = (right - left - 1) <= 2
    inner = between & ((j != wick) | narrow)
    inner = np.where(inner.any(axis=1)[:, None], inner, j == wick)
    # JPEG thickens a hollow body's top and bottom edges: two rows are left off a tall body's ends
    trim = np.where(bottom - top + 1 >= 7, 2, np.where(tall, 1, 0))
    y, c, jj = _rectangles(top + trim, bottom - trim, inner)
    fill = _grouped(rgb, keys, y + batch.top[c], c, batch.cols[c, jj], n)
    return edge, fill


def _rectangles(first: np.ndarray, last: np.ndarray, columns: np.ndarray) -> tuple[np.ndarray, ...]:
    """(row, candle, window column) of every pixel in rows first..last of each candle's ``columns``."""
    n = columns.shape[0]
    col_c, col_j = np.nonzero(columns)  # by candle, then column
    per = np.bincount(col_c, minlength=n)
    col_start = np.cumsum(per) - per
    size = np.maximum(last - first + 1, 0) * per
    candle = np.repeat(np.arange(n), size)
    pos = np.arange(candle.size) - np.repeat(np.cumsum(size) - size, size)
    width = per[candle]
    return first[candle] + pos // width, candle, col_j[col_start[candle] + pos % width]


def _grouped(rgb: np.ndarray, keys: Optional[np.ndarray], y: np.ndarray, c: np.ndarray, x: np.ndarray,
             n: int) -> np.ndarray:
    pixels = rgb[y, x]
    return _grouped_mode(c, colour_keys(pixels) if keys is None else keys[y, x], pixels, n)


TIP_NOISE = 10.0  # strength (levels from the background) that JPEG noise alone reaches on a blank pixel


def _tip_extents(strength: np.ndarray, col: np.ndarray, top: np.ndarray, bottom: np.ndarray, high: np.ndarray,
                 low: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(up, down): how far each wick goes on past its last inked row, in rows, from the faint pixels
    beyond it (image rows; ``col`` the wick's column).

    Resizing blurs a wick's tip under the ink threshold, so wicks were read short (by
    0.17 px at the top and 0.38 px at the bottom on average on charts resized to 80 %).
    The pixel past the tip counts by its strength over the tip's own (less
    ``TIP_NOISE``), and the one after it too when the first is over 0.3 covered. On
    unblurred charts these pixels are blank and nothing changes.
    """
    h, w = strength.shape
    col = np.clip(col, 0, w - 1)

    def at(rows: np.ndarray) -> np.ndarray:
        return np.where((rows >= 0) & (rows < h), strength[np.clip(rows, 0, h - 1), col].astype(float), 0.0)

    def beyond(end: np.ndarray, step: int, has_wick: np.ndarray) -> np.ndarray:
        full = np.maximum(at(end), at(end - step)) - TIP_NOISE
        cover = [np.clip((at(end + k * step) - TIP_NOISE) / np.maximum(full, 1.0), 0.0, 1.0) for k in (1, 2)]
        return np.where(has_wick, cover[0] + cover[1] * (cover[0] > 0.3), 0.0)

    return beyond(high, -1, high < top), beyond(low, 1, low > bottom)


def measure_many(ink: np.ndarray, rgb: np.ndarray, centres: np.ndarray, spacing: float, body_thr: float,
                 body_w: float, keys: Optional[np.ndarray] = None,
                 occluded: Optional[np.ndarray] = None, strength: Optional[np.ndarray] = None,
                 attach: bool = False) -> list[Optional[Any]]:
    """A ``RawCandle`` per centre (None where its window holds no ink); see the module docstring.

    ``keys`` are ``colour_keys(rgb)`` when the caller already has them (else the
    bins of the few pixels looked at are computed). ``attach`` takes a body only among
    the groups of wide rows that touch the wick column's longest run of ink: a
    second reading for a candle read far from both its neighbours (an overlay line
    lying across its window taken for a flat candle). Not the first reading: brick
    mortar and other photographs are full of such lines, and reading every window
    that way made their blobs look like continuous candles to the guard.
    """
    from .candles import RawCandle

    centres = np.asarray(centres, dtype=float).reshape(-1)
    if centres.size == 0:
        return []
    batch = _Batch(ink, centres, spacing, body_thr, body_w, occluded, strength)
    has_ink = batch.row_ink.any(axis=0)
    top, bottom = _body_groups(batch, attach)
    high, low = _walks(batch.column, top, bottom, batch.hidden)
    widths = _widths(batch.spans, top, bottom)
    edges, fills = _colours(batch, rgb, keys, top, bottom)
    top, bottom, high, low = (v + batch.top for v in (top, bottom, high, low))  # image rows
    up_ext, down_ext = (np.zeros(centres.size), np.zeros(centres.size)) if strength is None else \
        _tip_extents(strength, batch.cols[np.arange(centres.size), batch.wick], top, bottom, high, low)
    return [
        RawCandle(
            x=float(cx),
            body_top=int(top[i]),
            # rows are pixel indices; the last inked row of a body edge or wick is
            # within half a pixel of the price (measured on rendered charts)
            body_bottom=int(bottom[i]) + 0.5,
            high=int(high[i]) - float(up_ext[i]),  # less the faint tip beyond the last inked row
            low=int(low[i]) + float(down_ext[i]),
            edge=edges[i],
            fill=fills[i],
            width=float(widths[i]),
        )
        if has_ink[i] else None
        for i, cx in enumerate(centres)
    ]
