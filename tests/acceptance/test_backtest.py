"""``raytrade backtest`` on real Binance 1-minute bars, through the CLI: SmaCross trades exactly as an
independent plain loop, the report holds its plots and numbers, and bad input gets one clear line."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import math
import re
import subprocess
import sys
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import pytest

from raytrade.backtest.report import format_value

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "crypto_1m_2023-01"
RAYTRADE = str(Path(sys.executable).parent / "raytrade")
INSTRUMENTS = {
    "BTCUSDT": ("0.01", "0.00001"),
    "ETHUSDT": ("0.01", "0.0001"),
    "SOLUSDT": ("0.01", "0.01"),
    "XRPUSDT": ("0.0001", "1"),
}
TIE = 1e-9

pytestmark = pytest.mark.skipif(not DATA.exists(), reason=f"real market data not found at {DATA}")


def write_config(path: Path, symbols: list[str], strategy: str, extra: str = "") -> Path:
    lines = ["kafka: {partitions: 2}", "instruments:"]
    for s in symbols:
        price, size = INSTRUMENTS[s]
        lines.append(f"  - {{symbol: {s}, price_increment: '{price}', size_increment: '{size}'}}")
    lines += [
        "strategies:",
        f"  - {strategy}",
        "model: null",
        "risk: {max_order_notional: '1000000', max_position_notional: '1000000', max_gross_exposure: '10000000',"
        " max_orders_per_s: 100}",
        "execution: {initial_cash: '1000000', fee_bps: '0', maker_fee_bps: '0'}",
        "backtest: {fills: next_bar_open}",
        extra,
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def backtest(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RAYTRADE, "backtest", "--no-progress", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def plain_sma_cross(
    file: Path, fast: int, slow: int, size: Decimal | None, notional: Decimal | None, inc: str
) -> list[tuple[int, str, Decimal, Decimal]]:
    """The reference: decide at each bar's close, fill at the next bar's open; (fill bar start, side, price, qty)."""
    rows = list(csv.DictReader(file.open()))
    closes: list[float] = []
    side = 0
    position = Decimal(0)
    trades = []
    pending: tuple[str, Decimal] | None = None
    for row in rows:
        start = int(datetime_ns(row["timestamp"]))
        if pending is not None:  # the order decided on the previous bar fills at this bar's open
            trades.append(
                (
                    start,
                    pending[0],
                    Decimal(row["open"]).quantize(Decimal(INSTRUMENT_PRICE[file.stem.split("_")[0]])),
                    pending[1],
                )
            )
            pending = None
        closes.append(float(row["close"]))
        if len(closes) < slow:
            continue
        s = math.fsum(closes[-slow:]) / slow
        f = math.fsum(closes[-fast:]) / fast
        rel = 0 if abs(f - s) <= TIE * abs(s) else (1 if f > s else -1)
        if rel == 0:
            continue
        previous, side = side, rel
        if previous in (0, rel):
            continue
        if rel > 0:
            if size is not None:
                target = size
            else:
                assert notional is not None
                target = (notional / Decimal(repr(float(row["close"])))).quantize(Decimal(inc), rounding=ROUND_DOWN)
        else:
            target = Decimal(0)
        delta = target - position
        if delta:
            pending = ("BUY" if delta > 0 else "SELL", abs(delta))
            position = target
    return trades


INSTRUMENT_PRICE = {s: p for s, (p, _) in INSTRUMENTS.items()}


def datetime_ns(text: str) -> int:
    from datetime import UTC, datetime

    t = datetime.fromisoformat(text)
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp()) * 10**9


def fills_of(out: Path) -> dict[str, list[tuple[int, str, Decimal, Decimal]]]:
    by_symbol: dict[str, list[tuple[int, str, Decimal, Decimal]]] = {}
    for r in csv.DictReader((out / "fills.csv").open()):
        by_symbol.setdefault(r["symbol"], []).append((int(r["ts"]), r["side"], Decimal(r["price"]), Decimal(r["qty"])))
    return by_symbol


def test_sma_cross_on_real_btc_trades_exactly_as_a_plain_loop(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "c.yaml",
        ["BTCUSDT"],
        "{id: sma, path: 'raytrade.strategy.builtins:SmaCross', params: {fast: 10, slow: 30, qty: '0.1'}}",
    )
    out = tmp_path / "out"
    r = backtest("--config", str(cfg), "--data", str(DATA / "BTCUSDT_1m.csv"), "--output", str(out))
    assert r.returncode == 0, r.stderr
    expected = plain_sma_cross(DATA / "BTCUSDT_1m.csv", 10, 30, Decimal("0.1"), None, "0.00001")
    got = fills_of(out)["BTCUSDT"]
    assert len(expected) > 500 and got == expected  # same bars, sides, prices and quantities
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["reconciliation"]["ok"] and summary["fees"] == "0E-8") or Decimal(summary["fees"]) == 0
    # P&L of the plain loop: every round trip's price difference, plus the open position at the last close.
    cash = sum((p * q if side == "SELL" else -p * q) for _, side, p, q in expected)
    held = sum((q if side == "BUY" else -q) for _, side, _, q in expected)
    last_close = Decimal(list(csv.DictReader((DATA / "BTCUSDT_1m.csv").open()))[-1]["close"])
    assert Decimal(summary["net_pnl"]) == cash + held * last_close
    assert summary["metrics"]["trades"] == sum(1 for _, side, _, _ in expected if side == "SELL")
    assert (
        summary["bars"] == 40_000
        and summary["calendar"] == "24/7"
        and summary["metrics"]["periods_per_year"] == 525_600
    )


def test_sma_cross_on_the_four_symbol_portfolio_matches_per_symbol(tmp_path: Path) -> None:
    symbols = list(INSTRUMENTS)
    cfg = write_config(
        tmp_path / "c.yaml",
        symbols,
        "{id: sma, path: 'raytrade.strategy.builtins:SmaCross', params: {fast: 10, slow: 30, notional: '10000'}}",
    )
    out = tmp_path / "out"
    r = backtest("--config", str(cfg), "--data", str(DATA), "--output", str(out))
    assert r.returncode == 0, r.stderr
    got = fills_of(out)
    for s in symbols:
        expected = plain_sma_cross(DATA / f"{s}_1m.csv", 10, 30, None, Decimal(10_000), INSTRUMENTS[s][1])
        assert got[s] == expected, s
    summary = json.loads((out / "summary.json").read_text())
    assert summary["bars"] == 160_000 and summary["reconciliation"]["ok"]


def test_the_report_holds_its_plots_and_numbers(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "c.yaml",
        ["BTCUSDT"],
        "{id: sma, path: 'raytrade.strategy.builtins:SmaCross', params: {fast: 10, slow: 30, qty: '0.1'}}",
        "",
    )
    out = tmp_path / "out"
    assert (
        backtest(
            "--config", str(cfg), "--data", str(DATA / "BTCUSDT_1m.csv"), "--output", str(out), "--end", "2023-01-08"
        ).returncode
        == 0
    )
    page = (out / "report.html").read_text()
    summary = json.loads((out / "summary.json").read_text())
    images = re.findall(r'<img[^>]+src="data:image/png;base64,([^"]+)"', page)
    pngs = sorted(out.glob("*.png"))
    assert len(images) == len(pngs) == 5
    assert {hashlib.sha256(base64.b64decode(i)).hexdigest() for i in images} == {
        hashlib.sha256(p.read_bytes()).hexdigest() for p in pngs
    }
    for key in ("sharpe", "sortino", "max_drawdown", "total_return", "trades", "win_rate"):
        assert format_value(key, summary["metrics"][key]) in page, key
    assert "http://" not in page and "https://" not in page and "<script" not in page.lower()
    trades = list(csv.DictReader((out / "trades.csv").open()))
    assert len(trades) == summary["metrics"]["trades"] > 0


# -- bad input: one line, exit 2, the previous ledger untouched --------------------------------


GOOD = (
    "timestamp,open,high,low,close,volume\n"
    "2023-01-01 00:00:00,100,101,99,100.5,3\n"
    "2023-01-01 00:01:00,100.5,102,100,101,2\n"
)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (GOOD + "2023-01-01 00:00:30,100,101,99,100,1\n", "out of order"),
        (GOOD + "2023-01-01 00:01:00,100,101,99,100,1\n", "repeated timestamps"),
        (GOOD + ",100,101,99,100,1\n", "without a timestamp"),
        (GOOD + "2023-01-01 00:02:00,100,101,99,NaN,1\n", "NaN, infinite or non-positive price"),
        (GOOD + "2023-01-01 00:02:00,100,101,-99,100,1\n", "NaN, infinite or non-positive price"),
        (GOOD + "2023-01-01 00:02:00,100,101,99,100,-1\n", "negative volume"),
        ("timestamp,open,high,low,close,volume\n", "has no rows"),
    ],
    ids=["unsorted", "duplicate", "missing-ts", "nan", "negative-price", "negative-volume", "empty"],
)
def test_bad_data_gets_one_line_and_leaves_the_ledger_intact(tmp_path: Path, body: str, message: str) -> None:
    cfg = write_config(
        tmp_path / "c.yaml", ["BTCUSDT"], "{id: bh, path: 'raytrade.strategy.builtins:BuyAndHold', params: {qty: '1'}}"
    )
    out = tmp_path / "out"
    good = tmp_path / "BTCUSDT_good.csv"
    good.write_text(GOOD)
    assert backtest("--config", str(cfg), "--data", str(good), "--output", str(out)).returncode == 0
    before = hashlib.sha256((out / "ledger.db").read_bytes()).hexdigest()
    bad = tmp_path / "BTCUSDT_bad.csv"
    bad.write_text(body)
    r = backtest("--config", str(cfg), "--data", str(bad), "--output", str(out))
    assert r.returncode == 2 and message in r.stderr and str(bad) in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert hashlib.sha256((out / "ledger.db").read_bytes()).hexdigest() == before


def test_unknown_symbols_strategy_paths_and_missing_data_get_one_line(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "c.yaml", ["BTCUSDT"], "{id: bh, path: 'raytrade.strategy.builtins:BuyAndHold', params: {qty: '1'}}"
    )
    eth = tmp_path / "ETHUSDT_1m.csv"
    eth.write_text(GOOD)
    cases = [
        (["--config", str(cfg), "--data", str(eth)], "symbols ['ETHUSDT'] are not in the config's instruments"),
        (["--config", str(cfg), "--data", str(tmp_path / "nowhere")], "no such file or folder"),
        (["--config", str(cfg)], "no market data: pass --data PATH"),
        (["--config", str(cfg), "--data", str(eth), "--start", "yesterday"], "not an ISO date"),
    ]
    bad_path = write_config(tmp_path / "p.yaml", ["BTCUSDT"], "{id: x, path: 'my_pkg.strategies:Nope'}")
    cases.append((["--config", str(bad_path), "--data", str(eth)], "cannot import 'my_pkg.strategies'"))
    for args, message in cases:
        r = backtest(*args)
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


RAISER = """
from raytrade.strategy import Strategy

class Raiser(Strategy):
    def on_bar(self, symbol, bar, features, score):
        if self.ctx.position(symbol) == 0:
            self.ctx.target_position(symbol, 1)
        elif bar.close > 16600:
            raise RuntimeError("strategy bug at " + str(bar.close))
"""


def test_a_raising_strategy_stops_with_its_traceback_and_a_whole_ledger(tmp_path: Path) -> None:
    (tmp_path / "raiser.py").write_text(RAISER)
    cfg = write_config(tmp_path / "c.yaml", ["BTCUSDT"], f"{{id: r, path: '{tmp_path}/raiser.py:Raiser'}}")
    out = tmp_path / "out"
    r = backtest("--config", str(cfg), "--data", str(DATA / "BTCUSDT_1m.csv"), "--output", str(out))
    assert r.returncode == 2
    assert "Traceback" in r.stderr and "raiser.py" in r.stderr and "RuntimeError: strategy bug at" in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("raytrade backtest: strategy 'r' raised in on_bar")
    sys.path.insert(0, str(REPO))
    from raytrade.adapters.ledger import Ledger

    ledger = Ledger(str(out / "ledger.db"))
    [order] = ledger.recent_orders(10)
    assert order["status"] == "FILLED" and len(ledger.fills()) == 1  # the entry, whole; nothing after the failure
    # With on_strategy_error: disable, the run goes on without it and says so.
    cfg2 = write_config(
        tmp_path / "d.yaml",
        ["BTCUSDT"],
        f"{{id: r, path: '{tmp_path}/raiser.py:Raiser'}}",
        "on_strategy_error: disable",
    )
    r = backtest(
        "--config",
        str(cfg2),
        "--data",
        str(DATA / "BTCUSDT_1m.csv"),
        "--output",
        str(tmp_path / "o2"),
        "--end",
        "2023-01-03",
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "o2" / "summary.json").read_text())
    assert "strategy bug" in summary["disabled_strategies"]["r"] and summary["reconciliation"]["ok"]


EQUITIES = REPO.parent / "shared" / "data" / "us_equities_daily_60.parquet"


@pytest.mark.skipif(not EQUITIES.exists(), reason=f"real equities data not found at {EQUITIES}")
def test_a_24_7_symbol_beside_an_equity_symbol(tmp_path: Path) -> None:
    """Real AAPL days (weekdays, split-adjusted) merged with a seeded 24/7 daily series: each trades on its
    own calendar, and the report is annualised by calendar (24/7 when any instrument is, else 252 days)."""
    import numpy as np
    import polars as pl

    data = tmp_path / "data"
    data.mkdir()
    aapl = pl.read_parquet(EQUITIES).filter(
        (pl.col("symbol") == "AAPL") & (pl.col("timestamp").cast(pl.Date).dt.year() == 2020)
    )
    aapl.write_parquet(data / "AAPL_1d.parquet")
    days = pl.datetime_range(pl.datetime(2020, 1, 1), pl.datetime(2020, 12, 31), "1d", eager=True)
    rng = np.random.default_rng(7)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.03, len(days))))
    open_ = np.concatenate([[100.0], close[:-1]])
    pl.DataFrame(
        {
            "timestamp": days,
            "open": open_,
            "high": np.maximum(open_, close) * 1.01,
            "low": np.minimum(open_, close) * 0.99,
            "close": close,
            "volume": np.full(len(days), 1e6),
        }
    ).write_csv(data / "COIN_1d.csv")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "kafka: {partitions: 2}\ninstruments:\n"
        "  - {symbol: AAPL, price_increment: '0.0001', size_increment: '1', calendar: equity}\n"
        "  - {symbol: COIN, price_increment: '0.0001', size_increment: '0.0001', calendar: '24/7'}\n"
        "strategies: [{id: sma, path: 'raytrade.strategy.builtins:SmaCross',"
        " params: {fast: 3, slow: 8, notional: '5000'}}]\n"
        "model: null\nexecution: {initial_cash: '100000'}\n"
        "risk: {max_order_notional: '1e9', max_position_notional: '1e9', max_gross_exposure: '1e9'}\n"
    )
    r = backtest("--config", str(cfg), "--data", str(data), "--output", str(tmp_path / "out"), "--end", "2021-01-01")
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["bars"] == aapl.height + len(days) and summary["calendar"] == "24/7"
    assert summary["bar_seconds"] == 86_400 and summary["metrics"]["periods_per_year"] == 365
    weekday = {s: {datetime_weekday(int(f[0])) for f in fills} for s, fills in fills_of(tmp_path / "out").items()}
    assert weekday["AAPL"] <= {0, 1, 2, 3, 4, 5} and weekday["COIN"] & {5, 6}  # AAPL decided on weekday closes
    # The equity symbol alone is annualised on 252 sessions a year.
    only = tmp_path / "aapl"
    only.mkdir()
    aapl.write_parquet(only / "AAPL_1d.parquet")
    cfg.write_text(
        cfg.read_text().replace(
            "  - {symbol: COIN, price_increment: '0.0001', size_increment: '0.0001', calendar: '24/7'}\n", ""
        )
    )
    r = backtest("--config", str(cfg), "--data", str(only), "--output", str(tmp_path / "out2"))
    assert r.returncode == 0, r.stderr
    s2 = json.loads((tmp_path / "out2" / "summary.json").read_text())
    assert s2["calendar"] == "equity" and s2["metrics"]["periods_per_year"] == 252


def datetime_weekday(ts_ns: int) -> int:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts_ns / 1e9, UTC).weekday()


def test_bars_go_in_whole_unless_the_config_asks_for_trades(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "c.yaml", ["BTCUSDT"], "{id: bh, path: 'raytrade.strategy.builtins:BuyAndHold', params: {qty: '1'}}"
    )
    args = ["--config", str(cfg), "--data", str(DATA / "BTCUSDT_1m.csv"), "--end", "2023-01-01T06:00"]
    assert backtest(*args, "--output", str(tmp_path / "bars")).returncode == 0
    bars = json.loads((tmp_path / "bars" / "summary.json").read_text())
    assert bars["events"] == bars["bars"] == 360  # one event per bar, decided at its close
    cfg.write_text(
        cfg.read_text().replace(
            "backtest: {fills: next_bar_open}", "backtest: {fills: next_bar_open, bars_as_ticks: true}"
        )
    )
    assert backtest(*args, "--output", str(tmp_path / "ticks")).returncode == 0
    ticks = json.loads((tmp_path / "ticks" / "summary.json").read_text())
    assert ticks["events"] == 4 * 360 and ticks["bars"] == 359  # four trades a bar; the last bar never closes
