"""The SMA crossover in NautilusTrader: one BacktestEngine, one instrument per symbol.

Usage: ``python run_nautilus.py --data PATH [PATH...] --out result.json [--limit N]``

NautilusTrader has no next-open mode for bars: a market order sent from ``on_bar`` fills at that
bar's close. So each bar also becomes one trade tick at its open (ts = bar-open time), bars carry
their close time (open + bar length), and the strategy decides in ``on_bar`` but sends the order from
the next ``on_trade_tick``: the order fills at that tick, the next bar's open. At equal timestamps
(bar i closes when bar i + 1 opens) bars are added to the engine before ticks and its stable sort
keeps them first. The venue moves its market on trades only (``bar_execution=False``,
``trade_execution=True``) and each tick carries 1,000,000 units, so a market order of 1 is never
split against bar volume (zero-volume bars included). SMAs are Nautilus's ``SimpleMovingAverage``
on ``Price.as_double()``; prices written out are the exact decimals (``str(Price)``).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import nautilus_trader
import numpy as np
import pandas as pd
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig, StrategyConfig
from nautilus_trader.indicators.averages import SimpleMovingAverage
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.data import Bar, BarType, TradeTick
from nautilus_trader.model.enums import AccountType, AggressorSide, OmsType, OrderSide
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.identifiers import InstrumentId, Symbol, TraderId, Venue
from nautilus_trader.model.instruments import Equity
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.trading.strategy import Strategy

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    CASH,
    FAST,
    QTY,
    SLOW,
    CrossRule,
    OpenEntry,
    Trade,
    decimals,
    load_dataset,
    make_result,
    parse_args,
    timed,
    trades_from_fills,
    write_result,
)

VENUE = Venue("SIM")
TICK_SIZE = 1_000_000.0  # liquidity per tick: far above QTY, so no partial fills


class SmaCrossConfig(StrategyConfig, frozen=True):  # type: ignore[misc,call-arg]
    """The bar types to trade (one per instrument)."""

    bar_types: list[str]


class SmaCross(Strategy):  # type: ignore[misc]
    """Long ``QTY`` on a cross up, flat on a cross down (raytrade's tie/carry rule), next-open fills."""

    def __init__(self, config: SmaCrossConfig) -> None:
        super().__init__(config)
        self.bar_types = [BarType.from_str(s) for s in config.bar_types]
        self.smas: dict[InstrumentId, tuple[SimpleMovingAverage, SimpleMovingAverage, CrossRule]] = {}
        self.pending: dict[InstrumentId, OrderSide] = {}
        self.fills: dict[str, list[tuple[int, float, float]]] = defaultdict(list)

    def on_start(self) -> None:
        for bar_type in self.bar_types:
            instrument_id = bar_type.instrument_id
            self.smas[instrument_id] = (SimpleMovingAverage(FAST), SimpleMovingAverage(SLOW), CrossRule())
            self.subscribe_bars(bar_type)
            self.subscribe_trade_ticks(instrument_id)

    def on_bar(self, bar: Bar) -> None:
        instrument_id = bar.bar_type.instrument_id
        fast, slow, rule = self.smas[instrument_id]
        fast.handle_bar(bar)
        slow.handle_bar(bar)
        if not slow.initialized:
            return
        signal = rule.step(fast.value, slow.value)
        if signal > 0 and self.portfolio.is_flat(instrument_id):
            self.pending[instrument_id] = OrderSide.BUY
        elif signal < 0 and self.portfolio.is_net_long(instrument_id):
            self.pending[instrument_id] = OrderSide.SELL

    def on_trade_tick(self, tick: TradeTick) -> None:
        side = self.pending.pop(tick.instrument_id, None)
        if side is not None:
            self.submit_order(self.order_factory.market(tick.instrument_id, side, Quantity.from_int(QTY)))

    def on_order_filled(self, event: OrderFilled) -> None:
        sign = 1.0 if event.order_side == OrderSide.BUY else -1.0
        fill = (event.ts_event, sign * float(event.last_qty), float(str(event.last_px)))
        self.fills[event.instrument_id.symbol.value].append(fill)


def instrument(symbol: str, precision: int) -> Equity:
    """A cash-settled, fee-free instrument with the data's price precision."""
    return Equity(
        instrument_id=InstrumentId(Symbol(symbol), VENUE),
        raw_symbol=Symbol(symbol),
        currency=USD,
        price_precision=precision,
        price_increment=Price.from_str(f"{10.0**-precision:.{precision}f}"),
        lot_size=Quantity.from_int(1),
        ts_event=0,
        ts_init=0,
    )


def market_data(symbol: str, frame: pd.DataFrame) -> tuple[Equity, BarType, list[Bar], list[TradeTick]]:
    """The instrument, its bar type, its bars (stamped at their close) and one tick per bar open."""
    ts = frame["ts"].to_numpy(dtype=np.int64)
    span = int(np.diff(ts).min()) if len(ts) > 1 else 60_000_000_000
    prices = np.concatenate([frame[c].to_numpy() for c in ("open", "high", "low", "close")])
    equity = instrument(symbol, decimals(prices))
    minutes, seconds = divmod(span // 1_000_000_000, 60)
    spec = f"{minutes}-MINUTE" if seconds == 0 else f"{span // 1_000_000_000}-SECOND"
    bar_type = BarType.from_str(f"{equity.id}-{spec}-LAST-EXTERNAL")
    closes_at = (ts + span).astype(np.uint64)
    volume = frame["volume"].to_numpy()
    bars = Bar.from_raw_arrays_to_list(
        bar_type,
        equity.price_precision,
        decimals(volume, 9),
        *(np.ascontiguousarray(frame[c].to_numpy(dtype=np.float64)) for c in ("open", "high", "low", "close")),
        np.ascontiguousarray(volume, dtype=np.float64),
        closes_at,
        closes_at,
    )
    opens_at = ts.astype(np.uint64)
    ticks = TradeTick.from_raw_arrays_to_list(
        equity.id,
        equity.price_precision,
        0,
        np.ascontiguousarray(frame["open"].to_numpy(dtype=np.float64)),
        np.full(len(ts), TICK_SIZE),
        np.full(len(ts), AggressorSide.NO_AGGRESSOR, dtype=np.uint8),
        [str(i) for i in range(len(ts))],
        opens_at,
        opens_at,
    )
    return equity, bar_type, bars, ticks


def build_engine(frames: dict[str, pd.DataFrame]) -> tuple[BacktestEngine, SmaCross]:
    """Engine, venue, instruments, data (bars before ticks) and the strategy."""
    engine = BacktestEngine(
        BacktestEngineConfig(trader_id=TraderId("BENCH-001"), logging=LoggingConfig(log_level="ERROR"))
    )
    engine.add_venue(
        venue=VENUE,
        oms_type=OmsType.NETTING,
        account_type=AccountType.CASH,
        base_currency=USD,
        starting_balances=[Money(CASH, USD)],
        bar_execution=False,
        trade_execution=True,
    )
    data = [market_data(symbol, frame) for symbol, frame in frames.items()]
    for equity, *_ in data:
        engine.add_instrument(equity)
    for _, _, bars, _ in data:
        engine.add_data(bars, sort=False)
    for i, (_, _, _, ticks) in enumerate(data):
        engine.add_data(ticks, sort=i == len(data) - 1)  # one stable sort at the end: bars stay first
    strategy = SmaCross(SmaCrossConfig(bar_types=[str(bar_type) for _, bar_type, _, _ in data]))
    engine.add_strategy(strategy)
    return engine, strategy


def main() -> None:
    """Load, run one engine over all symbols, write the result."""
    args = parse_args(__doc__ or "")
    frames, load_s = timed(lambda: load_dataset(args.data, args.limit))
    (engine, strategy), setup_s = timed(lambda: build_engine(frames))
    _, backtest_s = timed(engine.run)
    trades: list[Trade] = []
    open_entries: list[OpenEntry] = []
    for symbol in frames:
        closed, opened = trades_from_fills(symbol, strategy.fills.get(symbol, []))
        trades += closed
        open_entries += opened
    engine.dispose()
    result = make_result(
        "nautilus_trader",
        nautilus_trader.__version__,
        frames,
        load_s,
        backtest_s,
        trades,
        open_entries,
        setup_s=setup_s,
        note="one engine, one instrument per symbol; bars + one trade tick per bar open "
        "(2 events per bar); orders sent on the tick after the deciding bar",
    )
    write_result(args.out, result)
    print(f"nautilus_trader: {result['bars']} bars, {len(trades)} trades, {backtest_s:.3f} s")


if __name__ == "__main__":
    main()
