"""The price panel: where the candles are, without titles, labels or the volume panel.

Spines or gridlines give the panel's extent when there are any (the median extent
of horizontal lines, the longest reach of vertical ones). A solid horizontal line of
the spines' colour across the whole plot that nothing crosses, with bars standing on
one baseline (and nothing else) under it, is the spine a price panel shares with
its volume panel. Otherwise the rows are
split into bands at blank rows; the band with the most ink that is not a volume
panel (bars standing on one baseline) sets the candle grid, and neighbouring
bands whose ink sits on that grid join it (prices that gap and never return).
A volume panel below the candles is cut off at the blank rows above its bars.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from typing import Optional

from .candles import Slots, _vertical_strokes, find_slots
from .lines import GRID_DELTA, Line, colour_distance, groups


@dataclass(frozen=True)
class Panel:
    top: int
    bottom: int  # exclusive
    left: int
    right: int  # exclusive

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left


def find_panel(ink: np.ndarray, rows: list[Line], cols: list[Line], rgb: Optional[np.ndarray] = None) -> Panel:
    """The price panel; see the module docstring (``rgb`` lets shared spines split panels)."""
    h, w = ink.shape
    left, right = _horizontal_extent(rows, w)
    top, bottom = _vertical_extent(cols, h)
    if right - left < 0.2 * w:
        left, right = 0, w
    if bottom - top < 0.2 * h:
        top, bottom = 0, h
    if rgb is not None and cols:
        bottom = _shared_spine(ink, rgb, rows, cols, top, bottom, left, right)
    if not cols:  # nothing marks the panel's height: the bands of ink that hold candles
        top, bottom = _candle_bands(ink[top:bottom, left:right], top, bottom)
    below_volume = _above_volume(ink[:, left:right], top, bottom)
    if below_volume - top >= 0.2 * (bottom - top):  # not a sliver of the panel: then no volume was found
        bottom = below_volume
    inset = 3 if rows else 0  # keep the spines' anti-aliased edges out
    top, bottom = _inside_spines(rows, max(0, top - 1), min(h, bottom + 1), left, right)
    return Panel(top, bottom, left + inset, max(left + inset + 1, right - inset))


def _inside_spines(rows: list[Line], top: int, bottom: int, left: int, right: int) -> tuple[int, int]:
    """(top, bottom) moved inside a horizontal spine lying on the panel's top or bottom edge.

    The spine itself was erased as a line, but a JPEG fringe of it is left; inside the
    panel it is one more wide row in every candle's window, which a thin candle could
    take for its body.
    """
    span = max(right - left, 1)
    for line in rows:
        if line.end - line.start < 0.8 * span:
            continue
        if top <= line.first <= top + 3 and line.last + 2 < bottom:
            top = line.last + 2
        if bottom - 4 <= line.last <= bottom and line.first - 1 > top:
            bottom = line.first - 1
    return top, bottom


def _horizontal_extent(rows: list[Line], w: int) -> tuple[int, int]:
    """Gridlines span the panel: the median extent of the long ones (a label can extend one)."""
    if not rows:
        return 0, w
    lengths = np.array([l.end - l.start for l in rows])
    long = [l for l, n in zip(rows, lengths) if n >= 0.7 * np.median(lengths)]
    return int(np.median([l.start for l in long])), int(np.median([l.end for l in long]))


def _shared_spine(ink: np.ndarray, rgb: np.ndarray, rows: list[Line], cols: list[Line], top: int, bottom: int,
                  left: int, right: int) -> int:
    """The bottom of the price panel when a spine splits a volume panel off below it.

    That spine is a horizontal line of the spines' colour, solid across the plot
    (where no vertical gridline crosses it), with a blank margin on at least one side
    (a gridline has candles drawn across it, or dashes; a tall volume bar may reach
    the spine from below), and what lies under it is bars standing on one baseline,
    or nothing.
    """
    spine = max(cols, key=lambda l: l.end - l.start).colour
    margin = 0.1 * (bottom - top)
    open_cols = np.ones(right - left, dtype=bool)  # where no vertical line crosses it
    for v in cols:
        open_cols[max(0, v.first - 1 - left) : max(0, v.last + 2 - left)] = False
    if not open_cols.any():
        return bottom
    for line in rows:  # top to bottom: the highest such line
        if not top + margin < line.first < bottom - margin:
            continue
        on_other = np.zeros(ink.shape[0], dtype=bool)
        for other in rows:
            if other is not line:
                on_other[max(0, other.first - 1) : other.last + 2] = True
        if _nearest_row_colour(rgb, line, left, right, spine) > 64:  # anti-aliased lines average lighter
            continue
        band = rgb[line.first : line.last + 1, left:right]
        if (colour_distance(band, line.colour) <= GRID_DELTA).any(axis=0)[open_cols].mean() < 0.97:
            continue
        # panels keep a margin inside their spines (another line's rows aside: a gridline beside the
        # spine); a tall volume bar may reach the one below
        near = [r for r in (*range(line.first - 3, line.first), *range(line.last + 1, line.last + 4))
                if 0 <= r < ink.shape[0] and not on_other[r]]
        above = int(ink[[r for r in near if r < line.first], left:right].sum())
        below_it = int(ink[[r for r in near if r > line.last], left:right].sum())
        if min(above, below_it) > 3:
            continue
        below = ink[line.last + 2 : bottom, left:right]
        if not below.any() or _bars_only(below):
            return line.first
    return bottom


def _nearest_row_colour(rgb: np.ndarray, line: Line, left: int, right: int, colour: np.ndarray) -> int:
    """How far the line's row nearest ``colour`` is from it (median pixel, largest channel): a spine
    resized across two rows is a pale row and a dark one, and the line's own colour may be the pale."""
    rows = np.median(rgb[line.first : line.last + 1, left:right], axis=1)
    return int(np.abs(rows - np.asarray(colour, dtype=float)[None, :]).max(axis=1).min())


def _vertical_extent(cols: list[Line], h: int) -> tuple[int, int]:
    """Vertical lines (spines, gridlines hidden behind candles in places): the longest reach."""
    if not cols:
        return 0, h
    longest = max(l.end - l.start for l in cols)
    long = [l for l in cols if l.end - l.start >= 0.7 * longest]
    return min(l.start for l in long), max(l.end for l in long)


def _candle_bands(ink: np.ndarray, top: int, bottom: int) -> tuple[int, int]:
    """Rows of the run of bands (split by >= 6 blank rows) holding candles on one grid.

    The band with the most ink (not a volume panel, whose bars stand on one
    baseline) sets the grid; then, within the grid's columns only (axis labels
    beside the plot would split the bands), a neighbouring band joins when its ink
    sits on that grid (prices that gap and never come back). A title, the date
    labels or a volume panel do not, and end the run.
    """
    bands, volume, main = _bands(ink)
    if not bands:
        return top, bottom
    grid = find_slots(ink[bands[main][0] : bands[main][1] + 1])
    if grid is None:
        return top + bands[main][0], top + bands[main][1] + 1
    a, b = _grid_columns(ink.sum(axis=0, dtype=np.int32).astype(float), grid)
    inner = ink[:, a:b]
    bands, volume, main = _bands(inner)
    grid = Slots(grid.x0 - a, grid.spacing, grid.centres - a, grid.residual, grid.block_share)
    # wide bodies reach past 0.3 spacing: a band needs about as much of its ink near the slots as the
    # main band has, at most 80 %
    least = min(0.8, _near_share(inner[bands[main][0] : bands[main][1] + 1], grid) - 0.1)
    first = last = main
    while first > 0 and not volume[first - 1] and _on_grid(inner, bands[first - 1], grid, least):
        first -= 1
    while last < len(bands) - 1 and not volume[last + 1] and _on_grid(inner, bands[last + 1], grid, least):
        last += 1
    return top + bands[first][0], top + bands[last][1] + 1


def _grid_columns(profile: np.ndarray, grid: Slots) -> tuple[int, int]:
    """Columns of the candle grid extended both ways while its slots hold ink (in any band)."""
    def occupied(x: float) -> bool:
        a, b = int(round(x - 0.3 * grid.spacing)), int(round(x + 0.3 * grid.spacing)) + 1
        return 0 <= a and b <= profile.size and profile[a:b].sum() > 0

    first, last = float(grid.centres[0]), float(grid.centres[-1])
    while occupied(first - grid.spacing):
        first -= grid.spacing
    while occupied(last + grid.spacing):
        last += grid.spacing
    half = 0.5 * grid.spacing
    return max(0, int(first - half)), min(profile.size, int(last + half) + 1)


def _bands(ink: np.ndarray) -> tuple[list[tuple[int, int]], list[bool], int]:
    """(bands of rows split by >= 6 blank rows, which are volume panels, the main band's index)."""
    bands, volume = [], []
    for a, b in groups(np.flatnonzero(ink.any(axis=1)), gap=6):
        if not _bottom_aligned(ink[a : b + 1]):
            bands.append((a, b))
            volume.append(False)
            continue
        cut = _above_volume(ink, a, b + 1)  # candles right above the volume bars: split them off
        if cut > b:  # no split found: not only bars
            bands.append((a, b))
            volume.append(False)
            continue
        if a + 10 < cut:  # candles above the bars
            bands.append((a, cut - 1))
            volume.append(False)
        bands.append((max(a, cut), b))
        volume.append(True)
    if not bands:
        return [], [], 0
    mass = ink.sum(axis=1, dtype=np.int32)
    candidates = [i for i in range(len(bands)) if not volume[i]] or list(range(len(bands)))
    main = max(candidates, key=lambda i: mass[bands[i][0] : bands[i][1] + 1].sum())
    return bands, volume, main


def _near_share(part: np.ndarray, grid: Slots) -> float:
    """The share of ``part``'s ink within 0.3 spacing of a slot of the grid."""
    profile = part.sum(axis=0, dtype=np.int32).astype(float)
    phase = (np.arange(profile.size) - grid.x0) / grid.spacing
    near = np.abs(phase - np.round(phase)) <= 0.3
    return float(profile[near].sum() / max(profile.sum(), 1.0))


def _on_grid(ink: np.ndarray, band: tuple[int, int], grid: Slots, least: float = 0.8) -> bool:
    """True when the band's ink sits on the candle grid: a share ``least`` of it within 0.3 spacing of
    a slot, in two slots or more, or in one slot as one candle (a single bar that gapped away from
    the rest: taller than wide, at least 5 rows, no wider than the spacing)."""
    part = ink[band[0] : band[1] + 1]
    profile = part.sum(axis=0, dtype=np.int32).astype(float)
    if profile.sum() == 0:
        return False
    phase = (np.arange(profile.size) - grid.x0) / grid.spacing
    slots = np.unique(np.round(phase[profile > 0]))
    if _near_share(part, grid) < least:
        return False
    if slots.size >= 2:
        return True
    cols, rows = np.flatnonzero(profile > 0), np.flatnonzero(part.any(axis=1))
    wide, tall = cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1
    return bool(tall >= 5 and tall >= wide and wide <= grid.spacing)


def _above_volume(ink: np.ndarray, top: int, bottom: int) -> int:
    """The bottom of the price panel: above a volume panel (bars standing on one baseline) if any."""
    part = ink[top:bottom]
    inked = part.any(axis=0)
    if inked.sum() < 10:
        return bottom
    ends = part & ~np.vstack([part[1:], np.zeros((1, part.shape[1]), dtype=bool)])
    baseline = int(np.argmax(ends.sum(axis=1, dtype=np.int32)))
    standing = inked & ends[max(0, baseline - 1) : baseline + 2].any(axis=0)
    mass = part.sum(axis=0, dtype=np.int32)
    if mass[standing].sum() < 0.6 * mass.sum():  # by ink, as in ``_bottom_aligned``
        return bottom
    # each standing column's top: the row after its last blank row down to the baseline (0 if none)
    blank = ~part[: baseline + 1, np.flatnonzero(standing)]
    last_blank = baseline - np.argmax(blank[::-1], axis=0)
    columns = np.flatnonzero(standing)
    tops_at = np.where(blank.any(axis=0), last_blank + 1, 0)
    tops = tops_at.tolist()
    tall = [t for t in tops if t < baseline - 2 and not _line_remains(t, tops_at, columns, baseline)]
    if not tall or baseline - np.median(tops) < 3:  # a line along the bottom, not bars standing on it
        return bottom
    vol_top = min(tall)
    if vol_top <= 2 or part[:vol_top].sum() < 0.05 * part.sum():  # a volume panel alone (and a label)
        return top
    # the gap between the panels: rows with next to no ink (a vertical line's remains may cross it)
    blank = np.flatnonzero(part[:vol_top].sum(axis=1, dtype=np.int32) <= max(2, 0.01 * part.shape[1]))
    return top + int(blank[-1]) if blank.size else bottom


def _line_remains(top: int, tops: np.ndarray, columns: np.ndarray, baseline: int) -> bool:
    """Whether a column standing from the baseline up to ``top``, in the top tenth of the rows, is a
    vertical line's remains (JPEG keeps some of a gridline that candles hid from the line search)
    rather than a bar: no column but itself and one beside it reaches that high (``tops`` of the
    standing ``columns``). A bar that tall is filled, or drawn as two edges a bar's width apart."""
    if top >= 0.1 * baseline:
        return False
    peers = columns[np.abs(tops - top) <= 2]
    return bool(peers.max() - peers.min() <= 1)


def _bars_only(region: np.ndarray) -> bool:
    """True when all the ink (bar a speck) is in runs standing on one baseline row: volume bars only."""
    ends = region & ~np.vstack([region[1:], np.zeros((1, region.shape[1]), dtype=bool)])
    base = int(np.argmax(ends.sum(axis=1, dtype=np.int32)))
    standing = np.zeros(region.shape[1])
    for row in range(max(0, base - 1), min(region.shape[0], base + 2)):
        run = np.cumprod(region[: row + 1][::-1], axis=0, dtype=np.uint8).sum(axis=0, dtype=np.int32)
        standing = np.maximum(standing, run)
    # what else there is, in vertical strokes (a dashed gridline left in the volume panel is not)
    other = float(_vertical_strokes(region).sum()) - float(standing.sum())
    return bool(other <= max(60.0, 0.01 * standing.sum()))


def _bottom_aligned(band: np.ndarray) -> bool:
    """True for a volume panel: across the plot, most inked columns have a run of ink ending on one
    row (the baseline), whatever lies below it (tick marks, date labels)."""
    inked = band.any(axis=0)
    cols = np.flatnonzero(inked)
    if cols.size < 10 or cols[-1] - cols[0] < 0.5 * band.shape[1]:
        return False
    ends = band & ~np.vstack([band[1:], np.zeros((1, band.shape[1]), dtype=bool)])
    row = int(np.argmax(ends.sum(axis=1, dtype=np.int32)))
    # weighted by ink: axis labels and a title beside the bars are small, the bars are not
    mass = band.sum(axis=0, dtype=np.int32)
    standing = ends[max(0, row - 1) : row + 2].any(axis=0)
    return bool(mass[standing & inked].sum() > 0.6 * mass[inked].sum())