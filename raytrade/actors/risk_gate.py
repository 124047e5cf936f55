"""RiskGate actor: the only door to Execution."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import ray

from raytrade.domain.bars import Bar
from raytrade.domain.gate import GateCore
from raytrade.domain.instruments import Instrument
from raytrade.domain.money import ZERO
from raytrade.domain.orders import ExecutionReply, OrderCommand, OrderIntent, OrderReport
from raytrade.domain.risk import RiskEvent, RiskLimits, RiskRules, TradingState, stop_exit_id
from raytrade.domain.sequencer import EventOrder, Key


def _write_atomically(path: Path, text: str) -> None:
    """Write, fsync, rename: the file holds the old or the new content, never a torn one."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class RiskGate:
    """Check every intent, forward the decisions and market data to Execution in one call.

    Only the gate holds ``key``, the capability Execution asks of every call that places,
    cancels or replaces orders: nothing else can trade, whichever node it runs on.

    Fault tolerance: Ray restarts a dead gate and retries the calls that were in flight.
    The trading state is persisted to ``state_path`` before a transition returns, so
    REDUCING/HALTED survive a restart; positions are re-read from Execution. At most
    ``max_inflight`` calls wait on Execution at once (a bounded queue): callers beyond that
    wait here, and shards wait on their call, so intake slows down.

    On HALTED (by command or by rule) the gate cancels every open order and tells every
    registered shard, which then stops sending intents.
    """

    def __init__(
        self,
        limits: RiskLimits,
        execution: Any,
        state_path: str,
        instruments: list[Instrument] | None = None,
        key: str = "",
        max_inflight: int = 4,
        shards: int = 0,
    ) -> None:
        self.core = GateCore(limits, instruments or [])
        # Event-time order of the groups of shards 0..shards-1 (see domain/sequencer.py); known from the
        # constructor, so a restarted gate orders the retried calls as the first one did.
        self.order = EventOrder(range(shards))
        self._turn = asyncio.Condition()
        self.execution = execution
        self.key = key
        self.state_path = Path(state_path)
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        # Grows with every transition and survives restarts: shards take a state (pushed, or
        # in a reply) only if it is newer than the one they have.
        self.state_version = 0
        self._saved: dict[str, Any] | None = None
        if self.state_path.exists():
            self._saved = json.loads(self.state_path.read_text())
            self.state_version = int(self._saved.get("version", 0))
        self._apply_saved_state()
        self.shards: list[Any] = []
        self._slots = asyncio.Semaphore(max_inflight)
        self._loaded = False
        self._load_lock = asyncio.Lock()
        self.replayed = 0
        self.inflight = 0
        self.calls = 0
        self.execute_wait_s = 0.0  # time spent waiting on Execution (the profile behind the benchmark)
        self.halted_at_ns: int | None = None  # wall clock: for measuring how fast a halt reaches the shards

    @property
    def rules(self) -> RiskRules:
        """The rules (replaced when a restarted gate takes its state back from the ledger)."""
        return self.core.rules

    def _apply_saved_state(self) -> None:
        """The kill-switch file (written before a transition returns) is the authority on the state."""
        saved = self._saved
        if saved is not None and saved["state"] != TradingState.ACTIVE.value:
            self.rules.set_state(TradingState(saved["state"]), saved["reason"], 0)
            self.rules.events.clear()

    async def _load(self) -> None:
        async with self._load_lock:
            if self._loaded:
                return
            acct = await self.execution.account.remote()
            blob = acct.get("gate_state")
            if blob is not None:  # restarted: the rule state as of the last call in the ledger
                self.order.last = self.core.restore(blob)
                self._apply_saved_state()
            self.rules.marks.update(acct["marks"])
            self.core.event_ns = max(self.core.event_ns, int(acct.get("event_ns", 0)))
            # Every symbol, flat ones included: a position closed by the last call must not stay confirmed.
            symbols = set(self.core.instruments) | set(acct["positions"]) | set(acct["working"])
            positions = {s: acct["positions"].get(s, ZERO) for s in symbols}
            working = {s: acct["working"].get(s, ZERO) for s in symbols}
            self.rules.confirm(positions, working, acct["seq"], acct["cash"], acct["equity"])
            self._loaded = True

    def register_shards(self, shards: list[Any], ordered: bool = True) -> None:
        """The shards to tell when trading halts; ``ordered``: their groups are taken in event-time
        order (shard ``n`` of the list sends as shard id ``n``)."""
        self.shards = list(shards)
        if ordered:
            self.order.register(range(len(shards)))

    async def advance(self, shard: int, watermark: Key) -> None:
        """``shard`` has read past ``watermark``: groups of the others up to it may be taken."""
        async with self._turn:
            self.order.advance(shard, tuple(watermark))  # type: ignore[arg-type]
            self._turn.notify_all()

    async def set_idle(self, shard: int, idle: bool) -> None:
        """``shard`` is caught up and quiet (True), or reading again (False)."""
        async with self._turn:
            self.order.set_idle(shard, idle)
            self._turn.notify_all()

    async def submit(
        self,
        intents: list[OrderIntent],
        replay: bool = False,
        bars: Sequence[tuple[str, Bar]] = (),
        commands: Sequence[OrderCommand] = (),
        shard: int | None = None,
        key: Key | None = None,
        watermark: Key | None = None,
    ) -> ExecutionReply:
        """One shard group (``shard``, ``key``; see :meth:`_decide`), taken in event-time order across the
        registered shards; without ``key`` (manual orders, tools) it is decided at once."""
        order = self.order
        if shard is None or key is None or shard not in order.watermark:
            return await self._decide(intents, replay, bars, commands)
        if not self._loaded:
            await self._load()
        key = tuple(key)  # type: ignore[assignment]
        if order.replayed(key):  # a shard re-reading after its restart: the ledger answers
            return await self._decide(intents, True, bars, commands)
        async with self._turn:
            order.offer(shard, key)
            self._turn.notify_all()
            try:
                await self._turn.wait_for(lambda: order.ready(shard, key))
            except BaseException:
                order.abandon(shard, key)
                raise
            order.take()
        try:
            reply = await self._decide(intents, replay, bars, commands, key)
        except BaseException:
            async with self._turn:
                order.busy = False
                order.abandon(shard, key)
                self._turn.notify_all()
            raise
        async with self._turn:
            order.done(shard, key, tuple(watermark) if watermark is not None else None)  # type: ignore[arg-type]
            self._turn.notify_all()
        return reply

    async def _decide(
        self,
        intents: list[OrderIntent],
        replay: bool = False,
        bars: Sequence[tuple[str, Bar]] = (),
        commands: Sequence[OrderCommand] = (),
        key: Key | None = None,
    ) -> ExecutionReply:
        """Decide, execute, settle the gate's view with Execution's; return Execution's reply.

        ``bars`` are the closed bars that came with the intents (market data for the paper
        broker, the marks, VaR returns and ATR stops). ``replay`` marks intents that may have
        been decided before (a shard re-reading after a restart): their recorded reports are
        returned as they are, without a second check. The reply's reports are those of
        ``intents``, in order. ``commands`` (cancels and replaces of the strategies' own working
        orders; a replace never adds quantity) only reduce risk and pass through.

        Time is event time: the rate limits count intents by their ``ts_event``, and transitions
        are stamped with the latest event time the gate has seen (:attr:`event_ns`).
        """
        if not self._loaded:
            await self._load()
        core = self.core
        call = core.begin(intents, bars)
        done: dict[str, OrderReport] = {}
        if replay or call.stop_exits:
            ids = [i.order_id for i in call.todo]
            if replay:  # the stop exits this group's bars made the first time: their intake events go back too
                ids += [stop_exit_id(symbol, bar.start) for symbol, bar in bars]
            done = await self.execution.reports.remote(ids)
            self.replayed += len(done)
        decisions = core.decide(call, done)
        async with self._slots:
            self.inflight += 1
            self.calls += 1
            t0 = time.perf_counter()
            try:
                state = core.snapshot(key or self.order.last)
                reply: ExecutionReply = await self.execution.execute.remote(
                    decisions, list(bars), self.key, list(done), list(commands), state
                )
            except BaseException:
                core.abandon(call)
                raise
            finally:
                self.inflight -= 1
                self.execute_wait_s += time.perf_counter() - t0
        await self._after_transitions(core.settle(call, reply))
        done.update((r.order_id, r) for r in reply.reports)
        reply.reports[:] = [done[i.order_id] for i in intents]
        # The state rides on every reply: a shard learns it even from a gate restarted since it
        # registered (which cannot push to shards it does not know), or after its own restart.
        return dataclasses.replace(reply, trading_state=self.rules.state.value, state_version=self.state_version)

    async def _after_transitions(self, events: list[RiskEvent]) -> None:
        """Persist, record, and on HALTED cancel every open order and tell the shards."""
        if not events:
            return
        halted = any(e.state is TradingState.HALTED for e in events)
        self.state_version += 1
        state, version = self.rules.state.value, self.state_version
        acks = []
        if halted:  # tell the shards first: the gate already denies everything, this stops the sending
            self.halted_at_ns = time.time_ns()
            acks = [s.set_trading_state.remote(state, self.rules.halt_reason, version) for s in self.shards]
        self._persist()
        for e in events:
            await self.execution.record_risk_event.remote(e.ts, e.kind, e.state.value, e.reason)
        if halted:
            await self.execution.cancel_all.remote(f"halted: {self.rules.halt_reason}", "risk_gate", self.key)
            await asyncio.gather(*acks, return_exceptions=True)
        elif events[-1].state is TradingState.ACTIVE:
            await asyncio.gather(
                *(s.set_trading_state.remote(state, "", version) for s in self.shards),
                return_exceptions=True,
            )

    def _persist(self) -> None:
        state = {"state": self.rules.state.value, "reason": self.rules.halt_reason, "version": self.state_version}
        _write_atomically(self.state_path, json.dumps(state))

    async def set_state(self, state: str, reason: str) -> dict[str, Any]:
        """Admin command: move to ACTIVE, REDUCING or HALTED (durably, with an event)."""
        if not self._loaded:
            await self._load()
        event = self.rules.set_state(TradingState(state), reason, self.core.event_ns, "admin")
        await self._after_transitions([event] if event else [])
        return await self.state()

    async def halt(self, reason: str) -> None:
        """Engage the kill switch (durably): every later intent is denied, open orders cancelled."""
        await self.set_state(TradingState.HALTED.value, reason)

    async def resume(self) -> None:
        """Back to ACTIVE (durably); the drawdown baseline restarts at the current equity."""
        await self.set_state(TradingState.ACTIVE.value, "resumed")

    async def reduce(self, reason: str) -> None:
        """Only risk-reducing orders pass until resumed."""
        await self.set_state(TradingState.REDUCING.value, reason)

    async def cancel(self, order_id: str, who: str, owner: str | None = None) -> OrderReport:
        """Cancel a working order (through the gate, like every order action); with ``owner``, only an
        order of that strategy (``PermissionError`` otherwise)."""
        report: OrderReport = await self.execution.cancel.remote(order_id, f"cancelled by {who}", who, self.key, owner)
        return report

    def pid(self) -> int:
        """The actor's process id (for fault-injection tests)."""
        return os.getpid()

    def node_id(self) -> str:
        """The Ray node this actor runs on."""
        return ray.get_runtime_context().get_node_id()

    def events(self) -> list[dict[str, Any]]:
        """State transitions since this gate started."""
        return [{**asdict(e), "state": e.state.value} for e in self.rules.events]

    async def state(self) -> dict[str, Any]:
        """Trading state, counts, the gate's position view, exposures and VaR."""
        if not self._loaded:
            await self._load()
        r = self.rules
        exposures = r.exposures()
        var = r.var(exposures)
        lim = r.limits
        return {
            "state": r.state.value,
            "state_version": self.state_version,
            "halt_reason": r.halt_reason,
            "approved": self.core.approved,
            "denied": self.core.denied,
            "replayed": self.replayed,
            "stops_triggered": self.core.stops_triggered,
            "inflight": self.inflight,
            "execute_calls": self.calls,
            "execute_wait_s": round(self.execute_wait_s, 4),
            "positions": {s: str(q) for s, q in r.positions.items() if q != ZERO},
            "limits": {k: (str(v) if v is not None else None) for k, v in asdict(lim).items()},
            "exposures": {s: str(abs(v)) for s, v in exposures.items()},
            "gross_exposure": str(r.gross_exposure()),
            "equity": None if r.equity is None else str(r.equity),
            "peak_equity": None if r.peak_equity is None else str(r.peak_equity),
            "var": None
            if var is None
            else {
                "method": lim.var_method,
                "quantile": lim.var_quantile,
                "horizon_bars": lim.var_horizon_bars,
                "value": round(var[0], 2),
                "observations": var[1],
            },
            "halted_at_ns": self.halted_at_ns,
        }
