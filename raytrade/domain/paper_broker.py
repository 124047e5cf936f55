"""The paper broker: working orders matched against one-minute bars, honestly.

Rules (each tested in ``tests/unit/test_paper_broker.py``):

- **Latency, no look-ahead.** An order accepted at event time ``t`` works from
  ``t + latency``. On a bar that opened before that, only the bar's close is known to
  have traded after it (the path before is unknown): it trades at the close (and a stop or
  limit is judged on the close), with the bar's volume pro-rated to the time left. From the
  next bar on it sees the whole bar. A signal never trades on the bar it was computed from.
- **Market orders** (and triggered stops) trade at the bar's open moved against the taker
  by the half spread plus square-root market impact,
  ``cost = half_spread + impact_coef * sigma * sqrt(qty / bar_volume)``, where ``sigma``
  is an EWMA of the bars' Parkinson (high-low) variance. The price is then clamped into
  the bar's ``[low, high]``: **no fill at a price that did not trade**.
- **Limit orders** that are marketable at the open trade like market orders, capped at the
  limit. Resting limits fill at the limit (maker) only if the bar traded *through* it
  (``low < limit`` for a buy): touching is not enough, the queue ahead is unknown.
- **Stop orders** trigger when the bar trades at or through the stop, then trade at
  ``max(stop, open)`` (buy) or ``min(stop, open)`` (sell) plus costs, within the bar.
- **Partial fills.** All orders of a symbol share ``max_participation * bar_volume`` per bar.
- **Time in force.** IOC: whatever its first eligible bar cannot fill is cancelled.
  DAY: expires at the first bar on or after the next UTC midnight. GTC: works until done.
- **Fees**: maker or taker basis points of notional plus a per-unit fee, with a minimum.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext

from raytrade.domain.bars import Bar
from raytrade.domain.instruments import Instrument
from raytrade.domain.money import MONEY_CONTEXT, ZERO, decimal_from_float, floor_to, quantize
from raytrade.domain.order_lifecycle import Order, OrderEvent
from raytrade.domain.orders import Fill, Liquidity, OrderIntent, OrderType, Side, TimeInForce

BPS = Decimal(10_000)
FEE_INCREMENT = Decimal("0.00000001")
DAY_NS = 86_400 * 10**9
_LN2_4 = 4.0 * math.log(2.0)


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """``fee = max(minimum, notional * bps / 1e4 + qty * per_unit)``, bps by liquidity."""

    taker_bps: Decimal = Decimal(2)
    maker_bps: Decimal = Decimal(0)
    per_unit: Decimal = ZERO
    minimum: Decimal = ZERO

    def fee(self, price: Decimal, qty: Decimal, liquidity: Liquidity) -> Decimal:
        """The fee of one fill, rounded to 1e-8."""
        bps = self.taker_bps if liquidity is Liquidity.TAKER else self.maker_bps
        with localcontext(MONEY_CONTEXT):
            return quantize(max(self.minimum, price * qty * bps / BPS + qty * self.per_unit), FEE_INCREMENT)


@dataclass(frozen=True, slots=True)
class PaperBrokerConfig:
    """Costs, liquidity and latency of the simulated venue."""

    fees: FeeSchedule = FeeSchedule()
    half_spread_bps: Decimal = Decimal("0.5")
    impact_coef: float = 1.0
    max_participation: float | None = 0.1  # None: no volume cap (the next-bar-open convention)
    latency_ns: int = 50_000_000
    vol_halflife_bars: float = 30.0

    def __post_init__(self) -> None:
        if self.max_participation is not None and not 0.0 < self.max_participation <= 1.0:
            raise ValueError(f"max_participation must be in (0, 1], found {self.max_participation}")
        if self.impact_coef < 0 or self.latency_ns < 0 or self.half_spread_bps < 0 or self.vol_halflife_bars <= 0:
            raise ValueError(f"costs, latency and half-life must be >= 0 (half-life > 0): {self}")


@dataclass(slots=True)
class BarResult:
    """What one bar did: the events (fills, triggers, cancels, expiries), the fills, the orders touched."""

    events: list[OrderEvent] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)


def parkinson_variance(bar: Bar) -> float:
    """One-bar variance of log returns estimated from the bar's range (Parkinson, 1980)."""
    if bar.low <= 0 or bar.high <= bar.low:
        return 0.0
    return math.log(bar.high / bar.low) ** 2 / _LN2_4


def impact_cost(half_spread_bps: Decimal, impact_coef: float, sigma: float, qty: Decimal, volume: float) -> float:
    """Fractional cost of taking ``qty`` in a bar of ``volume``: half spread + square-root impact."""
    participation = float(qty) / volume if volume > 0 else 1.0
    return float(half_spread_bps / BPS) + impact_coef * sigma * math.sqrt(participation)


class PaperBroker:
    """Simulated venue for the instruments it knows; state is rebuilt from the ledger on restart."""

    def __init__(self, instruments: Iterable[Instrument], config: PaperBrokerConfig) -> None:
        self.instruments = {i.symbol: i for i in instruments}
        self.config = config
        self.orders: dict[str, Order] = {}
        self.last_bar: dict[str, int] = {}
        self.variance: dict[str, float] = {}
        self._decay = 0.5 ** (1.0 / config.vol_halflife_bars)

    # -- orders ---------------------------------------------------------------------------

    def check(self, intent: OrderIntent) -> str:
        """Why the venue would refuse ``intent`` ("" when it accepts it)."""
        inst = self.instruments.get(intent.symbol)
        if inst is None:
            return f"unknown symbol {intent.symbol}"
        if floor_to(intent.qty, inst.size_increment) != intent.qty:
            return f"qty {intent.qty} is not a multiple of {inst.size_increment}"
        for price in (intent.limit_price, intent.stop_price):
            if price is not None and quantize(price, inst.price_increment) != price:
                return f"price {price} is not a multiple of {inst.price_increment}"
        if intent.order_id in self.orders:
            return f"duplicate order id {intent.order_id}"
        return ""

    def submit(self, intent: OrderIntent, ts: int, risk_reason: str | None = None) -> Order:
        """Take a new order: ACCEPTED (working from ``ts_event + latency``) or REJECTED.

        ``risk_reason`` is the gate's denial, if it denied the order: recorded as the reason.
        """
        order = Order.new(intent, ts)
        reason = risk_reason if risk_reason is not None else self.check(intent)
        if reason:
            order.reject(reason, ts)
            return order
        order.accept(ts, intent.ts_event + self.config.latency_ns)
        self.orders[intent.order_id] = order
        return order

    def working(self, symbol: str | None = None) -> list[Order]:
        """Working orders (all, or one symbol's), oldest first."""
        return [o for o in self.orders.values() if o.status.working and (symbol is None or o.intent.symbol == symbol)]

    def cancel(self, order_id: str, reason: str, ts: int, cause: str) -> OrderEvent:
        """Cancel a working order (``KeyError`` if unknown, ``InvalidTransitionError`` if done)."""
        event = self.orders[order_id].cancel(reason, ts, cause)
        self._forget_done()
        return event

    def cancel_all(self, reason: str, ts: int, cause: str) -> list[OrderEvent]:
        """Cancel every working order (the kill switch)."""
        events = [o.cancel(reason, ts, cause) for o in self.working()]
        self._forget_done()
        return events

    def replace(
        self,
        order_id: str,
        ts: int,
        cause: str,
        qty: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
    ) -> OrderEvent:
        """Change a working order's quantity or prices (it keeps its place in time)."""
        order = self.orders[order_id]
        inst = self.instruments[order.intent.symbol]
        if qty is not None and floor_to(qty, inst.size_increment) != qty:
            raise ValueError(f"qty {qty} is not a multiple of {inst.size_increment}")
        return order.replace_terms(ts, cause, qty, limit_price, stop_price)

    def restore(self, orders: Iterable[Order], bars: dict[str, tuple[int, float]]) -> None:
        """Take back the working orders and the per-symbol (last bar start, variance) from the ledger."""
        for order in orders:
            order.arrival_ts = order.intent.ts_event + self.config.latency_ns
            self.orders[order.order_id] = order
        for symbol, (start, variance) in bars.items():
            self.last_bar[symbol], self.variance[symbol] = start, variance

    def _forget_done(self) -> None:
        for oid in [oid for oid, o in self.orders.items() if o.status.terminal]:
            del self.orders[oid]

    # -- market data ----------------------------------------------------------------------

    def seen(self, symbol: str, start: int) -> bool:
        """Whether the bar of ``symbol`` opening at ``start`` was already processed."""
        return start <= self.last_bar.get(symbol, -1)

    def on_bar(self, symbol: str, bar: Bar) -> BarResult:
        """Trade the symbol's working orders against one closed bar (bars already seen are ignored)."""
        out = BarResult()
        if symbol not in self.instruments or self.seen(symbol, bar.start):
            return out
        self.last_bar[symbol] = bar.start
        var = parkinson_variance(bar)
        prev = self.variance.get(symbol)
        self.variance[symbol] = var if prev is None else self._decay * prev + (1 - self._decay) * var
        if not self.orders:  # nothing working: the bar only moves the volatility state
            return out
        sigma = math.sqrt(self.variance[symbol])
        inst = self.instruments[symbol]
        share = self.config.max_participation
        with localcontext(MONEY_CONTEXT):
            if share is None:  # no volume cap: every working order can fill whole
                capacity = sum((o.leaves_qty for o in self.working(symbol)), ZERO)
            else:
                capacity = floor_to(Decimal(repr(share * bar.volume)), inst.size_increment)
        cause = f"bar:{symbol}:{bar.start}"
        for order in self.working(symbol):
            if order.arrival_ts >= bar.end:
                continue  # still on its way to the venue
            before = len(order.events)
            capacity -= self._trade(order, bar, inst, sigma, capacity, out, cause)
            if len(order.events) > before:
                out.orders.append(order)
        self._forget_done()
        return out

    def _trade(
        self, order: Order, bar: Bar, inst: Instrument, sigma: float, capacity: Decimal, out: BarResult, cause: str
    ) -> Decimal:
        """Expire, trigger, fill or cancel one working order on one bar; return the quantity filled."""
        i = order.intent
        if i.tif is TimeInForce.DAY and bar.start >= (i.ts_event // DAY_NS + 1) * DAY_NS:
            out.events.append(order.expire(bar.start, cause))
            return ZERO
        qty = ZERO
        if order.arrival_ts > bar.start and self.config.max_participation is not None:
            # arrived mid-bar: only the part of the bar after it counts
            left = Decimal((bar.end - order.arrival_ts) / bar.span)
            with localcontext(MONEY_CONTEXT):
                capacity = min(capacity, floor_to(capacity * left, inst.size_increment))
        priced = self._price(order, bar, inst, sigma, capacity, out, cause)
        if priced is not None and capacity > ZERO:
            price, liquidity = priced
            qty = min(order.leaves_qty, capacity)
            fee = self.config.fees.fee(price, qty, liquidity)
            n = len(order.fills) + 1
            fill = Fill(f"{i.order_id}#{n}", i.order_id, i.symbol, i.side, qty, price, fee, bar.start, liquidity)
            out.events.append(order.fill(fill, cause))
            out.fills.append(fill)
        if i.tif is TimeInForce.IOC and order.status.working:
            out.events.append(order.cancel("IOC: not filled on its first bar", bar.start, cause))
        return qty

    def _price(
        self, order: Order, bar: Bar, inst: Instrument, sigma: float, capacity: Decimal, out: BarResult, cause: str
    ) -> tuple[Decimal, Liquidity] | None:
        """The fill price and liquidity of ``order`` on ``bar``, or None if it does not trade."""
        i = order.intent
        buy = i.side is Side.BUY
        inc = inst.price_increment
        open_, close = decimal_from_float(bar.open, inc), decimal_from_float(bar.close, inc)
        with localcontext(MONEY_CONTEXT):  # the grid prices inside the traded range
            high = Decimal(repr(bar.high)).quantize(inc, rounding=ROUND_FLOOR)
            low = Decimal(repr(bar.low)).quantize(inc, rounding=ROUND_CEILING)
        # What is known to have traded after the order arrived: the whole bar if it was
        # there at the open, else only the close (the bar's path before it is unknown).
        top, bottom = high, low
        volume = bar.volume
        if order.arrival_ts > bar.start:
            open_ = top = bottom = close
            volume *= (bar.end - order.arrival_ts) / bar.span  # as its capacity: the part left
        ref = open_
        if i.order_type is OrderType.STOP and not order.triggered:
            stop = i.stop_price
            assert stop is not None  # validated by OrderIntent
            if not (top >= stop if buy else bottom <= stop):
                return None
            out.events.append(order.trigger(bar.start, cause))
            ref = max(stop, open_) if buy else min(stop, open_)
        limit = i.limit_price
        if i.order_type is OrderType.LIMIT and limit is not None:
            marketable = open_ <= limit if buy else open_ >= limit
            if not marketable:
                traded_through = bottom < limit if buy else top > limit
                return (limit, Liquidity.MAKER) if traded_through else None
        qty = min(order.leaves_qty, capacity) if capacity > ZERO else order.leaves_qty
        cost = impact_cost(self.config.half_spread_bps, self.config.impact_coef, sigma, qty, volume)
        with localcontext(MONEY_CONTEXT):
            raw = ref * Decimal(repr(1.0 + cost if buy else 1.0 - cost))
            price = raw.quantize(inc, rounding=ROUND_CEILING if buy else ROUND_FLOOR)
            price = min(price, high) if buy else max(price, low)  # never a price that did not trade
            if limit is not None:
                price = min(price, limit) if buy else max(price, limit)
        return price, Liquidity.TAKER
