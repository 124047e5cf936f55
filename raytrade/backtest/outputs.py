"""What a backtest leaves in its folder: ``summary.json``, ``trades.parquet``/``trades.csv``,
``fills.csv``, ``report.html`` with its PNG plots, next to the ledger (``ledger.db``, the live schema)."""

from __future__ import annotations

import json
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from raytrade.backtest.data import MarketData
from raytrade.backtest.report import ReportData, write_report
from raytrade.backtest.runner import BacktestRun
from raytrade.cluster.config import RunConfig
from raytrade.domain import performance
from raytrade.domain.money import MONEY_CONTEXT, ZERO
from raytrade.domain.round_trips import RoundTrip, round_trips

NS_PER_S = 10**9


def calendar_of(cfg: RunConfig) -> performance.Calendar:
    """The report's calendar: configured, or equity when every instrument trades on one, else 24/7."""
    return performance.Calendar(cfg.calendar())


def bar_seconds(data: MarketData) -> float:
    """The sampling step of the equity curve: the bars' smallest span (ticks: one minute)."""
    if data.kind == "bars":
        return float(data.frame["span"].min()) / NS_PER_S  # type: ignore[arg-type]
    return 60.0


def trades_frame(trades: list[RoundTrip]) -> pl.DataFrame:
    """Round trips as a table (exact decimals as strings, times as UTC datetimes)."""
    return pl.DataFrame(
        {
            "symbol": [t.symbol for t in trades],
            "side": [t.side for t in trades],
            "qty": [str(t.qty) for t in trades],
            "entry_time": [t.entry_ts for t in trades],
            "exit_time": [t.exit_ts for t in trades],
            "entry_price": [str(t.entry_price) for t in trades],
            "exit_price": [str(t.exit_price) for t in trades],
            "pnl": [str(t.pnl) for t in trades],
            "fees": [str(t.fees) for t in trades],
            "holding_s": [t.holding_ns / NS_PER_S for t in trades],
        },
        schema_overrides={"entry_time": pl.Int64, "exit_time": pl.Int64},
    ).with_columns(
        pl.col("entry_time").cast(pl.Datetime("ns", "UTC")), pl.col("exit_time").cast(pl.Datetime("ns", "UTC"))
    )


def write_outputs(
    cfg: RunConfig, run: BacktestRun, data: MarketData, out_dir: Path, info: dict[str, Any]
) -> dict[str, Any]:
    """Compute the metrics (one module: :mod:`raytrade.domain.performance`), write every file; the summary."""
    core = run.core
    fills = core.ledger.fills()
    trades = round_trips(fills)
    with localcontext(MONEY_CONTEXT):
        traded = sum((f.qty * f.price for f in fills), ZERO)
    c = run.curve
    ts = np.asarray(c.ts, dtype=np.int64)
    equity = np.asarray(c.equity, dtype=np.float64)
    calendar = calendar_of(cfg)
    step = bar_seconds(data)
    ppy = performance.periods_per_year(calendar, step)
    metrics = performance.summarize(ts, equity, ppy, trades, traded, core.portfolio.fees, np.asarray(c.gross))
    marks = dict(core.marks)
    books = core.summary(marks)
    summary: dict[str, Any] = {
        **info,
        "calendar": calendar.value,
        "bar_seconds": step,
        "fills_convention": cfg.backtest.fills,
        "events": run.events,
        "bars": run.bars,
        "wall_s": round(run.wall_s, 3),
        "events_per_s": round(run.events / run.wall_s, 1) if run.wall_s > 0 else None,
        "strategies": [{"id": s.id, "path": s.path} for s in cfg.strategies],
        "disabled_strategies": run.disabled,
        "risk_state": run.gate.rules.state.value,
        "risk": {"approved": run.gate.approved, "denied": run.gate.denied, "stops_triggered": run.gate.stops_triggered},
        "orders": sum(books["orders_by_status"].values()),
        "orders_by_status": books["orders_by_status"],
        "fills": len(fills),
        "cash": books["cash"],
        "equity": books["equity"],
        "positions": books["positions"],
        "realized_pnl": books["realized_pnl"],
        "unrealized_pnl": books["unrealized_pnl"],
        "fees": books["fees"],
        "net_pnl": books["net_pnl"],
        "reconciliation": core.reconcile(),
        "metrics": metrics,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    table = trades_frame(trades)
    table.write_parquet(out_dir / "trades.parquet")
    table.write_csv(out_dir / "trades.csv")
    pl.DataFrame(
        {
            "fill_id": [f.fill_id for f in fills],
            "order_id": [f.order_id for f in fills],
            "symbol": [f.symbol for f in fills],
            "side": [f.side.value for f in fills],
            "qty": [str(f.qty) for f in fills],
            "price": [str(f.price) for f in fills],
            "fee": [str(f.fee) for f in fills],
            "ts": [f.ts for f in fills],
        },
        schema_overrides={"ts": pl.Int64},
    ).write_csv(out_dir / "fills.csv")
    frame = data.frame
    price_col = "close" if data.kind == "bars" else "price"
    prices = {
        s: (part["ts"].to_numpy(), part[price_col].to_numpy())
        for s, part in ((s, frame.filter(pl.col("symbol") == s)) for s in data.symbols)
    }
    report = ReportData(
        title=f"raytrade backtest: {', '.join(e.id for e in cfg.strategies)} on {', '.join(data.symbols)}",
        summary=_flat(summary),
        ts_ns=ts,
        equity=equity,
        gross_exposure=np.asarray(c.gross),
        net_exposure=np.asarray(c.net),
        positions={s: np.asarray(v) for s, v in c.positions.items()},
        prices=prices,
        trades=trades,
        periods_per_year=ppy,
        rolling_window=rolling_window(ppy, len(equity)),
    )
    summary["files"] = sorted(p.name for p in write_report(out_dir, report).values())
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True, default=str))
    return summary


def rolling_window(ppy: float, n: int) -> int:
    """About a month of periods (at least 20, at most a third of the curve)."""
    return max(20, min(int(ppy / 12), max(20, n // 3)))


def _flat(summary: dict[str, Any]) -> dict[str, Any]:
    """The report's table: every metric, then the run's headline numbers."""
    keys = ("strategies_run", "data", "fills", "orders", "fees", "net_pnl", "equity", "wall_s", "events_per_s")
    out: dict[str, Any] = dict(summary["metrics"])
    out["strategies_run"] = ", ".join(s["id"] for s in summary["strategies"])
    for k in keys:
        if k in summary and k not in out:
            v = summary[k]
            out[k] = str(v) if isinstance(v, Decimal) else v
    return out
