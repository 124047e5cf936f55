"""The order state machine: every transition checked, and recorded as an immutable event.

::

    NEW ──> ACCEPTED ──> PARTIALLY_FILLED ──> FILLED
     │         │                │
     │         ├──> FILLED      ├──> CANCELLED | EXPIRED
     │         └──> CANCELLED | EXPIRED
     └──> REJECTED

A working order (ACCEPTED or PARTIALLY_FILLED) can be replaced (new quantity or prices) or
cancelled. Quantities are exact decimals; ``filled + leaves == qty`` while the order works.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum

from raytrade.domain.money import ZERO
from raytrade.domain.orders import Fill, OrderIntent, OrderReport, OrderStatus, Side

_NEXT: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.NEW: frozenset({OrderStatus.ACCEPTED, OrderStatus.REJECTED}),
    OrderStatus.ACCEPTED: frozenset(
        {OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.EXPIRED}
    ),
    OrderStatus.PARTIALLY_FILLED: frozenset(
        {OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.EXPIRED}
    ),
}


class EventKind(StrEnum):
    """What happened to an order."""

    NEW = "NEW"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    FILL = "FILL"
    TRIGGERED = "TRIGGERED"  # a stop order's stop price traded: it now trades as a market order
    REPLACED = "REPLACED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


class InvalidTransitionError(ValueError):
    """A transition the state machine does not allow (the message names both states)."""


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One immutable step of one order's history; ``seq`` counts the order's events from 1.

    ``cause`` names what caused it: ``intake`` (the order arrived), ``bar:<symbol>:<start>``
    (market data traded or expired it), or ``cmd:<who>`` (a cancel, replace or halt).
    """

    order_id: str
    seq: int
    symbol: str
    side: Side
    kind: EventKind
    status: OrderStatus
    qty: Decimal
    filled_qty: Decimal
    limit_price: Decimal | None
    stop_price: Decimal | None
    reason: str
    fill_id: str | None
    cause: str
    ts: int


@dataclass(slots=True)
class Order:
    """A live order: its intent (with the current quantity and prices), status and fills."""

    intent: OrderIntent
    status: OrderStatus = OrderStatus.NEW
    fills: list[Fill] = field(default_factory=list)
    events: list[OrderEvent] = field(default_factory=list)
    triggered: bool = False
    arrival_ts: int = 0  # event time from which the order may trade (after the venue latency)

    @property
    def order_id(self) -> str:
        """The order id."""
        return self.intent.order_id

    @property
    def filled_qty(self) -> Decimal:
        """Quantity filled so far."""
        return sum((f.qty for f in self.fills), ZERO)

    @property
    def leaves_qty(self) -> Decimal:
        """Quantity still working (zero once terminal)."""
        return ZERO if self.status.terminal else self.intent.qty - self.filled_qty

    def report(self) -> OrderReport:
        """The order's current state as a report."""
        reason = self.events[-1].reason if self.events else ""
        return OrderReport(
            self.order_id, self.intent.symbol, self.status, tuple(self.fills), reason, self.intent.side, self.intent.qty
        )

    def _emit(
        self, kind: EventKind, status: OrderStatus, ts: int, cause: str, reason: str = "", fill_id: str | None = None
    ) -> OrderEvent:
        in_place = status is self.status and (
            kind in (EventKind.TRIGGERED, EventKind.REPLACED) or (kind is EventKind.NEW and not self.events)
        )
        if not in_place and status not in _NEXT.get(self.status, frozenset()):
            raise InvalidTransitionError(f"order {self.order_id}: {self.status} -> {status} is not allowed")
        self.status = status
        i = self.intent
        event = OrderEvent(
            self.order_id,
            len(self.events) + 1,
            i.symbol,
            i.side,
            kind,
            status,
            i.qty,
            self.filled_qty,
            i.limit_price,
            i.stop_price,
            reason,
            fill_id,
            cause,
            ts,
        )
        self.events.append(event)
        return event

    @classmethod
    def new(cls, intent: OrderIntent, ts: int) -> Order:
        """An order just received (status NEW, one event)."""
        order = cls(intent)
        order._emit(EventKind.NEW, OrderStatus.NEW, ts, "intake")
        return order

    def accept(self, ts: int, arrival_ts: int) -> OrderEvent:
        """NEW -> ACCEPTED: the order works from ``arrival_ts`` (event time)."""
        self.arrival_ts = arrival_ts
        return self._emit(EventKind.ACCEPTED, OrderStatus.ACCEPTED, ts, "intake")

    def reject(self, reason: str, ts: int) -> OrderEvent:
        """NEW -> REJECTED with the reason."""
        if self.status is not OrderStatus.NEW:
            raise InvalidTransitionError(f"order {self.order_id}: only a NEW order can be rejected, not {self.status}")
        return self._emit(EventKind.REJECTED, OrderStatus.REJECTED, ts, "intake", reason)

    def fill(self, fill: Fill, cause: str) -> OrderEvent:
        """Book a fill: PARTIALLY_FILLED, or FILLED when nothing is left."""
        if not self.status.working:
            raise InvalidTransitionError(f"order {self.order_id}: cannot fill a {self.status} order")
        if fill.qty <= ZERO or fill.qty > self.leaves_qty:
            raise ValueError(f"order {self.order_id}: fill qty {fill.qty} outside (0, {self.leaves_qty}]")
        self.fills.append(fill)
        done = self.filled_qty == self.intent.qty
        status = OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED
        return self._emit(EventKind.FILL, status, fill.ts, cause, fill_id=fill.fill_id)

    def trigger(self, ts: int, cause: str) -> OrderEvent:
        """A stop order's stop price traded: from now on it trades as a market order."""
        if not self.status.working or self.triggered:
            raise InvalidTransitionError(f"order {self.order_id}: cannot trigger a {self.status} order")
        self.triggered = True
        return self._emit(EventKind.TRIGGERED, self.status, ts, cause)

    def cancel(self, reason: str, ts: int, cause: str) -> OrderEvent:
        """A working order -> CANCELLED (what was filled stays filled)."""
        return self._emit(EventKind.CANCELLED, OrderStatus.CANCELLED, ts, cause, reason)

    def expire(self, ts: int, cause: str) -> OrderEvent:
        """A working DAY order reached the end of its day -> EXPIRED."""
        return self._emit(EventKind.EXPIRED, OrderStatus.EXPIRED, ts, cause, "end of day")

    def replace_terms(
        self,
        ts: int,
        cause: str,
        qty: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
    ) -> OrderEvent:
        """Change a working order's quantity or prices; the new quantity must exceed what is filled."""
        if not self.status.working:
            raise InvalidTransitionError(f"order {self.order_id}: cannot replace a {self.status} order")
        if qty is not None and qty <= self.filled_qty:
            raise ValueError(f"order {self.order_id}: new qty {qty} must exceed the filled {self.filled_qty}")
        changed = [
            n for n, v in (("qty", qty), ("limit_price", limit_price), ("stop_price", stop_price)) if v is not None
        ]
        if not changed:
            raise ValueError(f"order {self.order_id}: a replace must change qty, limit_price or stop_price")
        i = self.intent
        self.intent = replace(  # validated again by OrderIntent
            i,
            qty=i.qty if qty is None else qty,
            limit_price=i.limit_price if limit_price is None else limit_price,
            stop_price=i.stop_price if stop_price is None else stop_price,
        )
        return self._emit(EventKind.REPLACED, self.status, ts, cause, f"replaced {', '.join(changed)}")
