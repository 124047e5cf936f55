"""The SMA crossover in vectorbt: all symbols as columns of one cash-sharing portfolio.

Usage: ``python run_vectorbt.py --data PATH [PATH...] --out result.json [--limit N]``

SMAs are ``vbt.MA`` (rolling means); the tie/carry rule is applied vectorized below. A signal at bar
i's close is placed on bar i + 1 with ``price=open``, so it fills at that bar's open. Timed: the MAs,
the signals, ``Portfolio.from_signals`` and the trade records. The first run in a process compiles
(numba, cached on disk after the first process): reported as ``cold_backtest_s``; ``backtest_s`` is
a second, warm run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import vectorbt as vbt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    CASH,
    FAST,
    QTY,
    SLOW,
    TIE_TOLERANCE,
    OpenEntry,
    Trade,
    load_dataset,
    make_result,
    parse_args,
    timed,
    write_result,
)

CLOSED = 1  # vectorbt TradeStatus.Closed


def cross_signals(fast: np.ndarray, slow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cross up, cross down) per bar and column: raytrade's rule on (bars, symbols) arrays.

    rel is NaN while an SMA is missing, 0 for a tie; the side is the last non-zero rel (ties carry
    it); a cross is a non-zero rel that differs from the side of the bar before (so the first side
    after warm-up is not a cross).
    """
    gap = fast - slow
    with np.errstate(invalid="ignore"):
        rel = np.where(np.abs(gap) <= TIE_TOLERANCE * np.abs(slow), 0.0, np.sign(gap))
    side = np.where(rel == 0.0, np.nan, rel)
    rows = np.arange(len(side))[:, None]
    last = np.maximum.accumulate(np.where(np.isnan(side), 0, rows), axis=0)
    side = side[last, np.arange(side.shape[1])[None, :]]
    before = np.vstack([np.full((1, side.shape[1]), np.nan), side[:-1]])
    return (rel == 1.0) & (before == -1.0), (rel == -1.0) & (before == 1.0)


def backtest(close: pd.DataFrame, open_: pd.DataFrame) -> np.ndarray:
    """Run the strategy; vectorbt's trade records."""
    fast = vbt.MA.run(close, window=FAST).ma.to_numpy()
    slow = vbt.MA.run(close, window=SLOW).ma.to_numpy()
    up, down = cross_signals(fast, slow)
    entries = np.zeros_like(up)
    exits = np.zeros_like(down)
    entries[1:], exits[1:] = up[:-1], down[:-1]  # decided at i's close, executed at i + 1's open
    portfolio = vbt.Portfolio.from_signals(
        close,
        entries,
        exits,
        price=open_,
        size=QTY,
        size_type="amount",
        direction="longonly",
        init_cash=CASH,
        fees=0.0,
        slippage=0.0,
        group_by=True,
        cash_sharing=True,
        freq="1min",
    )
    return np.asarray(portfolio.trades.values)


def main() -> None:
    """Load, run (cold, then warm), write the result."""
    args = parse_args(__doc__ or "")
    frames, load_s = timed(lambda: load_dataset(args.data, args.limit))

    def setup() -> tuple[pd.DataFrame, pd.DataFrame]:
        index = pd.DatetimeIndex(pd.to_datetime(next(iter(frames.values()))["ts"].to_numpy(), unit="ns"))
        for frame in frames.values():
            if len(frame) != len(index) or not np.array_equal(frame["ts"].to_numpy(), index.asi8):
                raise ValueError("vectorbt runner needs symbols on the same bar times")
        wide = {
            col: pd.DataFrame({s: f[col].to_numpy() for s, f in frames.items()}, index=index)
            for col in ("close", "open")
        }
        return wide["close"], wide["open"]

    (close, open_), setup_s = timed(setup)
    cold, cold_s = timed(lambda: backtest(close, open_))
    records, backtest_s = timed(lambda: backtest(close, open_))
    if not np.array_equal(cold, records):
        raise RuntimeError("cold and warm runs differ")
    symbols = list(close.columns)
    ts = close.index.asi8
    trades: list[Trade] = []
    open_entries: list[OpenEntry] = []
    for r in records:
        if r["size"] != QTY:
            raise RuntimeError(f"trade of size {r['size']}")
        symbol, entry_ts, entry_price = symbols[r["col"]], int(ts[r["entry_idx"]]), float(r["entry_price"])
        if r["status"] == CLOSED:
            trades.append(
                Trade(
                    symbol=symbol,
                    entry_ts=entry_ts,
                    entry_price=entry_price,
                    exit_ts=int(ts[r["exit_idx"]]),
                    exit_price=float(r["exit_price"]),
                )
            )
        else:
            open_entries.append(OpenEntry(symbol=symbol, entry_ts=entry_ts, entry_price=entry_price))
    result = make_result(
        "vectorbt",
        vbt.__version__,
        frames,
        load_s,
        backtest_s,
        trades,
        open_entries,
        setup_s=setup_s,
        cold_backtest_s=cold_s,
        note="one cash-sharing portfolio, one column per symbol; numba engine; backtest_s is the warm (second) run",
    )
    write_result(args.out, result)
    print(f"vectorbt: {result['bars']} bars, {len(trades)} trades, {backtest_s:.3f} s (cold {cold_s:.3f} s)")


if __name__ == "__main__":
    main()
