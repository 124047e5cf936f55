"""Execution actor: paper fills, the durable ledger, positions and P&L."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import ray

from raytrade.adapters.ledger_sqlite import LedgerEntry, SqliteLedger
from raytrade.domain.instruments import Instrument
from raytrade.domain.orders import OrderReport, OrderStatus, RiskDecision
from raytrade.domain.paper_fills import PaperFillModel
from raytrade.domain.portfolio import Portfolio


class ExecutionCore:
    """Fill approved orders, record every decision, keep the portfolio; idempotent on order id."""

    def __init__(
        self, instruments: list[Instrument], fill_model: PaperFillModel, ledger_path: str, initial_cash: Decimal
    ) -> None:
        self.instruments = {i.symbol: i for i in instruments}
        self.fill_model = fill_model
        self.ledger = SqliteLedger(ledger_path)
        # Recover from the ledger: the portfolio is exactly the replay of its fills.
        self.portfolio = Portfolio.from_fills(initial_cash, self.ledger.fills())

    def execute(self, decisions: list[RiskDecision]) -> list[OrderReport]:
        """Fill approved intents, record all decisions atomically, return one report each."""
        known = self.ledger.known_order_ids(d.intent.order_id for d in decisions)
        entries: list[LedgerEntry] = []
        reports: list[OrderReport] = []
        for d in decisions:
            i = d.intent
            if i.order_id in known:
                reports.append(OrderReport(i.order_id, i.symbol, OrderStatus.REJECTED, None, "duplicate order id"))
                continue
            known.add(i.order_id)
            now = time.time_ns()
            if not d.approved:
                entries.append(LedgerEntry(i, OrderStatus.REJECTED, d.reason, None, now))
                reports.append(OrderReport(i.order_id, i.symbol, OrderStatus.REJECTED, None, d.reason))
                continue
            fill = self.fill_model.fill(i, self.instruments[i.symbol], now)
            entries.append(LedgerEntry(i, OrderStatus.FILLED, "", fill, now))
            reports.append(OrderReport(i.order_id, i.symbol, OrderStatus.FILLED, fill))
        self.ledger.record(entries)  # durable before the fills reach the portfolio or the caller
        for e in entries:
            if e.fill is not None:
                self.portfolio.apply(e.fill)
        return reports

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
        }

    def latencies_ns(self) -> list[int]:
        """Consumed-to-accepted latency of every accepted order."""
        return self.ledger.latencies_ns()


@ray.remote(num_cpus=0)
class Execution:
    """Ray actor shell around :class:`ExecutionCore` (one writer of the ledger)."""

    def __init__(
        self, instruments: list[Instrument], fill_model: PaperFillModel, ledger_path: str, initial_cash: Decimal
    ) -> None:
        self.core = ExecutionCore(instruments, fill_model, ledger_path, initial_cash)

    def execute(self, decisions: list[RiskDecision]) -> list[OrderReport]:
        """See :meth:`ExecutionCore.execute`."""
        return self.core.execute(decisions)

    def summary(self, marks: dict[str, Decimal]) -> dict[str, Any]:
        """See :meth:`ExecutionCore.summary`."""
        return self.core.summary(marks)

    def latencies_ns(self) -> list[int]:
        """See :meth:`ExecutionCore.latencies_ns`."""
        return self.core.latencies_ns()
