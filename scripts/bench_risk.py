"""Risk and execution benchmark: the RiskGate's rules per order and Execution per call, in process.

A seeded synthetic stream goes through the shard pipeline (bars, features, model, strategy)
in batches; each batch's bars and intents go through ``RiskRules`` and ``ExecutionCore``
exactly as the actors call them (without Ray, whose hop the pipeline benchmark measures).

- ``gate``: microseconds per ``RiskRules.check`` with the default limits (historical VaR 99%,
  60 bars, 500-bar window; correlation-aware exposure; cash, net, drawdown), the same with
  parametric VaR, and the **baseline**: the same rules without the portfolio checks (VaR,
  correlation, cash, net exposure, drawdown). All three judge the same intents on the same
  account state in the same run; only the first one's decisions are executed. The wall-clock
  rate limits are off in all three (at benchmark speed they would decide by machine speed).
- ``execution``: milliseconds per ``ExecutionCore.execute`` call (the bars of a batch traded
  by the paper broker, the new orders, one ledger transaction), on SQLite, and the same calls
  replayed on PostgreSQL when a server can be started here (``tests/pg_server.py``); the
  replay must produce the same fills, or the benchmark fails.

Writes JSON (default ``runs/bench/risk.json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from raytrade.actors.execution import ExecutionCore  # noqa: E402
from raytrade.adapters.synthetic_market import SyntheticMarket  # noqa: E402
from raytrade.cluster.config import RunConfig, load_config  # noqa: E402
from raytrade.domain.bars import Bar  # noqa: E402
from raytrade.domain.money import decimal_from_float  # noqa: E402
from raytrade.domain.orders import RiskDecision  # noqa: E402
from raytrade.domain.risk import RiskLimits, RiskRules  # noqa: E402
from raytrade.domain.shard_engine import ShardEngine  # noqa: E402
from raytrade.domain.stats import percentile  # noqa: E402
from raytrade.domain.ticks import encode_tick  # noqa: E402
from raytrade.strategy.loader import load_strategies  # noqa: E402
from raytrade.training.bootstrap import ensure_model  # noqa: E402
from raytrade.training.registry import ModelRegistry  # noqa: E402

Call = tuple[list[RiskDecision], list[tuple[str, Bar]]]


def summary(xs: list[float], unit: str) -> dict[str, Any]:
    if not xs:
        raise SystemExit("nothing measured: give the stream more --hours (the features need about an hour)")
    return {
        "n": len(xs),
        f"median_{unit}": round(statistics.median(xs), 3),
        f"p50_{unit}": round(percentile(xs, 50), 3),
        f"p99_{unit}": round(percentile(xs, 99), 3),
        "per_s": round(len(xs) / (sum(xs) / (1e6 if unit == "us" else 1e3)), 1),
    }


def gate_variants(cfg: RunConfig) -> dict[str, RiskLimits]:
    full = dataclasses.replace(cfg.risk.limits(), max_orders_per_s=None, max_orders_per_s_per_symbol=None)
    baseline = dataclasses.replace(
        full,
        max_var=None,
        max_correlated_exposure=None,
        min_cash=None,
        max_net_exposure=None,
        drawdown_reduce=None,
        drawdown_halt=None,
        intraday_reduce=None,
        intraday_halt=None,
    )
    return {
        "historical_var": full,
        "parametric_var": dataclasses.replace(full, var_method="parametric"),
        "baseline_no_portfolio_checks": baseline,
    }


def run(cfg: RunConfig, hours: float, batch: int, ledger_url: str, work: Path) -> dict[str, Any]:
    """Drive the stream; return the timings and the calls made (for the replay on another ledger)."""
    instruments = [i.instrument() for i in cfg.instruments]
    grid = {i.symbol: i.price_increment for i in instruments}
    model = ensure_model(ModelRegistry(work / "models"), seed=1, days=0.5, horizon=5, rounds=30)
    engine = ShardEngine(instruments, load_strategies(cfg.strategy_specs()), model, cfg.execution.initial_cash)
    ticks = list(SyntheticMarket(seed=7).ticks(int(hours * 3600)))
    msgs = [(0, n, t.symbol.encode(), encode_tick(t)) for n, t in enumerate(ticks)]
    core = ExecutionCore(instruments, cfg.execution.broker_config(), ledger_url, cfg.execution.initial_cash, 0.0, "k")
    rules = {name: RiskRules(lim) for name, lim in gate_variants(cfg).items()}
    check_us: dict[str, list[float]] = {name: [] for name in rules}
    approved: dict[str, int] = dict.fromkeys(rules, 0)
    call_ms: list[float] = []
    calls: list[Call] = []
    for i in range(0, len(msgs), batch):
        result = engine.process(msgs[i : i + batch], time.time_ns())
        made: dict[str, list[RiskDecision]] = {}
        for name, r in rules.items():
            for symbol, bar in result.bars:
                r.on_bar(symbol, bar, decimal_from_float(bar.close, grid[symbol]))
            made[name] = []
            for intent in result.intents:
                t0 = time.perf_counter_ns()
                d = r.check(intent, time.monotonic_ns())
                check_us[name].append((time.perf_counter_ns() - t0) / 1e3)
                made[name].append(d)
            approved[name] += sum(d.approved for d in made[name])
        decisions = made["historical_var"]
        if not decisions and not result.bars:
            continue
        t0 = time.perf_counter_ns()
        reply = core.execute(decisions, result.bars, "k")
        call_ms.append((time.perf_counter_ns() - t0) / 1e6)
        calls.append((decisions, list(result.bars)))
        for name, r in rules.items():
            r.release([d.intent for d in made[name] if d.approved])
            r.confirm(reply.positions, reply.working, reply.seq, reply.cash, reply.equity, time.time_ns())
        engine.sync(reply.positions, reply.working, reply.equity)
    fills = [(f.fill_id, f.qty, f.price, f.fee) for f in core.ledger.fills()]
    core.ledger.close()
    return {
        "ticks": len(ticks),
        "check_us": check_us,
        "approved": approved,
        "call_ms": call_ms,
        "calls": calls,
        "fills": fills,
        "orders": sum(len(d) for d, _ in calls),
        "bars": sum(len(b) for _, b in calls),
    }


def replay(cfg: RunConfig, calls: list[Call], ledger_url: str) -> tuple[list[float], list[tuple[Any, ...]]]:
    """The same execute calls on another ledger: per-call ms and the fills."""
    instruments = [i.instrument() for i in cfg.instruments]
    core = ExecutionCore(instruments, cfg.execution.broker_config(), ledger_url, cfg.execution.initial_cash, 0.0, "k")
    ms = []
    for decisions, bars in calls:
        t0 = time.perf_counter_ns()
        core.execute(decisions, bars, "k")
        ms.append((time.perf_counter_ns() - t0) / 1e6)
    fills = [(f.fill_id, f.qty, f.price, f.fee) for f in core.ledger.fills()]
    core.ledger.close()
    return ms, fills


def postgres_replay(cfg: RunConfig, calls: list[Call], fills: list[tuple[Any, ...]]) -> dict[str, Any]:
    from tests.pg_server import PgNotInstalledError, PgServer

    try:
        server = PgServer()
    except PgNotInstalledError as exc:
        return {"skipped": f"PostgreSQL not installed: {exc}"}
    server.start()
    try:
        url = server.fresh_db("bench_risk")
        ms, pg_fills = replay(cfg, calls, url)
    finally:
        server.stop()
    if pg_fills != fills:
        raise SystemExit("PostgreSQL replay produced other fills than SQLite: the ledgers disagree")
    return {"execute_call": summary(ms, "ms"), "same_fills_as_sqlite": True}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=6.0, help="hours of synthetic market (about 46k ticks/hour)")
    ap.add_argument("--batch", type=int, default=1000, help="ticks per shard batch")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--out", default=str(REPO / "runs" / "bench" / "risk.json"))
    args = ap.parse_args()
    cfg = load_config(REPO / "configs" / "default.yaml", env={})
    work = Path(tempfile.mkdtemp(prefix="bench-risk-"))
    r = run(cfg, args.hours, args.batch, str(work / "ledger.db"), work)
    gate = {name: {**summary(us, "us"), "approved": r["approved"][name]} for name, us in r["check_us"].items()}
    base = gate["baseline_no_portfolio_checks"]["p50_us"]
    report: dict[str, Any] = {
        "benchmark": "risk",
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "params": {"hours": args.hours, "batch": args.batch, "ticks": r["ticks"]},
        "limits": {k: str(v) for k, v in dataclasses.asdict(gate_variants(cfg)["historical_var"]).items()},
        "gate_check": gate,
        "portfolio_checks_cost_p50_us": {
            n: round(g["p50_us"] - base, 3) for n, g in gate.items() if n != "baseline_no_portfolio_checks"
        },
        "execution": {
            "orders": r["orders"],
            "bars": r["bars"],
            "fills": len(r["fills"]),
            "sqlite": {"execute_call": summary(r["call_ms"], "ms")},
        },
    }
    if not args.no_postgres:
        report["execution"]["postgresql"] = postgres_replay(cfg, r["calls"], r["fills"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=lambda d: str(d) if isinstance(d, Decimal) else repr(d)))
    print(json.dumps({k: v for k, v in report.items() if k != "limits"}, indent=2))


if __name__ == "__main__":
    main()
