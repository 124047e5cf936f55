"""``raytrade backtest --sweep configs/sweep.yaml [--address ADDR] [--output DIR]``."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from raytrade.backtest.sweep import TIMING, run_sweep
from raytrade.backtest.sweep_config import load_sweep
from raytrade.backtest.sweep_report import write_sweep_html


def sweep_main(args: argparse.Namespace) -> int:
    """Run the sweep; write ``results.parquet``, ``results.csv``, ``sweep.html`` and ``sweep.json``; print the
    figures and the best runs as JSON. A failed run is a row with its error (exit 0); a bad sweep file exits 2."""
    sweep = load_sweep(args.sweep)
    sc = sweep.config
    out_root = Path(args.output or sc.output_dir).resolve()
    shutil.rmtree(out_root / "runs", ignore_errors=True)
    out_root.mkdir(parents=True, exist_ok=True)
    runs = sweep.runs()
    show = sys.stderr.isatty() if args.progress is None else args.progress

    def progress(row: dict[str, Any]) -> None:
        if show:
            status = row["status"] if row["status"] == "ok" else f"failed: {row['error']}"
            print(f"  {row['run_id']} {status}", file=sys.stderr)

    print(f"raytrade sweep: {len(runs)} runs ({sc.search}) from {sweep.path}", file=sys.stderr)
    frame, figures = run_sweep(sweep, out_root, args.address, progress)
    figures["sweep"] = str(sweep.path)
    frame.write_parquet(out_root / "results.parquet")
    frame.write_csv(out_root / "results.csv")
    write_sweep_html(out_root / "sweep.html", frame, figures, sc.metric, f"raytrade sweep: {sweep.path.name}")
    (out_root / "sweep.json").write_text(json.dumps(figures, indent=2, sort_keys=True))
    ok = frame.filter(frame["status"] == "ok")
    best = ok.sort(sc.metric, descending=True, nulls_last=True).head(3) if sc.metric in ok.columns else ok.head(0)
    keep = [c for c in best.columns if c not in TIMING]
    out = {
        **figures,
        "output_dir": str(out_root),
        "best": best.select(keep).to_dicts(),
        "failed_runs": frame.filter(frame["status"] == "failed").select("run_id", "error").to_dicts(),
    }
    print(json.dumps(out, indent=2, sort_keys=True, default=str))
    return 0
