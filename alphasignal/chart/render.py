"""Render an OHLC frame as a candlestick chart PNG (mplfinance on matplotlib's Agg).

Rendering is deterministic: the same frame and options give byte-identical PNG
bytes (no Software/creation-time metadata). Each call leaves no pyplot figure
open and no rcParams changed, and calls are serialised with a lock because
pyplot's figure registry is process-global. matplotlib and mplfinance are
imported inside the functions so that importing this module stays cheap.
"""

from __future__ import annotations

import difflib
import io
import sys
import threading
from pathlib import Path
from typing import Any, Optional, Union

import pandas as pd

from ..errors import ConfigError, OutputError, PriceDataError

DPI = 100
_MIN_PIXELS, _MAX_PIXELS = 100, 8000
# moving-average colours, distinct on the light styles mplfinance ships
_MAV_COLORS = ("#1f77b4", "#ff7f0e", "#9467bd", "#17becf", "#8c564b")
_LOCK = threading.Lock()
_WEIGHTS = {"medium": "normal", "semibold": "bold", "demibold": "bold", "demi": "bold"}
_OHLCV = ("open", "high", "low", "close", "volume")


def render_chart(
    df: pd.DataFrame,
    *,
    bars: int = 90,
    width: int = 800,
    height: int = 600,
    style: str = "charles",
    volume: bool = True,
    title: Optional[str] = None,
    mav: tuple[int, ...] = (),
) -> bytes:
    """PNG bytes of a candlestick chart of the last ``bars`` bars of an OHLC frame.

    ``width`` x ``height`` is the exact pixel size. ``mav`` draws simple moving
    averages of the close, computed on the whole frame before slicing so that they
    start at the left edge. A volume panel is drawn when ``volume`` is true and the
    frame has any volume.
    """
    _check_options(bars, width, height, mav)
    data = _window(df, bars)
    averages = _moving_averages(df, data.index, mav)
    show_volume = bool(volume) and bool((data["Volume"] > 0).any())
    mpf, plt = import_plotting()
    mpf_style = style_for(mpf, style)
    with _LOCK, plt.rc_context():  # mplfinance writes the style into the global rcParams
        before = set(plt.get_fignums())
        try:
            extra: dict[str, Any] = {"title": title} if title else {}
            if averages:
                extra["addplot"] = [mpf.make_addplot(s, color=c, width=1.0) for s, c in averages]
            fig, _ = mpf.plot(
                data,
                type="candle",
                style=mpf_style,
                volume=show_volume,
                figsize=(width / DPI, height / DPI),
                warn_too_much_data=len(data) + 1,
                returnfig=True,
                closefig=False,
                **extra,
            )
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
        finally:
            for num in set(plt.get_fignums()) - before:
                plt.close(num)
    return buf.getvalue()


def save_chart(df: pd.DataFrame, path: Union[str, Path], **kw: Any) -> Path:
    """Render ``df`` (options as ``render_chart``) and write the PNG to ``path``."""
    png = render_chart(df, **kw)
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(png)
    except OSError as exc:
        raise OutputError(f"cannot write chart to {target}: {exc.strerror or exc}: choose a writable path") from exc
    return target


def import_plotting() -> tuple[Any, Any]:
    import matplotlib

    # Choose Agg only when pyplot is not loaded yet: switching later would close
    # the figures of an application (a notebook) that already uses pyplot. Every
    # backend's savefig renders PNG through Agg, so the bytes are the same.
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplfinance as mpf

    return mpf, plt


def _check_options(bars: int, width: int, height: int, mav: tuple[int, ...]) -> None:
    if not isinstance(bars, int) or bars < 2:
        raise ConfigError(f"chart bars must be an integer >= 2, got {bars!r}")
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or not _MIN_PIXELS <= value <= _MAX_PIXELS:
            raise ConfigError(f"chart {name} must be {_MIN_PIXELS}-{_MAX_PIXELS} pixels, got {value!r}")
    if len(mav) > len(_MAV_COLORS) or any(not isinstance(m, int) or m < 2 for m in mav):
        raise ConfigError(f"mav must be up to {len(_MAV_COLORS)} integer periods >= 2, got {mav!r}")


def style_for(mpf: Any, name: str) -> dict[str, Any]:
    """The named mplfinance style with font weights matplotlib's bundled fonts have.

    Some styles ask for 'medium'/'semibold' text; DejaVu Sans has only regular and
    bold, so matplotlib substitutes 400/700 anyway and logs a findfont warning per
    weight. Asking for 'normal'/'bold' draws the same pixels without the noise.
    """
    styles = mpf.available_styles()
    if name not in styles:
        close = difflib.get_close_matches(str(name), styles, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"unknown chart style {name!r}: {hint}choose one of {', '.join(styles)}")
    rc = dict(mpf.make_mpf_style(base_mpf_style=name).get("rc") or {})
    weights = {key: _WEIGHTS[val] for key, val in rc.items() if key.endswith("weight") and val in _WEIGHTS}
    return mpf.make_mpf_style(base_mpf_style=name, rc=weights) if weights else name


def _window(df: pd.DataFrame, bars: int) -> pd.DataFrame:
    """The last ``bars`` rows with mplfinance's column names (Open, High, ...)."""
    if not isinstance(df, pd.DataFrame) or not isinstance(df.index, pd.DatetimeIndex):
        raise PriceDataError("render_chart needs an OHLC DataFrame with a DatetimeIndex: load it with load_csv")
    missing = [c for c in _OHLCV if c not in df.columns]
    if missing:
        raise PriceDataError(f"render_chart: OHLC frame lacks {', '.join(missing)}: load it with load_csv")
    if len(df) < 2:
        raise PriceDataError(f"render_chart needs at least 2 bars, got {len(df)}: pass a longer history")
    tail = df[list(_OHLCV)].iloc[-bars:].astype(float)
    return tail.rename(columns=str.capitalize)


def _moving_averages(df: pd.DataFrame, index: pd.DatetimeIndex, mav: tuple[int, ...]) -> list[tuple[pd.Series, str]]:
    lines = []
    for period, color in zip(mav, _MAV_COLORS):
        sma = df["close"].astype(float).rolling(period).mean().reindex(index)
        if sma.notna().any():  # mplfinance rejects an all-NaN line
            lines.append((sma, color))
    return lines
