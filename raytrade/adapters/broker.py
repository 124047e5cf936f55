"""The broker-adapter interface Execution trades through; :class:`PaperBroker` implements it.

A live adapter for a REST broker maps onto it one to one:

=====================  ==========================================================================
method                 a REST broker
=====================  ==========================================================================
``check(intent)``      local pre-validation: known symbol, lot size, tick size ("" = fine)
``submit(intent, ts)`` ``POST /orders`` with ``client_order_id = intent.order_id`` (idempotent
                       on retry); the broker's ack is ACCEPTED, its refusal REJECTED with the
                       broker's message as the reason
``cancel(...)``        ``DELETE /orders/{client_order_id}``
``replace(...)``       ``PATCH /orders/{client_order_id}`` (or cancel-replace where unsupported)
``cancel_all(...)``    ``DELETE /orders`` (the kill switch)
``on_bar(symbol, b)``  drain the execution reports received since the last call (websocket or
                       ``GET /orders?status=...&after=...``) into fills and transitions; a live
                       venue ignores the bar itself, the paper broker simulates it
``working(symbol)``    the orders the adapter believes are open (reconciled against
                       ``GET /orders?status=open`` on start)
``restore(...)``       take back open orders after a restart (from the ledger, then confirmed
                       with the broker)
``seen(symbol, ts)``   whether market data up to ``ts`` was already applied (idempotent replays)
=====================  ==========================================================================

Every transition comes back as :class:`~raytrade.domain.order_lifecycle.OrderEvent` values
on :class:`~raytrade.domain.order_lifecycle.Order` objects, which Execution writes to the
ledger in one transaction before anything else sees them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from raytrade.domain.bars import Bar
from raytrade.domain.order_lifecycle import Order, OrderEvent
from raytrade.domain.orders import OrderIntent
from raytrade.domain.paper_broker import BarResult, PaperBroker


class BrokerAdapter(Protocol):
    """What Execution needs from a venue (see the module docstring for the REST mapping)."""

    def check(self, intent: OrderIntent) -> str:
        """Why the venue would refuse ``intent`` ("" when it would not)."""
        ...

    def submit(self, intent: OrderIntent, ts: int, risk_reason: str | None = None) -> Order:
        """Place an order (or record the gate's denial): the order comes back ACCEPTED or REJECTED."""
        ...

    def cancel(self, order_id: str, reason: str, ts: int, cause: str) -> OrderEvent:
        """Cancel one working order."""
        ...

    def replace(
        self,
        order_id: str,
        ts: int,
        cause: str,
        qty: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
    ) -> OrderEvent:
        """Change a working order's quantity or prices."""
        ...

    def cancel_all(self, reason: str, ts: int, cause: str) -> list[OrderEvent]:
        """Cancel every working order."""
        ...

    def on_bar(self, symbol: str, bar: Bar) -> BarResult:
        """Apply what happened up to the end of ``bar``: fills, triggers, cancels, expiries."""
        ...

    def working(self, symbol: str | None = None) -> list[Order]:
        """Open orders, oldest first."""
        ...

    def restore(self, orders: list[Order], bars: dict[str, tuple[int, float]]) -> None:
        """Take back open orders and market-data state after a restart."""
        ...

    def seen(self, symbol: str, start: int) -> bool:
        """Whether the bar of ``symbol`` opening at ``start`` was already applied."""
        ...


def _implements(broker: PaperBroker) -> BrokerAdapter:
    """Type-checked proof that the paper broker implements the interface (mypy checks this)."""
    return broker
