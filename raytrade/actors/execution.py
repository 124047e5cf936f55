"""Execution actor: paper fills, the durable ledger, positions and P&L."""

from __future__ import annotations

import os
import time
from decimal import Decimal
from typing import Any

import ray

from raytrade.adapters.ledger_sqlite import LedgerEntry, SqliteLedger
from raytrade.domain.instruments import Instrument
from raytrade.domain.money import ZERO
from raytrade.domain.orders import ExecutionReply, OrderReport, OrderStatus, RiskDecision
from raytrade.domain.paper_fills import PaperFillModel
from raytrade.domain.portfolio import Portfolio


class ExecutionCore:
    """Fill approved orders, record every decision, keep the portfolio; idempotent on order id.

    A decision whose order id is already in the ledger is not executed again: its recorded
    report is returned, so a retried or replayed batch gets the answers of the first time.
    ``venue_latency_ms`` simulates the broker's round trip per batch (a slow venue).
    """

    def __init__(
        self,
        instruments: list[Instrument],
        fill_model: PaperFillModel,
        ledger_path: str,
        initial_cash: Decimal,
        venue_latency_ms: float = 0.0,
    ) -> None:
        self.instruments = {i.symbol: i for i in instruments}
        self.fill_model = fill_model
        self.venue_latency_s = venue_latency_ms / 1000.0
        self.ledger = SqliteLedger(ledger_path)
        # Recover from the ledger: the portfolio is exactly the replay of its fills.
        self.portfolio = Portfolio.from_fills(initial_cash, self.ledger.fills())
        self.replayed = 0
        self.calls = 0
        self.busy_s = 0.0

    def execute(self, decisions: list[RiskDecision]) -> ExecutionReply:
        """Fill approved intents, record all decisions atomically, return one report each."""
        t0 = time.perf_counter()
        try:
            return self._execute(decisions)
        finally:
            self.calls += 1
            self.busy_s += time.perf_counter() - t0

    def _execute(self, decisions: list[RiskDecision]) -> ExecutionReply:
        if self.venue_latency_s and any(d.approved for d in decisions):
            time.sleep(self.venue_latency_s)
        known = self.ledger.reports(d.intent.order_id for d in decisions)
        entries: list[LedgerEntry] = []
        reports: list[OrderReport] = []
        for d in decisions:
            i = d.intent
            earlier = known.get(i.order_id)
            if earlier is not None:
                self.replayed += 1
                reports.append(earlier)
                continue
            now = time.time_ns()
            if not d.approved:
                entries.append(LedgerEntry(i, OrderStatus.REJECTED, d.reason, None, now))
                reports.append(OrderReport(i.order_id, i.symbol, OrderStatus.REJECTED, None, d.reason))
                continue
            fill = self.fill_model.fill(i, self.instruments[i.symbol], now)
            entry = LedgerEntry(i, OrderStatus.FILLED, "", fill, now)
            entries.append(entry)
            known[i.order_id] = OrderReport(i.order_id, i.symbol, OrderStatus.FILLED, fill)
            reports.append(known[i.order_id])
        self.ledger.record(entries)  # durable before the fills reach the portfolio or the caller
        for e in entries:
            if e.fill is not None:
                self.portfolio.apply(e.fill)
        books = self.portfolio.positions()
        symbols = {d.intent.symbol for d in decisions}
        return ExecutionReply(reports, {s: books.get(s, ZERO) for s in symbols}, self.ledger.seq())

    def reports(self, order_ids: list[str]) -> dict[str, OrderReport]:
        """Recorded outcomes of the order ids already in the ledger."""
        return self.ledger.reports(order_ids)

    def positions(self) -> tuple[dict[str, Decimal], dict[str, Decimal], int]:
        """All positions, the last fill price per symbol, and the ledger sequence they were read at."""
        marks = {f.symbol: f.price for f in self.ledger.last_fills()}
        return self.portfolio.positions(), marks, self.ledger.seq()

    def symbols(self) -> list[str]:
        """The tradable symbols."""
        return sorted(self.instruments)

    def orders(self, limit: int, symbol: str | None = None) -> list[dict[str, object]]:
        """The most recent orders, newest first."""
        return self.ledger.recent_orders(limit, symbol)

    def summary(self, marks: dict[str, Decimal]) -> dict[str, Any]:
        """Positions, cash and P&L at ``marks`` (exact decimals as strings)."""
        p = self.portfolio
        unrealized = p.unrealized(marks)
        return {
            "cash": str(p.cash),
            "positions": {s: str(q) for s, q in sorted(p.positions().items())},
            "realized_pnl": str(p.realized),
            "unrealized_pnl": str(unrealized),
            "fees": str(p.fees),
            "net_pnl": str(p.realized + unrealized - p.fees),
            "equity": str(p.equity(marks)),
            "orders_by_status": self.ledger.status_counts(),
            "fills": len(self.ledger.fills()),
            "execute_calls": self.calls,
            "execute_busy_s": round(self.busy_s, 4),
            "replayed": self.replayed,
        }

    def latencies_ns(self) -> list[int]:
        """Consumed-to-accepted latency of every accepted order."""
        return self.ledger.latencies_ns()


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class Execution:
    """Ray actor shell around :class:`ExecutionCore` (one writer of the ledger).

    Restarted by Ray when it dies; every method is idempotent, so Ray also retries the
    calls that were in flight, and a restarted instance rebuilds its books from the ledger.
    """

    def __init__(
        self,
        instruments: list[Instrument],
        fill_model: PaperFillModel,
        ledger_path: str,
        initial_cash: Decimal,
        venue_latency_ms: float = 0.0,
    ) -> None:
        self.core = ExecutionCore(instruments, fill_model, ledger_path, initial_cash, venue_latency_ms)

    def execute(self, decisions: list[RiskDecision]) -> ExecutionReply:
        """See :meth:`ExecutionCore.execute`."""
        return self.core.execute(decisions)

    def reports(self, order_ids: list[str]) -> dict[str, OrderReport]:
        """See :meth:`ExecutionCore.reports`."""
        return self.core.reports(order_ids)

    def positions(self) -> tuple[dict[str, Decimal], dict[str, Decimal], int]:
        """See :meth:`ExecutionCore.positions`."""
        return self.core.positions()

    def pid(self) -> int:
        """The actor's process id (for fault-injection tests and memory probes)."""
        return os.getpid()

    def summary(self, marks: dict[str, Decimal]) -> dict[str, Any]:
        """See :meth:`ExecutionCore.summary`."""
        return self.core.summary(marks)

    def symbols(self) -> list[str]:
        """See :meth:`ExecutionCore.symbols`."""
        return self.core.symbols()

    def orders(self, limit: int, symbol: str | None = None) -> list[dict[str, object]]:
        """See :meth:`ExecutionCore.orders`."""
        return self.core.orders(limit, symbol)

    def latencies_ns(self) -> list[int]:
        """See :meth:`ExecutionCore.latencies_ns`."""
        return self.core.latencies_ns()
