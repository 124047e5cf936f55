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

import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from raytrade.actors.execution import ExecutionCore
from raytrade.adapters.kafka.rolling import partition_for
from raytrade.backtest.data import MarketData
from raytrade.cluster.config import RunConfig
from raytrade.domain.bars import Bar
from raytrade.domain.gate import GateCore
from raytrade.domain.instruments import Instrument
from raytrade.domain.money import ZERO
from raytrade.domain.paper_broker import PaperBrokerConfig
from raytrade.domain.risk import RiskEvent, TradingState
from raytrade.domain.shard_engine import BatchResult, ShardEngine, ShardModel
from raytrade.domain.ticks import Tick, encode_tick
from raytrade.strategy.base import Strategy

KEY = "backtest"  # Execution's gate key: only this driver's gate steps call it


@dataclass
class Curve:
    """The account sampled after every timestamp: equity, exposures and positions (floats, for metrics and plots)."""

    ts: list[int] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)
    gross: list[float] = field(default_factory=list)
    net: list[float] = field(default_factory=list)
    positions: dict[str, list[float]] = field(default_factory=dict)


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
        self.halted = False
        self.disabled: dict[str, str] = {}
        self.curve = Curve(positions={i.symbol: [] for i in self.instruments})

    # -- one shard batch through the gate and Execution ---------------------------------------

    def _submit(self, engine: ShardEngine, result: BatchResult) -> None:
        intents, commands = result.intents, result.commands
        if intents and self.halted:  # as a shard that knows the gate halted: not sent
            engine.discard(intents)
            intents = []
        if not (intents or commands or result.bars):
            return
        call = self.gate.begin(intents, result.bars)
        done = self.core.reports([i.order_id for i in call.stop_exits]) if call.stop_exits else {}
        decisions = self.gate.decide(call, done)
        reply = self.core.execute(decisions, result.bars, KEY, list(done), commands)
        self._after(self.gate.settle(call, reply))
        engine.sync(reply.positions, reply.working, reply.equity)
        engine.deliver(reply.events, reply.fills)

    def _after(self, events: list[RiskEvent]) -> None:
        """As the gate actor: record transitions; on HALTED cancel every open order."""
        if not events:
            return
        rules = self.gate.rules
        for e in events:
            self.core.record_risk_event(e.ts, e.kind, e.state.value, e.reason)
        self.halted = rules.state is TradingState.HALTED
        if any(e.state is TradingState.HALTED for e in events):
            self.core.cancel_all(f"halted: {rules.halt_reason}", "risk_gate", KEY)

    def _sample(self, ts: int) -> None:
        core, c = self.core, self.curve
        positions = core.portfolio.positions()
        marks = core.marks
        gross = net = 0.0
        for symbol, series in c.positions.items():
            q = positions.get(symbol, ZERO)
            series.append(float(q))
            if q and symbol in marks:
                v = float(q * marks[symbol])
                gross += abs(v)
                net += v
        c.ts.append(ts)
        c.equity.append(float(core.portfolio.equity(marks)))
        c.gross.append(gross)
        c.net.append(net)

    # -- the loop -------------------------------------------------------------------------------

    def _groups(self, data: MarketData) -> Iterator[tuple[int, list[list[Any]]]]:
        """(event time, rows per partition) for each timestamp, in time order."""
        frame = data.frame
        part = frame["symbol"].replace_strict(self.part_of, return_dtype=pl.Int64)
        frame = frame.with_columns(part.alias("partition"))
        offsets = frame.select(pl.int_range(pl.len()).over("partition").alias("offset"))["offset"]
        frame = frame.with_columns(offsets)
        if data.kind == "bars":
            cols = ["ts", "partition", "offset", "symbol", "open", "high", "low", "close", "volume", "span"]
            current: int | None = None
            rows: list[list[Any]] = [[] for _ in range(self.partitions)]
            for ts, p, off, sym, o, h, lo, c, v, span in frame.select(cols).iter_rows():
                if current is not None and ts != current:
                    yield current, rows
                    rows = [[] for _ in range(self.partitions)]
                current = ts
                rows[p].append((p, off, sym, Bar(ts, o, h, lo, c, v, span)))
            if current is not None:
                yield current, rows
            return
        size = self.cfg.backtest.batch_size
        cols = ["ts", "partition", "offset", "symbol", "price", "size"]
        rows = [[] for _ in range(self.partitions)]
        n = 0
        last = 0
        for ts, p, off, sym, price, qty in frame.select(cols).iter_rows():
            rows[p].append((p, off, sym.encode(), encode_tick(Tick(sym, price, qty, ts))))
            n += 1
            last = ts
            if n >= size:
                yield last, rows
                rows, n = [[] for _ in range(self.partitions)], 0
        if n:
            yield last, rows

    @staticmethod
    def _process(engine: ShardEngine, kind: str, rows: list[Any]) -> BatchResult:
        if kind == "bars":
            return engine.process_bars(rows)
        return engine.process(rows, 0)

    def run(self, data: MarketData, progress: Callable[[int], None] | None = None) -> BacktestRun:
        """Feed every event; returns what happened (the ledger is complete up to the last whole timestamp)."""
        t0 = time.perf_counter()
        for e in self.engines:
            e.start()
        events = bars = 0
        for ts, per_partition in self._groups(data):
            for engine, rows in zip(self.engines, per_partition, strict=True):
                if not rows:
                    continue
                result = self._process(engine, data.kind, rows)
                bars += result.bars_closed
                self._submit(engine, result)
                self.disabled.update(engine.disabled)
            events += sum(len(r) for r in per_partition)
            self._sample(ts + (per_partition_span(per_partition) if data.kind == "bars" else 0))
            if progress is not None:
                progress(sum(len(r) for r in per_partition))
        for e in self.engines:
            e.stop()
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


def per_partition_span(per_partition: list[list[Any]]) -> int:
    """The span of the first bar of a timestamp's rows (its close = start + span)."""
    for rows in per_partition:
        if rows:
            return int(rows[0][3].span)
    return 0


def fresh_output(out_dir: Path) -> Path:
    """Empty ``out_dir`` of a previous backtest's files; the ledger path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("ledger.db", "ledger.db-wal", "ledger.db-shm"):
        (out_dir / name).unlink(missing_ok=True)
    shutil.rmtree(out_dir / "plots", ignore_errors=True)
    return out_dir / "ledger.db"
