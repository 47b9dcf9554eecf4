"""Charts with known answers: render OHLC windows in many styles, and non-chart negatives.

Used by the evaluation and the tests. Every chart comes with the exact
price -> pixel-row mapping matplotlib used, so the digitizer can be scored apart
from the axis OCR. matplotlib and mplfinance are imported lazily.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import pandas as pd

_LOCK = threading.Lock()
DPI = 100

# (name, mplfinance style or a custom theme, volume, moving averages)
MPF_STYLES = (
    "charles", "classic", "default", "yahoo", "nightclouds", "mike", "binance", "binancedark",
    "blueskies", "brasil", "checkers", "ibd", "kenan", "sas", "starsandstripes", "tradingview",
)
# TradingView-like themes: (figure/axes background, grid, up, down, text)
THEMES = {
    "tv-light": ("#ffffff", "#f0f3fa", "#26a69a", "#ef5350", "#131722"),
    "tv-dark": ("#131722", "#2a2e39", "#26a69a", "#ef5350", "#d1d4dc"),
}


@dataclass(frozen=True)
class Rendered:
    png: bytes
    y0: float  # pixel row of price 0 on the linear axis ... row = y0 + price * dy
    dy: float
    ylim: tuple[float, float]
    xs: np.ndarray  # candle centre columns
    bbox: tuple[int, int, int, int] = (0, 0, 0, 0)  # price axes (top, bottom, left, right) in pixels


def _plotting() -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import mplfinance as mpf

    return mpf, plt


def render(
    df: pd.DataFrame,
    style: str,
    *,
    volume: bool = True,
    mav: tuple[int, ...] = (),
    width: int = 800,
    height: int = 600,
    bollinger: bool = False,
) -> Rendered:
    """A PNG of ``df`` (OHLC contract) and the exact price/pixel mapping used."""
    if style in THEMES:
        return _render_theme(df, style, width, height)
    mpf, plt = _plotting()
    data = df[["open", "high", "low", "close", "volume"]].rename(columns=str.capitalize)
    extra: dict[str, Any] = {}
    if bollinger:
        mid = data["Close"].rolling(20, min_periods=1).mean()
        sd = data["Close"].rolling(20, min_periods=1).std().fillna(0)
        extra["addplot"] = [mpf.make_addplot(mid + 2 * sd, color="#9467bd", width=0.8),
                            mpf.make_addplot(mid - 2 * sd, color="#9467bd", width=0.8)]
    if mav:
        extra["mav"] = mav
    from ..render import style_for

    with _LOCK, plt.rc_context():
        fig, axes = mpf.plot(data, type="candle", style=style_for(mpf, style), volume=volume and bool((data["Volume"] > 0).any()),
                             figsize=(width / DPI, height / DPI), returnfig=True, closefig=False,
                             warn_too_much_data=len(data) + 1, **extra)
        try:
            return _finish(fig, axes[0], height, np.arange(len(data), dtype=float))
        finally:
            plt.close(fig)


def _finish(fig: Any, ax: Any, height: int, xdata: np.ndarray) -> Rendered:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    fig.canvas.draw()
    ylim = ax.get_ylim()
    (x_a, y_a), (_, y_b) = ax.transData.transform([(0, ylim[0]), (0, ylim[1])])
    rows = height - np.array([y_a, y_b])
    dy = (rows[1] - rows[0]) / (ylim[1] - ylim[0])
    xs = ax.transData.transform(np.c_[xdata, np.full(xdata.size, ylim[0])])[:, 0]
    (l, b), (r, t) = ax.get_window_extent().get_points()
    box = (round(height - t), round(height - b), round(l), round(r))
    return Rendered(buf.getvalue(), float(rows[0] - ylim[0] * dy), float(dy), (float(ylim[0]), float(ylim[1])), xs, box)


def _render_theme(df: pd.DataFrame, theme: str, width: int, height: int) -> Rendered:
    """A TradingView-like chart drawn with plain matplotlib: price axis on the right, no box."""
    _, plt = _plotting()
    bg, grid, up, down, text = THEMES[theme]
    o, h, l, c = (df[k].to_numpy(float) for k in ("open", "high", "low", "close"))
    xs = np.arange(len(df), dtype=float)
    with _LOCK, plt.rc_context():
        fig = plt.figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor=bg)
        ax = fig.add_axes((0.02, 0.08, 0.88, 0.88), facecolor=bg)
        try:
            colours = np.where(c >= o, up, down)
            ax.vlines(xs, l, h, colors=colours, linewidth=1.0, zorder=2)
            bottoms, heights = np.minimum(o, c), np.maximum(np.abs(c - o), 1e-9)
            ax.bar(xs, heights, bottom=bottoms, width=0.7, color=colours, linewidth=0, zorder=3)
            ax.set_xlim(-1, len(df))
            pad = (h.max() - l.min()) * 0.06
            ax.set_ylim(l.min() - pad, h.max() + pad)
            ax.grid(True, color=grid, linewidth=1.0, zorder=0)
            ax.yaxis.tick_right()
            ax.tick_params(colors=text, labelsize=9, length=0)
            ax.set_xticklabels([])
            for side in ("top", "left", "bottom", "right"):
                ax.spines[side].set_visible(False)
            return _finish(fig, ax, height, xs)
        finally:
            plt.close(fig)


def truth_rows(df: pd.DataFrame, r: Rendered) -> np.ndarray:
    """(n, 4) pixel rows of open/high/low/close."""
    return r.y0 + df[["open", "high", "low", "close"]].to_numpy(float) * r.dy


def jpeg(png: bytes, quality: int = 85, scale: Optional[float] = None) -> bytes:
    """Re-encode as JPEG, optionally resized by ``scale`` (a screenshot's worth of damage)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        rgb = img.convert("RGB")
        if scale:
            rgb = rgb.resize((round(rgb.width * scale), round(rgb.height * scale)), Image.LANCZOS)
        out = io.BytesIO()
        rgb.save(out, format="JPEG", quality=quality)
    return out.getvalue()


# ---------------------------------------------------------------- negatives


def negatives(seed: int = 0, closes: Optional[pd.DataFrame] = None) -> dict[str, bytes]:
    """Images that are not candlestick charts, made offline.

    matplotlib line, bar, pie, scatter and histogram plots, a line-only price chart
    (from ``closes`` when given), rendered text, noise, and the photographs that
    ship inside scikit-image's ``data`` module (skipped when it is not installed).
    """
    _, plt = _plotting()
    rng = np.random.default_rng(seed)
    out: dict[str, bytes] = {}
    with _LOCK, plt.rc_context():
        for i in range(3):
            for kind in ("line", "bar", "pie", "scatter", "hist", "text"):
                out[f"{kind}-{i}"] = _figure(plt, kind, rng, i)
    out.update(_noise(rng))
    if closes is not None:
        out.update(_line_price_charts(closes))
    out.update(_photos())
    return out


def _figure(plt: Any, kind: str, rng: np.random.Generator, i: int) -> bytes:
    fig, ax = plt.subplots(figsize=(8, 6), dpi=DPI)
    try:
        n = 30 + 20 * i
        if kind == "line":
            for _ in range(1 + i):
                ax.plot(np.cumsum(rng.standard_normal(100 * (i + 2))))
            ax.grid(i > 0)
        elif kind == "bar":
            ax.bar(range(n), rng.random(n), color=["#2ca02c", "#d62728"][i % 2])
        elif kind == "pie":
            ax.pie(rng.random(3 + i))
        elif kind == "scatter":
            ax.scatter(rng.random(100 * (i + 1)), rng.random(100 * (i + 1)), s=10 + 10 * i)
        elif kind == "hist":
            ax.hist(rng.standard_normal(2000), bins=n)
        else:
            ax.axis("off")
            words = "price market stock shares quarter revenue growth index trading volume".split()
            lines = [" ".join(rng.choice(words, 7)) for _ in range(14 + 4 * i)]
            ax.text(0, 1, "\n".join(lines), va="top", fontsize=9 + i, family=["sans-serif", "monospace", "serif"][i])
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
        return buf.getvalue()
    finally:
        plt.close(fig)


def _noise(rng: np.random.Generator) -> dict[str, bytes]:
    from PIL import Image

    out = {}
    for i, (h, w) in enumerate(((300, 400), (600, 800), (480, 640))):
        for kind in ("uniform", "blocks"):
            if kind == "uniform":
                pixels = rng.random((h, w, 3)) * 255
            else:
                pixels = np.kron(rng.random((h // 20, w // 20, 3)), np.ones((20, 20, 1))) * 255
            buf = io.BytesIO()
            Image.fromarray(pixels.astype(np.uint8)).save(buf, format="PNG")
            out[f"noise-{kind}-{i}"] = buf.getvalue()
    return out


def _line_price_charts(df: pd.DataFrame) -> dict[str, bytes]:
    mpf, plt = _plotting()
    from ..render import style_for

    out = {}
    data = df[["open", "high", "low", "close", "volume"]].rename(columns=str.capitalize)
    for style in ("charles", "yahoo", "nightclouds"):
        with _LOCK, plt.rc_context():
            fig, _ = mpf.plot(data, type="line", style=style_for(mpf, style), volume=True, figsize=(8, 6),
                              returnfig=True, closefig=False, warn_too_much_data=len(data) + 1)
            try:
                buf = io.BytesIO()
                fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
                out[f"price-line-{style}"] = buf.getvalue()
            finally:
                plt.close(fig)
    return out


def _photos() -> dict[str, bytes]:
    from PIL import Image

    try:
        from skimage import data
    except ImportError:
        return {}
    out = {}
    for name in ("astronaut", "coffee", "chelsea", "camera", "rocket", "coins", "page", "text", "horse",
                 "moon", "grass", "gravel", "brick", "clock", "hubble_deep_field", "immunohistochemistry"):
        try:
            image = np.asarray(getattr(data, name)())
        except Exception:  # noqa: BLE001 - a data file that needs downloading: skip it, offline
            continue
        if image.dtype != np.uint8:
            image = (image * 255).astype(np.uint8) if image.max() <= 1 else image.astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG")
        out[f"photo-{name}"] = buf.getvalue()
    return out
