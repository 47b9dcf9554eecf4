"""The render benchmark: real figures from the build's own render path, and flat memory."""

from __future__ import annotations

import numpy as np
import pytest

from alphasignal.dataset import run_render_benchmark
from alphasignal.dataset.bench import random_walk


def test_benchmark_reports_speed_and_memory():
    result = run_render_benchmark(n=12, workers=1, size=256, bars=40)
    assert result["naive_charts_per_s"] > 0
    assert result["charts"] == 12 and result["workers"] == 1 and result["size"] == 256 and result["bars"] == 40
    assert 0 < result["charts_per_s"] < 1000 and result["seconds"] > 0
    assert result["steady_charts_per_s"] is None or result["steady_charts_per_s"] > 0
    assert len(result["rss_first_mb"]) == 1 and result["rss_last_mb"][0] > 0 and result["peak_rss_mb"] > 0
    assert result["cpus"] >= 1


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="n must be >= 1"):
        run_render_benchmark(n=0)


def test_random_walk_is_valid_ohlc_and_seeded():
    dates, bars = random_walk(500)
    o, h, l, c, v = bars.T
    assert (h >= np.maximum(o, c)).all() and (l <= np.minimum(o, c)).all() and (l > 0).all() and (v > 0).all()
    assert (np.diff(dates) > 0).all()
    assert np.array_equal(bars, random_walk(500)[1]) and not np.array_equal(bars, random_walk(500, seed=8)[1])


@pytest.mark.slow
def test_memory_stays_flat_over_many_charts():
    result = run_render_benchmark(n=300, workers=1, size=512, bars=60, baseline=False)
    assert result["rss_growth_mb"] < 15, result
