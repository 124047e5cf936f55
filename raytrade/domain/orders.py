"""Order intents, orders, fills and decisions: immutable values with exact quantities."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum


class Side(StrEnum):
    """Order side."""

    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """+1 for buys, -1 for sells."""
        return 1 if self is Side.BUY else -1


class OrderStatus(StrEnum):
    """Terminal and open states recorded in the ledger."""

    OPEN = "OPEN"
    FILLED = "FILLED"
    REJECTED = "REJECTED"


def order_id_for(strategy: str, symbol: str, partition: int, offset: int) -> str:
    """Derive the order id from its input, so a replayed tick maps to the same order."""
    return f"{strategy}:{symbol}:{partition}:{offset}"


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """What a strategy wants, before risk: a market order for ``qty`` at about ``ref_price``.

    ``ts_event`` is the triggering tick's event time; ``ts_consumed`` the wall-clock
    nanoseconds at which the shard consumed it (for in-engine latency).
    """

    order_id: str
    strategy: str
    symbol: str
    side: Side
    qty: Decimal
    ref_price: Decimal
    ts_event: int
    ts_consumed: int
    score: float

    def __post_init__(self) -> None:
        if self.qty <= 0:
            raise ValueError(f"order qty must be > 0, found {self.qty}")
        if self.ref_price <= 0:
            raise ValueError(f"order ref_price must be > 0, found {self.ref_price}")

    @property
    def signed_qty(self) -> Decimal:
        """Quantity with the side's sign."""
        return self.qty if self.side is Side.BUY else -self.qty


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """The gate's verdict on one intent; ``reason`` is empty when approved."""

    intent: OrderIntent
    approved: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Fill:
    """An execution: exact price, quantity and fee."""

    fill_id: str
    order_id: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal
    ts: int

    @property
    def signed_qty(self) -> Decimal:
        """Quantity with the side's sign."""
        return self.qty if self.side is Side.BUY else -self.qty


@dataclass(frozen=True, slots=True)
class OrderReport:
    """What execution returns for one order: its final status and any fill."""

    order_id: str
    symbol: str
    status: OrderStatus
    fill: Fill | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ExecutionReply:
    """Execution's answer to one batch of decisions.

    ``positions`` are the resulting positions of the batch's symbols, read at ledger
    sequence ``seq`` (monotone across restarts), so callers can keep an exact view.
    """

    reports: list[OrderReport]
    positions: dict[str, Decimal]
    seq: int
