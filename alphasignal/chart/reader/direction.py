"""Up or down: each candle's direction from its colours, with continuity deciding the unsure ones.

1. **Colour.** Of the most frequent clearly different inside colours of bodies tall
   enough to have an inside, the two that leave those colours nearest to them seed
   the two directions (hollow bodies show the background); short bodies join the
   cluster with the nearer edge colour. When both directions are filled, a candle
   whose inside is background was not seen whole (a wick read as a thin body): its
   edge's hue, the direction away from the background, decides. A few 2-means steps
   on (inside, edge) colour pairs then settle the clusters; a candle's distance is its
   inside's plus its edge's (an overlay beside a body can take over its edge), and a
   body too narrow to have an inside may match a cluster by its edge colour alone (a
   hollow body two pixels wide is all edge). Which cluster is "up" is chosen so that
   closes lie nearest the next opens (true of any bar series without large gaps).
2. **Unsure candles.** A candle whose colour is about as far from one cluster as from
   the other (JPEG bleeding on a thin body, a wick read as the body so that its
   inside is background) takes the direction that puts its open nearer the previous
   close and its close nearer the next open; a doji-sized body barely moves either
   way, so a wrong guess there costs little.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import numpy as np

from .measure import colour_keys

if TYPE_CHECKING:
    from .candles import RawCandle

UNSURE_MARGIN = 0.1  # colour margin below which continuity decides
_REFINE_STEPS = 3
_BLANK = 48  # an inside this close to the background shows the background
_PASSES = 2
_DISTINCT = 40  # colours further apart than this (any channel) are different
_MODES = 8  # candidate colours for the two fills
_FAR = 60.0  # colours further than this from both seeds count as this far
_NARROW = 3.0  # a body narrower than this (px) may be all edge


def _euclid(colours: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Euclidean distance of each colour (n x 3) to each centre (k x 3): n x k."""
    return np.sqrt(((colours[:, None] - centres[None]) ** 2).sum(axis=2))


def _two_seeds(colours: np.ndarray) -> np.ndarray:
    """The up and down fills: of the most frequent clearly different colours (5-bit bins), the two
    that leave the colours nearest to them.

    Not simply the two most frequent: JPEG spreads a saturated colour over many bins
    while a dark one stays in one, so a few bodies misread as background could
    otherwise outnumber one direction's bins and take its place.
    """
    _, inverse, counts = np.unique(colour_keys(colours), return_inverse=True, return_counts=True)
    means = np.stack([np.bincount(inverse, weights=colours[:, i]) for i in range(3)], axis=1) / counts[:, None]
    order = np.argsort(-counts, kind="stable")
    modes = [means[order[0]]]
    for other in means[order[1:]]:
        if all(np.abs(other - m).max() > _DISTINCT for m in modes):
            modes.append(other)
            if len(modes) == _MODES:
                break
    if len(modes) == 1:
        return np.array([modes[0], modes[0]])
    m = np.array(modes)
    # a stray colour (a misread body) weighs no more than any other far one
    near = np.minimum(_euclid(colours, m), _FAR)
    pairs = [(i, j) for i in range(len(modes)) for j in range(i + 1, len(modes))]
    cost = [np.minimum(near[:, i], near[:, j]).sum() for i, j in pairs]
    i, j = pairs[int(np.argmin(cost))]
    return np.array([m[i], m[j]])


def _colour_labels(raws: list["RawCandle"], background: Optional[np.ndarray] = None
                   ) -> tuple[np.ndarray, np.ndarray, float]:
    """(cluster label, colour margin in [0, 1], split) of each candle."""
    tall = np.array([r.body_bottom - r.body_top >= 4 for r in raws])
    if tall.sum() < 2:
        tall[:] = True
    fills = np.array([r.fill for r in raws], dtype=float)
    edges = np.array([r.edge for r in raws], dtype=float)
    seeds = _two_seeds(fills[tall])
    dist = np.abs(fills[:, None] - seeds[None]).max(axis=2)
    labels = dist.argmin(axis=1)
    edge_means = np.array([edges[tall & (labels == c)].mean(axis=0) if (tall & (labels == c)).any() else seeds[c]
                           for c in (0, 1)])
    short = ~tall
    if short.any():
        dist[short] = np.abs(edges[short][:, None] - edge_means[None]).max(axis=2)
        labels[short] = dist[short].argmin(axis=1)
    if background is not None:
        _by_edge_hue(labels, dist, fills, edges, seeds, np.asarray(background, dtype=float))
    narrow = np.array([r.width < _NARROW for r in raws])
    labels, dist = _refine(labels, fills, edges, tall, dist, narrow)
    margin = np.abs(dist[:, 0] - dist[:, 1]) / np.maximum(dist.sum(axis=1), 1.0)
    return labels, margin, float(np.abs(seeds[0] - seeds[1]).max())


def _by_edge_hue(labels: np.ndarray, dist: np.ndarray, fills: np.ndarray, edges: np.ndarray, seeds: np.ndarray,
                 background: np.ndarray) -> None:
    """Relabel (in place) candles whose inside is background although both directions are filled.

    Then the body was not seen (a wick read as a thin body): its edge still carries
    the candle's colour, faded towards the background by anti-aliasing and JPEG, so
    its hue (the direction away from the background) decides, not its distance.
    """
    away = seeds - background
    if (np.abs(away).max(axis=1) <= _BLANK).any():
        return  # a hollow style: a background inside is a direction of its own
    blank = (np.abs(fills - background).max(axis=1) <= _BLANK) & (np.abs(edges - background).max(axis=1) > 24)
    if not blank.any():
        return
    edge_dir = edges[blank] - background
    norms = np.linalg.norm(edge_dir, axis=1)[:, None] * np.linalg.norm(away, axis=1)[None]
    cos = edge_dir @ away.T / np.maximum(norms, 1e-9)
    labels[blank] = cos.argmax(axis=1)
    dist[blank] = 1.0 - cos


def _refine(labels: np.ndarray, fills: np.ndarray, edges: np.ndarray, tall: np.ndarray,
            dist: np.ndarray, narrow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels, distances) after a few 2-means steps on (fill, edge) pairs, means from the tall bodies.

    The seeds come from fills alone; when a wick is read as a thin body its inside is
    background and its fill says nothing, but its edge still has the candle's colour.
    A candle's distance to a cluster is the distance of its fill plus that of its
    edge (not of the pair as one vector: an overlay beside a body can take over its
    edge colour, while its fill still says which it is). A ``narrow`` body may have
    no inside at all (a hollow body two pixels wide is all edge): its fill may then
    match the cluster's edge colour instead. The means come from the tall bodies
    that are not narrow, when each cluster has some.
    """
    solid = tall & ~narrow
    for _ in range(_REFINE_STEPS):
        fill_means, edge_means = [], []
        for c in (0, 1):
            sel = tall & (labels == c)
            if not sel.any():
                return labels, dist
            if (sel & solid).any():
                sel = sel & solid
            fill_means.append(fills[sel].mean(axis=0))
            edge_means.append(edges[sel].mean(axis=0))
        f, e = np.array(fill_means), np.array(edge_means)
        d_fill = _euclid(fills, f)
        d_fill = np.where(narrow[:, None], np.minimum(d_fill, _euclid(fills, e)), d_fill)
        d = d_fill + _euclid(edges, e)
        new = d.argmin(axis=1)
        dist = d
        if (new == labels).all():
            break
        labels = new
    return labels, dist


def _ends(up: np.ndarray, tops: np.ndarray, bottoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(open rows, close rows) for the directions ``up`` (rows grow downwards)."""
    return np.where(up, bottoms, tops), np.where(up, tops, bottoms)


def _settle_unsure(up: np.ndarray, unsure: np.ndarray, tops: np.ndarray, bottoms: np.ndarray) -> np.ndarray:
    """``up`` with each unsure candle turned the way its neighbours' closes and opens meet best."""
    up = up.copy()
    idx = np.flatnonzero(unsure)
    n = up.size
    for _ in range(_PASSES):
        opens, closes = _ends(up, tops, bottoms)
        prev_close = np.where(idx > 0, closes[np.maximum(idx - 1, 0)], np.nan)
        next_open = np.where(idx < n - 1, opens[np.minimum(idx + 1, n - 1)], np.nan)

        def cost(o: np.ndarray, c: np.ndarray) -> np.ndarray:
            return np.nan_to_num(np.abs(prev_close - o)) + np.nan_to_num(np.abs(c - next_open))

        as_up = cost(bottoms[idx], tops[idx])
        as_down = cost(tops[idx], bottoms[idx])
        up[idx] = np.where(as_up == as_down, up[idx], as_up < as_down)
    return up


def assign_direction(raws: list["RawCandle"], background: Optional[np.ndarray] = None) -> tuple[np.ndarray, float]:
    """(up flags, distance between the two colour clusters); see the module docstring.

    ``background`` is the panel's background colour (candles whose inside shows it in
    a style whose bodies are all filled are judged by their edge's hue)."""
    labels, margin, split = _colour_labels(raws, background)
    tops = np.array([r.body_top for r in raws], dtype=float)
    bottoms = np.array([r.body_bottom for r in raws], dtype=float)
    best, best_cost = labels == 0, np.inf
    for up_label in (0, 1):
        up = labels == up_label
        opens, closes = _ends(up, tops, bottoms)
        cost = float(np.abs(closes[:-1] - opens[1:]).sum())
        if cost < best_cost:
            best, best_cost = up, cost
    unsure = margin < UNSURE_MARGIN
    if unsure.any() and len(raws) >= 3:
        best = _settle_unsure(best, unsure, tops, bottoms)
    return best, split
