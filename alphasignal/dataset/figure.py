"""The reusable figure behind ``ChartRenderer``: built once by ``mpf.plot``, then refilled per chart.

``Template.build`` lets mplfinance lay out a figure for a (style, bar count,
panels, size) combination from placeholder data. ``Template.update`` then puts
one chart's data into it: candle collections, line data, volume and MACD bars
(one collection each instead of a patch per bar), the y limits, the date
labels and the volume exponent -- each computed the way ``mpf.plot`` computes
them, so the picture matches ``chart.render.render_chart``'s.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .render import ChartData, RenderSpec

DPI = 100
BB_COLOR, RSI_COLOR, MACD_COLOR, SIGNAL_COLOR = "#5470c6", "#7b3f9e", "#1f77b4", "#ff7f0e"


def _date_labels() -> Any:
    """A matplotlib Formatter for integer x positions that writes the chart's dates, as mplfinance's
    IntegerIndexDateTimeFormatter does; ``set_dates`` gives it each chart's dates."""
    import pandas as pd
    from matplotlib.ticker import Formatter

    class DateLabels(Formatter):
        def __init__(self) -> None:
            self.stamps: list = []
            self.fmt = "%b %d"

        def set_dates(self, dates_ns: np.ndarray) -> None:
            stamps = pd.DatetimeIndex(dates_ns)
            self.stamps, self.fmt = list(stamps), _date_format(stamps)

        def __call__(self, x: float, pos: Optional[int] = None) -> str:
            i = int(np.round(x))
            return self.stamps[i].strftime(self.fmt) if 0 <= i < len(self.stamps) else ""

    return DateLabels()


def _date_format(stamps: Any) -> str:
    """mplfinance's choice: intraday '%b %d, %H:%M' (or '%H:%M' within a day), else '%b %d' / '%Y-%b-%d'."""
    days = (stamps[-1] - stamps[0]).total_seconds() / 86400 / len(stamps)
    if days < 0.33:
        return "%b %d, %H:%M" if stamps[-1].date() != stamps[0].date() else "%H:%M"
    return "%Y-%b-%d" if stamps[-1].year != stamps[0].year else "%b %d"


@dataclass
class Template:
    """A laid-out figure and the artists that change per chart."""

    fig: Any
    rc: dict
    main: Any
    vol: Any
    rsi: Any
    macd: Any
    wicks: Any
    bodies: Any
    lines: dict[str, Any]
    columns: dict[str, Any]  # volume and MACD histogram bars
    fill: Any
    widths: dict[str, float]
    colors: dict[str, Any]
    margins: tuple[float, float]
    labels: Any  # the date formatter of every panel's x axis

    @classmethod
    def build(cls, spec: RenderSpec, style: str, bars: int, volume: bool, title: bool) -> "Template":
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        from ..chart.render import import_plotting, style_for

        mpf, plt = import_plotting()
        mpf_style = style_for(mpf, style)
        widths: dict[str, float] = {}
        extra: dict[str, Any] = {"title": "X"} if title else {}
        if spec.mav:
            extra["mav"] = tuple(spec.mav)
        addplots = _dummy_addplots(mpf, spec, bars, volume)
        if addplots:
            extra["addplot"] = addplots
        with plt.rc_context():
            fig, axes = mpf.plot(
                _dummy_frame(bars),
                type="candle",
                style=mpf_style,
                volume=volume,
                figsize=(spec.width / DPI, spec.height / DPI),
                returnfig=True,
                closefig=False,
                return_width_config=widths,
                warn_too_much_data=bars + 1,
                **extra,
            )
            rc = dict(plt.rcParams)
        plt.close(fig)  # out of pyplot's registry, so no user's figure list grows ...
        FigureCanvasAgg(fig)  # ... and drawn on a canvas of its own
        return cls._assemble(fig, axes, rc, spec, style, volume, widths, bars)

    @classmethod
    def _assemble(
        cls, fig: Any, axes: list, rc: dict, spec: RenderSpec, style: str, volume: bool, widths: dict, bars: int
    ) -> "Template":
        from matplotlib.collections import LineCollection, PolyCollection

        panels = axes[0::2]  # primary axes per panel; the secondaries are unused
        order = iter(panels[1:])
        main = panels[0]
        vol = next(order) if volume else None
        rsi = next(order) if spec.rsi else None
        macd = next(order) if spec.macd else None
        wicks = next(c for c in main.collections if isinstance(c, LineCollection))
        bodies = next(c for c in main.collections if isinstance(c, PolyCollection))
        fill = None
        if spec.bollinger:
            fill = main.add_collection(
                PolyCollection([], facecolors=BB_COLOR, alpha=0.08, linewidths=0, zorder=0.5), autolim=False
            )
        columns = {
            name: _bars_collection(ax, lw)
            for name, ax, lw in (("volume", vol, widths["volume_linewidth"]), ("macd_hist", macd, 0))
            if ax is not None
        }
        return cls(
            fig, rc, main, vol, rsi, macd, wicks, bodies, _lines(spec, main, rsi, macd), columns, fill, widths,
            _market_colors(style), main.margins(), _fix_x_axes(panels, bars),
        )

    def close(self) -> None:
        self.fig.clear()  # drop the artists now rather than at the next garbage collection

    # ----------------------------------------------------------- per chart

    def update(self, chart: ChartData) -> None:
        o, h, l, c, v = (np.asarray(chart.ohlcv[:, i], dtype=np.float64) for i in range(5))
        x = np.arange(len(o), dtype=np.float64)
        self._candles(x, o, h, l, c)
        lows, highs = [l], [h]
        for name, line in self.lines.items():
            values = chart.overlays.get(name, np.full(len(x), np.nan))
            line.set_data(x, values)
            if line.axes is self.main:
                lows.append(values)
                highs.append(values)
        if self.fill is not None:
            self._fill(x, chart.overlays["bb_lower"], chart.overlays["bb_upper"])
        self._limits(np.concatenate(lows), np.concatenate(highs))
        if self.vol is not None:
            self._volume(x, o, c, v)
        if self.macd is not None:
            self._macd(x, chart.overlays)
        self.labels.set_dates(chart.dates)
        if chart.title:
            self.fig.suptitle(chart.title, va="center")

    def _candles(self, x: np.ndarray, o: np.ndarray, h: np.ndarray, l: np.ndarray, c: np.ndarray) -> None:
        up = o < c  # mplfinance: equal open and close draws in the down colour
        half = self.widths["candle_width"] / 2.0
        top, bottom = np.maximum(o, c), np.minimum(o, c)
        segments = np.concatenate([_segments(x, l, bottom), _segments(x, h, top)])
        self.wicks.set_segments(segments)
        self.wicks.set_color(np.concatenate([self._pick("wick", up)] * 2))
        self.bodies.set_verts(_boxes(x, half, o, c))
        self.bodies.set_facecolor(self._pick("candle", up))
        self.bodies.set_edgecolor(self._pick("edge", up))

    def _pick(self, key: str, up: np.ndarray) -> np.ndarray:
        colors = self.colors[key]
        return np.where(up[:, None], colors[0], colors[1])

    def _fill(self, x: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> None:
        ok = np.isfinite(lower) & np.isfinite(upper)
        if not ok.any():
            self.fill.set_verts([])
            return
        xs = x[ok]
        poly = np.column_stack([np.concatenate([xs, xs[::-1]]), np.concatenate([lower[ok], upper[ok][::-1]])])
        self.fill.set_verts([poly])

    def _limits(self, lows: np.ndarray, highs: np.ndarray) -> None:
        lo, hi = float(np.nanmin(lows)), float(np.nanmax(highs))
        pad = self.margins[1] * (hi - lo) if hi > lo else max(abs(hi) * 0.01, 1e-9)
        self.main.set_ylim(lo - pad, hi + pad)

    def _volume(self, x: np.ndarray, o: np.ndarray, c: np.ndarray, v: np.ndarray) -> None:
        up = _volume_up(o, c, self.colors["vcdopcod"])
        half = self.widths["volume_width"] / 2.0
        bars = self.columns["volume"]
        bars.set_verts(_boxes(x, half, np.zeros_like(v), v))
        bars.set_facecolor(self._pick("volume", up))
        bars.set_edgecolor(self._pick("vcedge", up))
        bars.set_alpha(self.colors["volume_alpha"])
        top = 1.1 * float(np.nanmax(v))
        self.vol.set_ylim(0.3 * float(np.nanmin(v)), top)
        self.vol.set_ylabel("Volume" + _volume_exponent(self.vol, top, self.rc))

    def _macd(self, x: np.ndarray, overlays: dict[str, np.ndarray]) -> None:
        hist = overlays.get("macd_hist", np.full(len(x), np.nan))
        bars = self.columns["macd_hist"]
        shown = np.nan_to_num(hist)
        bars.set_verts(_boxes(x, 0.4, np.zeros_like(shown), shown))
        bars.set_facecolor(np.where((shown >= 0)[:, None], self.colors["volume"][0], self.colors["volume"][1]))
        values = np.concatenate([hist, overlays.get("macd", hist), overlays.get("macd_signal", hist), [0.0]])
        lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
        pad = 0.05 * (hi - lo) if hi > lo else 1.0
        self.macd.set_ylim(lo - pad, hi + pad)


def _lines(spec: RenderSpec, main: Any, rsi: Any, macd: Any) -> dict[str, Any]:
    """The template's Line2D per overlay name (mplfinance drew them in this order)."""
    names = [f"sma{n}" for n in spec.mav] + (["bb_upper", "bb_lower"] if spec.bollinger else [])
    lines = dict(zip(names, main.lines))
    if rsi is not None:
        lines["rsi"] = rsi.lines[0]
        for level in (30, 70):
            rsi.axhline(level, color="#999999", linewidth=0.6, linestyle="--")
    if macd is not None:
        lines["macd"], lines["macd_signal"] = macd.lines[0], macd.lines[1]
    return lines


def _bars_collection(ax: Any, linewidth: float) -> Any:
    """One PolyCollection in place of mplfinance's patch-per-bar (far cheaper to draw)."""
    from matplotlib.collections import PolyCollection

    for patch in list(ax.patches):
        patch.remove()
    return ax.add_collection(PolyCollection([], linewidths=linewidth), autolim=False)


def _fix_x_axes(panels: list, bars: int) -> Any:
    """Locate the x ticks once and give every panel the date formatter; returns the formatter.

    The x range depends only on the bar count, so the ticks are the same for every chart of a
    template. The x labels are empty (mplfinance sets none): pinning them skips measuring every
    tick label to place them, a tenth of the drawing time.
    """
    from matplotlib.ticker import FixedLocator

    main = panels[0]
    main.set_xlim(*_x_limits(bars, main.margins()[0]))
    ticks = FixedLocator(main.xaxis.get_majorticklocs())
    labels = _date_labels()
    for ax in panels:
        ax.xaxis.set_major_locator(ticks)
        ax.xaxis.set_major_formatter(labels)
        ax.xaxis.set_label_coords(0.5, 0.0)
    return labels


def _x_limits(bars: int, margin: float) -> tuple[float, float]:
    """mplfinance's x range for ``bars`` bars (one average bar spacing beyond each end), with the axes margin."""
    step = (bars - 1) / bars
    lo, hi = -step, bars - 1 + step
    return lo - margin * (hi - lo), hi + margin * (hi - lo)


def _segments(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.stack([np.column_stack([x, a]), np.column_stack([x, b])], axis=1)


def _boxes(x: np.ndarray, half: float, bottom: np.ndarray, top: np.ndarray) -> np.ndarray:
    left, right = x - half, x + half
    return np.stack(
        [np.column_stack([left, bottom]), np.column_stack([left, top]),
         np.column_stack([right, top]), np.column_stack([right, bottom])],
        axis=1,
    )


def _volume_up(o: np.ndarray, c: np.ndarray, use_prev_close: bool) -> np.ndarray:
    if not use_prev_close:
        return o < c
    return np.concatenate([[o[0] < c[0]], c[:-1] < c[1:]])


def _volume_exponent(ax: Any, top: float, rc: dict) -> str:
    """mplfinance's volume axis: a fixed power of ten in the label once volumes reach 10**6."""
    low, high = rc["axes.formatter.limits"]
    ax.yaxis.offsetText.set_visible(False)
    if low < high:
        for power in (5, 4, 3, 2, 1):
            exp = high * power
            if top >= 10.0**exp:
                ax.ticklabel_format(useOffset=False, scilimits=(exp, exp), axis="y")
                return "  $10^{" + str(exp) + "}$"
    formatter = ax.yaxis.get_major_formatter()
    formatter.set_powerlimits((low, high))
    formatter.set_useOffset(rc["axes.formatter.useoffset"])
    return ""


def _market_colors(style: str) -> dict[str, Any]:
    """Up/down RGBA colours per element, as mplfinance derives them from the style."""
    import mplfinance as mpf
    from matplotlib.colors import to_rgba

    mc = mpf.make_mpf_style(base_mpf_style=style)["marketcolors"]
    alpha = mc.get("alpha", 1.0)

    def pair(key: str, a: Optional[float] = None) -> np.ndarray:
        return np.array([to_rgba(mc[key]["up"], a), to_rgba(mc[key]["down"], a)])

    volume = pair("volume")
    if mc["volume"] == mc["vcedge"]:
        vcedge = np.array([(*_darker(rgba[:3], 0.9), 1.0) for rgba in volume])
    else:
        vcedge = pair("vcedge")
    return {
        "candle": pair("candle", alpha), "edge": pair("edge"), "wick": pair("wick"),
        "volume": volume, "vcedge": vcedge, "vcdopcod": bool(mc.get("vcdopcod", False)),
        "volume_alpha": mc.get("volume_alpha", 1.0),
    }


def _darker(rgb: tuple, amount: float) -> tuple:
    h, l, s = colorsys.rgb_to_hls(*rgb)
    return colorsys.hls_to_rgb(h, max(0.0, min(1.0, amount * l)), s)


def _dummy_frame(bars: int) -> Any:
    import pandas as pd

    steps = np.sin(np.arange(bars) / 5.0) + 10.0
    index = pd.bdate_range("2020-01-01", periods=bars)
    return pd.DataFrame(
        {"Open": steps, "High": steps + 1, "Low": steps - 1, "Close": steps + 0.5, "Volume": np.full(bars, 1e6)},
        index=index,
    )


def _dummy_addplots(mpf: Any, spec: RenderSpec, bars: int, volume: bool) -> list:
    ramp = np.linspace(9.0, 11.0, bars)
    plots = []
    if spec.bollinger:
        plots += [mpf.make_addplot(ramp + 1, color=BB_COLOR, width=0.8, secondary_y=False),
                  mpf.make_addplot(ramp - 1, color=BB_COLOR, width=0.8, secondary_y=False)]
    panel = 2 if volume else 1
    if spec.rsi:
        plots.append(mpf.make_addplot(np.linspace(30, 70, bars), panel=panel, color=RSI_COLOR, width=1.0,
                                      ylabel="RSI", ylim=(0, 100), secondary_y=False))
        panel += 1
    if spec.macd:
        wave = np.sin(np.arange(bars) / 4.0)
        plots += [mpf.make_addplot(wave, panel=panel, color=MACD_COLOR, width=1.0, ylabel="MACD", secondary_y=False),
                  mpf.make_addplot(wave * 0.8, panel=panel, color=SIGNAL_COLOR, width=1.0, secondary_y=False),
                  mpf.make_addplot(wave * 0.2, panel=panel, type="bar", width=0.7, secondary_y=False)]
    return plots

