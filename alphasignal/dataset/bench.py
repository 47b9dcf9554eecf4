"""``alphasignal bench dataset``: how fast charts render, and whether memory stays flat.

Renders ``n`` distinct ``bars``-bar charts of ``size`` x ``size`` pixels with a
volume panel (style ``charles``) from a seeded random walk, through the same
worker pool and PNG writing as ``build_dataset``, into a temporary folder.
Reports charts/s over the whole run (worker start-up included) and in the
steady state (from the first finished chunk on), the renderers' CPU time per
chart, and each worker's resident memory after its first chunk and at the end. The load average is recorded
because other processes on the machine slow the figures down.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from .render import ChartData, RenderSpec
from .workers import render_all

STYLE = "charles"


def run_render_benchmark(
    n: int = 400, workers: Optional[int] = None, size: int = 512, bars: int = 60, *, baseline: bool = True
) -> dict[str, Any]:
    """Render ``n`` charts with ``workers`` processes (default: CPU count); see the module docstring.

    With ``baseline``, also times ``chart.render.render_chart`` (a fresh ``mpf.plot`` per chart, one
    process) on up to 40 of the same charts, so the speed-up is measured under the same load.
    """
    if n < 1 or bars < 2:
        raise ValueError("n must be >= 1 and bars >= 2")
    workers = workers or os.cpu_count() or 1
    spec = RenderSpec(width=size, height=size, volume=True)
    prices = random_walk(n + bars)
    load_before = _loadavg()
    stamps: list[float] = []
    with tempfile.TemporaryDirectory(prefix="alphasignal-bench-") as tmp:
        (Path(tmp) / "images").mkdir()
        start = time.perf_counter()
        hashes, memory = render_all(
            _charts(prices, n, bars), Path(tmp), spec, workers, lambda k: stamps.append(time.perf_counter())
        )
        seconds = time.perf_counter() - start
    naive = _naive_charts_per_s(prices, min(n, 40), bars, size) if baseline else None
    if len(hashes) != n:
        raise RuntimeError(f"benchmark rendered {len(hashes)} charts, expected {n}")
    return {
        "charts": n,
        "workers": workers,
        "size": size,
        "bars": bars,
        "seconds": round(seconds, 2),
        "charts_per_s": round(n / seconds, 1),
        "steady_charts_per_s": _steady(stamps, n, memory),
        "cpu_ms_per_chart": _cpu_ms(memory, n),
        "naive_charts_per_s": naive,
        **_memory(memory),
        "cpus": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": _loadavg(),
    }


def random_walk(count: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """(dates as int64 ns, bars x [open, high, low, close, volume]): a seeded daily random walk."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.015, count)))
    opens = np.concatenate([[100.0], close[:-1]]) * np.exp(rng.normal(0.0, 0.004, count))
    top, bottom = np.maximum(opens, close), np.minimum(opens, close)
    high = top * (1 + np.abs(rng.normal(0.0, 0.006, count)))
    low = bottom * (1 - np.abs(rng.normal(0.0, 0.006, count)))
    volume = rng.lognormal(16.0, 0.4, count).round()
    dates = pd.bdate_range("2000-01-03", periods=count).as_unit("ns").asi8
    return dates, np.column_stack([opens, high, low, close, volume])


def _charts(prices: tuple[np.ndarray, np.ndarray], n: int, bars: int) -> Iterator[tuple[str, ChartData]]:
    dates, ohlcv = prices
    for i in range(n):
        rows = slice(i, i + bars)
        yield f"images/{i:06d}.png", ChartData(dates[rows].copy(), ohlcv[rows].copy(), {}, STYLE, "BENCH 1d")


def _naive_charts_per_s(prices: tuple[np.ndarray, np.ndarray], n: int, bars: int, size: int) -> float:
    """One process, ``render_chart`` per chart: what the speed-up is measured against."""
    import pandas as pd

    from ..chart.render import render_chart

    dates, ohlcv = prices
    columns = ["open", "high", "low", "close", "volume"]
    frames = [pd.DataFrame(ohlcv[i:i + bars], columns=columns, index=pd.DatetimeIndex(dates[i:i + bars])) for i in range(n)]
    render_chart(frames[0], bars=bars, width=size, height=size, title="BENCH 1d")  # imports, font cache
    start = time.perf_counter()
    for frame in frames:
        render_chart(frame, bars=bars, width=size, height=size, title="BENCH 1d")
    return round(n / (time.perf_counter() - start), 1)


def _steady(stamps: list[float], n: int, memory: list[dict]) -> Optional[float]:
    """Charts/s from the first finished chunk to the last (worker start-up left out)."""
    span = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
    if span <= 0:
        return None
    return round((n - memory[0]["charts"]) / span, 1)


def _cpu_ms(memory: list[dict], n: int) -> float:
    """CPU time the renderers spent per chart (less sensitive to other load than wall time)."""
    last: dict[int, float] = {}
    for m in memory:
        last[m["pid"]] = m["cpu_s"]
    return round(1000 * sum(last.values()) / n, 1)


def _memory(memory: list[dict]) -> dict[str, Any]:
    """Per worker: resident memory after its first chunk and at its last; the largest growth."""
    first: dict[int, float] = {}
    last: dict[int, float] = {}
    for m in memory:
        first.setdefault(m["pid"], m["rss_mb"])
        last[m["pid"]] = m["rss_mb"]
    growth = max((last[p] - first[p] for p in first), default=0.0)
    return {
        "rss_first_mb": sorted(first.values()),
        "rss_last_mb": [last[p] for p in sorted(first, key=first.get)],
        "rss_growth_mb": round(growth, 1),
        "peak_rss_mb": max((m["peak_rss_mb"] for m in memory), default=0.0),
    }


def _loadavg() -> Optional[list[float]]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None
