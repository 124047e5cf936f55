"""The strategy API: a base class with event hooks, and the context a strategy acts through.

A strategy is a class with a pydantic ``Params`` model, loaded by import path from the config::

    strategies:
      - {id: sma, path: "raytrade.strategy.builtins:SmaCross", params: {fast: 10, slow: 30, qty: "0.1"}}

The engine calls, in event-time order:

- ``on_start()`` once, before the first event (after ``on_load`` when a snapshot is restored);
- ``on_bar(symbol, bar, features, score)`` for every closed bar of the shard's symbols;
  ``features`` is the model's feature vector (``None`` while the indicators warm up) and
  ``score`` the configured model's output for this bar (``None`` without a model, or while
  its window fills);
- ``on_order_event(event)`` for every event of the strategy's own orders (accepted,
  rejected, filled, cancelled, expired, replaced), and ``on_fill(fill)`` for each fill;
- ``on_stop()`` when the run ends.

``on_save() -> bytes`` and ``on_load(bytes)`` carry the strategy's own state across restarts:
the shard snapshot stores those bytes (nothing private is pickled).

Everything a strategy knows and does goes through ``self.ctx`` (:class:`StrategyContext`):
positions, working orders, equity, instruments, the last prices and the **event time**
(never the wall clock), and the actions: a target position, market/limit/stop orders with a
time in force, cancel and replace. Order ids are deterministic: ``<id>:<symbol>:<partition>:<offset>``
(a ``.n`` suffix for the n-th extra order on the same event), so a replay maps to the same orders.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from raytrade.domain.bars import Bar
from raytrade.domain.instruments import Instrument
from raytrade.domain.order_lifecycle import OrderEvent
from raytrade.domain.orders import Fill, OrderStatus, OrderType, Side, TimeInForce


class StrategyFailedError(RuntimeError):
    """A strategy raised in one of its hooks; ``__cause__`` is its exception, with its traceback."""

    def __init__(self, strategy_id: str, hook: str, ts: int, exc: BaseException) -> None:
        super().__init__(f"strategy {strategy_id!r} raised in {hook} at event time {ts}: {type(exc).__name__}: {exc}")
        self.strategy_id, self.hook, self.ts = strategy_id, hook, ts


class StrategyParams(BaseModel):
    """Base of every strategy's parameters: unknown keys are rejected, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(StrategyParams):
    """For strategies without parameters."""


@dataclass(frozen=True, slots=True)
class WorkingOrder:
    """One of the strategy's orders as the engine last saw it (``status`` NEW until Execution answers)."""

    order_id: str
    symbol: str
    side: Side
    qty: Decimal
    filled_qty: Decimal
    status: OrderStatus
    order_type: OrderType
    tif: TimeInForce
    limit_price: Decimal | None
    stop_price: Decimal | None

    @property
    def leaves_qty(self) -> Decimal:
        """What can still trade."""
        return self.qty - self.filled_qty


class StrategyContext(Protocol):
    """What a strategy sees and does; implemented by the engine (live shard and backtest alike)."""

    @property
    def strategy_id(self) -> str:
        """This strategy's id (the prefix of its order ids)."""
        ...

    @property
    def time(self) -> int:
        """Event time of the event being handled, epoch nanoseconds (never the wall clock)."""
        ...

    @property
    def instruments(self) -> Mapping[str, Instrument]:
        """The shard's tradable instruments by symbol."""
        ...

    @property
    def equity(self) -> Decimal:
        """Account equity as last reported by Execution (initial cash before the first report)."""
        ...

    def position(self, symbol: str) -> Decimal:
        """The account's signed position in ``symbol`` plus what its working orders would add."""
        ...

    def positions(self) -> dict[str, Decimal]:
        """:meth:`position` for every symbol of the shard that is not flat."""
        ...

    def price(self, symbol: str) -> float | None:
        """The last trade price (or bar close) seen for ``symbol``."""
        ...

    def working_orders(self, symbol: str | None = None) -> list[WorkingOrder]:
        """This strategy's orders not yet known to be done, oldest first."""
        ...

    def target_position(self, symbol: str, qty: Decimal, score: float | None = None) -> str | None:
        """Send the market order that moves :meth:`position` to ``qty``; its order id, or None if already there."""
        ...

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
        """Send one order; returns its order id. Quantities and prices are floored/checked on the instrument grid."""
        ...

    def cancel(self, order_id: str) -> None:
        """Ask to cancel one of this strategy's working orders."""
        ...

    def replace(
        self,
        order_id: str,
        *,
        qty: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
    ) -> None:
        """Change a working order's quantity (down only: cancel and send a new one to add) or prices."""
        ...


class Strategy:
    """Base class of every strategy (built-in or yours). Override the hooks you need.

    ``Params`` is the pydantic model of the ``params`` mapping in the config (validated at
    start; unknown keys rejected). ``requires_model``: the strategy needs a model score
    (the engine refuses to start without a configured model). ``uses_features = False``: the
    strategy never reads ``features`` (it gets ``None``); when no strategy reads them and no
    model scores, the engine does not compute them at all.
    """

    Params: ClassVar[type[StrategyParams]] = NoParams
    requires_model: ClassVar[bool] = False
    uses_features: ClassVar[bool] = True

    def __init__(self, strategy_id: str, params: StrategyParams | Mapping[str, Any] | None = None) -> None:
        self.id = strategy_id
        if params is None or isinstance(params, Mapping):
            params = self.Params.model_validate(dict(params or {}))
        self.params = params
        self._ctx: StrategyContext | None = None

    @property
    def ctx(self) -> StrategyContext:
        """The context, bound by the engine before :meth:`on_start`."""
        if self._ctx is None:
            raise RuntimeError(f"strategy {self.id!r} is not bound to an engine yet")
        return self._ctx

    def bind(self, ctx: StrategyContext) -> None:
        """Called by the engine: attach the context."""
        self._ctx = ctx

    def on_start(self) -> None:
        """Once, before the first event."""

    def on_bar(self, symbol: str, bar: Bar, features: Mapping[str, float] | None, score: float | None) -> None:
        """A bar of ``symbol`` closed (event time ``ctx.time``)."""

    def on_fill(self, fill: Fill) -> None:
        """One of this strategy's orders traded."""

    def on_order_event(self, event: OrderEvent) -> None:
        """Any event of one of this strategy's orders."""

    def on_stop(self) -> None:
        """The run ends."""

    def on_save(self) -> bytes:
        """This strategy's state, stored in the shard snapshot (empty: stateless)."""
        return b""

    def on_load(self, state: bytes) -> None:
        """Take back what :meth:`on_save` returned (called before :meth:`on_start` on a restart)."""
