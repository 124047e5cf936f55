"""``raytrade backtest`` against backtrader, backtesting.py, vectorbt and NautilusTrader, in one run.

The same SMA(10)/SMA(30) long-only crossover (exact tie rule, next-bar-open fills, no costs, 1 unit)
on BTCUSDT (40k real 1-minute bars), the 4-symbol portfolio (160k) and a seeded 1M-bar random walk.
Every engine must make the reference's trades (entry/exit bars and prices); the peers run in a
throwaway venv (``scripts/bench_peers/``), never a raytrade dependency. Also the sweep's throughput
with 1 and 2 Ray workers. Writes JSON (default ``var/bench-out/bench_backtest.json``).

    .venv/bin/python scripts/bench_backtest.py                    # everything (about 10 minutes here)
    .venv/bin/python scripts/bench_backtest.py --limit 3000 --no-peers --no-sweep   # the agreement check only
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import polars as pl

REPO = Path(__file__).resolve().parents[1]
PEERS = REPO / "scripts" / "bench_peers"
DATA = REPO.parent / "shared" / "data" / "crypto_1m_2023-01"
RAYTRADE = str(Path(sys.executable).parent / "raytrade")
INSTRUMENTS = {
    "BTCUSDT": ("0.01", "0.00001"),
    "ETHUSDT": ("0.01", "0.0001"),
    "SOLUSDT": ("0.01", "0.01"),
    "XRPUSDT": ("0.0001", "1"),
    "RWALK": ("0.01", "1"),
}
ENGINES = ("backtrader", "backtesting", "vectorbt", "nautilus")


def peer_module(name: str) -> ModuleType:
    """A module of ``scripts/bench_peers`` (stdlib-only ones), imported by file path."""
    spec = importlib.util.spec_from_file_location(f"bench_peers_{name}", PEERS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def config(symbols: list[str], data: str, out: Path, limit_end: str | None) -> str:
    """The benchmark strategy as a raytrade config: SmaCross(10, 30), 1 unit, no fees, next-bar-open fills."""
    lines = [f"kafka: {{partitions: {min(2, len(symbols))}}}", "instruments:"]
    for s in symbols:
        price, size = INSTRUMENTS[s]
        lines.append(f"  - {{symbol: {s}, price_increment: '{price}', size_increment: '{size}'}}")
    lines += [
        "strategies:",
        "  - {id: sma, path: 'raytrade.strategy.builtins:SmaCross', params: {fast: 10, slow: 30, qty: '1'}}",
        "model: null",
        "risk: {max_order_notional: '1000000000', max_position_notional: '1000000000',"
        " max_gross_exposure: '1000000000', price_band: '0.5', min_cash: '0', drawdown_halt: null}",
        "execution: {initial_cash: '10000000', fee_bps: '0', maker_fee_bps: '0'}",
        f"backtest: {{data: '{data}', fills: next_bar_open, output_dir: '{out}'"
        + (f", end: '{limit_end}'" if limit_end else "")
        + "}",
    ]
    return "\n".join(lines) + "\n"


def raytrade_result(out: Path, bars: int) -> dict[str, Any]:
    """raytrade's trades in the peers' format, from its trades and fills files."""
    trades = pl.read_parquet(out / "trades.parquet")
    rows = [
        {
            "symbol": r["symbol"],
            "entry_ts": int(r["entry_ns"]),
            "entry_price": float(r["entry_price"]),
            "exit_ts": int(r["exit_ns"]),
            "exit_price": float(r["exit_price"]),
        }
        for r in trades.with_columns(
            pl.col("entry_time").dt.epoch("ns").alias("entry_ns"), pl.col("exit_time").dt.epoch("ns").alias("exit_ns")
        ).iter_rows(named=True)
    ]
    fills = pl.read_csv(out / "fills.csv", schema_overrides={"qty": pl.Utf8, "price": pl.Utf8})
    opened = []
    for (symbol,), part in fills.group_by("symbol", maintain_order=True):
        if part["side"].to_list().count("BUY") > part["side"].to_list().count("SELL"):
            last = part.tail(1).row(0, named=True)
            opened.append({"symbol": symbol, "entry_ts": int(last["ts"]), "entry_price": float(last["price"])})
    rows.sort(key=lambda t: (t["symbol"], t["entry_ts"]))
    pnl = sum(t["exit_price"] - t["entry_price"] for t in rows)
    return {"engine": "raytrade", "bars": bars, "trades": rows, "open": opened, "pnl": pnl}


def run_raytrade(symbols: list[str], data: str, work: Path, end: str | None) -> dict[str, Any]:
    """One ``raytrade backtest`` process: the backtest's own time, data loading, and the whole process."""
    out = work / "raytrade"
    cfg = work / "raytrade.yaml"
    cfg.write_text(config(symbols, data, out, end))
    t0 = time.perf_counter()
    proc = subprocess.run(
        [RAYTRADE, "backtest", "--no-progress", "--config", str(cfg)], capture_output=True, text=True, check=False
    )
    process_s = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"raytrade backtest failed: {proc.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    result = raytrade_result(out, int(summary["events"]))
    result.update(backtest_s=float(summary["wall_s"]), load_s=float(summary["load_s"]), process_s=process_s)
    return result


def run_peer(python: str, engine: str, files: list[str], work: Path, limit: int | None) -> dict[str, Any]:
    """One peer runner process (its own timing of load and backtest; the whole process timed here)."""
    out = work / f"{engine}.json"
    cmd = [python, str(PEERS / f"run_{engine}.py"), "--data", *files, "--out", str(out)]
    if limit:
        cmd += ["--limit", str(limit)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    process_s = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"engine": engine, "error": proc.stderr[-2000:]}
    result: dict[str, Any] = json.loads(out.read_text())
    result["process_s"] = process_s
    return result


def dataset_files(name: str, work: Path) -> tuple[list[str], list[str], str]:
    """(symbols, files for the peers, path for raytrade)."""
    if name == "btc":
        return ["BTCUSDT"], [str(DATA / "BTCUSDT_1m.csv")], str(DATA / "BTCUSDT_1m.csv")
    if name == "all4":
        syms = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
        return syms, [str(DATA / f"{s}_1m.csv") for s in syms], str(DATA)
    path = work.parent / "rwalk_1m.parquet"
    if not path.exists():
        peer_module("random_walk").write_random_walk(path, 1_000_000, 7)
    return ["RWALK"], [str(path)], str(path)


def limit_end(files: list[str], limit: int | None) -> str | None:
    """The exclusive end time that keeps the first ``limit`` bars (the peers' ``--limit``)."""
    if not limit:
        return None
    common = peer_module("common")
    frames = common.load_dataset(files, limit)
    last = max(int(f["ts"].iloc[-1]) for f in frames.values())
    return str(pl.Series([last + 10**9]).cast(pl.Datetime("ns")).dt.to_string("%Y-%m-%dT%H:%M:%S")[0])


def bench_dataset(name: str, args: argparse.Namespace, python: str | None, root: Path) -> dict[str, Any]:
    work = root / name
    work.mkdir(parents=True, exist_ok=True)
    symbols, files, data = dataset_files(name, work)
    end = limit_end(files, args.limit)
    reference = run_peer(sys.executable, "reference", files, work, args.limit)
    compare = peer_module("compare").compare
    repeat = 1 if name == "rwalk" and not args.limit else args.repeat  # 1M bars: one run per engine
    runs = [run_raytrade(symbols, data, work, end) for _ in range(repeat)]
    engines: dict[str, Any] = {"reference": _row(reference, [reference])}
    rt = runs[-1]
    engines["raytrade"] = _row(rt, runs) | {"differences": compare(reference, rt)}
    for engine in ENGINES if python else ():
        assert python is not None
        results = [run_peer(python, engine, files, work, args.limit) for _ in range(repeat)]
        if "error" in results[-1]:
            engines[engine] = {"error": results[-1]["error"]}
            continue
        engines[engine] = _row(results[-1], results) | {"differences": compare(reference, results[-1])}
    return {"symbols": symbols, "bars": reference["bars"], "engines": engines}


def _row(last: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of one engine: trades, P&L, and the median over repeats of its times and rates."""
    row: dict[str, Any] = {"trades": len(last["trades"]), "open": len(last.get("open", [])), "pnl": last["pnl"]}
    for key in ("backtest_s", "load_s", "process_s", "cold_backtest_s", "setup_s"):
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            row[key] = statistics.median(values)
    if row.get("backtest_s"):
        row["bars_per_s"] = last["bars"] / row["backtest_s"]
        row["bars_per_s_runs"] = sorted(last["bars"] / r["backtest_s"] for r in runs if r.get("backtest_s"))
    if row.get("backtest_s") and row.get("load_s") is not None:
        row["loaded_bars_per_s"] = last["bars"] / (row["backtest_s"] + row["load_s"])  # data loading included
    if row.get("process_s"):
        row["process_bars_per_s"] = last["bars"] / row["process_s"]
    if last.get("note"):
        row["note"] = last["note"]
    return row


def bench_sweep(root: Path) -> dict[str, Any]:
    """The same 4-run sweep (the four symbols, 160k bars each) with 1 and with 2 Ray workers."""
    base = root / "sweep_base.yaml"
    base.write_text(config(["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"], str(DATA), root / "unused", None))
    out: dict[str, Any] = {}
    for workers in (1, 2):
        sweep = root / f"sweep_{workers}.yaml"
        sweep.write_text(
            "base: sweep_base.yaml\nsearch: grid\nparams: {sma: {fast: [5, 10], slow: [30, 60]}}\n"
            f"resources: {{num_cpus: 1, max_concurrent: {workers}, local_cpus: {workers}}}\n"
        )
        proc = subprocess.run(
            [RAYTRADE, "backtest", "--no-progress", "--sweep", str(sweep), "--output", str(root / f"sweep_{workers}")],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        figures = json.loads((root / f"sweep_{workers}" / "sweep.json").read_text())
        out[f"workers_{workers}"] = {k: figures[k] for k in ("runs", "bars", "wall_s", "bars_per_s", "failed")}
    out["speedup"] = out["workers_2"]["bars_per_s"] / out["workers_1"]["bars_per_s"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="btc,all4,rwalk", help="comma-separated: btc, all4, rwalk")
    parser.add_argument("--limit", type=int, default=None, help="first N bars per symbol (a small slice)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per engine and dataset (median; rwalk: 1)")
    parser.add_argument("--peers", action=argparse.BooleanOptionalAction, default=True, help="run the four peers")
    parser.add_argument("--sweep", action=argparse.BooleanOptionalAction, default=True, help="1 vs 2 workers")
    parser.add_argument("--venv", default=str(REPO / "var" / "bench-peers"), help="the peers' throwaway venv")
    parser.add_argument("--out", default=str(REPO / "var" / "bench-out" / "bench_backtest.json"))
    args = parser.parse_args()
    python = str(peer_module("peers_venv").ensure_venv(Path(args.venv))) if args.peers else None
    report: dict[str, Any] = {"limit": args.limit, "repeat": args.repeat, "datasets": {}}
    with tempfile.TemporaryDirectory(prefix="bench-backtest-") as tmp:
        root = Path(tmp) / "work"
        for name in args.datasets.split(","):
            report["datasets"][name] = bench_dataset(name, args, python, root)
            print(json.dumps({name: report["datasets"][name]["engines"]}, indent=1, default=str), file=sys.stderr)
        if args.sweep:
            report["sweep"] = bench_sweep(Path(tmp))
    report["agree"] = all(
        not row.get("differences") and "error" not in row
        for d in report["datasets"].values()
        for row in d["engines"].values()
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2, sort_keys=True, default=str))
    print(json.dumps(report, indent=2, sort_keys=True, default=str))
    return 0 if report["agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
