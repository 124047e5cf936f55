"""Reconciliation: the books recomputed from the ledger's fills must equal the live books exactly."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from raytrade.domain.money import ZERO
from raytrade.domain.order_lifecycle import OrderEvent
from raytrade.domain.orders import Fill, OrderStatus
from raytrade.domain.portfolio import Portfolio


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """The outcome: ``ok`` when there is no mismatch; each mismatch is a readable line."""

    fills: int
    orders: int
    positions: dict[str, str]
    cash: str
    realized: str
    fees: str
    mismatches: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when the live books equal the replay of the ledger."""
        return not self.mismatches


def reconcile(
    initial_cash: Decimal,
    fills: Iterable[Fill],
    events: Iterable[OrderEvent],
    orders: Mapping[str, tuple[OrderStatus, Decimal]],
    live: Portfolio,
) -> Reconciliation:
    """Replay ``fills`` into a fresh portfolio and compare it with ``live``, field by field.

    Also checks each order: the status of its last event is its recorded status, and its
    recorded filled quantity is the sum of its fills and of its FILL events' increments.
    """
    fills = list(fills)
    replay = Portfolio.from_fills(initial_cash, fills)
    bad: list[str] = []
    want, have = replay.positions(), live.positions()
    for symbol in sorted(set(want) | set(have)):
        if want.get(symbol, ZERO) != have.get(symbol, ZERO):
            bad.append(f"position {symbol}: fills say {want.get(symbol, ZERO)}, live {have.get(symbol, ZERO)}")
    for name in ("cash", "realized", "fees"):
        if getattr(replay, name) != getattr(live, name):
            bad.append(f"{name}: fills say {getattr(replay, name)}, live {getattr(live, name)}")
    filled: dict[str, Decimal] = {}
    for f in fills:
        filled[f.order_id] = filled.get(f.order_id, ZERO) + f.qty
    last: dict[str, OrderEvent] = {}
    for e in events:
        if e.order_id in last and e.seq != last[e.order_id].seq + 1:
            bad.append(f"order {e.order_id}: event {e.seq} follows event {last[e.order_id].seq}")
        last[e.order_id] = e
    for order_id, (status, qty) in sorted(orders.items()):
        final = last.get(order_id)
        if final is None:
            bad.append(f"order {order_id}: no events")
            continue
        if final.status is not status:
            bad.append(f"order {order_id}: status {status}, last event says {final.status}")
        if filled.get(order_id, ZERO) != qty or final.filled_qty != qty:
            bad.append(
                f"order {order_id}: filled {qty}, fills sum {filled.get(order_id, ZERO)}, events {final.filled_qty}"
            )
    return Reconciliation(
        len(fills),
        len(orders),
        {s: str(q) for s, q in sorted(have.items())},
        str(live.cash),
        str(live.realized),
        str(live.fees),
        tuple(bad),
    )
