"""``raytrade backtest --config configs/backtest.yaml [--data PATH] [--start T --end T] [--output DIR]``,
``raytrade backtest --sweep configs/sweep.yaml [--address ADDR]`` and
``raytrade backtest --walk-forward --config configs/walkforward.yaml [--address ADDR]``."""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from raytrade.backtest.data import DataError
from raytrade.backtest.session import HEADLINE, configured, load_data, run_backtest
from raytrade.cluster.config import load_config
from raytrade.strategy.base import StrategyFailedError


def add_parser(sub: Any) -> None:
    """Register the ``backtest`` sub-command."""
    b = sub.add_parser("backtest", help="backtest the configured strategies on history (same classes as live)")
    b.add_argument("--config", default="configs/backtest.yaml", help="YAML config (default: %(default)s)")
    b.add_argument("--data", help="CSV/Parquet file or folder of bars or ticks (default: backtest.data)")
    b.add_argument("--start", help="ISO date/time, inclusive (default: backtest.start, else the data's start)")
    b.add_argument("--end", help="ISO date/time, exclusive (default: backtest.end, else the data's end)")
    b.add_argument("--output", help="output folder (default: backtest.output_dir, sweep/walk_forward output_dir)")
    b.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar")
    b.add_argument("--sweep", metavar="SWEEP_YAML", help="a grid or random search over params, symbols and dates")
    b.add_argument(
        "--walk-forward",
        action="store_true",
        help="per fold: train the configured model on the window before it, register it, backtest the block",
    )
    b.add_argument("--address", help="Ray cluster for --sweep/--walk-forward (default: a local one)")
    b.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run one backtest, a sweep or a walk-forward; print the headline as JSON. Exit 2 on bad input."""
    if args.sweep and args.walk_forward:
        print("raytrade backtest: give --sweep or --walk-forward, not both", file=sys.stderr)
        return 2
    if args.sweep:
        from raytrade.backtest.sweep_cli import sweep_main

        return sweep_main(args)
    if args.walk_forward:
        from raytrade.backtest.walk_forward_cli import walk_forward_main

        return walk_forward_main(args)
    return single(args)


def single(args: argparse.Namespace) -> int:
    """One backtest in this process."""
    cfg = load_config(args.config)
    t0 = time.perf_counter()
    try:
        path, data = load_data(cfg, args.data, args.start, args.end)
    except DataError as exc:
        print(f"raytrade backtest: {exc}", file=sys.stderr)
        return 2
    out_dir = Path(args.output or cfg.backtest.output_dir)
    model = configured(cfg)
    show = sys.stderr.isatty() if args.progress is None else args.progress
    from tqdm import tqdm

    info = {
        "data": str(path),
        "files": list(data.files),
        "symbols": data.symbols,
        "config": str(args.config),
        "load_s": round(time.perf_counter() - t0, 3),
    }
    with tqdm(total=data.frame.height, unit="ev", unit_scale=True, disable=not show, file=sys.stderr) as bar:
        try:
            summary, _ = run_backtest(cfg, data, out_dir, info, model, bar.update)
        except StrategyFailedError as exc:
            bar.close()
            cause = exc.__cause__
            if cause is not None:
                traceback.print_exception(cause, file=sys.stderr)
            print(
                f"raytrade backtest: {exc}; stopped. The ledger ({out_dir / 'ledger.db'}) holds every event before it.",
                file=sys.stderr,
            )
            return 2
    headline = {k: summary[k] for k in HEADLINE}
    headline["metrics"] = summary["metrics"]
    headline["output_dir"] = str(out_dir)
    print(json.dumps(headline, indent=2, sort_keys=True))
    return 0
