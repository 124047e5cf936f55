"""The SMA crossover in backtesting.py (single-asset: one ``Backtest`` per symbol, times summed).

Usage: ``python run_backtesting.py --data PATH [PATH...] --out result.json [--limit N]``

Orders placed in ``next()`` fill at the next bar's open (``trade_on_close=False``); ``size=1`` is
one unit. ``finalize_trades=False`` keeps a position open at the end out of the closed trades (it is
read from the strategy's open trades instead). backtesting.py calls ``next()`` only from the bar
after the indicators' warm-up (bar 30, not 29), so the strategy first catches up on the bars it was
not shown; a cross can only be found on the current bar (checked).
"""

from __future__ import annotations

import os
import sys
import warnings
from functools import partial
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bar (read at tqdm's import)

import backtesting
import numpy as np
import pandas as pd
from backtesting import Backtest, Strategy
from backtesting.test import SMA

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    CASH,
    FAST,
    QTY,
    SLOW,
    CrossRule,
    OpenEntry,
    Trade,
    load_dataset,
    make_result,
    parse_args,
    timed,
    write_result,
)


class SmaCross(Strategy):  # type: ignore[misc]
    """Long ``QTY`` on a cross up, flat on a cross down (raytrade's tie/carry rule)."""

    def init(self) -> None:
        self.fast = self.I(SMA, self.data.Close, FAST)
        self.slow = self.I(SMA, self.data.Close, SLOW)
        self.rule = CrossRule()
        self.done = -1  # last bar index fed to the rule

    def next(self) -> None:
        now = len(self.data) - 1
        signal = 0
        for i in range(self.done + 1, now + 1):
            signal = self.rule.step(float(self.fast[i]), float(self.slow[i]))
            if signal and i < now:
                raise RuntimeError(f"cross at bar {i}, before the first bar shown to next() ({now})")
        self.done = now
        if signal > 0 and not self.position:
            self.buy(size=QTY)
        elif signal < 0 and self.position:
            self.position.close()


def engine_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """backtesting.py's input: Open/High/Low/Close/Volume on a DatetimeIndex."""
    index = pd.DatetimeIndex(pd.to_datetime(frame["ts"].to_numpy(), unit="ns"))
    data = {name.capitalize(): frame[name].to_numpy() for name in ("open", "high", "low", "close", "volume")}
    return pd.DataFrame(data, index=index)


def main() -> None:
    """Load, run one Backtest per symbol, write the result."""
    args = parse_args(__doc__ or "")
    frames, load_s = timed(lambda: load_dataset(args.data, args.limit))
    trades: list[Trade] = []
    open_entries: list[OpenEntry] = []
    setup_s = backtest_s = 0.0
    for symbol, frame in frames.items():
        data, seconds = timed(partial(engine_frame, frame))
        setup_s += seconds
        backtest = Backtest(
            data,
            SmaCross,
            cash=CASH,
            commission=0.0,
            trade_on_close=False,
            exclusive_orders=False,
            finalize_trades=False,
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Some trades remain open")
            stats, seconds = timed(backtest.run)
        backtest_s += seconds
        ts = frame["ts"].to_numpy(dtype=np.int64)
        for t in stats._strategy.closed_trades:
            if t.size != QTY:
                raise RuntimeError(f"{symbol}: trade of size {t.size}")
            trades.append(
                Trade(
                    symbol=symbol,
                    entry_ts=int(ts[t.entry_bar]),
                    entry_price=float(t.entry_price),
                    exit_ts=int(ts[t.exit_bar]),
                    exit_price=float(t.exit_price),
                )
            )
        open_entries += [
            OpenEntry(symbol=symbol, entry_ts=int(ts[t.entry_bar]), entry_price=float(t.entry_price))
            for t in stats._strategy.trades
        ]
    result = make_result(
        "backtesting.py",
        backtesting.__version__,
        frames,
        load_s,
        backtest_s,
        trades,
        open_entries,
        setup_s=setup_s,
        note="single-asset: one Backtest per symbol, backtest_s summed; run() includes its stats",
    )
    write_result(args.out, result)
    print(f"backtesting.py: {result['bars']} bars, {len(trades)} trades, {backtest_s:.3f} s")


if __name__ == "__main__":
    main()
