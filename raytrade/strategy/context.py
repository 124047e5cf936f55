"""The engine's side of :class:`~raytrade.strategy.base.StrategyContext`: one per strategy.

The context turns a strategy's actions into :class:`~raytrade.domain.orders.OrderIntent` and
:class:`~raytrade.domain.orders.OrderCommand` values in the engine's outbox, with deterministic
ids derived from the event being handled, and keeps the strategy's view of its own orders.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal

from raytrade.domain.instruments import Instrument
from raytrade.domain.money import ZERO, floor_to, quantize
from raytrade.domain.order_lifecycle import EventKind, OrderEvent
from raytrade.domain.orders import OrderCommand, OrderIntent, OrderStatus, OrderType, Side, TimeInForce
from raytrade.strategy.base import WorkingOrder


@dataclass(slots=True)
class EventRef:
    """The event being handled: its time and the key its orders' ids derive from.

    ``key`` is ``<partition>:<offset>`` for market data (so ids are today's
    ``strategy:symbol:partition:offset``), ``re:<order_id>/<event seq>`` for an order event.
    """

    key: str
    ts_event: int
    ts_consumed: int
    prices: Mapping[str, float] = field(default_factory=dict)  # last price per symbol as of this event


@dataclass(slots=True)
class Outbox:
    """What the strategies of one engine asked for since it was last drained, and the shared view."""

    positions: dict[str, Decimal]  # account position + working, per symbol, updated by every action
    intents: list[OrderIntent] = field(default_factory=list)
    commands: list[OrderCommand] = field(default_factory=list)
    event: EventRef = field(default_factory=lambda: EventRef("0:0", 0, 0))
    used: dict[str, int] = field(default_factory=dict)  # order-id base -> orders made from it on this event

    def at(self, event: EventRef) -> None:
        """Handle a new event from now on."""
        self.event = event
        self.used.clear()

    def drain(self) -> tuple[list[OrderIntent], list[OrderCommand]]:
        """Take every intent and command out."""
        out = self.intents, self.commands
        self.intents, self.commands = [], []
        return out


class EngineContext:
    """A strategy's context inside a :class:`~raytrade.domain.shard_engine.ShardEngine` (or the backtest)."""

    def __init__(
        self,
        strategy_id: str,
        instruments: Mapping[str, Instrument],
        outbox: Outbox,
        equity: Callable[[], Decimal],
    ) -> None:
        self._id = strategy_id
        self._instruments = instruments
        self._outbox = outbox
        self._equity = equity
        self.orders: dict[str, WorkingOrder] = {}  # this strategy's orders not known to be done

    # -- views ----------------------------------------------------------------------------

    @property
    def strategy_id(self) -> str:
        """This strategy's id."""
        return self._id

    @property
    def time(self) -> int:
        """Event time of the event being handled (ns)."""
        return self._outbox.event.ts_event

    @property
    def instruments(self) -> Mapping[str, Instrument]:
        """The tradable instruments by symbol."""
        return self._instruments

    @property
    def equity(self) -> Decimal:
        """Account equity as last reported."""
        return self._equity()

    def position(self, symbol: str) -> Decimal:
        """Account position + working orders in ``symbol``."""
        return self._outbox.positions.get(symbol, ZERO)

    def positions(self) -> dict[str, Decimal]:
        """Non-flat positions (+ working) of the engine's symbols."""
        return {s: q for s, q in sorted(self._outbox.positions.items()) if q != ZERO}

    def price(self, symbol: str) -> float | None:
        """Last price of ``symbol`` as of the event being handled."""
        return self._outbox.event.prices.get(symbol)

    def working_orders(self, symbol: str | None = None) -> list[WorkingOrder]:
        """This strategy's open orders."""
        return [o for o in self.orders.values() if symbol is None or o.symbol == symbol]

    # -- actions --------------------------------------------------------------------------

    def _instrument(self, symbol: str) -> Instrument:
        inst = self._instruments.get(symbol)
        if inst is None:
            raise ValueError(f"strategy {self._id}: unknown symbol {symbol!r} (known: {sorted(self._instruments)})")
        return inst

    def _next_id(self, symbol: str) -> str:
        base = f"{self._id}:{symbol}:{self._outbox.event.key}"
        n = self._outbox.used.get(base, 0)
        self._outbox.used[base] = n + 1
        return base if n == 0 else f"{base}.{n}"

    def target_position(self, symbol: str, qty: Decimal, score: float | None = None) -> str | None:
        """Market order for ``qty - position(symbol)`` (floored to the size increment); None if nothing to do."""
        inst = self._instrument(symbol)
        delta = floor_to(qty - self.position(symbol), inst.size_increment)
        if delta == ZERO:
            return None
        return self.order(symbol, Side.BUY if delta > 0 else Side.SELL, abs(delta), score=score)

    def order(
        self,
        symbol: str,
        side: Side,
        qty: Decimal,
        order_type: OrderType = OrderType.MARKET,
        *,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        tif: TimeInForce = TimeInForce.GTC,
        score: float | None = None,
    ) -> str:
        """Send one order (quantity floored to the size increment, prices rounded to the price grid)."""
        inst = self._instrument(symbol)
        qty = floor_to(qty, inst.size_increment)
        if qty <= ZERO:
            raise ValueError(f"strategy {self._id}: order qty for {symbol} is below one size increment")
        limit = None if limit_price is None else quantize(limit_price, inst.price_increment)
        stop = None if stop_price is None else quantize(stop_price, inst.price_increment)
        last = self.price(symbol)
        ref = limit or stop or (quantize(Decimal(repr(last)), inst.price_increment) if last is not None else None)
        if ref is None or ref <= ZERO:
            raise ValueError(f"strategy {self._id}: no price seen yet for {symbol}; give a limit or stop price")
        ev = self._outbox.event
        intent = OrderIntent(
            self._next_id(symbol),
            self._id,
            symbol,
            side,
            qty,
            ref,
            ev.ts_event,
            ev.ts_consumed,
            0.0 if score is None else score,
            order_type,
            tif,
            limit,
            stop,
        )
        self._outbox.intents.append(intent)
        self._outbox.positions[symbol] = self.position(symbol) + intent.signed_qty
        self.orders[intent.order_id] = WorkingOrder(
            intent.order_id, symbol, side, qty, ZERO, OrderStatus.NEW, order_type, tif, limit, stop
        )
        return intent.order_id

    def cancel(self, order_id: str) -> None:
        """Ask Execution to cancel one of this strategy's open orders."""
        o = self._own(order_id)
        self._command(o, "cancel")
        self._outbox.positions[o.symbol] = self.position(o.symbol) - o.side.sign * o.leaves_qty

    def replace(
        self,
        order_id: str,
        *,
        qty: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
    ) -> None:
        """Change an open order's quantity (down only) or prices."""
        o = self._own(order_id)
        inst = self._instrument(o.symbol)
        if qty is not None:
            qty = floor_to(qty, inst.size_increment)
            if qty > o.qty or qty <= o.filled_qty:
                raise ValueError(
                    f"strategy {self._id}: replace {order_id} qty {qty} must be in ({o.filled_qty}, {o.qty}] "
                    "(cancel and send a new order to add)"
                )
        limit = None if limit_price is None else quantize(limit_price, inst.price_increment)
        stop = None if stop_price is None else quantize(stop_price, inst.price_increment)
        self._command(o, "replace", qty, limit, stop)
        if qty is not None:
            self._outbox.positions[o.symbol] = self.position(o.symbol) - o.side.sign * (o.qty - qty)
            self.orders[order_id] = replace(o, qty=qty)

    def _own(self, order_id: str) -> WorkingOrder:
        o = self.orders.get(order_id)
        if o is None:
            raise ValueError(f"strategy {self._id}: {order_id} is not one of its open orders")
        return o

    def _command(
        self,
        o: WorkingOrder,
        kind: str,
        qty: Decimal | None = None,
        limit: Decimal | None = None,
        stop: Decimal | None = None,
    ) -> None:
        ev = self._outbox.event
        cid = f"{self._next_id(o.symbol)}~{kind}"
        self._outbox.commands.append(
            OrderCommand(cid, kind, o.order_id, self._id, o.symbol, ev.ts_event, qty, limit, stop)
        )

    # -- feedback -------------------------------------------------------------------------

    def observe(self, event: OrderEvent) -> None:
        """Fold one of this strategy's order events into its view of its orders."""
        o = self.orders.get(event.order_id)
        if event.status.terminal:
            self.orders.pop(event.order_id, None)
            return
        if o is None:
            return
        if event.kind in (EventKind.ACCEPTED, EventKind.FILL, EventKind.REPLACED, EventKind.TRIGGERED):
            self.orders[event.order_id] = replace(
                o,
                qty=event.qty,
                filled_qty=event.filled_qty,
                status=event.status,
                limit_price=event.limit_price,
                stop_price=event.stop_price,
            )
