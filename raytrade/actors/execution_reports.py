"""Execution's read side: the summary, reconciliation, performance metrics and latencies of its books and
ledger (a mixin of :class:`~raytrade.actors.execution.ExecutionCore`, which owns the state)."""

from __future__ import annotations

from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Any

import numpy as np

from raytrade.adapters.ledger import Ledger
from raytrade.domain.instruments import Instrument
from raytrade.domain.money import MONEY_CONTEXT, ZERO
from raytrade.domain.performance import summarize
from raytrade.domain.portfolio import Portfolio
from raytrade.domain.reconciliation import reconcile
from raytrade.domain.round_trips import round_trips


class ExecutionReports:
    """Reports over the books and the ledger; nothing here changes them."""

    instruments: dict[str, Instrument]
    ledger: Ledger
    portfolio: Portfolio
    marks: dict[str, Decimal]
    initial_cash: Decimal
    curve: list[tuple[int, float, float]]
    calls: int
    busy_s: float
    replayed: int

    if TYPE_CHECKING:

        def working(self) -> dict[str, Decimal]:
            """Signed quantity still working in open orders, per symbol (the core's)."""
            ...

    def performance(self, periods_per_year: float) -> dict[str, Any]:
        """Every metric of :func:`raytrade.domain.performance.summarize` over the equity curve this
        Execution sampled (one point per minute of event time since it started) and the ledger's fills."""
        fills = self.ledger.fills()
        with localcontext(MONEY_CONTEXT):
            traded = sum((f.qty * f.price for f in fills), ZERO)
        ts = np.array([c[0] for c in self.curve], dtype=np.int64)
        equity = np.array([c[1] for c in self.curve], dtype=np.float64)
        gross = np.array([c[2] for c in self.curve], dtype=np.float64)
        return summarize(ts, equity, periods_per_year, round_trips(fills), traded, self.portfolio.fees, gross)

    def symbols(self) -> list[str]:
        """The tradable symbols."""
        return sorted(self.instruments)

    def orders(self, limit: int, symbol: str | None = None) -> list[dict[str, object]]:
        """The most recent orders, newest first."""
        return self.ledger.recent_orders(limit, symbol)

    def reconcile(self) -> dict[str, Any]:
        """Recompute the books from the ledger's fills and compare with the live books exactly."""
        r = reconcile(
            self.initial_cash, self.ledger.fills(), self.ledger.events(), self.ledger.order_states(), self.portfolio
        )
        return {
            "ok": r.ok,
            "fills": r.fills,
            "orders": r.orders,
            "positions": r.positions,
            "cash": r.cash,
            "realized": r.realized,
            "fees": r.fees,
            "mismatches": list(r.mismatches),
        }

    def summary(self, marks: dict[str, Decimal]) -> dict[str, Any]:
        """Positions, cash and P&L at ``marks`` (exact decimals as strings)."""
        p = self.portfolio
        marks = {**self.marks, **marks}
        unrealized = p.unrealized(marks)
        return {
            "cash": str(p.cash),
            "positions": {s: str(q) for s, q in sorted(p.positions().items())},
            "working": {s: str(q) for s, q in sorted(self.working().items())},
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
