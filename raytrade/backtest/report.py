"""A backtest report: PNG charts and ONE self-contained HTML file (images inlined, no network, no JS).

Charts are drawn on :class:`matplotlib.figure.Figure` objects with the Agg renderer and never through
``pyplot``, so writing reports is thread-safe and needs no display. Long series are reduced to at most
:data:`MAX_PLOT_POINTS` points per line (a min/max envelope per bucket, so spikes and drawdowns survive);
every metric is computed on the full series first.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from raytrade.domain import performance
from raytrade.domain.round_trips import RoundTrip

MAX_PLOT_POINTS = 5_000
MAX_PRICE_PANELS = 8
MAX_POSITION_LINES = 8
MAX_MARKERS = 2_000  # per symbol and marker kind
MAX_TABLE_TRADES = 200
MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
PERCENT_KEYS = frozenset(
    {
        "total_return",
        "cagr",
        "annual_volatility",
        "max_drawdown",
        "var_hist_95",
        "cvar_hist_95",
        "var_param_95",
        "cvar_param_95",
        "win_rate",
        "exposure",
    }
)
MONEY_KEYS = frozenset({"fees", "traded_notional", "expectancy", "start_equity", "end_equity"})
_DPI = 100
# (file, section id, heading, alt text)
CHARTS = (
    ("equity_drawdown.png", "equity", "Equity and drawdown", "Equity curve with the drawdown below it"),
    ("exposure_positions.png", "exposure", "Exposure and positions", "Gross and net exposure, positions per symbol"),
    ("trades_on_price.png", "trades-on-price", "Trades on price", "Prices per symbol with trade entries and exits"),
    ("monthly_returns.png", "monthly", "Monthly returns", "Heatmap of monthly returns by year and month"),
    ("rolling_sharpe.png", "rolling-sharpe", "Rolling Sharpe", "Rolling annualised Sharpe ratio"),
)


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows; arrays are sampled at ``ts_ns`` (int64 ns, UTC) unless stated."""

    title: str
    summary: Mapping[str, Any]  # flat metrics (performance.summarize) and run information, shown as a table
    ts_ns: np.ndarray
    equity: np.ndarray
    gross_exposure: np.ndarray  # sum of |position value|, in the equity's currency
    net_exposure: np.ndarray  # sum of signed position values
    positions: Mapping[str, np.ndarray]  # symbol -> signed position value at ts_ns, % of equity
    prices: Mapping[str, tuple[np.ndarray, np.ndarray]]  # symbol -> (ts_ns, close)
    trades: Sequence[RoundTrip]
    periods_per_year: float
    rolling_window: int  # periods in the rolling Sharpe window


def downsample(x: np.ndarray, y: np.ndarray, max_points: int = MAX_PLOT_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` of ``(x, y)`` for plotting: the first and last points plus each bucket's minimum
    and maximum, in their original order, so extremes stay visible."""
    n = len(y)
    if n <= max_points:
        return x, y
    buckets = max(1, (max_points - 2) // 2)
    size = math.ceil(n / buckets)
    padded = np.concatenate([y, np.full(buckets * size - n, y[-1])]).reshape(buckets, size)
    offsets = np.arange(buckets) * size
    padded = np.where(np.isnan(padded).all(axis=1, keepdims=True), 0.0, padded)  # all-NaN buckets: any index
    lo, hi = np.nanargmin(padded, axis=1), np.nanargmax(padded, axis=1)
    idx = np.unique(np.concatenate([[0, n - 1], np.minimum(offsets + lo, n - 1), np.minimum(offsets + hi, n - 1)]))
    return x[idx], y[idx]


def _times(ts_ns: np.ndarray) -> np.ndarray:
    return np.asarray(ts_ns, dtype=np.int64).astype("datetime64[ns]")


def _no_data(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _save(fig: Figure, path: Path) -> None:
    fig.savefig(path, format="png", dpi=_DPI)


def _equity_drawdown(data: ReportData, path: Path) -> None:
    fig = Figure(figsize=(11, 6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    equity = np.asarray(data.equity, dtype=np.float64)
    if len(equity) < 2:
        _no_data(top, "fewer than 2 equity points")
        _no_data(bottom, "")
    else:
        t = _times(data.ts_ns)
        top.plot(*downsample(t, equity), color="tab:blue", linewidth=1.0)
        top.set_ylabel("equity")
        if equity.min() > 0 and equity.max() / equity.min() > 20:
            top.set_yscale("log")  # a curve that grows 20-fold reads better in ratios
        top.set_title(data.title)
        top.grid(alpha=0.3)
        dd = (equity / np.maximum.accumulate(equity) - 1.0) * 100.0
        dx, dy = downsample(t, dd)
        bottom.fill_between(dx, dy, 0.0, color="tab:red", alpha=0.4, linewidth=0)
        bottom.plot(dx, dy, color="tab:red", linewidth=0.6)
        bottom.set_ylabel("drawdown %")
        bottom.grid(alpha=0.3)
    _save(fig, path)


def _exposure_positions(data: ReportData, path: Path) -> None:
    fig = Figure(figsize=(11, 6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    equity = np.asarray(data.equity, dtype=np.float64)
    if len(equity) < 1:
        _no_data(top, "no equity points")
    else:
        t = _times(data.ts_ns)
        with np.errstate(divide="ignore", invalid="ignore"):
            gross = np.asarray(data.gross_exposure, dtype=np.float64) / equity * 100.0
            net = np.asarray(data.net_exposure, dtype=np.float64) / equity * 100.0
        top.plot(*downsample(t, gross), label="gross", color="tab:purple", linewidth=1.0)
        top.plot(*downsample(t, net), label="net", color="tab:green", linewidth=1.0)
        top.axhline(0.0, color="0.5", linewidth=0.6)
        top.set_ylabel("% of equity")
        top.legend(loc="upper left")
        top.grid(alpha=0.3)
    symbols = sorted(data.positions)
    if not symbols or len(equity) < 1:
        _no_data(bottom, "no positions")
    else:
        t = _times(data.ts_ns)
        for symbol in symbols[:MAX_POSITION_LINES]:
            x, y = downsample(t, np.asarray(data.positions[symbol], dtype=np.float64))
            bottom.step(x, y, where="post", label=symbol, linewidth=1.0)
        shown = "" if len(symbols) <= MAX_POSITION_LINES else f" ({MAX_POSITION_LINES} of {len(symbols)} symbols)"
        bottom.set_title(f"position value per symbol{shown}", fontsize=10)
        bottom.set_ylabel("% of equity")
        bottom.legend(loc="upper left", fontsize=8, ncol=4)
        bottom.grid(alpha=0.3)
    _save(fig, path)


def _price_symbols(data: ReportData) -> list[str]:
    counts: dict[str, int] = {}
    for trade in data.trades:
        counts[trade.symbol] = counts.get(trade.symbol, 0) + 1
    with_prices = [s for s in data.prices if len(data.prices[s][1]) > 0]
    return sorted(with_prices, key=lambda s: (-counts.get(s, 0), s))[:MAX_PRICE_PANELS]


def _every(values: list[Any], limit: int) -> list[Any]:
    if len(values) <= limit:
        return values
    step = len(values) / limit
    return [values[int(i * step)] for i in range(limit)]


def _trades_on_price(data: ReportData, path: Path) -> None:
    symbols = _price_symbols(data)
    fig = Figure(figsize=(11, 1.0 + 2.6 * max(1, len(symbols))), layout="constrained")
    axes = fig.subplots(max(1, len(symbols)), 1, squeeze=False)[:, 0]
    if not symbols:
        _no_data(axes[0], "no price data")
    for ax, symbol in zip(axes, symbols, strict=False):
        ts, close = data.prices[symbol]
        ax.plot(*downsample(_times(ts), np.asarray(close, dtype=np.float64)), color="0.35", linewidth=0.8)
        trades = [t for t in data.trades if t.symbol == symbol]
        for side, marker, color in (("LONG", "^", "tab:green"), ("SHORT", "v", "tab:red")):
            entries = _every([t for t in trades if t.side == side], MAX_MARKERS)
            if entries:
                ax.scatter(
                    _times(np.array([t.entry_ts for t in entries], dtype=np.int64)),
                    [float(t.entry_price) for t in entries],
                    marker=marker,
                    color=color,
                    s=36,
                    zorder=3,
                    label=f"{side.lower()} entry",
                )
        exits = _every(trades, MAX_MARKERS)
        if exits:
            ax.scatter(
                _times(np.array([t.exit_ts for t in exits], dtype=np.int64)),
                [float(t.exit_price) for t in exits],
                marker="x",
                color="black",
                s=30,
                zorder=3,
                label="exit",
            )
            ax.legend(loc="upper left", fontsize=8)
        ax.set_title(f"{symbol}: {len(trades)} trades", fontsize=10)
        ax.grid(alpha=0.3)
    _save(fig, path)


def _monthly(data: ReportData, path: Path) -> None:
    months = performance.monthly_returns(data.ts_ns, data.equity) if len(data.equity) >= 2 else []
    years = sorted({y for y, _, _ in months})
    fig = Figure(figsize=(11, 1.4 + 0.4 * max(1, len(years))), layout="constrained")
    ax = fig.subplots()
    if not months:
        _no_data(ax, "fewer than 2 equity points")
        _save(fig, path)
        return
    grid = np.full((len(years), 12), np.nan)
    row = {y: i for i, y in enumerate(years)}
    for year, month, value in months:
        grid[row[year], month - 1] = value * 100.0
    finite = np.abs(grid[np.isfinite(grid)])
    limit = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    image = ax.imshow(grid, cmap="RdYlGn", vmin=-limit, vmax=limit, aspect="auto")
    for (i, j), value in np.ndenumerate(grid):
        if math.isfinite(value):
            ax.text(j, i, f"{value:.1f}%", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(12), MONTH_NAMES)
    ax.set_yticks(range(len(years)), [str(y) for y in years])
    fig.colorbar(image, ax=ax, label="return %")
    _save(fig, path)


def _rolling_sharpe(data: ReportData, path: Path) -> None:
    fig = Figure(figsize=(11, 3.5), layout="constrained")
    ax = fig.subplots()
    returns = performance.simple_returns(data.equity)
    window = data.rolling_window
    if window < 2 or len(returns) < window:
        _no_data(ax, f"fewer returns ({len(returns)}) than the window ({window})")
    else:
        rolling = performance.rolling_sharpe(returns, window, data.periods_per_year)
        rolling[~np.isfinite(rolling)] = np.nan
        ax.plot(*downsample(_times(data.ts_ns)[1:], rolling), color="tab:blue", linewidth=0.9)
        ax.axhline(0.0, color="0.5", linewidth=0.6)
        ax.set_ylabel(f"Sharpe ({window} periods)")
        ax.grid(alpha=0.3)
    _save(fig, path)


def _duration(seconds: float) -> str:
    s = round(seconds)
    days, rest = divmod(s, 86_400)
    return f"{days}d {rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"


def format_value(key: str, value: Any) -> str:
    """How the report shows a summary value: None as "n/a", fractions under ``PERCENT_KEYS`` as percentages
    (2 places), money with thousands separators (2 places), ``*_s`` durations as seconds and d hh:mm:ss,
    other floats to 4 places, integers with thousands separators."""
    if value is None:
        return "n/a"
    if isinstance(value, bool | str):
        return str(value)
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float | np.floating):
        v = float(value)
        if not math.isfinite(v):
            return str(v)
        if key in PERCENT_KEYS:
            return f"{v:.2%}"
        if key in MONEY_KEYS:
            return f"{v:,.2f}"
        if key.endswith("_s"):
            return f"{v:,.0f} s ({_duration(v)})"
        return f"{v:,.4f}"
    return str(value)


def _iso(ts_ns: int) -> str:
    return str(np.datetime_as_string(np.datetime64(ts_ns, "ns"), unit="s", timezone="UTC"))


def _trade_rows(trades: Sequence[RoundTrip]) -> list[str]:
    rows = []
    for i, t in enumerate(trades[:MAX_TABLE_TRADES], start=1):
        cells = (
            str(i),
            t.symbol,
            t.side,
            format(t.qty.normalize(), "f"),
            _iso(t.entry_ts),
            _iso(t.exit_ts),
            format(t.entry_price, ",.8g"),
            format(t.exit_price, ",.8g"),
            format(t.pnl, ",.2f"),
            format(t.fees, ",.2f"),
            _duration(t.holding_ns / 1e9),
        )
        rows.append('<tr class="trade">' + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return rows


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.key, th.key { text-align: left; }
img { max-width: 100%; }
section { margin-bottom: 2em; }
"""


def render_html(data: ReportData, images: Mapping[str, bytes]) -> str:
    """The report page: a metrics table, each chart inlined as a base64 PNG, and the first trades."""
    title = html.escape(data.title)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{title}</title><style>{_CSS}</style></head><body>",
        f"<h1>{title}</h1>",
        '<section id="summary"><h2>Summary</h2><table class="metrics">',
        '<tr><th class="key">metric</th><th>value</th></tr>',
    ]
    for key, value in data.summary.items():
        cell = html.escape(format_value(str(key), value))
        parts.append(f'<tr><td class="key">{html.escape(str(key))}</td><td>{cell}</td></tr>')
    parts.append("</table></section>")
    for name, section, heading, alt in CHARTS:
        encoded = base64.b64encode(images[name]).decode("ascii")
        parts.append(
            f'<section id="{section}"><h2>{html.escape(heading)}</h2>'
            f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}"></section>'
        )
    n = len(data.trades)
    shown = min(n, MAX_TABLE_TRADES)
    parts.append('<section id="trades"><h2>Trades</h2>')
    parts.append(
        f"<p>{n:,} round trips in total; showing the first {shown:,}. "
        "Positions still open at the end are not round trips and are not listed.</p>"
    )
    if n:
        header = ["#", "symbol", "side", "qty", "entry (UTC)", "exit (UTC)", "entry price", "exit price", "pnl (net)"]
        header += ["fees", "held"]
        parts.append('<table class="trades"><tr>' + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
        parts.extend(_trade_rows(data.trades))
        parts.append("</table>")
    parts.append("</section></body></html>")
    return "\n".join(parts)


def write_report(out_dir: Path, data: ReportData) -> dict[str, Path]:
    """Write the five PNG charts and ``report.html`` (which inlines them) into ``out_dir``; return name -> path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = len(data.equity)
    for name, values in (("ts_ns", data.ts_ns), ("gross_exposure", data.gross_exposure)):
        if len(values) != n:
            raise ValueError(f"{name} has {len(values)} points, equity {n}")
    if len(data.net_exposure) != n:
        raise ValueError(f"net_exposure has {len(data.net_exposure)} points, equity {n}")
    drawers = {
        "equity_drawdown.png": _equity_drawdown,
        "exposure_positions.png": _exposure_positions,
        "trades_on_price.png": _trades_on_price,
        "monthly_returns.png": _monthly,
        "rolling_sharpe.png": _rolling_sharpe,
    }
    paths: dict[str, Path] = {}
    images: dict[str, bytes] = {}
    for name, draw in drawers.items():
        path = out_dir / name
        draw(data, path)
        paths[name] = path
        images[name] = path.read_bytes()
    report = out_dir / "report.html"
    report.write_text(render_html(data, images), encoding="utf-8")
    return {"report.html": report, **paths}
