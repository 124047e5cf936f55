"""The order state machine against a broker adapter, the durable ledger and the books, free of Ray
(the :class:`~raytrade.actors.execution.Execution` actor wraps it; ``raytrade backtest`` drives it directly)."""

from __future__ import annotations

import hmac
import time
from collections.abc import Sequence
from decimal import Decimal, localcontext
from typing import Any

from raytrade.actors.execution_reports import ExecutionReports
from raytrade.adapters.ledger import Ledger, LedgerWrite
from raytrade.domain.bars import BAR_NS, Bar
from raytrade.domain.instruments import Instrument
from raytrade.domain.money import MONEY_CONTEXT, ZERO, decimal_from_float
from raytrade.domain.order_lifecycle import InvalidTransitionError, Order, OrderEvent
from raytrade.domain.orders import ExecutionReply, Fill, OrderCommand, OrderReport, RiskDecision
from raytrade.domain.paper_broker import PaperBroker, PaperBrokerConfig
from raytrade.domain.portfolio import Portfolio


class NotTheGateError(PermissionError):
    """Orders reach Execution only through the RiskGate (which holds the key)."""


class ExecutionCore(ExecutionReports):
    """Run orders through the broker, record every transition, keep the books; idempotent.

    A decision whose order id is already in the ledger is not taken again: its recorded
    report is returned, and a bar the broker already traded is not traded twice (its
    recorded events and fills are returned instead), so a retried or replayed call gets the
    answers of the first time. ``venue_latency_ms`` simulates the broker's round trip per
    call (a slow venue). ``gate_key``: calls that place, cancel or replace orders must carry it.
    Every order event is stamped with event time; ``measure_latency`` also records the wall
    clock at intake (``ts_accepted``) for the tick-to-order latency.
    """

    def __init__(
        self,
        instruments: list[Instrument],
        broker_config: PaperBrokerConfig,
        ledger_url: str,
        initial_cash: Decimal,
        venue_latency_ms: float = 0.0,
        gate_key: str = "",
        measure_latency: bool = True,
    ) -> None:
        self.instruments = {i.symbol: i for i in instruments}
        self.broker = PaperBroker(instruments, broker_config)
        self.venue_latency_s = venue_latency_ms / 1000.0
        self.gate_key = gate_key
        self.measure_latency = measure_latency  # stamp ts_accepted with the wall clock (off: event time)
        self.initial_cash = initial_cash
        self.ledger = Ledger(ledger_url)
        # Recover from the ledger: the books are exactly the replay of its fills, the broker
        # gets back its working orders and the last bar it traded per symbol.
        self.portfolio = Portfolio.from_fills(initial_cash, self.ledger.fills())
        bars = self.ledger.bar_marks()
        self.broker.restore(self.ledger.working_orders(), {s: (b[0], b[1]) for s, b in bars.items()})
        # The last price per symbol: the last bar's close, else the last fill.
        self.marks: dict[str, Decimal] = {f.symbol: f.price for f in self.ledger.last_fills()}
        self.marks.update({s: b[2] for s, b in bars.items()})
        # Event time: the latest bar close or order time seen. Commands from outside the market
        # data (cancels, halts) are stamped with it; the wall clock only measures latency.
        self.event_ns = max((b[0] for b in bars.values()), default=0)
        self.curve: list[tuple[int, float, float]] = []  # (minute, equity, gross exposure) in event time
        self._sampled = -1
        self.replayed = 0
        self.calls = 0
        self.busy_s = 0.0

    def _check_key(self, key: str) -> None:
        if not hmac.compare_digest(key, self.gate_key):
            raise NotTheGateError("Execution takes orders only from the RiskGate")

    def execute(
        self,
        decisions: list[RiskDecision],
        bars: Sequence[tuple[str, Bar]] = (),
        key: str = "",
        recorded: Sequence[str] = (),
        commands: Sequence[OrderCommand] = (),
        gate_state: bytes | None = None,
    ) -> ExecutionReply:
        """Trade working orders on ``bars``, take the new decisions and the strategies' cancel/replace
        ``commands``, all in event-time order; record everything atomically (with ``gate_state``, the
        gate's rule state as of this call, so a restarted gate resumes exactly where the ledger is).

        ``recorded``: ids of replayed orders the gate already found in the ledger; their intake
        events come back in the reply too, so a replaying shard sees what it saw the first time.
        A command already applied (its id is the cause of a recorded event) is not applied again;
        one whose order is no longer working does nothing.
        """
        self._check_key(key)
        t0 = time.perf_counter()
        try:
            return self._execute(decisions, bars, recorded, commands, gate_state)
        finally:
            self.calls += 1
            self.busy_s += time.perf_counter() - t0

    def _execute(
        self,
        decisions: list[RiskDecision],
        bars: Sequence[tuple[str, Bar]],
        recorded: Sequence[str],
        commands: Sequence[OrderCommand] = (),
        gate_state: bytes | None = None,
    ) -> ExecutionReply:
        if self.venue_latency_s and any(d.approved for d in decisions):
            time.sleep(self.venue_latency_s)
        write = LedgerWrite(gate_state=gate_state)
        old_causes: list[str] = []
        known = self.ledger.reports(d.intent.order_id for d in decisions) if decisions else {}
        reports: dict[int, OrderReport] = {}
        if self.measure_latency:
            write.wall_ns = time.time_ns()  # ts_accepted, for the latency measurement only
        applied: set[str] = set()
        if commands:
            applied = {e.cause for e in self.ledger.events_by_cause([f"cmd:{c.command_id}" for c in commands])}
        # Bars, new orders and commands in event-time order: a bar that closed by an order's event
        # time comes first, so the outcome never depends on how the caller batched them.
        steps: list[tuple[int, int, int]] = [(b.end, 0, n) for n, (_, b) in enumerate(bars)]
        if decisions or commands:
            steps += [(d.intent.ts_event, 1, n) for n, d in enumerate(decisions)]
            steps += [(c.ts_event, 2, n) for n, c in enumerate(commands)]
        if len(steps) > 1:
            steps.sort()
        for ts, kind, n in steps:
            self.event_ns = max(self.event_ns, ts)
            if kind == 0:
                self._bar(*bars[n], write, old_causes)
                continue
            if kind == 2:
                self._apply(commands[n], write, applied)
                continue
            d = decisions[n]
            earlier = known.get(d.intent.order_id)
            if earlier is not None:  # a replay: the recorded state is the answer
                self.replayed += 1
                reports[n] = earlier
                continue
            order = self.broker.submit(d.intent, d.intent.ts_event, None if d.approved else d.reason)
            write.orders.append(order)
            write.events += order.events
            reports[n] = order.report()
        self.ledger.write(write)  # durable before the fills reach the books or the caller
        for fill in write.fills:
            self.portfolio.apply(fill)
        events: list[OrderEvent] = []
        fills: list[Fill] = []
        if old_causes:
            events += self.ledger.events_by_cause(old_causes)
        if known or recorded:
            events += self.ledger.intake_events([*known, *recorded])
        if events:
            fills += self.ledger.fills([e.fill_id for e in events if e.fill_id])
        symbols = {s for s, _ in bars} | {d.intent.symbol for d in decisions}
        return self._reply(
            [reports[n] for n in range(len(decisions))], symbols, events + write.events, fills + write.fills
        )

    def _apply(self, c: OrderCommand, write: LedgerWrite, applied: set[str]) -> None:
        """One strategy command (cancel or replace) on its own working order, once."""
        cause = f"cmd:{c.command_id}"
        order = self.broker.orders.get(c.order_id)
        if cause in applied or order is None or not order.status.working or order.intent.strategy != c.strategy:
            return
        try:
            if c.kind == "cancel":
                event = self.broker.cancel(c.order_id, f"cancelled by {c.strategy}", c.ts_event, cause)
            else:
                event = self.broker.replace(c.order_id, c.ts_event, cause, c.qty, c.limit_price, c.stop_price)
        except (ValueError, InvalidTransitionError):
            return  # e.g. a replace below what has filled since: the order stays as it is
        write.events.append(event)
        if order not in write.orders:
            write.orders.append(order)

    def _bar(self, symbol: str, bar: Bar, write: LedgerWrite, old_causes: list[str]) -> None:
        """Trade the working orders of ``symbol`` on one closed bar (a bar seen before is a replay)."""
        if symbol not in self.instruments:
            return
        if self.broker.seen(symbol, bar.start):
            old_causes.append(f"bar:{symbol}:{bar.start}")
            return
        result = self.broker.on_bar(symbol, bar)
        close = decimal_from_float(bar.close, self.instruments[symbol].price_increment)
        self.marks[symbol] = close
        write.events += result.events
        write.fills += result.fills
        write.orders += [o for o in result.orders if o not in write.orders]
        write.bars[symbol] = (bar.start, self.broker.variance[symbol], close)

    def _reply(
        self, reports: list[OrderReport], symbols: set[str], events: list[OrderEvent], fills: list[Fill]
    ) -> ExecutionReply:
        books = self.portfolio.positions()
        working = self.working()
        equity = self.portfolio.equity(self.marks)
        minute = self.event_ns // BAR_NS
        if minute > self._sampled:  # the equity curve, one point per minute of event time
            self._sampled = minute
            self.curve.append((minute * BAR_NS, float(equity), float(self._gross(books)) if books else 0.0))
        return ExecutionReply(
            reports,
            {s: books.get(s, ZERO) for s in symbols},
            self.ledger.seq(),
            fills,
            {s: working.get(s, ZERO) for s in symbols},
            self.portfolio.cash,
            equity,
            events,
        )

    def _gross(self, books: dict[str, Decimal]) -> Decimal:
        with localcontext(MONEY_CONTEXT):
            return sum((abs(q * self.marks[s]) for s, q in books.items() if s in self.marks), ZERO)

    def working(self) -> dict[str, Decimal]:
        """Signed quantity still working in open orders, per symbol."""
        out: dict[str, Decimal] = {}
        if not self.broker.orders:
            return out
        with localcontext(MONEY_CONTEXT):
            for o in self.broker.working():
                out[o.intent.symbol] = out.get(o.intent.symbol, ZERO) + o.intent.side.sign * o.leaves_qty
        return out

    def _command(self, orders: list[Order], events: list[OrderEvent]) -> list[OrderReport]:
        self.ledger.write(LedgerWrite(orders=orders, events=events))
        return [o.report() for o in orders]

    def cancel(self, order_id: str, reason: str, who: str, key: str = "", owner: str | None = None) -> OrderReport:
        """Cancel one working order (``KeyError`` if it is not working); with ``owner``, only an order of
        that strategy (``PermissionError`` otherwise: a trader cancels their own orders, not the strategies')."""
        self._check_key(key)
        order = self.broker.orders[order_id]
        if owner is not None and order.intent.strategy != owner:
            raise PermissionError(f"order {order_id} belongs to {order.intent.strategy!r}, not to {owner!r}")
        event = self.broker.cancel(order_id, reason, self.event_ns, f"cmd:{who}")
        return self._command([order], [event])[0]

    def replace(
        self,
        order_id: str,
        who: str,
        qty: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        key: str = "",
    ) -> OrderReport:
        """Change a working order's quantity or prices."""
        self._check_key(key)
        order = self.broker.orders[order_id]
        event = self.broker.replace(order_id, self.event_ns, f"cmd:{who}", qty, limit_price, stop_price)
        return self._command([order], [event])[0]

    def cancel_all(self, reason: str, who: str, key: str = "") -> list[OrderReport]:
        """Cancel every working order (the kill switch)."""
        self._check_key(key)
        orders = self.broker.working()
        events = self.broker.cancel_all(reason, self.event_ns, f"cmd:{who}")
        return self._command(orders, events)

    def open_orders(self) -> list[OrderReport]:
        """Reports of the working orders."""
        return [o.report() for o in self.broker.working()]

    def reports(self, order_ids: list[str]) -> dict[str, OrderReport]:
        """Recorded state of the order ids that are in the ledger."""
        return self.ledger.reports(order_ids)

    def positions(self) -> tuple[dict[str, Decimal], dict[str, Decimal], int]:
        """All positions, the last price per symbol, and the ledger sequence they were read at."""
        return self.portfolio.positions(), dict(self.marks), self.ledger.seq()

    def account(self) -> dict[str, Any]:
        """Positions, working quantities, cash, equity and marks, read at one ledger sequence."""
        return {
            "positions": self.portfolio.positions(),
            "working": self.working(),
            "cash": self.portfolio.cash,
            "equity": self.portfolio.equity(self.marks),
            "marks": dict(self.marks),
            "seq": self.ledger.seq(),
            "event_ns": self.event_ns,
            "gate_state": self.ledger.gate_state(),
        }

    def record_risk_event(self, ts: int, kind: str, state: str, reason: str) -> None:
        """Append a RiskGate transition to the ledger."""
        self.ledger.record_risk_event(ts, kind, state, reason)
