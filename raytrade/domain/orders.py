"""Order intents, orders, fills and decisions: immutable values with exact quantities."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from raytrade.domain.order_lifecycle import OrderEvent


class Side(StrEnum):
    """Order side."""

    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """+1 for buys, -1 for sells."""
        return 1 if self is Side.BUY else -1


class OrderStatus(StrEnum):
    """Order lifecycle states (see :mod:`raytrade.domain.order_lifecycle` for the transitions)."""

    NEW = "NEW"
    ACCEPTED = "ACCEPTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def terminal(self) -> bool:
        """No further transition is possible."""
        return self in _TERMINAL

    @property
    def working(self) -> bool:
        """The order can still trade."""
        return self in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)


_TERMINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED})


class OrderType(StrEnum):
    """MARKET trades at once at the best available price; LIMIT at ``limit_price`` or better;
    STOP becomes a market order once the market trades through ``stop_price``."""

    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP = "STOP"


class TimeInForce(StrEnum):
    """GTC works until filled or cancelled; IOC cancels what the first eligible bar cannot fill;
    DAY expires at the end of the UTC day the order was created in."""

    GTC = "GTC"
    IOC = "IOC"
    DAY = "DAY"


class Liquidity(StrEnum):
    """Whether a fill took liquidity (crossed the spread) or provided it (a resting limit)."""

    TAKER = "TAKER"
    MAKER = "MAKER"


def order_id_for(strategy: str, symbol: str, partition: int, offset: int) -> str:
    """Derive the order id from its input, so a replayed tick maps to the same order."""
    return f"{strategy}:{symbol}:{partition}:{offset}"


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """What a strategy wants, before risk: an order for ``qty``, decided at about ``ref_price``.

    ``ts_event`` is the triggering tick's event time; ``ts_consumed`` the wall-clock
    nanoseconds at which the shard consumed it (for in-engine latency). Market orders by
    default; a LIMIT needs ``limit_price``, a STOP needs ``stop_price``.
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
    order_type: OrderType = OrderType.MARKET
    tif: TimeInForce = TimeInForce.GTC
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None

    def __post_init__(self) -> None:
        if not self.qty.is_finite() or self.qty <= 0:
            raise ValueError(f"order qty must be > 0, found {self.qty}")
        if not self.ref_price.is_finite() or self.ref_price <= 0:
            raise ValueError(f"order ref_price must be > 0, found {self.ref_price}")
        need = {OrderType.LIMIT: "limit_price", OrderType.STOP: "stop_price"}.get(self.order_type)
        for name in ("limit_price", "stop_price"):
            value = getattr(self, name)
            if value is None:
                if name == need:
                    raise ValueError(f"a {self.order_type} order needs {name}")
            elif name != need:
                raise ValueError(f"a {self.order_type} order takes no {name}")
            elif not value.is_finite() or value <= 0:
                raise ValueError(f"order {name} must be > 0, found {value}")

    @property
    def signed_qty(self) -> Decimal:
        """Quantity with the side's sign."""
        return self.qty if self.side is Side.BUY else -self.qty


@dataclass(frozen=True, slots=True)
class OrderCommand:
    """A strategy's request to ``cancel`` or ``replace`` one of its working orders, at event time ``ts_event``.

    ``command_id`` is deterministic (derived like order ids), so a replayed command is recognised
    and applied once: it is the ``cause`` of the event it produces.
    """

    command_id: str
    kind: str  # "cancel" | "replace"
    order_id: str
    strategy: str
    symbol: str
    ts_event: int
    qty: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("cancel", "replace"):
            raise ValueError(f"order command kind must be cancel or replace, found {self.kind!r}")


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
    liquidity: Liquidity = Liquidity.TAKER

    @property
    def signed_qty(self) -> Decimal:
        """Quantity with the side's sign."""
        return self.qty if self.side is Side.BUY else -self.qty


@dataclass(frozen=True, slots=True)
class OrderReport:
    """An order's state as execution knows it: status, filled quantity and its fills so far."""

    order_id: str
    symbol: str
    status: OrderStatus
    fills: tuple[Fill, ...] = ()
    reason: str = ""
    side: Side = Side.BUY
    qty: Decimal = Decimal(0)

    @property
    def filled_qty(self) -> Decimal:
        """Sum of the fills' quantities."""
        return sum((f.qty for f in self.fills), Decimal(0))

    @property
    def leaves_qty(self) -> Decimal:
        """What can still trade (zero once terminal)."""
        return Decimal(0) if self.status.terminal else self.qty - self.filled_qty


@dataclass(frozen=True, slots=True)
class ExecutionReply:
    """Execution's answer to one call (new orders and the market data that came with them).

    ``reports`` answer the call's decisions, in order. ``fills`` are every fill the call
    caused (the bars it carried traded working orders). ``positions`` and ``working`` (the
    signed quantity still working in open orders) are those of the call's symbols, and
    ``cash``/``equity`` the account's, all read at ledger sequence ``seq`` (monotone across
    restarts), so callers can keep an exact view. ``events`` are the order events the call
    caused (or, for a replayed call, recorded), in order, with ``fills`` their fills.
    ``trading_state`` and ``state_version`` are the RiskGate's when it answered (set by the
    gate; the version grows with every transition, across gate restarts).
    """

    reports: list[OrderReport]
    positions: dict[str, Decimal]
    seq: int
    fills: list[Fill] = field(default_factory=list)
    working: dict[str, Decimal] = field(default_factory=dict)
    cash: Decimal = Decimal(0)
    equity: Decimal = Decimal(0)
    events: list[OrderEvent] = field(default_factory=list)
    trading_state: str = ""
    state_version: int = -1
