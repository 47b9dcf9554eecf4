"""The vectorised chart-reader kernels give the same answers as the straightforward definitions."""

from __future__ import annotations

import io

import numpy as np
import pytest

from alphasignal.chart.reader.candles import body_threshold, candle_ink, measure
from alphasignal.chart.reader.digitize import decode_rgb
from alphasignal.chart.reader.lines import _mode_colour, channel_max, colour_distance, hysteresis
from alphasignal.chart.reader.measure import _walks, measure_many, mode_colour


def _reference_walk(column: np.ndarray, start: int, step: int, max_gap: int = 2) -> int:
    last, gap, y = start, 0, start + step
    while 0 <= y < column.size:
        if column[y]:
            last, gap = y, 0
        else:
            gap += 1
            if gap > max_gap:
                break
        y += step
    return last


def _reference_hysteresis(weak: np.ndarray, strong: np.ndarray) -> np.ndarray:
    mask = weak | strong
    keep = np.zeros_like(mask)
    for c in range(mask.shape[1]):
        y = 0
        while y < mask.shape[0]:
            if not mask[y, c]:
                y += 1
                continue
            end = y
            while end < mask.shape[0] and mask[end, c]:
                end += 1
            keep[y:end, c] = strong[y:end, c].any()
            y = end
    return keep


def _reference_body_threshold(ink: np.ndarray, centres: np.ndarray, spacing: float) -> tuple[float, float, float]:
    half = max(1, int(0.45 * spacing))
    widest, narrowest = [], []
    for centre in centres:
        cx = int(np.round(centre))
        a, b = max(0, cx - half), min(ink.shape[1], cx + half + 1)
        sub = ink[:, a:b]
        gap_l, gap_r = int(np.round(centre - 0.5 * spacing)), int(np.round(centre + 0.5 * spacing))
        spans = []
        for y, row in enumerate(sub):
            cols = np.flatnonzero(row)
            crossed = all(0 <= g < ink.shape[1] and ink[y, g] for g in (gap_l, gap_r))
            if cols.size and not crossed:
                spans.append(cols[-1] - cols[0] + 1)
        if spans:
            widest.append(np.percentile(spans, 90))
            narrowest.append(np.percentile(spans, 10))
    if not widest:
        return 2.0, 1.0, 1.0
    body, wick = float(np.median(widest)), float(np.median(narrowest))
    return wick + max(1.0, 0.5 * (body - wick)), body, wick


def test_walk_bridges_gaps_of_two_rows_and_stops_at_three():
    rng = np.random.default_rng(3)
    for _ in range(400):
        column = rng.random(int(rng.integers(1, 40))) < rng.random()
        start = int(rng.integers(0, column.size))
        high, low = _walks(column[:, None], np.array([start]), np.array([start]))
        assert (int(high[0]), int(low[0])) == (_reference_walk(column, start, -1), _reference_walk(column, start, 1))


def test_hysteresis_keeps_weak_runs_that_touch_strong_ink():
    rng = np.random.default_rng(4)
    for _ in range(200):
        shape = (int(rng.integers(1, 30)), int(rng.integers(1, 30)))
        weak = rng.random(shape) < rng.random()
        strong = rng.random(shape) < 0.2 * rng.random()
        assert np.array_equal(hysteresis(weak, strong), _reference_hysteresis(weak, strong))


def test_body_threshold_matches_per_slot_percentiles():
    rng = np.random.default_rng(5)
    for _ in range(300):
        ink = rng.random((int(rng.integers(5, 50)), int(rng.integers(20, 100)))) < rng.random() * 0.5
        spacing = float(rng.uniform(3, 15))
        centres = np.arange(rng.uniform(-2, 3), ink.shape[1] + 2, spacing)
        assert body_threshold(ink, centres, spacing) == pytest.approx(_reference_body_threshold(ink, centres, spacing))


def test_colour_distance_is_the_largest_channel_difference():
    rng = np.random.default_rng(6)
    rgb = rng.integers(0, 256, (7, 9, 3)).astype(np.int16)
    colour = np.array([12, 200, 90], dtype=np.int16)
    assert np.array_equal(colour_distance(rgb, colour), np.abs(rgb - colour).max(axis=2))
    pixels = rgb.reshape(-1, 3)
    assert np.array_equal(colour_distance(pixels, colour), np.abs(pixels - colour).max(axis=1))
    assert np.array_equal(channel_max(rgb), rgb.max(axis=2))


def test_mode_colours_pick_the_dominant_colour():
    pixels = np.array([[200, 10, 10]] * 6 + [[10, 200, 10]] * 3 + [[204, 12, 9]] * 2, dtype=np.int16)
    assert mode_colour(pixels) == pytest.approx(np.array([[200, 10, 10]] * 6 + [[204, 12, 9]] * 2).mean(axis=0))
    assert _mode_colour(pixels).tolist() == [200, 10, 10]


def _candle_image() -> tuple[np.ndarray, np.ndarray]:
    """A white 60 x 40 image with three drawn candles (red, green, red), their ink mask, centres 8/20/32."""
    rgb = np.full((60, 40, 3), 255, dtype=np.int16)
    red, green = np.array([220, 40, 40]), np.array([30, 160, 60])
    for cx, colour, (top, bottom), (high, low) in (
        (8, red, (20, 30), (10, 40)),
        (20, green, (25, 35), (5, 50)),
        (32, red, (15, 25), (12, 28)),
    ):
        rgb[high : low + 1, cx] = colour
        rgb[top : bottom + 1, cx - 3 : cx + 4] = colour
    rgb[12:14, 20] = 255  # a 2-row gap in the green wick: bridged
    rgb[44:47, 20] = 255  # a 3-row gap below it: the low stops above it
    ink = np.abs(rgb - 255).max(axis=2) > 72
    return rgb, ink


def test_measure_many_reads_bodies_wicks_and_colours():
    rgb, ink = _candle_image()
    found = measure_many(ink, rgb, np.array([8.0, 20.0, 32.0]), 12.0, 4.0, 7.0)
    tops = [(c.body_top, c.body_bottom, c.high, c.low) for c in found]
    assert tops == [(20, 30.5, 10, 40), (25, 35.5, 5, 43), (15, 25.5, 12, 28)]
    assert found[0].fill.tolist() == [220, 40, 40] and found[1].edge.tolist() == [30, 160, 60]
    assert [c.width for c in found] == [7.0, 7.0, 7.0]


def test_measure_many_agrees_with_one_candle_at_a_time_and_skips_empty_slots():
    rgb, ink = _candle_image()
    centres = np.array([8.0, 14.0, 20.0, 32.0])
    many = measure_many(ink, rgb, centres, 12.0, 4.0, 7.0)
    assert many[1] is None or many[1].body_top >= 0
    one = [measure(ink, rgb, cx, 12.0, 4.0, 7.0) for cx in centres]
    for a, b in zip(many, one):
        assert (a is None) == (b is None)
        if a is not None:
            assert (a.body_top, a.body_bottom, a.high, a.low, a.width) == (b.body_top, b.body_bottom, b.high, b.low, b.width)
            assert np.array_equal(a.fill, b.fill) and np.array_equal(a.edge, b.edge)
    assert measure_many(np.zeros((20, 20), bool), np.zeros((20, 20, 3), np.int16), np.array([10.0]), 8.0, 3.0, 5.0) == [None]


def test_candle_ink_keeps_the_candle_colours_and_their_blends_only():
    background = np.array([255, 255, 255], dtype=np.int16)
    red = np.array([220, 40, 40], dtype=np.int16)
    blend = ((red.astype(int) + 255) // 2).astype(np.int16)
    rgb = np.array([[red, blend, [40, 40, 220]]], dtype=np.int16)
    ink = np.ones((1, 3), dtype=bool)
    assert candle_ink(ink, rgb, [red], background).tolist() == [[True, True, False]]


def test_decoding_drops_the_alpha_channel_and_converts_palettes():
    from PIL import Image

    rgba = np.zeros((4, 5, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 10, 20, 30, 128
    for img in (Image.fromarray(rgba, "RGBA"), Image.fromarray(rgba[..., :3], "RGB").convert("P")):
        out = io.BytesIO()
        img.save(out, format="PNG")
        decoded, scale = decode_rgb(out.getvalue())
        assert decoded.dtype == np.int16 and decoded.shape == (4, 5, 3) and scale == 1.0
        with Image.open(io.BytesIO(out.getvalue())) as back:
            assert np.array_equal(decoded, np.asarray(back.convert("RGB")))
    assert decode_rgb(_png(Image.fromarray(rgba, "RGBA")))[0][0, 0].tolist() == [10, 20, 30]


def test_fast_png_decoding_gives_the_pixels_pil_gives(monkeypatch):
    """8-bit RGB/RGBA PNGs go through libspng: the same pixels as PIL (alpha dropped, tRNS and gamma
    ignored) with or without pyspng, and a damaged file still fails with PIL's wording."""
    import sys

    from PIL import Image

    from alphasignal.chart.reader import digitize
    from alphasignal.errors import ImageError

    rng = np.random.default_rng(5)
    rgba = rng.integers(0, 256, size=(37, 53, 4), dtype=np.uint8)
    rgba[::3, :, 3] = 0  # fully transparent pixels keep their colour values
    plain = Image.fromarray(rgba[..., :3], "RGB")
    with_gamma = io.BytesIO()
    plain.save(with_gamma, format="PNG", gamma=0.4)  # a gAMA chunk: not applied, as in PIL
    images = [_png(Image.fromarray(rgba, "RGBA")), _png(plain), with_gamma.getvalue(),
              _png(plain.convert("L")), _png(Image.fromarray(rgba[..., 0].astype(np.uint16) * 250))]
    assert digitize._png_rgb8(images[0], 10**7) is not None  # the fast path is taken (pyspng installed)
    assert digitize._png_rgb8(images[3], 10**7) is None  # grey PNGs are left to PIL
    fast = [decode_rgb(b)[0] for b in images]
    monkeypatch.setitem(sys.modules, "pyspng", None)  # as if it were not installed
    assert digitize._png_rgb8(images[0], 10**7) is None
    for b, f in zip(images, fast):
        slow = decode_rgb(b)[0]
        with Image.open(io.BytesIO(b)) as back:
            assert np.array_equal(f, slow) and np.array_equal(slow, np.asarray(back.convert("RGB")))
    monkeypatch.undo()
    damaged = bytearray(images[0])
    damaged[60:80] = bytes(20)  # inside the image data: libspng refuses it, PIL says why
    with pytest.raises(ImageError, match="truncated or corrupt"):
        decode_rgb(bytes(damaged))
    with pytest.raises(ImageError, match="truncated or corrupt"):
        decode_rgb(images[0][: len(images[0]) // 2])


def _png(img) -> bytes:  # type: ignore[no-untyped-def]
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()

