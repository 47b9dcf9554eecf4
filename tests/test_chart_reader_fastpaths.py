"""The chart reader's shortcuts give exactly what the straightforward computations give."""

from __future__ import annotations

import numpy as np

from alphasignal.chart.reader.digitize import _bin_median, _on_all_ink, background_colour, colour_distance
from alphasignal.chart.reader.lines import clean_ink, erase_cols, erase_rows
from alphasignal.chart.reader.measure import _Batch, _body_groups, _colours, _grouped_mode, colour_keys, measure_many


def _reference_background(rgb: np.ndarray) -> np.ndarray:
    h, w, _ = rgb.shape
    step = 2 if min(h, w) >= 64 else 1
    centre = rgb[h // 4 : max(h // 4 + 1, 3 * h // 4) : step, w // 4 : max(w // 4 + 1, 3 * w // 4) : step]
    centre = centre.reshape(-1, 3)
    keys = (centre[:, 0] >> 3) * 1024 + (centre[:, 1] >> 3) * 32 + (centre[:, 2] >> 3)
    return np.median(centre[keys == np.bincount(keys).argmax()], axis=0).astype(np.int16)


def test_bin_median_is_the_channel_median_of_one_colour_bin():
    rng = np.random.default_rng(3)
    for n in (1, 2, 3, 4, 9, 10, 501):
        for _ in range(40):
            base = rng.integers(0, 32, size=3) * 8
            pixels = (base + rng.integers(0, 8, size=(n, 3))).astype(np.int16)
            key = int((base[0] >> 3) * 1024 + (base[1] >> 3) * 32 + (base[2] >> 3))
            assert _bin_median(pixels, key).tolist() == np.median(pixels, axis=0).astype(np.int16).tolist()


def test_background_colour_matches_the_median_of_the_commonest_bin():
    rng = np.random.default_rng(4)
    for shape in ((90, 120, 3), (40, 50, 3)):
        rgb = np.full(shape, 250, dtype=np.int16) - rng.integers(0, 7, size=shape).astype(np.int16)
        rgb[::7] = rng.integers(0, 256, size=rgb[::7].shape)
        assert background_colour(rgb).tolist() == _reference_background(rgb).tolist()


def _chart() -> tuple[np.ndarray, np.ndarray]:
    """A noisy white chart: a grey grid, a blue line crossing red and green candles, their ink mask."""
    rng = np.random.default_rng(5)
    rgb = np.full((120, 200, 3), 255, dtype=np.int16) - rng.integers(0, 4, size=(120, 200, 3)).astype(np.int16)
    rgb[30], rgb[:, 100] = 200, 200  # gridlines
    for i, cx in enumerate(range(10, 190, 12)):
        colour = (220, 40, 40) if i % 3 else (30, 160, 60)
        top = 20 + (7 * i) % 50
        rgb[top - 8 : top + 40, cx] = colour
        rgb[top : top + 20 + i % 5, cx - 3 : cx + 4] = colour
        if i % 4 == 0:  # a hollow body
            rgb[top + 2 : top + 18, cx - 2 : cx + 3] = 255
    rows = (60 + 20 * np.sin(np.arange(200) / 15)).astype(int)
    rgb[rows, np.arange(200)] = (40, 40, 220)
    return rgb, colour_distance(rgb, np.array([255, 255, 255])) > 72


def _reference_colours(batch: _Batch, rgb: np.ndarray, top: np.ndarray, bottom: np.ndarray):  # type: ignore[no-untyped-def]
    """Edge and fill colours from the full rows x candles x columns masks."""
    h, n, k = batch.win.shape
    rows = np.arange(h)[:, None]
    in_body = (rows >= top[None, :]) & (rows <= bottom[None, :])
    counts = (batch.win & in_body[:, :, None]).sum(axis=0)
    inked = (counts > 0) & (counts >= in_body.sum(axis=0)[:, None] / 2)  # columns inked on half the body
    j = np.arange(k)[None, :]
    left = np.argmax(inked, axis=1)[:, None]
    right = (k - 1 - np.argmax(inked[:, ::-1], axis=1))[:, None]
    edge = batch.win & in_body[:, :, None] & (inked & ((j == left) | (j == right)))[None]
    tall = (bottom - top + 1) > 2
    trim = np.where(bottom - top + 1 >= 7, 2, 1)  # rows left off a tall body's ends
    fill_rows = np.where(tall[None, :], (rows >= top[None, :] + trim) & (rows <= bottom[None, :] - trim), in_body)
    inner = batch.valid & (j > left) & (j < right) & (j != batch.wick[:, None])
    inner = np.where(inner.any(axis=1)[:, None], inner, j == batch.wick[:, None])
    out = []
    for mask in (edge, fill_rows[:, :, None] & inner[None]):
        y, c, jj = np.nonzero(mask)
        pixels = rgb[y + batch.top[c], batch.cols[c, jj]]  # window rows -> image rows
        out.append(_grouped_mode(c, colour_keys(pixels), pixels, n))
    return out


def test_body_colours_listed_directly_match_the_full_masks():
    rgb, ink = _chart()
    centres = np.arange(10, 190, 12, dtype=float)
    for spacing, body_thr, body_w in ((12.0, 4.0, 7.0), (12.0, 9.0, 7.0), (20.0, 2.0, 3.0)):
        batch = _Batch(ink, centres + 0.3, spacing, body_thr, body_w)
        top, bottom = _body_groups(batch)
        fast = _colours(batch, rgb, None, top, bottom)
        slow = _reference_colours(batch, rgb, top, bottom)
        for a, b in zip(fast, slow):
            assert np.array_equal(a, b, equal_nan=True)


def test_erasing_with_shared_line_colour_tests_changes_nothing():
    rgb, _ = _chart()
    background = np.array([255, 255, 255], dtype=np.int16)
    distance = colour_distance(rgb, background)
    plain_weak, rows, cols = clean_ink(rgb, distance > 48, background)
    blends: dict = {}
    weak, rows2, cols2 = clean_ink(rgb, distance > 48, background, blends)
    assert blends and np.array_equal(weak, plain_weak) and [l.first for l in rows] == [l.first for l in rows2]
    plain, shared = distance > 72, (distance > 72).copy()
    erase_cols(rgb, plain, cols, background)
    erase_rows(rgb, plain, rows, background)
    erase_cols(rgb, shared, cols, background, blends)
    erase_rows(rgb, shared, rows, background, blends)
    assert np.array_equal(plain, shared)


def test_candles_measured_for_their_colours_are_reused_unchanged():
    from types import SimpleNamespace

    rgb, ink = _chart()
    slots = SimpleNamespace(centres=np.arange(10, 190, 12, dtype=float), spacing=12.0)
    sample = [0, 4, 9, 14]
    sampled = dict(zip(sample, measure_many(ink, rgb, slots.centres[sample], 12.0, 4.0, 7.0)))
    background = np.array([255, 255, 255])
    plain = _on_all_ink(ink, ink, rgb, background, slots, 4.0, 7.0, [])
    reused = _on_all_ink(ink, ink, rgb, background, slots, 4.0, 7.0, [], sampled)
    assert plain is not None and reused is not None and len(plain[0]) == slots.centres.size

    def fields(r):  # type: ignore[no-untyped-def]
        return (r.x, r.body_top, r.body_bottom, r.high, r.low, r.width, r.edge.tolist(), r.fill.tolist())

    assert [fields(r) for r in plain[0]] == [fields(r) for r in reused[0]]
    assert list(plain[1]) == list(reused[1]) and plain[2] == reused[2]


def test_row_extents_match_argmax_from_both_ends():
    from alphasignal.chart.reader.measure import row_extents

    rng = np.random.default_rng(11)
    for k in (1, 2, 3, 7, 8, 9, 15, 16, 17, 23):
        for density in (0.02, 0.3, 0.9):
            win = rng.random((40, 13, k)) < density
            inked, first, last = row_extents(win)
            assert np.array_equal(inked, win.any(axis=2))
            assert np.array_equal(first, np.argmax(win, axis=2))
            assert np.array_equal(last, k - 1 - np.argmax(win[:, :, ::-1], axis=2))


def _reference_comb(profile: np.ndarray, rough: float) -> tuple[float, float]:
    """The comb search as a scan: spacing by spacing, the first strictly better score wins."""
    capped = np.minimum(profile, np.percentile(profile[profile > 0], 75))
    best, best_score = (0.0, rough), -np.inf
    for spacing in rough + np.linspace(-0.06, 0.06, 25) * rough:
        if spacing < 2.5:
            continue
        k = np.arange(int(profile.size / spacing) + 1)
        phases = np.arange(0.0, spacing, 0.25)
        idx = np.round(phases[:, None] + k[None, :] * spacing).astype(int)
        scores = np.where(idx < profile.size, capped[np.minimum(idx, profile.size - 1)], 0.0).sum(axis=1)
        i = int(np.argmax(scores))
        if scores[i] > best_score:
            best, best_score = (float(phases[i]), float(spacing)), float(scores[i])
    return best


def test_comb_search_matches_the_scan():
    from alphasignal.chart.reader.candles import _comb

    rng = np.random.default_rng(12)
    for _ in range(60):
        size, spacing = int(rng.integers(80, 900)), float(rng.uniform(2.4, 30))
        x = np.arange(size)
        phase = rng.uniform(0, spacing)
        profile = np.where(np.abs((x - phase) % spacing - spacing / 2) > spacing / 2 - 1.5,
                           rng.integers(5, 60, size), 0).astype(float)
        profile += (rng.random(size) < 0.05) * rng.integers(1, 30, size)  # overlays and noise
        rough = spacing * float(rng.uniform(0.97, 1.03))
        assert _comb(profile, rough) == _reference_comb(profile, rough)
    flat = np.ones(50)
    assert _comb(flat, 2.0) == _reference_comb(flat, 2.0) == (0.0, 2.0)  # no spacing to try


def test_plot_box_is_the_plain_rectangle():
    from alphasignal.chart.reader.lines import keep_box, plot_box

    rng = np.random.default_rng(13)
    for _ in range(30):
        ink = rng.random((60, 80)) < rng.uniform(0.05, 0.9)
        ink[: int(rng.integers(0, 10))] = True  # a coloured margin around the plot
        ink[:, : int(rng.integers(0, 10))] = True
        plain = ~ink
        cols, rows = np.flatnonzero(plain.mean(axis=0) >= 0.3), np.flatnonzero(plain.mean(axis=1) >= 0.3)
        expected = np.zeros_like(ink)
        if cols.size and rows.size:
            expected[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = True
        else:
            expected[:] = True
        assert np.array_equal(keep_box(ink.copy(), plot_box(ink)), ink & expected)


def test_windows_read_in_a_band_of_rows_measure_the_same(monkeypatch):
    """Candles measured in a band of rows from each window's first inked row (the default) and over
    the panel's full height (``BAND_SHARE`` below 0) give the same candles, overlay or not."""
    from alphasignal.chart.reader import measure

    rgb, ink = _chart()
    blue = colour_distance(rgb, np.array([40, 40, 220])) < 30
    centres = np.arange(10, 190, 12, dtype=float) + 0.3
    strength = colour_distance(rgb, np.array([255, 255, 255]))

    def fields(r):  # type: ignore[no-untyped-def]
        return None if r is None else (r.x, r.body_top, r.body_bottom, r.high, r.low, r.width,
                                       r.edge.tolist(), r.fill.tolist())

    def read_all() -> list:
        out = []
        for at in (centres, centres[[0, 7, 14]]):  # every window, and a sample (only its columns looked at)
            for c in (dict(), dict(occluded=ink & blue), dict(strength=strength)):
                own = ink & ~blue if c.get("occluded") is not None else ink
                out.append([fields(r) for r in measure_many(own, rgb, at, 12.0, 4.0,
                                                            3.0 if "strength" in c else 7.0, **c)])
        return out

    banded = read_all()
    top, rows = measure._row_band(ink, None, measure._Batch(ink, centres, 12.0, 4.0, 7.0).cols,
                                  np.ones((centres.size, 11), dtype=bool))
    assert rows < ink.shape[0] and top.any()  # the band is narrower than the panel: it is used
    monkeypatch.setattr(measure, "BAND_SHARE", -1.0)
    full = read_all()
    assert banded == full
    assert all(f is not None for f in full[0]) and len(full[3]) == 3


def test_channel_medians_match_numpy():
    from alphasignal.chart.reader.lines import channel_medians

    rng = np.random.default_rng(14)
    for n in (1, 2, 3, 4, 7, 10, 255, 1000):
        pixels = rng.integers(0, 256, size=(n, 3)).astype(np.int16)
        assert np.array_equal(channel_medians(pixels), np.median(pixels, axis=0))
        assert np.array_equal(channel_medians(pixels[::-1][:, ::-1]), np.median(pixels[::-1][:, ::-1], axis=0))
