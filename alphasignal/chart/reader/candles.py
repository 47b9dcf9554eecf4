"""Candle slots and candle measurement inside the price panel (pixel rows, y down).

* **Slots.** Candles sit on an evenly spaced x grid. The spacing is the first strong
  peak of the column profile's autocorrelation (robust to overlays that join
  candles); the phase is the comb position with the most ink; each slot's centre is
  then refined to the ink centroid and a least-squares line ``x = x0 + k*s`` is
  fitted, twice, so the spacing stays exact over hundreds of bars. The candles are
  the longest run of consecutive occupied slots (axis labels and legends beside the
  plot are cut off by the empty slots between them and the candles).
* **Each candle.** In the slot's columns, rows much wider than the wick are the
  body (filled, or hollow: the span between its edges counts); the wick column is
  walked up and down from the body, tolerating 2-pixel occlusions, to the high and
  the low.
* **Up or down** is decided in ``direction``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from .lines import channel_max, groups
from .measure import measure_many, mode_colour, row_extents

_MIN_SPACING = 2.5
_HARMONICS = 16  # multiples of the spacing fitted (more add nothing to its precision)
_SPLIT_BELOW = 8.0  # px: a grid this fine may be hollow bodies' strokes (see ``_hollow_strokes``)


@dataclass(frozen=True)
class Slots:
    x0: float
    spacing: float
    centres: np.ndarray  # refined centre column of each candle, left to right
    residual: float  # rms of centroids about the fitted grid, in spacings
    block_share: float  # share of the panel's ink inside the candle block's columns


@dataclass
class RawCandle:
    x: float
    body_top: float
    body_bottom: float
    high: float
    low: float
    edge: np.ndarray
    fill: np.ndarray
    width: float


# ------------------------------------------------------------------------ slots


def _spacing(profile: np.ndarray) -> Optional[float]:
    """The candle spacing: first strong autocorrelation peak of the column profile."""
    used = np.flatnonzero(profile > 0)
    if used.size < 6:
        return None
    p = profile[used[0] : used[-1] + 1]
    p = np.minimum(p, np.percentile(p[p > 0], 75))
    # a quarter-pixel grid, so that spacings such as 3.5 px give a clean peak
    p = np.interp(np.arange(0, p.size - 1, 0.25), np.arange(p.size), p)
    p = p - p.mean()
    n = p.size
    max_lag = min(n // 3, 800)
    if max_lag < 16:
        return None
    spectrum = np.fft.rfft(p, 2 * n)
    ac = np.fft.irfft(spectrum * np.conj(spectrum))[1 : max_lag + 1] / (n - np.arange(1, max_lag + 1))
    ac /= float(p @ p) / n or 1.0
    lags = np.arange(1, max_lag + 1) / 4.0
    inner = ac[1:-1]
    peaks = (np.flatnonzero((inner >= ac[:-2]) & (inner > ac[2:]) & (lags[1:-1] >= 2)) + 1).tolist()
    if not peaks:
        return None
    best = max(ac[i] for i in peaks)
    if best <= 0.1:  # nothing repeats
        return None
    refined = [_peak_lag(ac, j, lags) for j in peaks]
    i = next((j for j, r in zip(peaks, refined) if ac[j] >= 0.6 * best and _periodic(r, peaks, refined, ac,
                                                                                     lags[-1])),
             next(j for j in peaks if ac[j] >= 0.6 * best))
    chosen = peaks.index(i)
    i = _divisor_peak(refined, [float(ac[j]) for j in peaks], chosen)
    if i == chosen:
        merged = _missing_fundamental(refined, chosen)
        if merged is not None:
            return _harmonic_spacing([lag for lag in refined if lag > 1.5 * merged], merged)
    return _harmonic_spacing(refined[i:], refined[i])


def _periodic(lag: float, peaks: list[int], refined: list[float], ac: np.ndarray, max_lag: float) -> bool:
    """Whether an autocorrelation peak at ``lag`` can be the candle spacing: there is a peak near
    twice the lag (as ``_harmonic_spacing`` looks for it: a first peak is biased), and none
    stronger between 1.15 and 1.85 times it (the spacing has a valley there, the gaps). A hollow body's two edges and its wick are three strokes: the peak at
    their distance is strong too, but the next candle's edge is not where its double puts it."""
    strength = ac[peaks[refined.index(lag)]]
    if any(ac[j] > strength and 1.15 * lag < q < 1.85 * lag for j, q in zip(peaks, refined)):
        return False
    return 2 * lag > max_lag or _fit_multiples(refined, lag, 2, lambda s: 0.35 * s)[1] == 2


def _divisor_peak(lags: list[float], heights: list[float], chosen: int) -> int:
    """An earlier peak of which the chosen one is a multiple (3 or more), with a peak at every
    multiple in between (within 0.15 spacing, 0.5 px at least: on a grid of under 3 px, the
    first peak is biased by the candles' shape by a few tenths of a pixel): the candle spacing,
    when something with a longer period (gridlines, a band's waves) correlates more strongly on
    a dense chart. Else ``chosen``."""
    target = lags[chosen]
    for j in range(chosen):
        upto = int(round(target / lags[j]))
        if heights[j] < 0.15 or upto < 3:
            continue
        _, reached, last = _fit_multiples(lags, lags[j], upto, lambda s: max(0.15 * s, 0.5))
        if reached == upto and abs(last - target) <= 0.5:
            return j
    return chosen


_MERGED_BELOW = 3.5  # px: a grid this fine may show no autocorrelation peak at the spacing itself


def _missing_fundamental(lags: list[float], chosen: int) -> Optional[float]:
    """The spacing of which the chosen peak is the 3rd to 6th multiple when the spacing itself shows
    no peak: under ``_MERGED_BELOW`` px, bodies nearly touch and the columns between candles are
    blurred full, so the profile repeats only over a few spacings (the pixel grid's beat with the
    candles'). Each multiple from the 2nd to twice the chosen peak's must show its peak (a few
    peaks that happen to fall near some multiples are not enough). None when no such spacing."""
    target = lags[chosen]
    for upto in (6, 5, 4, 3):
        spacing = target / upto
        if not _MIN_SPACING <= spacing < _MERGED_BELOW:
            continue
        if any(abs(lag - spacing) <= 0.35 * spacing for lag in lags[:chosen]):
            continue  # a peak there: ``_divisor_peak`` decided on it
        if _peaks_at_multiples(lags, spacing, 2 * upto + 1):
            return spacing
    return None


def _peaks_at_multiples(lags: list[float], spacing: float, upto: int) -> bool:
    """Whether a peak lies within 0.15 ``spacing`` (0.3 px at least) of each multiple 2 .. ``upto`` - 1."""
    arr = np.asarray(lags, dtype=float)
    tolerance = max(0.15 * spacing, 0.3)
    return all(float(np.min(np.abs(arr - k * spacing))) <= tolerance for k in range(2, upto))


def _fit_multiples(lags: list[float], first: float, upto: int,
                   tolerance: Callable[[float], float]) -> tuple[float, int, float]:
    """(spacing, last multiple found, its lag): from ``first``, for k = 2 .. ``upto`` the peak nearest
    k spacings (within ``tolerance(spacing)``) while there is one, the spacing refitted after each as
    the least-squares slope through the origin."""
    arr = np.asarray(lags, dtype=float)
    spacing, ks, ls = first, [1.0], [first]
    for k in range(2, upto + 1):
        near = int(np.argmin(np.abs(arr - k * spacing)))
        if abs(arr[near] - k * spacing) > tolerance(spacing):
            break
        ks.append(float(k))
        ls.append(float(arr[near]))
        kv, lv = np.array(ks), np.array(ls)
        spacing = float(kv @ lv / (kv @ kv))
    return spacing, int(ks[-1]), ls[-1]


def _peak_lag(ac: np.ndarray, i: int, lags: np.ndarray) -> float:
    """The lag of the autocorrelation peak at index ``i``, refined by a parabola through its neighbours."""
    denom = ac[i - 1] - 2 * ac[i] + ac[i + 1]
    shift = 0.5 * (ac[i - 1] - ac[i + 1]) / denom if denom < 0 else 0.0
    return float(lags[i] + 0.25 * np.clip(shift, -0.5, 0.5))


def _harmonic_spacing(peaks: list[float], first: float) -> float:
    """The spacing that best explains the peaks at its multiples (``first`` and the ones after it).

    The first peak alone is biased by the shape of the candles (a wide body's plateau
    shifts it by up to a pixel); the peaks at 2, 3, ... spacings are not, so the
    spacing is the least-squares slope through the run of multiples found: for each
    multiple, the peak nearest where the slope so far puts it, within 0.35 spacing.
    """
    if not peaks:
        return first
    upto = min(int(max(peaks) / first) + 1, _HARMONICS)
    return _fit_multiples(peaks, first, upto, lambda s: 0.35 * s)[0]


def _centroids(profile: np.ndarray, guesses: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """(centroid, ink mass) of the profile around each guessed centre (NaN centroid where no ink)."""
    half = max(1, int(0.45 * spacing))
    if 2 * half + 1 > spacing:  # three columns would reach into the neighbours' slots
        return _cell_centroids(profile, guesses, spacing)
    mass_sum = np.r_[0.0, np.cumsum(profile)]
    moment_sum = np.r_[0.0, np.cumsum(profile * np.arange(profile.size))]
    centre = np.round(guesses).astype(int)
    a = np.clip(centre - half, 0, profile.size)
    b = np.clip(centre + half + 1, 0, profile.size)
    b = np.maximum(a, b)
    mass = mass_sum[b] - mass_sum[a]
    with np.errstate(invalid="ignore", divide="ignore"):
        cent = np.where(mass > 0, (moment_sum[b] - moment_sum[a]) / np.where(mass > 0, mass, 1.0), np.nan)
    return cent, np.where(mass > 0, mass, 0.0)


def _cell_centroids(profile: np.ndarray, guesses: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """``_centroids`` on grids under 3 px: each column weighted by its overlap with the guess's own
    cell (half a spacing either side), so that a neighbour's ink does not pull a centroid towards it
    nor fill an empty slot."""
    cols = np.round(guesses).astype(int)[:, None] + np.arange(-2, 3)[None, :]
    lo, hi = guesses[:, None] - 0.5 * spacing, guesses[:, None] + 0.5 * spacing
    weight = np.clip(np.minimum(cols + 0.5, hi) - np.maximum(cols - 0.5, lo), 0.0, 1.0)
    inside = (cols >= 0) & (cols < profile.size)
    values = np.where(inside, profile[np.clip(cols, 0, profile.size - 1)], 0.0) * weight
    mass = values.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cent = np.where(mass > 0, (values * cols).sum(axis=1) / np.where(mass > 0, mass, 1.0), np.nan)
    return cent, mass


def _comb(profile: np.ndarray, rough: float) -> tuple[float, float]:
    """(phase, spacing) of the comb of candle centres that collects the most ink.

    The autocorrelation peak is only good to a tenth of a pixel, which drifts by
    several pixels over a hundred bars; a fine search around it does not.
    """
    capped = np.minimum(profile, np.percentile(profile[profile > 0], 75))
    spacings = rough + np.linspace(-0.06, 0.06, 25) * rough
    spacings = spacings[spacings >= _MIN_SPACING]
    if spacings.size == 0:
        return 0.0, rough
    # every (spacing, phase, tooth) at once; teeth past the profile, and phases past a spacing, add nothing
    k = np.arange(int(profile.size / spacings.min()) + 1)
    phases = np.arange(0.0, spacings.max(), 0.25)
    idx = np.round(phases[None, :, None] + k[None, None, :] * spacings[:, None, None]).astype(int)
    valid = (idx < profile.size) & (phases[None, :, None] < spacings[:, None, None])
    scores = np.where(valid, capped[np.minimum(idx, profile.size - 1)], 0.0).sum(axis=2)
    scores[~(phases[None, :] < spacings[:, None])] = -np.inf
    s, i = np.unravel_index(int(np.argmax(scores)), scores.shape)  # the first best, as a scan in order finds it
    return float(phases[i]), float(spacings[s])


def _longest_run(flags: np.ndarray, bridge: Optional[np.ndarray] = None) -> tuple[int, int]:
    """(first, last) of the longest run of True, bridging single False holes where ``bridge``.

    (A candle drawn exactly under a gridline of its own colour vanishes with the
    gridline; the raw ink still shows something there.)
    """
    flags = flags.copy()
    if bridge is not None and flags.size > 2:
        holes = np.flatnonzero(~flags[1:-1] & flags[:-2] & flags[2:]) + 1
        flags[holes[bridge[holes]]] = True
    padded = np.r_[False, flags, False].astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    starts, ends = edges[::2], edges[1::2] - 1
    i = int(np.argmax(ends - starts))
    return int(starts[i]), int(ends[i])


def _vertical_strokes(ink: np.ndarray) -> np.ndarray:
    """Ink in vertical runs of 3+ pixels: candles and wicks, not the remains of a horizontal line."""
    up, down = np.zeros_like(ink), np.zeros_like(ink)
    up[1:], down[:-1] = ink[:-1], ink[1:]
    up2, down2 = np.zeros_like(ink), np.zeros_like(ink)
    up2[2:], down2[:-2] = ink[:-2], ink[2:]
    return ink & ((up & down) | (up & up2) | (down & down2))


def _fit_grid(profile: np.ndarray, strokes: np.ndarray, bridges: Optional[np.ndarray], x0: float,
              spacing: float) -> Optional[tuple[float, float, np.ndarray, np.ndarray, int, int]]:
    """(x0, spacing, slot indices, centroids, first, last) of the candle block, refined three times.
    ``bridges`` is the column profile of what lets an empty slot between two candles count."""
    k = np.arange(0, int((profile.size - x0) / spacing) + 1)
    for _ in range(3):
        cent, _ = _centroids(profile, x0 + k * spacing, spacing)
        # the whole slot (hollow bodies), but centred on it (not text or a neighbour at its edge)
        centre, near = _centroids(strokes, x0 + k * spacing, spacing)
        occupied = (near >= 2) & (np.abs(centre - (x0 + k * spacing)) <= 0.25 * spacing)
        if not occupied.any():
            return None
        bridge = None
        if bridges is not None:
            _, raw_near = _centroids(bridges, x0 + k * spacing, 0.6 * spacing)
            bridge = raw_near >= 2
        first, last = _longest_run(occupied, bridge)
        good = np.zeros_like(occupied)
        good[first : last + 1] = True
        fit = good & ~np.isnan(cent) & (np.abs(cent - (x0 + k * spacing)) < 0.35 * spacing)
        if fit.sum() < 2:
            return None
        spacing, x0 = (float(v) for v in np.polyfit(k[fit], cent[fit], 1))
    return x0, spacing, k, cent, first, last


def _hollow_strokes(ink: np.ndarray, x0: float, spacing: float, first: int,
                    last: int) -> Optional[tuple[float, float]]:
    """(x0, spacing) of a grid ``m`` (3 or 2) times coarser when the slots found are the strokes of
    hollow bodies (two edges and the wick between them, evenly spaced): the body's top and
    bottom edges join the strokes of one candle along a row, and nothing joins two candles.
    None when the slots are not joined that way.

    Slots ``k`` and ``k + 1`` are joined when a row (or two, blurred) is inked on every
    column within a quarter spacing of their midpoint, with as many pairs joined in a row
    there as one candle holds (``m - 1``; more is a line). With strokes of hollow bodies,
    the pairs at every phase modulo ``m`` but one are mostly joined, and the pairs at
    that phase (the gaps between candles) seldom: an overlay crossing the gaps joins
    some, as it joins pairs at every phase.
    """
    n = last - first + 1
    if n < 9:
        return None
    centres = x0 + np.arange(first, last + 1) * spacing
    # joined: ink on every column within a quarter spacing of the pair's midpoint (the strokes
    # need not sit exactly on the fine grid)
    q = max(1, int(round(0.25 * spacing)))
    mid = np.round((centres[:-1] + centres[1:]) / 2.0).astype(int)
    around = np.clip(mid[:, None] + np.arange(-q, q + 1)[None, :], 0, ink.shape[1] - 1)
    band = ink[:, around]  # rows x pairs x columns
    band[:-1] |= band[1:]  # a body's edge blurred over two rows, partly faint in each
    pairs = band.all(axis=2)  # rows x pairs
    # a row joining more pairs in a row than one candle holds is a line (a gridline left, a flat
    # stretch of an overlay), not a body's edge
    k = np.arange(n - 1)[None, :]
    start = np.maximum.accumulate(np.where(pairs, -1, k), axis=1) + 1  # first pair of each row's run
    # the first pair after it not joined (n - 1 past the end)
    after = (n - 2) - np.maximum.accumulate(np.where(pairs, -1, (n - 2) - k)[:, ::-1], axis=1)[:, ::-1]
    length = after - start
    for m in (3, 2):
        joined = (pairs & (length == m - 1)).any(axis=0)
        for phase in range(m):
            between = (np.arange(n - 1) % m) == phase
            if between.sum() >= 3 and joined[~between].mean() >= 0.6 + max(0.0, joined[between].mean() - 0.1):
                # candles are slots phase+1 .. phase+m (mod m): their centre is the middle one
                at = x0 + (first + phase + 1 + (m - 1) / 2.0) * spacing
                return float(at % (m * spacing)), m * spacing
    return None


def _candles_between(strokes: np.ndarray, x0: float, spacing: float, first: int, last: int) -> bool:
    """True when the midpoints between slots hold candles too: the grid found is twice too coarse.

    An overlay line crossing a midpoint adds a pixel or two per column; a candle
    adds its wick's length, like the candles on the grid, and stands out of the gaps
    beside it.
    """
    if last - first < 4 or spacing / 2 < _MIN_SPACING:
        return False
    k = np.arange(first, last + 1)

    def around(xs: np.ndarray) -> np.ndarray:
        half = max(0, int(0.08 * spacing))
        idx = np.round(xs).astype(int)
        cols = np.clip(idx[:, None] + np.arange(-half, half + 1)[None, :], 0, strokes.size - 1)
        return strokes[cols]

    on, between = around(x0 + k * spacing).max(axis=1), around(x0 + (k[:-1] + 0.5) * spacing).max(axis=1)
    # the gap between two wide bodies blurred by resizing holds ink too, and an overlay's line crosses
    # it, but that is less than the bodies a quarter spacing either side: a valley, where a candle
    # would not be (a true grid puts a valley at most midpoints, a grid twice too coarse at few)
    quarters = np.maximum(around(x0 + (k[:-1] + 0.25) * spacing).max(axis=1),
                          around(x0 + (k[:-1] + 0.75) * spacing).max(axis=1))
    valley = between < 0.8 * quarters
    typical = float(np.median(on[on > 0])) if (on > 0).any() else 0.0
    return typical > 0 and float(np.mean(between >= 0.3 * typical)) >= 0.6 and float(np.mean(valley)) < 0.6


def find_slots(ink: np.ndarray, raw: Optional[np.ndarray] = None,
               faint: Optional[np.ndarray] = None) -> Optional[Slots]:
    """The candle grid of the panel's ink mask, or None when there is no regular grid.

    ``raw`` is the ink before gridlines were removed: a slot left empty between two
    candles is kept when it had ink there, or when ``faint`` (pixels only a little off
    the background) shows a vertical stroke of 3 rows or more there: a thin candle that
    JPEG and resizing blurred under the ink thresholds. A slot is occupied by vertical
    strokes away from the panel's top and bottom edges (what is left of a spine, or a
    tick mark, is not a candle).
    """
    profile = ink.sum(axis=0, dtype=np.int32).astype(float)
    # tick marks at the panel's edges are short vertical strokes too
    edge = min(6, ink.shape[0] // 10)
    strokes = _vertical_strokes(ink)[edge : ink.shape[0] - edge].sum(axis=0, dtype=np.int32).astype(float)
    raw_profile = raw.sum(axis=0, dtype=np.int32).astype(float) if raw is not None else None
    bridges = raw_profile
    if raw_profile is not None and faint is not None:
        faint_strokes = _vertical_strokes(faint)[edge : ink.shape[0] - edge].sum(axis=0, dtype=np.int32)
        # two pixels of raw ink bridge a hole: three rows of faint stroke count as much
        bridges = raw_profile + np.where(faint_strokes >= 3, 2.0, 0.0)
    spacing = _spacing(profile)
    if spacing is None or spacing < _MIN_SPACING:
        return None
    x0, spacing = _comb(profile, spacing)
    grid = _fit_grid(profile, strokes, bridges, x0, spacing)
    if grid is not None and _candles_between(strokes, grid[0], grid[1], grid[4], grid[5]):
        grid = _fit_grid(profile, strokes, bridges, grid[0], grid[1] / 2)
    if grid is not None and grid[1] < _SPLIT_BELOW:
        merged = _hollow_strokes(ink, grid[0], grid[1], grid[4], grid[5])
        if merged is not None:
            grid = _fit_grid(profile, strokes, bridges, *merged) or grid
    if grid is None:
        return None
    x0, spacing, k, cent, first, last = grid
    offsets = cent[first : last + 1] - (x0 + k[first : last + 1] * spacing)
    resid = float(np.sqrt(np.nanmean(offsets**2)) / spacing)
    if raw_profile is not None:
        first, last = _ends_on_lines(ink, raw, profile, raw_profile, x0, spacing, first, last)
    pred = x0 + np.arange(first, last + 1) * spacing  # slot j sits at x0 + j * spacing (j may be -1)
    half = 0.5 * spacing
    inside = profile[max(0, int(pred[0] - half)) : int(pred[-1] + half) + 1].sum()
    return Slots(x0, spacing, pred, resid, float(inside / max(profile.sum(), 1.0)))


def _ends_on_lines(ink: np.ndarray, raw: np.ndarray, profile: np.ndarray, raw_profile: np.ndarray, x0: float,
                   spacing: float, first: int, last: int) -> tuple[int, int]:
    """(first, last) slots, each end moved in by one slot when the end slot is only a gridline's
    remains, or out by one when a candle lies beyond it on a vertical gridline of its own colour.

    A gridline was erased at a slot when the raw ink there spans much of the panel's
    height. Its remains (JPEG fringes beside a dashed line of the candles' colour) hold
    no row as wide as the candles' bodies. A candle on it lost its wick with the line and
    left no vertical stroke, only the part of its body wider than the line: ink at least
    two columns wide, centred on the slot, with blank columns either side of the slot's
    window (a line crossing the gridline runs on past them). Rows near the panel's edges
    and rows of horizontal lines (blank in ``raw``: where two gridlines cross, a speck of
    each is left) are not looked at.
    """
    near = max(1, int(0.25 * spacing))
    half = max(1, int(0.45 * spacing))
    edge = min(6, ink.shape[0] // 10)
    rows = slice(edge, ink.shape[0] - edge)

    def at(j: int) -> int:
        return int(round(x0 + j * spacing))

    def on_line(centre: int) -> bool:
        lo = max(0, centre - near)
        erased = raw_profile[lo : centre + near + 1] - profile[lo : centre + near + 1]
        return erased.size > 0 and erased.max() >= 0.4 * ink.shape[0]

    def window(centre: int, pad: int) -> np.ndarray:  # the slot's columns (and ``pad`` more each side)
        cols = slice(max(0, centre - half - pad), centre + half + pad + 1)
        return ink[rows, cols] & raw[rows, cols].any(axis=1)[:, None]

    def ghost(j: int, inner: int) -> bool:
        """Whether slot ``j`` holds no candle, only JPEG's blur of the candle beside it (``inner``)
        across the erased line: in that candle's rows, ink on one column of the line only (neither
        the line's colour nor the background's, so not erased with it); elsewhere, specks of a row
        or two."""
        centre = at(j)
        cols = np.arange(max(0, centre - half), min(ink.shape[1], centre + half + 1))
        erased = raw_profile[cols] - profile[cols] >= 0.4 * ink.shape[0]
        own = window(centre, 0)  # rows of horizontal lines left out: specks where gridlines cross
        near = np.flatnonzero(window(at(inner), 0).any(axis=1))
        if near.size == 0:
            return False
        band = np.zeros(own.shape[0], dtype=bool)
        band[max(0, near[0] - 1) : near[-1] + 2] = True
        blur = own[band]
        if blur[:, ~erased].any() or np.count_nonzero(blur.any(axis=0)) > 1:
            return False  # a candle on a line two pixels wide or more leaves ink on more of it
        return all(b - a < 2 for a, b in groups(np.flatnonzero(own.any(axis=1) & ~band)))

    ends = [first, last]
    for side, j in ((0, first), (1, last)):
        if last - first >= 6 and on_line(at(j)) and _widest_row(window(at(j), 0)) <= 2:
            sample = np.linspace(first + 1, last - 1, min(15, last - first - 1)).round().astype(int)
            if (float(np.median([_widest_row(window(at(k), 0)) for k in sample])) >= 4
                    or ghost(j, j + 1 if side == 0 else j - 1)):
                ends[side] = j + 1 if side == 0 else j - 1
    for side, j in ((0, ends[0] - 1), (1, ends[1] + 1)):
        centre = at(j)
        if ends[side] != (first, last)[side] or centre - half - 1 < 0 or centre + half + 1 >= ink.shape[1]:
            continue
        if on_line(centre):
            offset = _isolated_centroid(window(centre, 1))
            if offset is not None and abs(centre + offset - (x0 + j * spacing)) <= 0.25 * spacing:
                ends[side] = j
    return ends[0], ends[1]


def _widest_row(window: np.ndarray) -> int:
    """The widest row of ``window`` (rows x columns), first to last inked column."""
    cols = np.arange(window.shape[1])[None, :]
    spans = np.where(window, cols, -1).max(axis=1) - np.where(window, cols, window.shape[1]).min(axis=1) + 1
    return int(spans.max()) if spans.size else 0


def _isolated_centroid(window: np.ndarray) -> Optional[float]:
    """Centroid column, relative to the middle, of the rows of ``window`` inked on 2 or more of its
    inner columns and blank on its first and last; None when no row is."""
    inner = window[:, 1:-1]
    body = (inner.sum(axis=1) >= 2) & ~window[:, 0] & ~window[:, -1]
    if not body.any():
        return None
    mass = inner[body].sum(axis=0).astype(float)
    half = (inner.shape[1] - 1) // 2
    return float(mass @ np.arange(-half, inner.shape[1] - half)) / float(mass.sum())


# ---------------------------------------------------------------------- candles


def _overlay_rows(ink: np.ndarray, centres: np.ndarray, spacing: float) -> np.ndarray:
    """Rows x slots: ink in the gaps on both sides of the slot, a line crossing it (not a body).

    A body as wide as the window leaves the gaps blank; only a line running through
    them (a moving average, a band) or a neighbour touching on both sides inks them.
    """
    gaps = []
    for side in (-0.5, 0.5):
        col = np.round(centres + side * spacing).astype(int)
        inside = (col >= 0) & (col < ink.shape[1])
        gaps.append(ink[:, np.clip(col, 0, ink.shape[1] - 1)] & inside[None])
    return gaps[0] & gaps[1]


def body_threshold(ink: np.ndarray, centres: np.ndarray, spacing: float) -> tuple[float, float, float]:
    """(threshold, body width, wick width) in pixels, from the row spans of every slot (all at once).

    Per slot, the widest rows (90th percentile of the row spans) and the narrow ones
    (10th percentile: a resized wick is 2 px wide but for its 1-px tips); a row inked
    in the gaps on both sides of the slot is an overlay and does not count (a row
    across the whole window does: on dense or resized charts the body fills the
    window, and dropping it took the blurred wick for the body width). Spans are small
    integers, so the percentiles come from per-slot histograms (numpy's linear rule).
    """
    half = max(1, int(0.45 * spacing))
    cols = np.round(centres).astype(int)[:, None] + np.arange(-half, half + 1)[None, :]
    valid = (cols >= 0) & (cols < ink.shape[1])
    windows = ink[:, np.clip(cols, 0, ink.shape[1] - 1)] & valid[None]  # rows x slots x columns
    k = windows.shape[2]
    any_ink, first, last = row_extents(windows)
    spans = np.where(any_ink, last - first + 1, 0)
    spans[_overlay_rows(ink, centres, spacing)] = 0  # bin 0: not counted
    n = spans.shape[1]
    hist = np.bincount((np.arange(n)[None, :] * (k + 1) + spans).ravel(), minlength=n * (k + 1))
    hist = hist.reshape(n, k + 1)[:, 1:]
    count = hist.sum(axis=1)
    seen = count > 0
    if not seen.any():
        return 2.0, 1.0, 1.0
    cum, count = np.cumsum(hist[seen], axis=1), count[seen]

    def ranked(r: np.ndarray) -> np.ndarray:  # the value of 0-based rank r in each slot
        return 1.0 + (cum <= r[:, None]).sum(axis=1)

    def percentile(q: float) -> np.ndarray:
        pos = q * (count - 1)
        lo = np.floor(pos)
        a, b, t = ranked(lo), ranked(np.ceil(pos)), pos - lo
        return np.where(t >= 0.5, b - (b - a) * (1 - t), a + (b - a) * t)

    widest, narrowest = percentile(0.9), percentile(0.1)
    body, wick = float(np.median(widest)), float(np.median(narrowest))
    return wick + max(1.0, 0.5 * (body - wick)), body, wick


def measure_hidden(raw: np.ndarray, rgb: np.ndarray, cx: float, spacing: float, body_thr: float,
                   body_w: float) -> Optional[RawCandle]:
    """A candle hidden under a gridline of its colour: its body from the raw ink, no wicks."""
    found = measure(raw, rgb, cx, spacing, body_thr, body_w)
    if found is None:
        return None
    found.high, found.low = float(found.body_top), float(found.body_bottom - 0.5)
    return found


def measure(
    ink: np.ndarray, rgb: np.ndarray, cx: float, spacing: float, body_thr: float, body_w: float
) -> Optional[RawCandle]:
    """One candle from the columns around ``cx``; None when they hold no ink.

    A body row is wide (>= ``body_thr``), stays within the body's columns and is
    centred on the candle: a moving average crossing the window reaches beyond them,
    or drifts across them when steep, and is not a body. (``measure_many`` measures
    a whole grid at once, by the same rules.)
    """
    return measure_many(ink, rgb, np.array([cx], dtype=float), spacing, body_thr, body_w)[0]


# ---------------------------------------------------------------------- palette


def palette(raws: list[RawCandle], up: np.ndarray, ink: np.ndarray, rgb: np.ndarray,
            background: np.ndarray) -> list[np.ndarray]:
    """The candles' own colours: edge and inside of each direction, and the wick colour."""
    colours: list[np.ndarray] = []
    for flag in (True, False):
        group = [r for r, u in zip(raws, up) if u == flag and r.body_bottom - r.body_top >= 6]
        if not group:
            continue
        colours.append(np.median([r.edge for r in group], axis=0))
        colours.append(np.median([r.fill for r in group], axis=0))
    wicks = []
    for r in raws:
        c = int(round(r.x))
        for y in range(max(0, int(r.high)), int(r.body_top)):
            if 0 <= c < ink.shape[1] and ink[y, c]:
                wicks.append(rgb[y, c])
    if wicks:
        colours.append(mode_colour(np.array(wicks)))
    far = [c for c in colours if np.abs(c - background).max() > 24]
    unique: list[np.ndarray] = []
    for c in far:
        if not any(np.abs(c - u).max() < 12 for u in unique):
            unique.append(c.astype(np.int16))
    return unique


RELATIVE_TOLERANCE = 0.25  # of a mix's distance from the background
MIN_TOLERANCE = 10  # channel levels


def candle_ink(ink: np.ndarray, rgb: np.ndarray, colours: list[np.ndarray], background: np.ndarray,
               tolerance: int = 40) -> np.ndarray:
    """``ink`` restricted to the candle colours and their anti-aliased mixes with the background.

    A pixel is candle ink when its distance to the nearest mix of a candle colour is at
    most ``RELATIVE_TOLERANCE`` times that mix's distance from the background (clipped
    to ``MIN_TOLERANCE`` .. ``tolerance`` levels): with one fixed tolerance, the pale
    edge of an overlay (a purple band) passes for a pale mix of a red candle.
    """
    keep = np.zeros_like(ink)
    bg = np.asarray(background, dtype=np.float32)
    offset = (rgb[ink] - bg).astype(np.float32)  # ink pixels relative to the background
    best, strength = _mix_distance(offset, [np.asarray(c, dtype=np.float32) - bg for c in colours])
    keep[ink] = best <= np.clip(RELATIVE_TOLERANCE * strength, MIN_TOLERANCE, tolerance)
    return keep


def _mix_distance(offset: np.ndarray, axes: list[np.ndarray], least: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel (offset from the background): the distance to the nearest mix of a colour (``axes``:
    colours minus the background) with the background, at least ``least`` of it (inf where none
    fits), and how far that mix lies from the background (largest channel)."""
    best = np.full(offset.shape[0], np.inf, dtype=np.float32)
    strength = np.zeros(offset.shape[0], dtype=np.float32)
    for axis in axes:
        norm = float(axis @ axis) or 1.0
        t = np.clip(offset @ axis / np.float32(norm), 0.0, 1.0)
        d = np.where(t >= least, channel_max(np.abs(offset - t[:, None] * axis)), np.inf)
        better = d < best
        best = np.where(better, d, best)
        strength = np.where(better, t * np.float32(np.abs(axis).max()), strength)
    return best, strength
