"""``raytrade backtest``: the live engine's classes over history, in one process, without Kafka or Ray.

One :class:`~raytrade.domain.shard_engine.ShardEngine` per partition (symbols are assigned to
partitions as the Kafka producer keys them, so strategies see the same universe per instance as
the shards do live), the RiskGate's steps (:class:`~raytrade.domain.gate.GateCore`) and
:class:`~raytrade.actors.execution.ExecutionCore` with the paper broker and the ledger schema.
Events are fed in timestamp order, one timestamp at a time: every partition's bars (or ticks) of
that time, then the gate and Execution for each partition in turn, exactly as one batch of a
shard goes through the actors.
"""

from __future__ import annotations

import gc
import heapq
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

from raytrade.actors.execution_core import ExecutionCore
from raytrade.adapters.kafka.rolling import partition_for
from raytrade.backtest.data import MarketData
from raytrade.cluster.config import RunConfig
from raytrade.domain.bars import BAR_NS, Bar
from raytrade.domain.gate import GateCore
from raytrade.domain.instruments import Instrument
from raytrade.domain.money import ZERO, decimal_from_float
from raytrade.domain.paper_broker import PaperBrokerConfig
from raytrade.domain.risk import RiskEvent, TradingState
from raytrade.domain.shard_engine import Group, ShardEngine, ShardModel
from raytrade.domain.ticks import Tick, encode_tick
from raytrade.strategy.base import Strategy, StrategyFailedError

KEY = "backtest"  # Execution's gate key: only this driver's gate steps call it


@dataclass
class Curve:
    """The account sampled after every timestamp: equity, exposures and positions (floats, for metrics and plots)."""

    ts: list[int] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)
    gross: list[float] = field(default_factory=list)
    net: list[float] = field(default_factory=list)
    positions: dict[str, list[float]] = field(default_factory=dict)  # signed value, % of equity


@dataclass
class BacktestRun:
    """What a run produced (the files are written by :mod:`raytrade.backtest.outputs`)."""

    core: ExecutionCore
    gate: GateCore
    engines: list[ShardEngine]
    curve: Curve
    events: int
    bars: int
    wall_s: float
    disabled: dict[str, str]


def broker_config(cfg: RunConfig) -> PaperBrokerConfig:
    """The fill convention: ``paper`` = the configured paper broker; ``next_bar_open`` = no latency,
    spread, impact or volume cap (an order decided at a bar's close fills whole at the next open)."""
    paper = cfg.execution.broker_config()
    if cfg.backtest.fills == "paper":
        return paper
    return PaperBrokerConfig(paper.fees, ZERO, 0.0, None, 0, paper.vol_halflife_bars)


class Backtest:
    """Drive the engines, gate steps and Execution over one :class:`MarketData`."""

    def __init__(
        self,
        cfg: RunConfig,
        model: ShardModel | None,
        strategies: Callable[[], Sequence[Strategy]],
        ledger_url: str,
    ) -> None:
        self.cfg = cfg
        self.instruments = [i.instrument() for i in cfg.instruments]
        self.partitions = cfg.kafka.partitions
        self.part_of = {i.symbol: partition_for(i.symbol.encode(), self.partitions, 0) for i in self.instruments}
        self.engines = []
        for p in range(self.partitions):
            mine: list[Instrument] = [i for i in self.instruments if self.part_of[i.symbol] == p]
            disable = cfg.on_strategy_error == "disable"
            self.engines.append(ShardEngine(mine, strategies(), model, cfg.execution.initial_cash, disable))
        self.core = ExecutionCore(
            self.instruments,
            broker_config(cfg),
            ledger_url,
            cfg.execution.initial_cash,
            gate_key=KEY,
            measure_latency=False,
        )
        self.gate = GateCore(cfg.risk.limits(), self.instruments)
        acct = self.core.account()
        self.gate.rules.confirm(acct["positions"], acct["working"], acct["seq"], acct["cash"], acct["equity"])
        self.reply_state = [TradingState.ACTIVE] * self.partitions
        self.disabled: dict[str, str] = {}
        self._quiet: list[tuple[str, Bar]] = []  # bars of quiet groups not yet through the gate (see _may_defer)
        self._closes: dict[str, float] = {}  # their last close per symbol (the curve's marks meanwhile)
        self._last_seen: dict[int, dict[str, float]] = {}  # per partition: those closes as of its last group
        self._stale: set[int] = set()  # partitions whose view is behind Execution's (see _may_defer)
        lim = self.gate.rules.limits
        self._equity_free = self.gate.rules.stops is None and all(
            level is None for level in (lim.drawdown_reduce, lim.drawdown_halt, lim.intraday_reduce, lim.intraday_halt)
        )
        for engine in self.engines:
            engine.before_equity = self._flush  # a strategy reading its equity sees every bar before its own
        self.curve = Curve(positions={i.symbol: [] for i in self.instruments})

    # -- one group through the gate and Execution, as a shard sends it -------------------------

    def _submit(self, p: int, group: Group) -> None:
        engine = self.engines[p]
        result = engine.decide(group)
        intents, commands = result.intents, result.commands
        if not intents and not commands and p not in self._stale and self._may_defer():
            self._quiet.extend(result.bars)
            for symbol, bar in result.bars:
                self._closes[symbol] = bar.close
            self._last_seen[p] = dict(self._closes)  # the marks as of this partition's last group
            return
        self._flush()
        if intents and self.reply_state[p] is TradingState.HALTED:  # as a shard told so in its last reply
            engine.discard(intents)
            intents = []
        call = self.gate.begin(intents, result.bars)
        done = self.core.reports([i.order_id for i in call.stop_exits]) if call.stop_exits else {}
        decisions = self.gate.decide(call, done)
        reply = self.core.execute(decisions, result.bars, KEY, list(done), commands)
        self._stale.discard(p)  # up to date with this reply (a kill switch right after it makes it stale again)
        self._after(self.gate.settle(call, reply))
        self.reply_state[p] = self.gate.rules.state
        engine.sync(reply.positions, reply.working, reply.equity)
        engine.deliver(reply.events, reply.fills)

    def _may_defer(self) -> bool:
        """Whether a quiet group (no intents, no commands) may wait for the next call to the gate and Execution.

        With nothing working, its bars trade nothing: they move marks, volatility and VaR history, and
        with a position the equity. So it may wait while the account is flat, and with a position too
        when no rule needs each bar's equity or position (no drawdown breakers, no ATR stops). Whatever
        reads the state first flushes the waiting bars: the next group that sends something, a
        strategy reading its equity, the end of the run (the curve uses the waiting closes). A shard
        whose view is behind Execution's (the gate's kill switch cancelled orders in another shard's
        call) sends its next group as a call of its own, to get the reply it would get live.
        """
        if self.core.broker.orders:
            return False
        return self._equity_free or not self.core.portfolio.positions()

    def _flush(self) -> None:
        """The deferred quiet bars through the gate and Execution, in one call."""
        if not self._quiet:
            return
        bars, self._quiet = self._quiet, []
        before = dict(self.core.marks)
        seen, self._last_seen = self._last_seen, {}
        self._closes.clear()
        call = self.gate.begin([], bars)
        reply = self.core.execute(self.gate.decide(call, {}), bars, KEY)
        self._after(self.gate.settle(call, reply))
        # Each waiting shard gets the reply to its own last group, as if each group had been a call: the
        # state (it cannot change in a flush: no breaker, or a flat account's constant equity), the
        # positions (they cannot either: nothing works) and the equity as of that group's closes.
        held = self.core.portfolio.positions()
        for p, closes in seen.items():
            self.reply_state[p] = self.gate.rules.state
            marks = {**before, **{s: self._mark(s, c) for s, c in closes.items() if s in held}}
            equity = self.core.portfolio.equity(marks) if held else reply.equity
            self.engines[p].sync(reply.positions, reply.working, equity)

    def _after(self, events: list[RiskEvent]) -> None:
        """As the gate actor: record transitions; on HALTED cancel every open order."""
        if not events:
            return
        rules = self.gate.rules
        for e in events:
            self.core.record_risk_event(e.ts, e.kind, e.state.value, e.reason)
        halted = any(e.state is TradingState.HALTED for e in events)
        if halted and self.core.cancel_all(f"halted: {rules.halt_reason}", "risk_gate", KEY):
            self._stale.update(range(self.partitions))  # every shard learns it from its next reply

    def _sample(self, ts: int) -> None:
        core, c = self.core, self.curve
        positions = core.portfolio.positions()
        c.ts.append(ts)
        if not positions:  # flat: equity is the cash
            c.equity.append(float(core.portfolio.cash))
            c.gross.append(0.0)
            c.net.append(0.0)
            for series in c.positions.values():
                series.append(0.0)
            return
        marks: Mapping[str, Decimal] = core.marks
        if self._closes:  # bars still waiting for Execution: their closes on the price grid
            marks = {**marks, **{s: self._mark(s, c) for s, c in self._closes.items() if s in positions}}
        gross = net = 0.0
        equity = float(core.portfolio.equity(marks))
        for symbol, series in c.positions.items():
            q = positions.get(symbol, ZERO)
            v = float(q * marks[symbol]) if q and symbol in marks else 0.0
            series.append(100.0 * v / equity if equity else 0.0)
            gross += abs(v)
            net += v
        c.equity.append(equity)
        c.gross.append(gross)
        c.net.append(net)

    def _mark(self, symbol: str, close: float) -> Decimal:
        return decimal_from_float(close, self.core.instruments[symbol].price_increment)

    # -- the loop -------------------------------------------------------------------------------

    def _chunks(self, data: MarketData) -> Iterator[list[list[Any]]]:
        """Rows per partition, in time order, ``batch_size`` events at a time (a chunk never splits a timestamp)."""
        frame = data.frame
        part = frame["symbol"].replace_strict(self.part_of, return_dtype=pl.Int64)
        frame = frame.with_columns(part.alias("partition"))
        offsets = frame.select(pl.int_range(pl.len()).over("partition").alias("offset"))["offset"]
        frame = frame.with_columns(offsets)
        bars = data.kind == "bars"
        if bars:
            cols = ["ts", "partition", "offset", "symbol", "open", "high", "low", "close", "volume", "span"]
        else:
            cols = ["ts", "partition", "offset", "symbol", "price", "size"]
        size = self.cfg.backtest.batch_size
        rows: list[list[Any]] = [[] for _ in range(self.partitions)]
        n, current = 0, None
        table = frame.select(cols)
        for row in zip(*(table[c].to_list() for c in cols), strict=True):  # faster than iter_rows
            ts, p, off, sym = row[0], row[1], row[2], row[3]
            if ts != current and n >= size:
                yield rows
                rows, n = [[] for _ in range(self.partitions)], 0
            current = ts
            if bars:
                rows[p].append((p, off, sym, Bar(ts, row[4], row[5], row[6], row[7], row[8], row[9])))
            else:
                rows[p].append((p, off, sym.encode(), encode_tick(Tick(sym, row[4], row[5], ts))))
            n += 1
        if n:
            yield rows

    def run(self, data: MarketData, progress: Callable[[int], None] | None = None) -> BacktestRun:
        """Feed every event; the ledger is complete up to the last whole group (see the module docstring)."""
        t0 = time.perf_counter()
        try:
            with self.core.ledger.group(), rare_gc():  # one transaction: the ledger is the run's output
                try:
                    events, bars = self._loop(data, progress)
                except StrategyFailedError:
                    self._flush()  # every group before the failing one is whole in the ledger, as live
                    raise
        finally:
            for engine in self.engines:
                engine.before_equity = None  # no cycle back to this driver (its ledger closes with it)
        return BacktestRun(
            self.core,
            self.gate,
            self.engines,
            self.curve,
            events,
            bars,
            time.perf_counter() - t0,
            dict(self.disabled),
        )

    def _loop(self, data: MarketData, progress: Callable[[int], None] | None) -> tuple[int, int]:
        """Each chunk: every engine prepares its rows (bars, features, one model call), then every
        group goes through the gate and Execution in event-time order; the curve gets a point per
        timestamp of bars (at the bars' close), per minute of ticks."""
        for e in self.engines:
            e.start()
        events = bars = 0
        on_bars = data.kind == "bars"
        last = -1  # the last bar close time (bars) or minute (ticks) sampled
        for per_partition in self._chunks(data):
            prepared = []
            for p, (engine, rows) in enumerate(zip(self.engines, per_partition, strict=True)):
                if rows:
                    ready = engine.prepare_bars(rows) if on_bars else engine.prepare(rows, 0)
                    prepared.append([(g.key, p, g) for g in ready.groups])
            # Every partition's groups in event-time order: the order the gate takes them live.
            for key, p, group in prepared[0] if len(prepared) == 1 else heapq.merge(*prepared, key=_first):
                if on_bars and key[0] != last:
                    if last >= 0:
                        self._sample(last)  # every group of the previous close time is through
                    last = key[0]
                bars += len(group.closed)
                self._submit(p, group)
                if not on_bars and key[0] // BAR_NS > last:  # ticks: a point as each minute opens
                    last = key[0] // BAR_NS
                    self._sample(last * BAR_NS)
            for engine in self.engines:
                self.disabled.update(engine.disabled)
            count = sum(len(r) for r in per_partition)
            events += count
            if progress is not None:
                progress(count)
        self._flush()
        if on_bars and last >= 0:
            self._sample(last)
        for e in self.engines:
            e.stop()
        return events, bars


@contextmanager
def rare_gc(gen0: int = 50_000) -> Iterator[None]:
    """The cyclic garbage collector, less often: every ``gen0`` net allocations instead of 700, and not over
    the objects alive before (``gc.freeze``). A backtest allocates a few objects per bar and keeps many
    (the curve, the orders): measured here, the default thresholds cost 30% of a 262k-bar run, collecting
    nothing. Reference counting still frees everything acyclic at once; thresholds are restored after (and
    ``gc.unfreeze`` returns the frozen objects, a caller's own frozen ones too, to the oldest generation)."""
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(gen0, before[1], max(before[2], 100))
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def _first(item: tuple[Any, ...]) -> Any:
    return item[0]


def fresh_output(out_dir: Path) -> Path:
    """Empty ``out_dir`` of a previous backtest's files; the ledger path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("ledger.db", "ledger.db-wal", "ledger.db-shm"):
        (out_dir / name).unlink(missing_ok=True)
    shutil.rmtree(out_dir / "plots", ignore_errors=True)
    return out_dir / "ledger.db"
