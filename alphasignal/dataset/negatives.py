"""Hard negatives: for each sample, the look-alike chart with a different target action.

A chart's *look* is summarised by a small vector: the close path resampled to
32 points and standardised (the shape a reader sees, whatever the price level
or window length), followed by the last five candles (open, high, low, close
relative to the last close, in ATRs). Neighbours are searched only inside the
sample's own split, so pairing never mixes splits.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

PATH_POINTS, LAST_CANDLES, CHUNK = 32, 5, 1024


def look(ohlc: np.ndarray, atr: Optional[float]) -> np.ndarray:
    """The look vector of one window (``ohlc``: bars x [open, high, low, close])."""
    close = ohlc[:, 3]
    grid = np.linspace(0.0, len(close) - 1.0, PATH_POINTS)
    path = np.interp(grid, np.arange(len(close)), np.log(close))
    spread = path.std()
    path = (path - path.mean()) / spread if spread > 0 else np.zeros_like(path)
    scale = atr if atr and atr > 0 else max(float(np.ptp(close)), 1e-12)
    candles = (ohlc[-LAST_CANDLES:, :4] - close[-1]) / scale
    return np.concatenate([path, 0.5 * candles.ravel()])


def mine(vectors: np.ndarray, actions: Sequence[str]) -> list[tuple[Optional[int], float]]:
    """For each row, (index of the nearest row with another action, distance); (None, nan) if none."""
    labels = np.asarray(actions)
    sq = np.einsum("ij,ij->i", vectors, vectors)
    out: list[tuple[Optional[int], float]] = []
    for lo in range(0, len(vectors), CHUNK):
        block = vectors[lo:lo + CHUNK]
        dist = sq[lo:lo + CHUNK, None] + sq[None, :] - 2.0 * block @ vectors.T
        dist[labels[lo:lo + CHUNK, None] == labels[None, :]] = np.inf
        best = np.argmin(dist, axis=1)
        for row, j in enumerate(best):
            d = dist[row, j]
            out.append((int(j), float(np.sqrt(max(d, 0.0)))) if np.isfinite(d) else (None, float("nan")))
    return out
