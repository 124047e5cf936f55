"""PaperBroker and the Order state machine: latency, costs, partial fills, order types, TIF, fees.

Expected prices are computed here from the documented formula, independently of the broker:
``price = ref * (1 +- (half_spread + impact_coef * sigma * sqrt(qty / volume)))`` rounded against
the taker to the price increment, ``sigma**2`` the (EWMA of the) Parkinson variance
``ln(H/L)**2 / (4 ln 2)``, then clamped into the bar's ``[low, high]``.
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, ROUND_FLOOR
from decimal import Decimal as D

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from raytrade.domain.bars import BAR_NS, Bar
from raytrade.domain.instruments import Instrument
from raytrade.domain.order_lifecycle import EventKind, InvalidTransitionError, Order
from raytrade.domain.orders import Fill, Liquidity, OrderIntent, OrderStatus, OrderType, Side, TimeInForce
from raytrade.domain.paper_broker import DAY_NS, FeeSchedule, PaperBroker, PaperBrokerConfig

BTC = Instrument("BTC", D("0.01"), D("0.001"))
DAY = 19_700
T0 = DAY * DAY_NS + 3_600 * 10**9  # 01:00 UTC, a bar boundary
LAT = 50_000_000
CFG = PaperBrokerConfig(
    fees=FeeSchedule(taker_bps=D(2), maker_bps=D(1)),
    half_spread_bps=D("0.5"),
    impact_coef=1.0,
    max_participation=0.1,
    latency_ns=LAT,
)
CENT = D("0.01")


def intent(
    oid: str,
    side: Side = Side.BUY,
    qty: str = "10",
    *,
    kind: OrderType = OrderType.MARKET,
    tif: TimeInForce = TimeInForce.GTC,
    limit: str | None = None,
    stop: str | None = None,
    ts: int = T0 - 10**9,
    symbol: str = "BTC",
) -> OrderIntent:
    return OrderIntent(
        oid,
        "s",
        symbol,
        side,
        D(qty),
        D("100"),
        ts,
        ts,
        0.5,
        kind,
        tif,
        None if limit is None else D(limit),
        None if stop is None else D(stop),
    )


def bar(k: int, o: float, h: float, lo: float, c: float, v: float = 1000.0) -> Bar:
    """Bar number ``k`` counted from T0."""
    return Bar(T0 + k * BAR_NS, o, h, lo, c, v)


def parkinson(h: float, lo: float) -> float:
    return math.log(h / lo) ** 2 / (4 * math.log(2))


def taker_price(ref: str, side: Side, qty: str, volume: float, variance: float) -> D:
    """The unclamped taker price from the documented formula (coef 1, half spread 0.5 bps)."""
    cost = 0.5 / 10_000 + 1.0 * math.sqrt(variance) * math.sqrt(float(qty) / volume)
    buy = side is Side.BUY
    raw = D(ref) * D(1 + cost if buy else 1 - cost)
    return raw.quantize(CENT, rounding=ROUND_CEILING if buy else ROUND_FLOOR)


def taker_fee(price: D, qty: str) -> D:
    return (price * D(qty) * 2 / 10_000).quantize(D("0.00000001"))


def new_broker(cfg: PaperBrokerConfig = CFG, *instruments: Instrument) -> PaperBroker:
    return PaperBroker(instruments or (BTC,), cfg)


def last_status(order: Order) -> OrderStatus:
    return order.events[-1].status


def fill(oid: str, n: int, qty: str, price: str = "100") -> Fill:
    return Fill(f"{oid}#{n}", oid, "BTC", Side.BUY, D(qty), D(price), D(0), n)


# -- the Order state machine ------------------------------------------------------------------


def test_order_legal_path_numbers_events_with_cumulative_filled_qty() -> None:
    order = Order.new(intent("o", qty="10"), 1)
    order.accept(2, 5)
    order.fill(fill("o", 1, "4"), "bar:BTC:1")
    order.fill(fill("o", 2, "6"), "bar:BTC:2")
    ev = order.events
    assert [e.seq for e in ev] == [1, 2, 3, 4]
    assert [e.kind for e in ev] == [EventKind.NEW, EventKind.ACCEPTED, EventKind.FILL, EventKind.FILL]
    assert [e.status for e in ev] == [
        OrderStatus.NEW,
        OrderStatus.ACCEPTED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.FILLED,
    ]
    assert [e.filled_qty for e in ev] == [D(0), D(0), D(4), D(10)]
    assert [e.fill_id for e in ev] == [None, None, "o#1", "o#2"]
    assert [e.cause for e in ev] == ["intake", "intake", "bar:BTC:1", "bar:BTC:2"]
    assert order.status is OrderStatus.FILLED and order.leaves_qty == D(0) and order.arrival_ts == 5
    report = order.report()
    assert report.filled_qty == D(10) and report.leaves_qty == D(0) and report.status is OrderStatus.FILLED


def test_fill_of_a_rejected_order_raises() -> None:
    order = Order.new(intent("o"), 1)
    order.reject("too big", 2)
    assert order.status is OrderStatus.REJECTED and order.events[-1].reason == "too big"
    with pytest.raises(InvalidTransitionError, match="REJECTED"):
        order.fill(fill("o", 1, "1"), "bar")
    with pytest.raises(InvalidTransitionError):
        order.accept(3, 3)
    with pytest.raises(InvalidTransitionError):
        order.cancel("x", 3, "cmd:t")
    assert len(order.events) == 2


def test_cancel_of_a_filled_order_raises() -> None:
    order = Order.new(intent("o", qty="1"), 1)
    order.accept(2, 2)
    order.fill(fill("o", 1, "1"), "bar")
    with pytest.raises(InvalidTransitionError, match="FILLED -> CANCELLED"):
        order.cancel("late", 3, "cmd:t")
    with pytest.raises(InvalidTransitionError):
        order.expire(3, "bar")
    with pytest.raises(InvalidTransitionError):
        order.reject("late", 3)
    assert order.status is OrderStatus.FILLED and len(order.events) == 3


def test_fill_beyond_leaves_raises() -> None:
    order = Order.new(intent("o", qty="1"), 1)
    order.accept(2, 2)
    with pytest.raises(ValueError, match="outside"):
        order.fill(fill("o", 1, "1.5"), "bar")
    assert order.status is OrderStatus.ACCEPTED and len(order.events) == 2


def test_accept_twice_raises() -> None:
    order = Order.new(intent("o"), 1)
    order.accept(2, 2)
    with pytest.raises(InvalidTransitionError):
        order.accept(3, 3)
    assert [e.seq for e in order.events] == [1, 2]


def test_cancel_twice_raises() -> None:
    order = Order.new(intent("o"), 1)
    order.accept(2, 2)
    order.cancel("first", 3, "cmd:t")
    with pytest.raises(InvalidTransitionError):
        order.cancel("second", 4, "cmd:t")
    assert [e.kind for e in order.events] == [EventKind.NEW, EventKind.ACCEPTED, EventKind.CANCELLED]


def test_replace_changes_terms_with_an_event_and_refuses_qty_not_above_filled() -> None:
    order = Order.new(intent("o", qty="10", kind=OrderType.LIMIT, limit="99.5"), 1)
    order.accept(2, 2)
    order.fill(fill("o", 1, "4", "99.5"), "bar")
    event = order.replace_terms(3, "cmd:desk", qty=D(12), limit_price=D("99.25"))
    assert event.kind is EventKind.REPLACED and event.seq == 4
    assert event.status is OrderStatus.PARTIALLY_FILLED and event.cause == "cmd:desk"
    assert event.qty == D(12) and event.limit_price == D("99.25") and event.filled_qty == D(4)
    assert event.reason == "replaced qty, limit_price"
    assert order.intent.qty == D(12) and order.leaves_qty == D(8)
    with pytest.raises(ValueError, match="must exceed the filled 4"):
        order.replace_terms(4, "cmd:desk", qty=D(4))
    with pytest.raises(ValueError, match="must exceed"):
        order.replace_terms(4, "cmd:desk", qty=D(3))
    with pytest.raises(ValueError, match="must change"):
        order.replace_terms(4, "cmd:desk")
    assert order.intent.qty == D(12) and len(order.events) == 4
    order.fill(fill("o", 2, "8", "99.25"), "bar")
    assert order.status is OrderStatus.FILLED
    with pytest.raises(InvalidTransitionError):
        order.replace_terms(5, "cmd:desk", qty=D(20))


# -- latency and no look-ahead ------------------------------------------------------------------


def test_order_arriving_mid_bar_trades_at_the_close_with_pro_rated_volume_then_at_the_next_open() -> None:
    b = new_broker()
    ts = T0 + 30 * 10**9 - LAT  # arrives exactly half way through bar 0
    order = b.submit(intent("o", qty="80", ts=ts), ts)
    assert last_status(order) is OrderStatus.ACCEPTED and order.arrival_ts == T0 + 30 * 10**9
    # Close == high: the close-based taker price is clamped at 101 (an open-based one would be 100.28).
    r0 = b.on_bar("BTC", bar(0, 100.0, 101.0, 99.0, 101.0))
    assert [(f.fill_id, f.qty, f.price, f.ts) for f in r0.fills] == [("o#1", D(50), D(101), T0)]
    # 50 = floor(0.1 * 1000 * 30 s / 60 s)
    assert last_status(order) is OrderStatus.PARTIALLY_FILLED
    # Bar 1 (same range, so the same variance): the open, the full capacity of 100 for the 30 left.
    r1 = b.on_bar("BTC", bar(1, 100.0, 101.0, 99.0, 100.5))
    want = taker_price("100", Side.BUY, "30", 1000.0, parkinson(101.0, 99.0))
    assert want == D("100.22")
    assert [(f.fill_id, f.qty, f.price, f.ts) for f in r1.fills] == [("o#2", D(30), want, T0 + BAR_NS)]
    assert last_status(order) is OrderStatus.FILLED and order.leaves_qty == D(0)


def test_order_arriving_mid_bar_sell_at_the_close_clamped_to_the_low() -> None:
    b = new_broker()
    ts = T0 + 45 * 10**9 - LAT  # a quarter of the bar is left
    b.submit(intent("o", Side.SELL, qty="80", ts=ts), ts)
    r0 = b.on_bar("BTC", bar(0, 100.0, 101.0, 99.0, 99.0))
    assert [(f.qty, f.price) for f in r0.fills] == [(D(25), D(99))]


def test_order_arriving_at_or_after_the_bar_end_does_not_trade_on_it() -> None:
    b = new_broker()
    at_end = T0 + BAR_NS - LAT  # arrival == end of bar 0
    after = T0 + 70 * 10**9  # arrival 10.05 s into bar 1
    b.submit(intent("a", qty="10", ts=at_end), at_end)
    b.submit(intent("b", qty="10", ts=after), after)
    r0 = b.on_bar("BTC", bar(0, 100.0, 101.0, 99.0, 100.5))
    assert r0.fills == [] and r0.events == []
    # Bar 1: "a" was there at the open (EWMA sigma of both bars); "b" arrived mid-bar: the close,
    # with impact against the volume of the 49.95 s left (as its capacity), not the whole bar's.
    r1 = b.on_bar("BTC", bar(1, 100.0, 100.5, 99.5, 100.25))
    decay = 0.5 ** (1 / 30)
    var = decay * parkinson(101.0, 99.0) + (1 - decay) * parkinson(100.5, 99.5)
    want_a = taker_price("100", Side.BUY, "10", 1000.0, var)
    want_b = taker_price("100.25", Side.BUY, "10", 1000.0 * 49.95 / 60, var)
    assert taker_price("100.25", Side.BUY, "10", 1000.0, var) == D("100.38")  # what the whole bar would give
    assert (want_a, want_b) == (D("100.13"), D("100.39"))
    assert [(f.fill_id, f.price) for f in r1.fills] == [("a#1", want_a), ("b#1", D("100.39"))]


# -- market prices -----------------------------------------------------------------------------


def test_market_buy_pays_half_spread_plus_square_root_impact_rounded_up() -> None:
    b = new_broker()
    b.submit(intent("o", qty="10"), T0)
    r = b.on_bar("BTC", bar(0, 100.0, 101.0, 99.0, 100.5))
    sigma = math.sqrt(math.log(101.0 / 99.0) ** 2 / (4 * math.log(2)))
    cost = 0.00005 + sigma * math.sqrt(10 / 1000)
    want = (D(100) * D(1 + cost)).quantize(CENT, rounding=ROUND_CEILING)
    assert want == D("100.13")  # 100.12511... rounded up
    assert len(r.fills) == 1
    f = r.fills[0]
    assert (f.price, f.qty, f.liquidity, f.fee) == (want, D(10), Liquidity.TAKER, D("0.20026000"))
    assert f.fee == taker_fee(want, "10")


def test_market_sell_is_symmetric_and_rounded_down() -> None:
    b = new_broker()
    b.submit(intent("o", Side.SELL, qty="10"), T0)
    r = b.on_bar("BTC", bar(0, 100.0, 101.0, 99.0, 100.5))
    want = taker_price("100", Side.SELL, "10", 1000.0, parkinson(101.0, 99.0))
    assert want == D("99.87")  # 99.87488... rounded down
    assert [(f.price, f.side, f.fee) for f in r.fills] == [(want, Side.SELL, D("0.19974000"))]


def test_taker_price_is_clamped_into_the_bar_range() -> None:
    cfg = PaperBrokerConfig(max_participation=1.0, latency_ns=LAT)
    buy = new_broker(cfg)
    buy.submit(intent("b", qty="900"), T0)
    rb = buy.on_bar("BTC", bar(0, 100.0, 100.05, 99.0, 100.0))
    unclamped = taker_price("100", Side.BUY, "900", 1000.0, parkinson(100.05, 99.0))
    assert unclamped > D("100.05")
    assert [f.price for f in rb.fills] == [D("100.05")]
    sell = new_broker(cfg)
    sell.submit(intent("s", Side.SELL, qty="900"), T0)
    rs = sell.on_bar("BTC", bar(0, 100.0, 101.0, 99.95, 100.0))
    assert taker_price("100", Side.SELL, "900", 1000.0, parkinson(101.0, 99.95)) < D("99.95")
    assert [f.price for f in rs.fills] == [D("99.95")]


def test_a_bar_off_the_price_grid_never_fills_outside_its_range() -> None:
    """High 100.456 and low 98.994 on a 0.01 grid: the most a buy can pay is 100.45, the least a
    sell can get 99.00 (rounding the range to the nearest tick would widen it to 100.46 / 98.99)."""
    cfg = PaperBrokerConfig(max_participation=1.0, latency_ns=LAT)
    buy = new_broker(cfg)
    buy.submit(intent("b", qty="900"), T0)
    assert [f.price for f in buy.on_bar("BTC", bar(0, 100.0, 100.456, 98.994, 100.0)).fills] == [D("100.45")]
    sell = new_broker(cfg)
    sell.submit(intent("s", Side.SELL, qty="900"), T0)
    assert [f.price for f in sell.on_bar("BTC", bar(0, 99.05, 100.456, 98.994, 100.0)).fills] == [D("99.00")]


# -- partial fills -----------------------------------------------------------------------------


def test_capacity_is_shared_in_arrival_order_and_a_big_order_fills_over_bars() -> None:
    b = new_broker()
    big = b.submit(intent("a", qty="150"), T0)
    small = b.submit(intent("b", qty="30"), T0)
    r0 = b.on_bar("BTC", bar(0, 100.0, 101.0, 99.0, 100.5))
    var = parkinson(101.0, 99.0)
    p_a1 = taker_price("100", Side.BUY, "100", 1000.0, var)
    assert p_a1 == D("100.39")
    assert [(f.fill_id, f.qty, f.price) for f in r0.fills] == [("a#1", D(100), p_a1)]
    assert big.status is OrderStatus.PARTIALLY_FILLED and small.status is OrderStatus.ACCEPTED
    assert [e.order_id for e in r0.events] == ["a"] and r0.orders == [big]
    r1 = b.on_bar("BTC", bar(1, 100.0, 101.0, 99.0, 100.5))  # same range: same variance
    p_a2 = taker_price("100", Side.BUY, "50", 1000.0, var)
    p_b1 = taker_price("100", Side.BUY, "30", 1000.0, var)
    assert (p_a2, p_b1) == (D("100.28"), D("100.22"))
    assert [(f.fill_id, f.qty, f.price) for f in r1.fills] == [("a#2", D(50), p_a2), ("b#1", D(30), p_b1)]
    assert [(e.order_id, e.status, e.filled_qty) for e in r1.events] == [
        ("a", OrderStatus.FILLED, D(150)),
        ("b", OrderStatus.FILLED, D(30)),
    ]
    assert [e.seq for e in big.events] == [1, 2, 3, 4]
    assert b.working() == []


def test_capacity_is_floored_to_the_size_increment() -> None:
    inst = Instrument("BTC", D("0.01"), D("0.01"))
    b = new_broker(CFG, inst)
    b.submit(intent("o", qty="500"), T0)
    r = b.on_bar("BTC", bar(0, 100.0, 101.0, 99.0, 100.5, v=1000.77))
    assert [f.qty for f in r.fills] == [D("100.07")]  # floor(100.077, 0.01)


# -- limit orders ------------------------------------------------------------------------------


def test_marketable_limit_trades_as_taker_capped_at_the_limit() -> None:
    b = new_broker()
    loose = b.submit(intent("loose", qty="10", kind=OrderType.LIMIT, limit="100.5"), T0)
    r = b.on_bar("BTC", bar(0, 100.0, 101.0, 99.0, 100.5))
    assert [(f.price, f.liquidity) for f in r.fills] == [(D("100.13"), Liquidity.TAKER)]
    assert loose.status is OrderStatus.FILLED
    b2 = new_broker()
    b2.submit(intent("tight", qty="10", kind=OrderType.LIMIT, limit="100.05"), T0)
    r2 = b2.on_bar("BTC", bar(0, 100.0, 101.0, 99.0, 100.5))
    assert [(f.price, f.liquidity, f.fee) for f in r2.fills] == [(D("100.05"), Liquidity.TAKER, D("0.20010000"))]
    b3 = new_broker()
    b3.submit(intent("sell", Side.SELL, qty="10", kind=OrderType.LIMIT, limit="99.95"), T0)
    r3 = b3.on_bar("BTC", bar(0, 100.0, 101.0, 99.0, 100.5))
    assert [(f.price, f.liquidity) for f in r3.fills] == [(D("99.95"), Liquidity.TAKER)]


def test_resting_limit_fills_at_the_limit_as_maker_only_when_traded_through() -> None:
    b = new_broker()
    touch = b.submit(intent("touch", qty="10", kind=OrderType.LIMIT, limit="99"), T0)
    through = b.submit(intent("through", qty="10", kind=OrderType.LIMIT, limit="99.5"), T0)
    sell = b.submit(intent("sell", Side.SELL, qty="10", kind=OrderType.LIMIT, limit="100.75"), T0)
    r = b.on_bar("BTC", bar(0, 100.0, 101.0, 99.0, 100.5))
    # maker fee: 1 bp of notional
    assert [(f.order_id, f.price, f.liquidity, f.fee) for f in r.fills] == [
        ("through", D("99.5"), Liquidity.MAKER, D("0.09950000")),
        ("sell", D("100.75"), Liquidity.MAKER, D("0.10075000")),
    ]
    assert touch.status is OrderStatus.ACCEPTED and touch.fills == []
    assert through.status is OrderStatus.FILLED and sell.status is OrderStatus.FILLED


# -- stop orders -------------------------------------------------------------------------------


def test_buy_stop_triggers_and_fills_from_the_stop_plus_costs() -> None:
    b = new_broker()
    order = b.submit(intent("o", qty="10", kind=OrderType.STOP, stop="100.5"), T0)
    r = b.on_bar("BTC", bar(0, 100.0, 101.0, 99.0, 100.5))
    want = taker_price("100.5", Side.BUY, "10", 1000.0, parkinson(101.0, 99.0))
    assert want == D("100.63")
    assert [e.kind for e in r.events] == [EventKind.TRIGGERED, EventKind.FILL]
    assert r.events[0].status is OrderStatus.ACCEPTED and r.events[0].seq == 3
    assert [(f.price, f.liquidity) for f in r.fills] == [(want, Liquidity.TAKER)]
    assert order.status is OrderStatus.FILLED and order.triggered


def test_buy_stop_on_a_gap_fills_from_the_open_and_stays_in_the_bar() -> None:
    b = new_broker()
    b.submit(intent("o", qty="10", kind=OrderType.STOP, stop="100.5"), T0)
    r = b.on_bar("BTC", bar(0, 102.0, 102.1, 101.5, 102.0))
    unclamped = taker_price("102", Side.BUY, "10", 1000.0, parkinson(102.1, 101.5))
    assert unclamped == D("102.05")  # 102.0412... rounded up, below the high
    assert [f.price for f in r.fills] == [unclamped]
    b2 = new_broker()
    b2.submit(intent("o", qty="10", kind=OrderType.STOP, stop="100.5"), T0)
    r2 = b2.on_bar("BTC", bar(0, 100.0, 100.52, 99.0, 100.5))  # 100.63 would be above the high
    assert [f.price for f in r2.fills] == [D("100.52")]


def test_stop_not_triggered_below_the_stop() -> None:
    b = new_broker()
    order = b.submit(intent("o", qty="10", kind=OrderType.STOP, stop="101.01"), T0)
    sell = b.submit(intent("s", Side.SELL, qty="10", kind=OrderType.STOP, stop="98.99"), T0)
    r = b.on_bar("BTC", bar(0, 100.0, 101.0, 99.0, 100.5))
    assert r.events == [] and r.fills == []
    assert not order.triggered and not sell.triggered and order.status is OrderStatus.ACCEPTED


def test_sell_stop_triggers_at_the_low_and_fills_from_min_stop_open() -> None:
    b = new_broker()
    b.submit(intent("o", Side.SELL, qty="10", kind=OrderType.STOP, stop="99.5"), T0)
    r = b.on_bar("BTC", bar(0, 100.0, 101.0, 99.0, 100.5))
    want = taker_price("99.5", Side.SELL, "10", 1000.0, parkinson(101.0, 99.0))
    assert want == D("99.37")
    assert [f.price for f in r.fills] == [want]


# -- time in force -----------------------------------------------------------------------------


def test_ioc_remainder_is_cancelled_after_its_first_eligible_bar() -> None:
    b = new_broker()
    part = b.submit(intent("part", qty="150", tif=TimeInForce.IOC), T0)
    rest = b.submit(intent("rest", qty="10", kind=OrderType.LIMIT, limit="95", tif=TimeInForce.IOC), T0)
    late_ts = T0 + BAR_NS  # arrives after bar 0: bar 0 is not its first eligible bar
    late = b.submit(intent("late", qty="10", tif=TimeInForce.IOC, ts=late_ts), late_ts)
    r = b.on_bar("BTC", bar(0, 100.0, 101.0, 99.0, 100.5))
    assert [(e.order_id, e.kind, e.status) for e in r.events] == [
        ("part", EventKind.FILL, OrderStatus.PARTIALLY_FILLED),
        ("part", EventKind.CANCELLED, OrderStatus.CANCELLED),
        ("rest", EventKind.CANCELLED, OrderStatus.CANCELLED),
    ]
    assert r.events[1].reason == "IOC: not filled on its first bar"
    assert part.filled_qty == D(100) and rest.filled_qty == D(0)
    assert late.status is OrderStatus.ACCEPTED and b.working() == [late]


def test_day_order_expires_at_the_first_bar_on_or_after_the_next_utc_midnight() -> None:
    b = new_broker()
    day = b.submit(intent("day", qty="10", kind=OrderType.LIMIT, limit="90", tif=TimeInForce.DAY), T0)
    gtc = b.submit(intent("gtc", qty="10", kind=OrderType.LIMIT, limit="90"), T0)
    last_of_day = (DAY + 1) * DAY_NS - BAR_NS
    assert b.on_bar("BTC", Bar(last_of_day, 100.0, 101.0, 99.0, 100.5, 1000.0)).events == []
    assert day.status is OrderStatus.ACCEPTED
    # The first bar after midnight would fill it (low 89 < 90), but it expires first.
    r = b.on_bar("BTC", Bar((DAY + 1) * DAY_NS + 5 * BAR_NS, 95.0, 96.0, 89.0, 95.0, 1000.0))
    assert [(e.order_id, e.kind, e.status, e.reason) for e in r.events] == [
        ("day", EventKind.EXPIRED, OrderStatus.EXPIRED, "end of day"),
        ("gtc", EventKind.FILL, OrderStatus.FILLED, ""),
    ]
    assert [(f.order_id, f.price, f.liquidity) for f in r.fills] == [("gtc", D(90), Liquidity.MAKER)]
    assert day.fills == [] and gtc.status is OrderStatus.FILLED


def test_gtc_keeps_working_across_days() -> None:
    b = new_broker()
    gtc = b.submit(intent("gtc", qty="10", kind=OrderType.LIMIT, limit="90"), T0)
    for d in range(1, 4):
        assert b.on_bar("BTC", Bar((DAY + d) * DAY_NS, 100.0, 101.0, 99.0, 100.5, 1000.0)).events == []
    assert gtc.status is OrderStatus.ACCEPTED and b.working() == [gtc]


# -- fees and bar bookkeeping ------------------------------------------------------------------


def test_fee_schedule_bps_per_unit_and_minimum_exact() -> None:
    fs = FeeSchedule(taker_bps=D("2.5"), maker_bps=D(1), per_unit=D("0.001"), minimum=D(0))
    # 100.13 * 0.123 * 2.5e-4 + 0.123 * 0.001 = 0.0032019975 -> 0.00320200
    assert fs.fee(D("100.13"), D("0.123"), Liquidity.TAKER) == D("0.00320200")
    # 100.13 * 0.123 * 1e-4 + 0.000123 = 0.001354599 -> 0.00135460
    assert fs.fee(D("100.13"), D("0.123"), Liquidity.MAKER) == D("0.00135460")
    with_min = FeeSchedule(taker_bps=D("2.5"), maker_bps=D(1), per_unit=D("0.001"), minimum=D("0.05"))
    assert with_min.fee(D("100.13"), D("0.123"), Liquidity.TAKER) == D("0.05")
    # above the minimum: 100 * 300 * 2.5e-4 + 0.3 = 7.8
    assert with_min.fee(D(100), D(300), Liquidity.TAKER) == D("7.8")
    rebate = FeeSchedule(taker_bps=D(2), maker_bps=D("-0.5"), minimum=D("-1000"))
    assert rebate.fee(D(100), D(10), Liquidity.MAKER) == D("-0.05")


def test_fill_fee_uses_the_schedule_with_per_unit_and_minimum() -> None:
    cfg = PaperBrokerConfig(
        fees=FeeSchedule(taker_bps=D(2), maker_bps=D(1), per_unit=D("0.01"), minimum=D("0.5")), latency_ns=LAT
    )
    b = new_broker(cfg)
    b.submit(intent("small", qty="1"), T0)
    b.submit(intent("maker", qty="10", kind=OrderType.LIMIT, limit="99.5"), T0)
    r = b.on_bar("BTC", bar(0, 100.0, 101.0, 99.0, 100.5))
    # small: 100.05 * 1 * 2e-4 + 0.01 = 0.03001 -> minimum 0.5; maker: 99.5 * 10 * 1e-4 + 0.1 = 0.1995 -> 0.5
    assert [(f.order_id, f.fee) for f in r.fills] == [("small", D("0.5")), ("maker", D("0.5"))]
    b2 = new_broker(cfg)
    b2.submit(intent("big", qty="100"), T0)
    f = b2.on_bar("BTC", bar(0, 100.0, 101.0, 99.0, 100.5)).fills[0]
    # 100.39 * 100 * 2e-4 + 100 * 0.01 = 2.0078 + 1 = 3.0078
    assert (f.price, f.fee) == (D("100.39"), D("3.00780000"))


def test_bars_already_seen_are_ignored() -> None:
    b = new_broker()
    order = b.submit(intent("o", qty="150"), T0)
    first = b.on_bar("BTC", bar(1, 100.0, 101.0, 99.0, 100.5))
    assert [f.fill_id for f in first.fills] == ["o#1"]
    variance = b.variance["BTC"]
    again = b.on_bar("BTC", bar(1, 100.0, 101.0, 99.0, 100.5))
    older = b.on_bar("BTC", bar(0, 100.0, 101.0, 99.0, 100.5))
    assert (again.events, again.fills, again.orders) == ([], [], [])
    assert (older.events, older.fills, older.orders) == ([], [], [])
    assert b.seen("BTC", T0 + BAR_NS) and b.seen("BTC", T0) and not b.seen("BTC", T0 + 2 * BAR_NS)
    assert order.filled_qty == D(100) and b.variance["BTC"] == variance and b.last_bar["BTC"] == T0 + BAR_NS
    assert b.on_bar("ETH", bar(2, 1.0, 1.0, 1.0, 1.0)).events == []  # unknown symbol


# -- property: never a price that did not trade -------------------------------------------------


@st.composite
def bars_st(draw: st.DrawFn) -> list[Bar]:
    out: list[Bar] = []
    for k in range(draw(st.integers(1, 4))):
        low = draw(st.integers(1, 20_000))  # cents
        high = low + draw(st.integers(0, 500))
        o = draw(st.integers(low, high))
        c = draw(st.integers(low, high))
        v = draw(st.floats(0.5, 5_000.0, allow_nan=False))
        out.append(Bar(T0 + k * BAR_NS, o / 100, high / 100, low / 100, c / 100, v))
    return out


@st.composite
def orders_st(draw: st.DrawFn, n: int) -> list[OrderIntent]:
    out: list[OrderIntent] = []
    for j in range(n):
        kind = draw(st.sampled_from(list(OrderType)))
        price = D(draw(st.integers(1, 20_500))) / 100
        out.append(
            intent(
                f"o{j}",
                draw(st.sampled_from(list(Side))),
                str(D(draw(st.integers(1, 500_000))) / 1000),
                kind=kind,
                tif=draw(st.sampled_from(list(TimeInForce))),
                limit=str(price) if kind is OrderType.LIMIT else None,
                stop=str(price) if kind is OrderType.STOP else None,
                ts=T0 + draw(st.integers(-60 * 10**9, 4 * BAR_NS)),
            )
        )
    return out


@settings(max_examples=300, deadline=None)
@given(
    bars=bars_st(),
    orders=st.integers(1, 5).flatmap(orders_st),
    participation=st.floats(0.01, 1.0),
    coef=st.floats(0.0, 20.0),
    latency=st.integers(0, 2 * BAR_NS),
)
def test_property_every_fill_traded_inside_its_bar_and_after_arrival(
    bars: list[Bar], orders: list[OrderIntent], participation: float, coef: float, latency: int
) -> None:
    cfg = PaperBrokerConfig(max_participation=participation, impact_coef=coef, latency_ns=latency)
    b = new_broker(cfg)
    for i in orders:
        b.submit(i, i.ts_event)
    by_start = {x.start: x for x in bars}
    by_id = {i.order_id: i for i in orders}
    fills: list[Fill] = []
    for x in bars:
        fills += b.on_bar("BTC", x).fills
    edges = {f.fill_id for f in fills if f.price in (D(repr(by_start[f.ts].high)), D(repr(by_start[f.ts].low)))}
    event(f"fills: {'some' if fills else 'none'}; at the bar's high/low: {'some' if edges else 'none'}")
    for f in fills:
        x, i = by_start[f.ts], by_id[f.order_id]
        assert D(repr(x.low)) <= f.price <= D(repr(x.high)), (f, x)
        assert i.ts_event + latency < x.start + BAR_NS  # no look-ahead: it had arrived before the bar closed
        if i.limit_price is not None:
            assert f.price <= i.limit_price if i.side is Side.BUY else f.price >= i.limit_price
    for i in orders:
        got = sum((f.qty for f in fills if f.order_id == i.order_id), D(0))
        assert got <= i.qty
