"""The RiskGate's decision steps, free of Ray: the actor (``actors/risk_gate.py``) awaits Execution
between them, ``raytrade backtest`` calls Execution directly. One set of steps, two drivers."""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from raytrade.domain.bars import Bar
from raytrade.domain.instruments import Instrument
from raytrade.domain.money import ZERO, decimal_from_float
from raytrade.domain.orders import ExecutionReply, OrderIntent, OrderReport, RiskDecision
from raytrade.domain.risk import RiskEvent, RiskLimits, RiskRules


@dataclass(slots=True)
class GateCall:
    """One submission in progress: what must be decided, and what the ledger already answered."""

    todo: list[OrderIntent]
    stop_exits: list[OrderIntent]
    decisions: list[RiskDecision]
    approved: list[OrderIntent]


class GateCore:
    """Event-time clock, ATR stops on bars, decisions and settlement for one trading account."""

    def __init__(self, limits: RiskLimits, instruments: Sequence[Instrument]) -> None:
        self.rules = RiskRules(limits)
        self.instruments = {i.symbol: i for i in instruments}
        self.event_ns = 0  # the latest event time seen (bar closes, intents): the gate's clock
        self.approved = 0
        self.denied = 0
        self.stops_triggered = 0

    def snapshot(self, last: tuple[int, int, int] | None = None) -> bytes:
        """The rule state (marks, returns, stops, breakers, rates, views) and counters, with ``last``
        (the last group taken in event-time order), for the ledger."""
        return pickle.dumps(
            (self.rules, self.event_ns, self.approved, self.denied, self.stops_triggered, last),
            protocol=pickle.HIGHEST_PROTOCOL,
        )

    def restore(self, blob: bytes) -> tuple[int, int, int] | None:
        """Take back a :meth:`snapshot` (keeping the configured limits); no call is in flight after a
        restart, so nothing stays reserved. Returns its ``last``."""
        rules, self.event_ns, self.approved, self.denied, self.stops_triggered, last = pickle.loads(blob)
        rules.limits = self.rules.limits
        rules.reserved, rules.reserved_cash = {}, ZERO
        self.rules = rules
        return last  # type: ignore[no-any-return]

    def begin(self, intents: list[OrderIntent], bars: Sequence[tuple[str, Bar]]) -> GateCall:
        """Advance the clock, fold in the bars (marks, returns, ATR stops); the intents to decide."""
        for _, b in bars:
            self.event_ns = max(self.event_ns, b.end)
        for i in intents:
            self.event_ns = max(self.event_ns, i.ts_event)
        stop_exits: list[OrderIntent] = []
        for symbol, bar in bars:
            inst = self.instruments.get(symbol)
            if inst is None:
                continue
            level = self.rules.on_bar(symbol, bar, decimal_from_float(bar.close, inst.price_increment))
            exit_ = None if level is None else self.rules.stop_exit(symbol, bar, level)
            if exit_ is not None:
                stop_exits.append(exit_)
                self.stops_triggered += 1
        return GateCall(intents + stop_exits, stop_exits, [], [])

    def decide(self, call: GateCall, done: Mapping[str, OrderReport]) -> list[RiskDecision]:
        """Check every intent the ledger does not already hold, at its own event time."""
        call.decisions = [self.rules.check(i, i.ts_event) for i in call.todo if i.order_id not in done]
        call.approved = [d.intent for d in call.decisions if d.approved]
        self.approved += len(call.approved)
        self.denied += len(call.decisions) - len(call.approved)
        return call.decisions

    def abandon(self, call: GateCall) -> None:
        """Execution failed: release the reservations."""
        self.rules.release(call.approved)

    def settle(self, call: GateCall, reply: ExecutionReply) -> list[RiskEvent]:
        """Take Execution's view after the call; the state transitions (breakers) it caused."""
        self.rules.release(call.approved)
        return self.rules.confirm(reply.positions, reply.working, reply.seq, reply.cash, reply.equity, self.event_ns)
