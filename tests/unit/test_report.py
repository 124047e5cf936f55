"""The HTML backtest report: valid PNGs, inlined byte for byte, formatted metrics, no network references."""

from __future__ import annotations

import base64
import html
import re
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image as mpimg

from raytrade.backtest.report import CHARTS, MAX_PLOT_POINTS, ReportData, downsample, format_value, write_report
from raytrade.domain import performance
from raytrade.domain.orders import Fill, Side

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
START_NS = int(np.datetime64("2024-01-01T00:00", "ns").astype(np.int64))
HOUR_NS = 3_600 * 10**9
RUN_NAME = "<b>synthetic & co</b>"


def synthetic(n: int, symbols: tuple[str, ...], trades_per_symbol: int, step_ns: int = HOUR_NS) -> ReportData:
    rng = np.random.default_rng(42)
    ts = START_NS + np.arange(n, dtype=np.int64) * step_ns
    equity = 10_000.0 * np.cumprod(1.0 + rng.normal(0.2 / n, 0.2 / np.sqrt(n), n))
    prices = {s: (ts, 100.0 * np.exp(np.cumsum(rng.normal(0.0, 2e-3, n)))) for s in symbols}
    positions = {s: np.where((np.arange(n) // max(1, n // 10)) % 2 == 0, 5.0, -3.0) for s in symbols}
    fills = []
    for s in symbols:
        at = np.linspace(0, n - 2, 2 * trades_per_symbol).astype(int)
        for k, i in enumerate(at):
            side = (Side.BUY, Side.SELL)[k % 2] if (k // 2) % 2 == 0 else (Side.SELL, Side.BUY)[k % 2]
            price = Decimal(str(round(float(prices[s][1][i]), 4)))
            fills.append(Fill(f"{s}{k}", f"o{s}{k}", s, side, Decimal(2), price, Decimal("0.05"), int(ts[i])))
    trades = performance.round_trips(fills)
    gross = np.abs(equity * 0.5)
    ppy = performance.periods_per_year(performance.Calendar.CRYPTO, step_ns / 1e9)
    summary = {
        "run": RUN_NAME,
        **performance.summarize(
            ts, equity, ppy, trades, performance.traded_notional(fills), performance.total_fees(fills), gross
        ),
    }
    return ReportData(
        title="Synthetic <report>",
        summary=summary,
        ts_ns=ts,
        equity=equity,
        gross_exposure=gross,
        net_exposure=equity * 0.2,
        positions=positions,
        prices=prices,
        trades=trades,
        periods_per_year=ppy,
        rolling_window=48,
    )


def check_report(paths: dict[str, Path], data: ReportData) -> str:
    assert set(paths) == {"report.html"} | {name for name, *_ in CHARTS}
    page = paths["report.html"].read_text(encoding="utf-8")
    for name, section, _, _ in CHARTS:
        raw = paths[name].read_bytes()
        assert raw[:8] == PNG_MAGIC, name
        pixels = mpimg.imread(paths[name])
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100, name
        found = re.search(rf'<section id="{section}">.*?<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', page)
        assert found is not None, section
        assert found.group(1).strip()
        assert base64.b64decode(found.group(2)) == raw, name
    for key, value in data.summary.items():
        assert f"<td>{html.escape(format_value(key, value))}</td>" in page, key
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?!data:)[a-z]*:?//""", page, re.IGNORECASE)
    assert "<script" not in page.lower()
    assert html.escape(RUN_NAME) in page and RUN_NAME not in page
    assert "Synthetic &lt;report&gt;" in page
    return page


def test_report_with_trades(tmp_path: Path) -> None:
    data = synthetic(2_000, ("AAA", "BBB"), trades_per_symbol=130)
    assert len(data.trades) == 260
    page = check_report(write_report(tmp_path / "out", data), data)
    assert page.count('<tr class="trade">') == 200
    assert "260 round trips in total; showing the first 200." in page
    # Numbers as formatted: a percentage, a 4-place ratio, money, an integer, a duration.
    s = data.summary
    assert f"<td>{s['total_return']:.2%}</td>" in page
    assert f"<td>{s['sharpe']:,.4f}</td>" in page
    assert f"<td>{s['fees']:,.2f}</td>" in page
    assert "<td>260</td>" in page
    assert format_value("max_drawdown_duration_s", 90_061.0) == "90,061 s (1d 01:01:01)"
    assert format_value("sharpe", None) == "n/a"
    assert format_value("total_return", 0.1234) == "12.34%"
    first = data.trades[0]
    assert f"<td>{first.symbol}</td><td>{first.side}</td><td>2</td>" in page
    assert f"<td>{first.pnl:,.2f}</td>" in page


def test_report_without_trades_one_symbol(tmp_path: Path) -> None:
    data = synthetic(300, ("ONLY",), trades_per_symbol=0)
    assert data.trades == []
    page = check_report(write_report(tmp_path, data), data)
    assert page.count('<tr class="trade">') == 0
    assert "0 round trips in total; showing the first 0." in page
    assert '<table class="trades">' not in page
    assert data.summary["trades"] == 0 and data.summary["win_rate"] is None
    assert "<td>n/a</td>" in page


def test_report_on_a_million_points_is_fast(tmp_path: Path) -> None:
    data = synthetic(1_000_000, ("BTC",), trades_per_symbol=50, step_ns=60 * 10**9)
    began = time.perf_counter()
    paths = write_report(tmp_path, data)
    elapsed = time.perf_counter() - began
    check_report(paths, data)
    assert elapsed < 15.0, f"report took {elapsed:.1f} s"


def test_downsample_keeps_ends_and_extremes() -> None:
    x = np.arange(1_000_000)
    y = np.sin(x / 5_000.0)
    y[123_457] = 9.0
    y[654_321] = -9.0
    dx, dy = downsample(x, y)
    assert len(dx) <= MAX_PLOT_POINTS
    assert dx[0] == 0 and dx[-1] == 999_999
    assert np.all(np.diff(dx) > 0)
    assert 123_457 in dx and 654_321 in dx
    assert dy.max() == 9.0 and dy.min() == -9.0
    short_x, short_y = downsample(x[:10], y[:10])
    assert len(short_x) == 10 and np.array_equal(short_y, y[:10])


def test_report_rejects_misaligned_arrays(tmp_path: Path) -> None:
    data = synthetic(50, ("AAA",), trades_per_symbol=0)
    bad = ReportData(**{**data.__dict__, "gross_exposure": data.gross_exposure[:-1]})
    with pytest.raises(ValueError, match="gross_exposure"):
        write_report(tmp_path, bad)
