"""The SMA crossover in backtrader: every symbol as one data feed of one Cerebro (one portfolio).

Usage: ``python run_backtrader.py --data PATH [PATH...] --out result.json [--limit N]``

backtrader's SMA is ``math.fsum(window) / period`` (bit-identical to the reference); its default
broker fills a market order at the next bar's open. Feeds are in memory (a ``DataBase`` reading
Python lists: ``PandasData`` reads each cell with ``.iloc`` and is far slower); ``stdstats=False``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd

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
    trades_from_fills,
    write_result,
)

EPOCH_NUM = 719163.0  # backtrader's date2num(1970-01-01)
DAY_NS = 86_400_000_000_000


class ListFeed(bt.feed.DataBase):  # type: ignore[misc]
    """Bars from in-memory lists (datetime as backtrader day numbers)."""

    params = (("rows", None),)

    def start(self) -> None:
        super().start()
        self._i = -1

    def _load(self) -> bool:
        self._i += 1
        num, o, h, low, c, v = self.p.rows
        i = self._i
        if i >= len(num):
            return False
        lines = self.lines
        lines.datetime[0] = num[i]
        lines.open[0], lines.high[0], lines.low[0], lines.close[0], lines.volume[0] = o[i], h[i], low[i], c[i], v[i]
        lines.openinterest[0] = 0.0
        return True


class SmaCross(bt.Strategy):  # type: ignore[misc]
    """Long ``QTY`` on a cross up, flat on a cross down (raytrade's tie/carry rule)."""

    def __init__(self) -> None:
        self.smas = [(bt.ind.SMA(d.close, period=FAST), bt.ind.SMA(d.close, period=SLOW)) for d in self.datas]
        self.rules = [CrossRule() for _ in self.datas]
        self.fills: dict[str, list[tuple[int, float, float]]] = {d._name: [] for d in self.datas}

    def next(self) -> None:
        for data, (fast, slow), rule in zip(self.datas, self.smas, self.rules, strict=True):
            signal = rule.step(fast[0], slow[0])
            if signal > 0 and self.getposition(data).size == 0:
                self.buy(data=data, size=QTY)
            elif signal < 0 and self.getposition(data).size > 0:
                self.sell(data=data, size=QTY)

    def notify_order(self, order: Any) -> None:
        if order.status == order.Completed:
            # Notified on the bar whose open filled it: its index is len(data) - 1.
            self.fills[order.data._name].append((len(order.data) - 1, order.executed.size, order.executed.price))
        elif order.status in (order.Canceled, order.Margin, order.Rejected):
            raise RuntimeError(f"order {order.ref} {order.getstatusname()}")


def feeds(frames: dict[str, pd.DataFrame]) -> list[ListFeed]:
    """One in-memory feed per symbol."""
    out = []
    for symbol, frame in frames.items():
        num = (EPOCH_NUM + frame["ts"].to_numpy() / DAY_NS).tolist()
        rows = (num, *(frame[c].tolist() for c in ("open", "high", "low", "close", "volume")))
        out.append(ListFeed(rows=rows, name=symbol))
    return out


def main() -> None:
    """Load, run one Cerebro over all symbols, write the result."""
    args = parse_args(__doc__ or "")
    frames, load_s = timed(lambda: load_dataset(args.data, args.limit))

    def setup() -> bt.Cerebro:
        # backtrader's vectorized ("runonce") SMA fails on a feed shorter than its period
        cerebro = bt.Cerebro(stdstats=False, runonce=min(len(f) for f in frames.values()) >= SLOW)
        for feed in feeds(frames):
            cerebro.adddata(feed)
        cerebro.addstrategy(SmaCross)
        cerebro.broker.setcash(CASH)
        cerebro.broker.setcommission(commission=0.0)
        return cerebro

    cerebro, setup_s = timed(setup)
    (strategy,), backtest_s = timed(cerebro.run)
    trades: list[Trade] = []
    open_entries: list[OpenEntry] = []
    for symbol, fills in strategy.fills.items():
        frame = frames[symbol]
        opens = frame["open"].to_numpy()
        for index, _, price in fills:
            if price != opens[index]:
                raise RuntimeError(f"{symbol}: fill at {price}, bar {index} opened at {opens[index]}")
        ts = frame["ts"].to_numpy(dtype=np.int64)
        closed, opened = trades_from_fills(symbol, ((int(ts[i]), size, price) for i, size, price in fills))
        trades += closed
        open_entries += opened
    result = make_result(
        "backtrader",
        bt.__version__,
        frames,
        load_s,
        backtest_s,
        trades,
        open_entries,
        setup_s=setup_s,
        note="one Cerebro, one data feed per symbol; run() includes preload",
    )
    write_result(args.out, result)
    print(f"backtrader: {result['bars']} bars, {len(trades)} trades, {backtest_s:.3f} s")


if __name__ == "__main__":
    main()
