"""RiskRules: the trading state machine, every limit's denial, and properties of what passes."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from decimal import Decimal as D

import numpy as np
from hypothesis import event, given, settings
from hypothesis import strategies as st

from raytrade.domain.bars import BAR_NS, Bar
from raytrade.domain.orders import OrderIntent, OrderType, Side
from raytrade.domain.paper_broker import DAY_NS
from raytrade.domain.portfolio_risk import correlated_exposure, historical_var
from raytrade.domain.risk import RiskEvent, RiskLimits, RiskRules, TradingState

BIG = D(10**9)
DAY = 19_700
T0 = DAY * DAY_NS + 3_600 * 10**9
SYMBOLS = ("AAA", "BBB", "CCC")


def limits(**kw: object) -> RiskLimits:
    base: dict[str, object] = {
        "max_order_notional": BIG,
        "max_position_notional": BIG,
        "max_gross_exposure": BIG,
    }
    base.update(kw)
    return RiskLimits(**base)  # type: ignore[arg-type]


def intent(symbol: str, side: Side, qty: str | D, price: str | D = "100", oid: str = "x") -> OrderIntent:
    return OrderIntent(oid, "s", symbol, side, D(qty), D(price), 0, 0, 0.5)


def bar_at(start: int, close: float) -> Bar:
    return Bar(start, close, close, close, close, 1000.0)


def account(rules: RiskRules, seq: int, equity: str, ts: int = 0) -> list[RiskEvent]:
    return rules.confirm({}, {}, seq, cash=D(equity), equity=D(equity), ts=ts)


def rule(ts: int, to: TradingState, reason: str) -> RiskEvent:
    return RiskEvent(ts, "rule", to, reason)


def state(rules: RiskRules) -> TradingState:
    return rules.state


# -- the state machine -------------------------------------------------------------------------


def test_drawdown_escalates_active_reducing_halted_and_never_back_by_itself() -> None:
    rules = RiskRules(limits(drawdown_reduce=D("0.05"), drawdown_halt=D("0.10")))
    assert account(rules, 1, "100000", ts=1) == []
    assert account(rules, 2, "95001", ts=2) == []  # 4.999%
    assert state(rules) is TradingState.ACTIVE
    assert account(rules, 3, "95000", ts=3) == [
        RiskEvent(
            3, "rule", TradingState.REDUCING, "drawdown from peak 5.00% >= 5.00% (equity 95000.00 from 100000.00)"
        )
    ]
    assert state(rules) is TradingState.REDUCING
    assert account(rules, 4, "99999", ts=4) == []  # recovered, but rules do not de-escalate
    assert state(rules) is TradingState.REDUCING
    assert account(rules, 5, "89000", ts=5) == [
        RiskEvent(
            5, "rule", TradingState.HALTED, "drawdown from peak 11.00% >= 10.00% (equity 89000.00 from 100000.00)"
        )
    ]
    assert state(rules) is TradingState.HALTED
    assert rules.halt_reason == "drawdown from peak 11.00% >= 10.00% (equity 89000.00 from 100000.00)"
    assert account(rules, 6, "99000", ts=6) == [] and account(rules, 7, "94000", ts=7) == []
    assert state(rules) is TradingState.HALTED
    assert rules.set_state(TradingState.ACTIVE, "rule says so", 8, kind="rule") is None
    assert rules.set_state(TradingState.REDUCING, "rule says so", 8, kind="rule") is None
    assert state(rules) is TradingState.HALTED
    denied = rules.check(intent("AAA", Side.BUY, "1"))
    assert not denied.approved and denied.reason == f"halted: {rules.halt_reason}"
    assert [e.state for e in rules.events] == [TradingState.REDUCING, TradingState.HALTED]
    # Admin resume: ACTIVE, with the peak reset to the current equity (94000).
    assert rules.resume(ts=9) == RiskEvent(9, "admin", TradingState.ACTIVE, "resumed")
    assert state(rules) is TradingState.ACTIVE and rules.halt_reason == ""
    assert rules.peak_equity == D(94000) and rules.day_open_equity == D(94000)
    assert account(rules, 8, "94000", ts=10) == []  # 6% below the old peak: no longer counts
    assert account(rules, 9, "89301", ts=11) == []  # 4.999% below 94000
    assert account(rules, 10, "89300", ts=12) == [
        RiskEvent(
            12, "rule", TradingState.REDUCING, "drawdown from peak 5.00% >= 5.00% (equity 89300.00 from 94000.00)"
        )
    ]
    assert rules.resume(ts=13) is not None and rules.resume(ts=14) is None  # already ACTIVE


def test_drawdown_straight_to_halt_and_stale_reads_are_ignored() -> None:
    rules = RiskRules(limits(drawdown_reduce=D("0.05"), drawdown_halt=D("0.10")))
    account(rules, 5, "100000")
    assert account(rules, 4, "50000") == []  # an older ledger read: ignored
    assert rules.equity == D(100000) and state(rules) is TradingState.ACTIVE
    events = account(rules, 6, "90000", ts=7)
    assert [(e.state, e.kind) for e in events] == [(TradingState.HALTED, "rule")]
    assert events[0].reason == "drawdown from peak 10.00% >= 10.00% (equity 90000.00 from 100000.00)"


def test_intraday_breaker_uses_the_utc_day_opening_equity_set_by_the_bars() -> None:
    rules = RiskRules(limits(intraday_reduce=D("0.02"), intraday_halt=D("0.04")))
    account(rules, 1, "100000")
    rules.on_bar("AAA", bar_at(T0, 100.0), D(100))  # day DAY opens at 100000
    assert (rules.day, rules.day_open_equity) == (DAY, D(100000))
    assert account(rules, 2, "110000") == []
    assert account(rules, 3, "107800") == []  # a gain on the day; 2% below the peak does not matter
    rules.on_bar("AAA", bar_at((DAY + 1) * DAY_NS - BAR_NS, 100.0), D(100))  # still day DAY
    assert rules.day_open_equity == D(100000)
    rules.on_bar("BBB", bar_at((DAY + 1) * DAY_NS + 5 * BAR_NS, 100.0), D(100))  # day DAY+1 opens at 107800
    assert (rules.day, rules.day_open_equity) == (DAY + 1, D(107800))
    rules.on_bar("AAA", bar_at((DAY + 1) * DAY_NS - 2 * BAR_NS, 100.0), D(100))  # a late bar of the old day
    assert (rules.day, rules.day_open_equity) == (DAY + 1, D(107800))
    assert account(rules, 4, "105645", ts=4) == []  # 1.9991%
    assert account(rules, 5, "105644", ts=5) == [
        RiskEvent(
            5, "rule", TradingState.REDUCING, "intraday drawdown 2.00% >= 2.00% (equity 105644.00 from 107800.00)"
        )
    ]
    # A new day resets the base but never de-escalates.
    rules.on_bar("AAA", bar_at((DAY + 2) * DAY_NS, 100.0), D(100))
    assert rules.day_open_equity == D(105644) and state(rules) is TradingState.REDUCING
    assert account(rules, 6, "101418.24", ts=6) == [
        rule(6, TradingState.HALTED, "intraday drawdown 4.00% >= 4.00% (equity 101418.24 from 105644.00)")
    ]


# -- REDUCING ---------------------------------------------------------------------------------


def test_reducing_lets_only_risk_reducing_orders_through() -> None:
    rules = RiskRules(limits())
    rules.confirm({"AAA": D(10), "BBB": D(-5)}, {}, seq=1)
    rules.set_state(TradingState.REDUCING, "manual", 1)
    assert rules.check(intent("AAA", Side.SELL, "4")).approved  # 10 -> 6
    up = rules.check(intent("AAA", Side.BUY, "1"))
    assert not up.approved
    assert up.reason == "reducing: only risk-reducing orders pass (manual); AAA 6 -> 7"
    flip = rules.check(intent("AAA", Side.SELL, "7"))
    assert not flip.approved and flip.reason == "reducing: only risk-reducing orders pass (manual); AAA 6 -> -1"
    fresh = rules.check(intent("CCC", Side.BUY, "1"))
    assert not fresh.approved and fresh.reason == "reducing: only risk-reducing orders pass (manual); CCC 0 -> 1"
    assert rules.check(intent("BBB", Side.BUY, "5")).approved  # short -5 -> 0
    assert rules.check(intent("AAA", Side.SELL, "6")).approved  # 6 -> 0
    assert rules.positions == {"AAA": D(0), "BBB": D(0)}
    assert not rules.check(intent("AAA", Side.SELL, "1")).approved  # 0 -> -1 increases


# -- each limit --------------------------------------------------------------------------------


def test_order_notional_position_notional_and_gross_limits() -> None:
    rules = RiskRules(limits(max_order_notional=D(5000), max_position_notional=D(8000), max_gross_exposure=D(12000)))
    big = rules.check(intent("AAA", Side.BUY, "51"))
    assert big.reason == "order notional 5100 > max 5000"
    rules.confirm({"AAA": D(40), "BBB": D(-50)}, {}, seq=1)
    rules.marks.update({"AAA": D(100), "BBB": D(100)})
    pos = rules.check(intent("AAA", Side.BUY, "41"))
    assert pos.reason == "position notional 8100 > max 8000"
    gross = rules.check(intent("AAA", Side.BUY, "31"))  # 7100 + 5000 > 12000
    assert gross.reason == "gross exposure 12100 > max 12000"
    assert rules.check(intent("AAA", Side.BUY, "30")).approved  # exactly 12000


def test_max_order_qty_and_max_position_qty() -> None:
    rules = RiskRules(limits(max_order_qty={"AAA": D(5)}, max_position_qty={"AAA": D(8)}))
    assert rules.check(intent("AAA", Side.BUY, "6")).reason == "order qty 6 > max 5 for AAA"
    assert rules.check(intent("BBB", Side.BUY, "6")).approved  # no limit for BBB
    rules.confirm({"AAA": D(5)}, {}, seq=1)
    assert rules.check(intent("AAA", Side.BUY, "4")).reason == "position qty 9 > max 8 for AAA"
    assert rules.check(intent("AAA", Side.SELL, "5")).approved  # 5 -> 0
    assert rules.check(intent("AAA", Side.SELL, "5")).approved  # 0 -> -5
    assert rules.check(intent("AAA", Side.SELL, "4")).reason == "position qty 9 > max 8 for AAA"


def test_max_net_exposure() -> None:
    rules = RiskRules(limits(max_net_exposure=D(50000)))
    rules.confirm({"AAA": D(300), "BBB": D(-100)}, {}, seq=1)
    rules.marks.update({"AAA": D(100), "BBB": D(100)})
    net = rules.check(intent("AAA", Side.BUY, "301"))
    assert net.reason == "net exposure 50100 beyond +-50000"
    rules.confirm({"AAA": D(-300), "BBB": D(100)}, {}, seq=2)
    short = rules.check(intent("AAA", Side.SELL, "301"))
    assert short.reason == "net exposure -50100 beyond +-50000"
    assert rules.check(intent("AAA", Side.SELL, "300")).approved


def test_price_band_against_the_last_mark() -> None:
    rules = RiskRules(limits(price_band=D("0.05")))
    assert rules.check(intent("AAA", Side.BUY, "1", "1000", oid="a")).approved  # no mark yet
    rules.release([intent("AAA", Side.BUY, "1", "1000", oid="a")])
    rules.on_bar("AAA", bar_at(T0, 100.0), D(100))
    high = rules.check(intent("AAA", Side.BUY, "1", "105.01"))
    assert high.reason == "price 105.01 is 5.01% from the last trade 100 (band 5.00%)"
    low = rules.check(intent("AAA", Side.SELL, "1", "94.99"))
    assert low.reason == "price 94.99 is 5.01% from the last trade 100 (band 5.00%)"
    assert rules.check(intent("AAA", Side.BUY, "1", "105")).approved
    assert rules.check(intent("AAA", Side.SELL, "1", "95")).approved
    # A limit order is judged on its limit price, not on its reference price.
    lim = OrderIntent("l", "s", "AAA", Side.BUY, D(1), D(100), 0, 0, 0.5, OrderType.LIMIT, limit_price=D("106"))
    assert rules.check(lim).reason == "price 106 is 6.00% from the last trade 100 (band 5.00%)"


def test_min_cash_counts_cash_reserved_by_approved_buys() -> None:
    rules = RiskRules(limits(min_cash=D(1000)))
    rules.confirm({}, {}, seq=1, cash=D(10000), equity=D(10000))
    first = intent("AAA", Side.BUY, "90", oid="first")
    assert rules.check(first).approved  # leaves exactly 1000
    assert rules.reserved_cash == D(9000)
    denied = rules.check(intent("AAA", Side.BUY, "1"))
    assert denied.reason == "cash after order 900 < min 1000"
    assert rules.check(intent("BBB", Side.SELL, "50")).approved  # sells need no cash
    rules.release([first])
    assert rules.reserved_cash == D(0)
    assert rules.check(intent("AAA", Side.BUY, "1")).approved


def test_order_rate_limits_over_a_one_second_window() -> None:
    rules = RiskRules(limits(max_orders_per_s=3))
    s = 10**9
    for now in (0, s // 10, 2 * s // 10):
        assert rules.check(intent("AAA", Side.BUY, "1"), now_ns=now).approved
    assert rules.check(intent("BBB", Side.BUY, "1"), now_ns=s // 2).reason == (
        "rate: 3 orders in the last second >= max 3"
    )
    assert rules.check(intent("BBB", Side.BUY, "1"), now_ns=s).approved  # the order at 0 left the window
    assert not rules.check(intent("BBB", Side.BUY, "1"), now_ns=s + s // 20).approved  # 0.1, 0.2, 1.0 s
    assert rules.check(intent("BBB", Side.BUY, "1"), now_ns=s + s // 10).approved  # 0.1 s left


def test_per_symbol_order_rate_limit() -> None:
    rules = RiskRules(limits(max_orders_per_s_per_symbol=2))
    assert rules.check(intent("AAA", Side.BUY, "1"), now_ns=0).approved
    assert rules.check(intent("AAA", Side.BUY, "1"), now_ns=1).approved
    assert rules.check(intent("AAA", Side.BUY, "1"), now_ns=2).reason == (
        "rate: 2 AAA orders in the last second >= max 2"
    )
    assert rules.check(intent("BBB", Side.BUY, "1"), now_ns=3).approved
    assert rules.check(intent("AAA", Side.SELL, "1"), now_ns=10**9).approved  # the order at 0 left the window
    assert not rules.check(intent("AAA", Side.SELL, "1"), now_ns=10**9).approved  # 1 ns and 1 s are in it
    assert rules.check(intent("AAA", Side.SELL, "1"), now_ns=10**9 + 1).approved


def closes(seed: int, n: int) -> list[float]:
    rng = np.random.default_rng(seed)
    return [float(x) for x in 100.0 * np.cumprod(1.0 + rng.normal(0.0, 0.01, n))]


def test_var_matches_historical_var_and_denies_above_the_limit() -> None:
    lim = dict(var_method="historical", var_quantile=0.95, var_horizon_bars=1, var_window=50)
    series = closes(7, 41)
    rules = RiskRules(limits(max_var=D(1), **lim))
    for k, c in enumerate(series[:10]):
        rules.on_bar("AAA", bar_at(T0 + k * BAR_NS, c), D(repr(round(c, 2))))
    assert rules.var({"AAA": D(10000)}) is None  # 9 returns < 20 needed for 95%
    assert rules.check(intent("AAA", Side.BUY, "100", rules.marks["AAA"], oid="early")).approved
    rules.release([intent("AAA", Side.BUY, "100", rules.marks["AAA"], oid="early")])
    for k, c in enumerate(series[10:], start=10):
        rules.on_bar("AAA", bar_at(T0 + k * BAR_NS, c), D(repr(round(c, 2))))
    arr = np.array(series)
    returns = (arr[1:] / arr[:-1] - 1.0).reshape(-1, 1)
    want = historical_var(returns, np.array([10000.0]), 0.95, 1)
    got = rules.var({"AAA": D(10000)})
    assert got == (want.var, 40)
    # lower empirical 5% quantile of 40 scenarios: the 2nd worst, floor(0.05 * 39) = 1
    assert want.var == -sorted(returns[:, 0])[1] * 10000.0
    mark = rules.marks["AAA"]
    var_100 = rules.var({"AAA": 100 * mark})
    assert var_100 is not None
    limit = D(repr(var_100[0])).quantize(D("0.01")) + D("0.01")
    rules = RiskRules(limits(max_var=limit, **lim))
    for k, c in enumerate(series):
        rules.on_bar("AAA", bar_at(T0 + k * BAR_NS, c), D(repr(round(c, 2))))
    assert rules.check(intent("AAA", Side.BUY, "100", mark, oid="ok")).approved
    rules.release([intent("AAA", Side.BUY, "100", mark, oid="ok")])
    v = rules.var({"AAA": 101 * mark})
    assert v is not None and v[0] > float(limit)
    denied = rules.check(intent("AAA", Side.BUY, "101", mark))
    assert denied.reason == f"VaR (historical 95% 1-bar, 40 obs) {v[0]:.2f} > max {limit}"


def test_correlated_exposure_limit() -> None:
    base = closes(3, 12)
    anti = [100.0]
    for prev, cur in itertools.pairwise(base):
        anti.append(anti[-1] * (1.0 - (cur / prev - 1.0)))
    for other, approved in ((base, False), (anti, True)):
        rules = RiskRules(limits(max_correlated_exposure=D(15000)))
        for k, (a, b) in enumerate(zip(base, other, strict=True)):
            rules.on_bar("AAA", bar_at(T0 + k * BAR_NS, a), D(100))
            rules.on_bar("BBB", bar_at(T0 + k * BAR_NS, b), D(100))
        rules.confirm({"AAA": D(100)}, {}, seq=1)  # 10000 at the mark 100
        d = rules.check(intent("BBB", Side.BUY, "60", "100"))  # +6000
        a_arr, b_arr = np.array(base), np.array(other)
        r = np.column_stack([a_arr[1:] / a_arr[:-1] - 1.0, b_arr[1:] / b_arr[:-1] - 1.0])
        ce = correlated_exposure(r, np.array([10000.0, 6000.0]))
        if approved:
            assert d.approved and abs(ce - 4000.0) < 1e-6
        else:
            assert abs(ce - 16000.0) < 1e-6
            assert d.reason == f"correlated exposure {ce:.2f} > max 15000"


# -- properties --------------------------------------------------------------------------------

PROP_LIMITS = RiskLimits(
    max_order_notional=D(60000),
    max_position_notional=D(100000),
    max_gross_exposure=D(200000),
    max_net_exposure=D(120000),
    price_band=D("0.1"),
)


@st.composite
def start_st(draw: st.DrawFn) -> tuple[dict[str, D], dict[str, D]]:
    positions = {s: D(draw(st.integers(-1500, 1500))) for s in SYMBOLS}
    marks = {s: D(draw(st.integers(5_000, 15_000))) / 100 for s in SYMBOLS}
    return positions, marks


Step = tuple[str, Side, int, float]
steps_st = st.lists(
    st.tuples(st.sampled_from(SYMBOLS), st.sampled_from(list(Side)), st.integers(1, 1000), st.floats(-0.09, 0.09)),
    min_size=1,
    max_size=25,
)


def exposure(positions: Mapping[str, D], marks: Mapping[str, D]) -> tuple[D, D]:
    """(gross, net)."""
    values = [positions[s] * marks[s] for s in SYMBOLS]
    return sum((abs(v) for v in values), D(0)), sum(values, D(0))


def run_stream(state: TradingState, start: tuple[dict[str, D], dict[str, D]], steps: list[Step]) -> None:
    positions, marks = dict(start[0]), dict(start[1])
    rules = RiskRules(PROP_LIMITS)
    rules.confirm(positions, {}, seq=0, cash=D(10**7), equity=D(10**7))
    rules.marks.update(marks)
    if state is not TradingState.ACTIVE:
        rules.set_state(state, "test", 0)
    approved = increased = 0
    for n, (s, side, qty, move) in enumerate(steps, start=1):
        price = (marks[s] * D(repr(1 + move))).quantize(D("0.01"))
        order = intent(s, side, str(qty), price, oid=f"o{n}")
        decision = rules.check(order)
        if state is TradingState.HALTED:
            assert not decision.approved and decision.reason == "halted: test"
            continue
        if not decision.approved:
            assert decision.reason
            continue
        before = positions[s]
        after = before + order.signed_qty
        at_check = {**marks, s: price}
        new_positions = {**positions, s: after}
        gross0, _ = exposure(positions, at_check)
        gross1, net1 = exposure(new_positions, at_check)
        reduced = abs(after) < abs(before) and (after == 0 or (after > 0) == (before > 0))
        assert order.qty * price <= PROP_LIMITS.max_order_notional
        if state is TradingState.REDUCING:
            assert reduced, (before, after)
            assert gross1 < gross0
        elif reduced:
            assert gross1 < gross0
        else:
            assert abs(after) * price <= PROP_LIMITS.max_position_notional
            assert gross1 <= PROP_LIMITS.max_gross_exposure
            assert PROP_LIMITS.max_net_exposure is not None and abs(net1) <= PROP_LIMITS.max_net_exposure
        # Execution filled it at its price: release the reservation and confirm the new books.
        rules.release([order])
        positions[s] = after
        rules.confirm({s: after}, {s: D(0)}, seq=n)
        marks[s] = price
        rules.marks[s] = price
        assert rules.positions[s] == after and rules.reserved == {}
        approved += 1
        increased += not reduced
    event(f"approved: {'none' if not approved else 'some'}, increasing: {'none' if not increased else 'some'}")


@settings(max_examples=300, deadline=None)
@given(start=start_st(), steps=steps_st)
def test_property_active_approvals_stay_within_limits(
    start: tuple[dict[str, D], dict[str, D]], steps: list[Step]
) -> None:
    run_stream(TradingState.ACTIVE, start, steps)


@settings(max_examples=300, deadline=None)
@given(start=start_st(), steps=steps_st)
def test_property_reducing_never_increases_a_position_or_gross(
    start: tuple[dict[str, D], dict[str, D]], steps: list[Step]
) -> None:
    run_stream(TradingState.REDUCING, start, steps)


@settings(max_examples=300, deadline=None)
@given(start=start_st(), steps=steps_st)
def test_property_halted_approves_nothing(start: tuple[dict[str, D], dict[str, D]], steps: list[Step]) -> None:
    run_stream(TradingState.HALTED, start, steps)
