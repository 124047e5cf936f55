"""``raytrade backtest --walk-forward --config configs/walkforward.yaml [--address ADDR] [--output DIR]``:
the folds on Ray, then one report of the stitched out-of-sample curve with every fold's metrics."""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from raytrade.backtest.cluster import research_cluster
from raytrade.backtest.data import DataError
from raytrade.backtest.outputs import bar_seconds, calendar_of, rolling_window
from raytrade.backtest.report import ReportData, write_report
from raytrade.backtest.session import absolute_paths, load_data
from raytrade.backtest.walk_forward import all_trades, fold_table, plan_folds, run_folds
from raytrade.cluster.config import ConfigError, RunConfig, config_from_dict, raw_config
from raytrade.domain import performance


def stitch(results: list[dict[str, Any]], symbols: list[str]) -> dict[str, Any]:
    """The folds' curves end to end, each scaled to start where the previous one ended (compounded)."""
    ts: list[int] = []
    parts: dict[str, list[np.ndarray]] = {"equity": [], "gross": [], "net": []}
    positions: dict[str, list[np.ndarray]] = {s: [] for s in symbols}
    level: float | None = None
    for r in results:
        c = r["curve"]
        e = np.asarray(c.equity, dtype=np.float64)
        if not len(e):
            continue
        factor = 1.0 if level is None else level / e[0]
        ts += list(c.ts)
        parts["equity"].append(e * factor)
        parts["gross"].append(np.asarray(c.gross) * factor)
        parts["net"].append(np.asarray(c.net) * factor)
        for s in symbols:
            positions[s].append(np.asarray(c.positions.get(s, [0.0] * len(e)), dtype=np.float64))
        level = float(e[-1] * factor)
    cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
    return {
        "ts": np.asarray(ts, dtype=np.int64),
        **cat,
        "positions": {s: np.concatenate(v) if v else np.zeros(0) for s, v in positions.items()},
    }


def walk_forward_main(args: argparse.Namespace) -> int:
    """Plan, run and report a walk-forward; print the stitched metrics and the fold table as JSON."""
    raw = absolute_paths(raw_config(args.config))
    cfg: RunConfig = config_from_dict(copy.deepcopy(raw), args.config)
    raw["strategies"] = [e.model_dump() for e in cfg.strategies]
    if cfg.model is None:
        raise ConfigError(f"invalid config {args.config}: walk-forward trains the configured model; model is null")
    wf = cfg.backtest.walk_forward
    try:
        data_path, data = load_data(cfg, args.data, args.start, args.end)
    except DataError as exc:
        print(f"raytrade backtest: {exc}", file=sys.stderr)
        return 2
    if data.kind != "bars":
        raise ConfigError("walk-forward trains on bars: backtest.data must hold bars (and bars_as_ticks be off)")
    raw.setdefault("backtest", {})["data"] = str(Path(data_path).resolve())
    step = bar_seconds(data)
    plans = plan_folds(data.frame["ts"].to_numpy(), int(step * 1e9), cfg)
    out_root = Path(args.output or wf.output_dir).resolve()
    shutil.rmtree(out_root / "folds", ignore_errors=True)
    out_root.mkdir(parents=True, exist_ok=True)
    tag = f"{Path(args.config).stem}@{int(time.time())}"
    t0 = time.perf_counter()
    with research_cluster(args.address, wf.num_cpus, wf.max_concurrent, wf.local_cpus) as (cpus, limit):
        results = run_folds(raw, plans, out_root, tag, wf.num_cpus, limit)
    wall = time.perf_counter() - t0
    table = fold_table(results)
    table.write_csv(out_root / "folds.csv")
    symbols = sorted({s for r in results for s in r["prices"]})
    curve = stitch(results, symbols)
    ppy = performance.periods_per_year(calendar_of(cfg), step)
    trades = all_trades(results)
    traded = sum((Decimal(str(r["summary"]["metrics"]["traded_notional"] or 0)) for r in results), Decimal(0))
    fees = sum((Decimal(str(r["summary"]["fees"])) for r in results), Decimal(0))
    metrics = performance.summarize(curve["ts"], curve["equity"], ppy, trades, traded, fees, curve["gross"])
    prices = {
        s: (
            np.concatenate([r["prices"][s][0] for r in results if s in r["prices"]]),
            np.concatenate([r["prices"][s][1] for r in results if s in r["prices"]]),
        )
        for s in symbols
    }
    flat: dict[str, Any] = dict(metrics)
    for row in table.iter_rows(named=True):
        k = row["fold"]
        flat[f"fold_{k}"] = f"{row['test_start']} .. {row['test_end']}, model {row['model']}"
        flat[f"fold_{k}_sharpe"] = row.get("sharpe")
        flat[f"fold_{k}_net_pnl"] = row["net_pnl"]
    flat["wall_s"] = round(wall, 3)
    report = ReportData(
        title=f"raytrade walk-forward: {len(plans)} folds, {', '.join(e.id for e in cfg.strategies)} on "
        f"{', '.join(symbols)} (out of sample, stitched)",
        summary=flat,
        ts_ns=curve["ts"],
        equity=curve["equity"],
        gross_exposure=curve["gross"],
        net_exposure=curve["net"],
        positions=curve["positions"],
        prices=prices,
        trades=trades,
        periods_per_year=ppy,
        rolling_window=rolling_window(ppy, len(curve["equity"])),
    )
    write_report(out_root, report)
    out = {
        "folds": table.drop("train_s", "fold_s").to_dicts(),
        "metrics": metrics,
        "wall_s": round(wall, 3),
        "max_concurrent": limit,
        "cluster_cpus": cpus,
        "output_dir": str(out_root),
        "run": tag,
    }
    (out_root / "walk_forward.json").write_text(json.dumps(out, indent=2, sort_keys=True, default=str))
    print(json.dumps(out, indent=2, sort_keys=True, default=str))
    return 0
