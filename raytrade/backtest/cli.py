"""``raytrade backtest --config configs/backtest.yaml [--data PATH] [--start T --end T] [--output DIR]``."""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path
from typing import Any

from raytrade.backtest.data import DataError, load_market, parse_time
from raytrade.backtest.outputs import write_outputs
from raytrade.backtest.runner import Backtest, fresh_output
from raytrade.cluster.config import ConfigError, load_config
from raytrade.strategy.base import StrategyFailedError
from raytrade.strategy.loader import load_strategies


def add_parser(sub: Any) -> None:
    """Register the ``backtest`` sub-command."""
    b = sub.add_parser("backtest", help="backtest the configured strategies on history (same classes as live)")
    b.add_argument("--config", default="configs/backtest.yaml", help="YAML config (default: %(default)s)")
    b.add_argument("--data", help="CSV/Parquet file or folder of bars or ticks (default: backtest.data)")
    b.add_argument("--start", help="ISO date/time, inclusive (default: backtest.start, else the data's start)")
    b.add_argument("--end", help="ISO date/time, exclusive (default: backtest.end, else the data's end)")
    b.add_argument("--output", help="output folder (default: backtest.output_dir)")
    b.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar")
    b.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run one backtest; print the headline summary as JSON. Exit 2 on bad input or a raising strategy."""
    cfg = load_config(args.config)
    bt = cfg.backtest
    path = args.data or bt.data
    if not path:
        raise ConfigError("no market data: pass --data PATH or set backtest.data")
    try:
        start = args.start or bt.start
        end = args.end or bt.end
        data = load_market(
            path,
            [i.symbol for i in cfg.instruments],
            parse_time(start, "start") if start else None,
            parse_time(end, "end") if end else None,
        )
    except DataError as exc:
        print(f"raytrade backtest: {exc}", file=sys.stderr)
        return 2
    if bt.bars_as_ticks:
        data = data.as_ticks()
    out_dir = Path(args.output or bt.output_dir)
    ledger = fresh_output(out_dir)
    model = None
    if cfg.model is not None:  # the model stack (torch, XGBoost, LightGBM) loads only when one is configured
        from raytrade.training.bootstrap import configured_model

        model = configured_model(cfg)
    engine = Backtest(cfg, model, lambda: load_strategies(cfg.strategy_specs()), str(ledger))
    show = sys.stderr.isatty() if args.progress is None else args.progress
    from tqdm import tqdm

    with tqdm(total=data.frame.height, unit="ev", unit_scale=True, disable=not show, file=sys.stderr) as bar:
        try:
            run = engine.run(data, bar.update)
        except StrategyFailedError as exc:
            bar.close()
            cause = exc.__cause__
            if cause is not None:
                traceback.print_exception(cause, file=sys.stderr)
            print(
                f"raytrade backtest: {exc}; stopped. The ledger ({ledger}) holds every event before it.",
                file=sys.stderr,
            )
            return 2
    info = {"data": str(path), "files": list(data.files), "symbols": data.symbols, "config": str(args.config)}
    summary = write_outputs(cfg, run, data, out_dir, info)
    headline = {k: summary[k] for k in ("orders", "fills", "net_pnl", "equity", "wall_s", "events_per_s")}
    headline["metrics"] = summary["metrics"]
    headline["output_dir"] = str(out_dir)
    print(json.dumps(headline, indent=2, sort_keys=True))
    return 0
