"""ExecutionCore on both ledger backends: SQLite and a real PostgreSQL give the same answers.

Every test runs twice (``ledger_url`` is parametrized). Prices and fees are checked against
values computed here from the paper broker's documented formula (default PaperBrokerConfig:
half spread 0.5 bps, impact coefficient 1, participation 10%, taker 2 bps, maker 0).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from decimal import ROUND_CEILING, ROUND_FLOOR
from decimal import Decimal as D
from pathlib import Path

import pytest

from raytrade.actors.execution import ExecutionCore, NotTheGateError
from raytrade.adapters.ledger import Ledger, LedgerWrite, is_postgres, sqlite_file
from raytrade.cluster.config import ConfigError
from raytrade.cluster.run import start_fresh_ledger
from raytrade.domain.bars import BAR_NS, Bar
from raytrade.domain.instruments import Instrument
from raytrade.domain.order_lifecycle import EventKind, InvalidTransitionError, OrderEvent
from raytrade.domain.orders import (
    ExecutionReply,
    Fill,
    Liquidity,
    OrderIntent,
    OrderStatus,
    OrderType,
    RiskDecision,
    Side,
    TimeInForce,
)
from raytrade.domain.paper_broker import DAY_NS, PaperBrokerConfig

BTC = Instrument("BTC", D("0.01"), D("0.001"))
ETH = Instrument("ETH", D("0.01"), D("0.01"))
T0 = 19_700 * DAY_NS + 3_600 * 10**9
KEY = "k"
CASH = D(100000)
BAR0 = Bar(T0, 100.0, 101.0, 99.0, 100.5, 1000.0)
BAR1 = Bar(T0 + BAR_NS, 100.0, 101.0, 99.0, 100.5, 1000.0)
BAR2 = Bar(T0 + 2 * BAR_NS, 100.5, 101.0, 100.0, 100.8, 1000.0)
DECAY = 0.5 ** (1 / 30)

FillRow = tuple[str, str, str, str, str, str, Liquidity, int]
EventRow = tuple[str, int, EventKind, OrderStatus, str, str, str | None, str, int | None]


def parkinson(h: float, lo: float) -> float:
    return math.log(h / lo) ** 2 / (4 * math.log(2))


def taker(ref: str, side: Side, qty: str, variance: float, volume: float = 1000.0) -> D:
    cost = 0.5 / 10_000 + math.sqrt(variance) * math.sqrt(float(qty) / volume)
    buy = side is Side.BUY
    raw = D(ref) * D(1 + cost if buy else 1 - cost)
    return raw.quantize(D("0.01"), rounding=ROUND_CEILING if buy else ROUND_FLOOR)


def fee(price: D, qty: str) -> D:
    return (price * D(qty) * 2 / 10_000).quantize(D("0.00000001"))


def decision(
    oid: str,
    side: Side = Side.BUY,
    qty: str = "10",
    *,
    symbol: str = "BTC",
    kind: OrderType = OrderType.MARKET,
    limit: str | None = None,
    ts: int = T0 - 10**9,
    approved: bool = True,
    reason: str = "",
) -> RiskDecision:
    intent = OrderIntent(
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
        TimeInForce.GTC,
        None if limit is None else D(limit),
    )
    return RiskDecision(intent, approved, reason)


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return str(request.getfixturevalue("pg_url"))


Factory = Callable[..., ExecutionCore]


@pytest.fixture
def make_core() -> Iterator[Factory]:
    """Open ExecutionCores (closed at the end of the test)."""
    made: list[ExecutionCore] = []

    def make(url: str) -> ExecutionCore:
        core = ExecutionCore([BTC, ETH], PaperBrokerConfig(latency_ns=0), url, CASH, gate_key=KEY)
        made.append(core)
        return core

    yield make
    for core in made:
        core.ledger.close()


def fill_rows(fills: list[Fill]) -> list[FillRow]:
    return [
        (f.fill_id, f.order_id, f.side.value, str(f.qty), str(f.price), str(f.fee), f.liquidity, f.ts) for f in fills
    ]


def event_rows(events: list[OrderEvent]) -> list[EventRow]:
    """Events without the wall-clock time of intake and commands (bar events keep theirs)."""
    return [
        (
            e.order_id,
            e.seq,
            e.kind,
            e.status,
            str(e.filled_qty),
            e.cause,
            e.fill_id,
            e.reason,
            e.ts if e.cause.startswith("bar:") else None,
        )
        for e in events
    ]


# -- the reference session and its hand-computed answers ---------------------------------------

V0 = parkinson(101.0, 99.0)
V1 = V0  # bar 1 has the same range
V2 = DECAY * V1 + (1 - DECAY) * parkinson(101.0, 100.0)
P_A1 = taker("100", Side.BUY, "100", V0)  # a: 100 of 150 on bar 0 (capacity 100)
P_A2 = taker("100", Side.BUY, "50", V1)  # a: the last 50 on bar 1
P_S1 = taker("100.5", Side.SELL, "20", V2)  # s: sells 20 on bar 2
S_TS = T0 + 2 * BAR_NS  # decided by the tick that closed bar 1 (as a shard does)
REJECT = "risk: order notional too big"


def test_reference_prices_by_hand() -> None:
    assert (D("100.39"), D("100.28"), D("100.32")) == (P_A1, P_A2, P_S1)


EXPECTED_FILLS: list[FillRow] = [
    ("a#1", "a", "BUY", "100.0", "100.39", "2.00780000", Liquidity.TAKER, T0),
    ("a#2", "a", "BUY", "50.0", "100.28", "1.00280000", Liquidity.TAKER, T0 + BAR_NS),
    ("b#1", "b", "BUY", "5", "99.5", "0E-8", Liquidity.MAKER, T0 + BAR_NS),
    ("s#1", "s", "SELL", "20", "100.32", "0.40128000", Liquidity.TAKER, T0 + 2 * BAR_NS),
]


def session(core: ExecutionCore) -> list[ExecutionReply]:
    """A mixed session: a big market buy filled over two bars, a resting maker limit, a risk
    rejection, a sell, and a cancelled limit."""
    return [
        core.execute(
            [
                decision("a", qty="150"),
                decision("b", qty="5", kind=OrderType.LIMIT, limit="99.5"),
                decision("r", qty="1", approved=False, reason=REJECT),
            ],
            key=KEY,
        ),
        core.execute([], [("BTC", BAR0)], key=KEY),
        core.execute(
            [
                decision("s", Side.SELL, "20", ts=S_TS),
                decision("c", qty="1", kind=OrderType.LIMIT, limit="90", ts=S_TS),
            ],
            [("BTC", BAR1)],
            key=KEY,
        ),
        core.execute([], [("BTC", BAR2)], key=KEY),
    ]


def test_same_calls_give_the_same_reports_fills_and_events(ledger_url: str, make_core: Factory) -> None:
    core = make_core(ledger_url)
    replies = session(core)
    assert [[(r.order_id, r.status, r.reason) for r in x.reports] for x in replies] == [
        [
            ("a", OrderStatus.ACCEPTED, ""),
            ("b", OrderStatus.ACCEPTED, ""),
            ("r", OrderStatus.REJECTED, "risk: order notional too big"),
        ],
        [],
        [("s", OrderStatus.ACCEPTED, ""), ("c", OrderStatus.ACCEPTED, "")],
        [],
    ]
    assert [fill_rows(x.fills) for x in replies] == [[], EXPECTED_FILLS[:1], EXPECTED_FILLS[1:3], EXPECTED_FILLS[3:]]
    assert fill_rows(core.ledger.fills()) == EXPECTED_FILLS
    bar0, bar1, bar2 = (f"bar:BTC:{b.start}" for b in (BAR0, BAR1, BAR2))
    assert [event_rows(x.events) for x in replies] == [
        [
            ("a", 1, EventKind.NEW, OrderStatus.NEW, "0", "intake", None, "", None),
            ("a", 2, EventKind.ACCEPTED, OrderStatus.ACCEPTED, "0", "intake", None, "", None),
            ("b", 1, EventKind.NEW, OrderStatus.NEW, "0", "intake", None, "", None),
            ("b", 2, EventKind.ACCEPTED, OrderStatus.ACCEPTED, "0", "intake", None, "", None),
            ("r", 1, EventKind.NEW, OrderStatus.NEW, "0", "intake", None, "", None),
            (
                "r",
                2,
                EventKind.REJECTED,
                OrderStatus.REJECTED,
                "0",
                "intake",
                None,
                "risk: order notional too big",
                None,
            ),
        ],
        [("a", 3, EventKind.FILL, OrderStatus.PARTIALLY_FILLED, "100.0", bar0, "a#1", "", T0)],
        [
            ("a", 4, EventKind.FILL, OrderStatus.FILLED, "150.0", bar1, "a#2", "", T0 + BAR_NS),
            ("b", 3, EventKind.FILL, OrderStatus.FILLED, "5", bar1, "b#1", "", T0 + BAR_NS),
            ("s", 1, EventKind.NEW, OrderStatus.NEW, "0", "intake", None, "", None),
            ("s", 2, EventKind.ACCEPTED, OrderStatus.ACCEPTED, "0", "intake", None, "", None),
            ("c", 1, EventKind.NEW, OrderStatus.NEW, "0", "intake", None, "", None),
            ("c", 2, EventKind.ACCEPTED, OrderStatus.ACCEPTED, "0", "intake", None, "", None),
        ],
        [("s", 3, EventKind.FILL, OrderStatus.FILLED, "20", bar2, "s#1", "", T0 + 2 * BAR_NS)],
    ]
    # What the ledger reads back is exactly what the calls returned (wall-clock times included).
    assert core.ledger.events() == [e for x in replies for e in x.events]
    last = replies[-1]
    assert last.positions == {"BTC": D(135)} and str(last.positions["BTC"]) == "135.0"
    assert last.working == {"BTC": D(1)}
    cash = CASH - D(100) * P_A1 - D(50) * P_A2 - 5 * D("99.5") + 20 * P_S1
    cash -= D("2.0078") + D("1.0028") + D("0.40128")
    assert last.cash == cash == D("86452.48812")
    assert last.equity == cash + 135 * D("100.8")
    # A replayed call answers with the recorded state and records nothing new.
    n_events = len(core.ledger.events())
    again = core.execute([decision("a", qty="150"), decision("r", qty="1", approved=False)], [("BTC", BAR2)], key=KEY)
    assert [(r.order_id, r.status, r.filled_qty) for r in again.reports] == [
        ("a", OrderStatus.FILLED, D(150)),
        ("r", OrderStatus.REJECTED, D(0)),
    ]
    assert again.reports[1].reason == "risk: order notional too big"
    assert fill_rows(again.fills) == EXPECTED_FILLS[3:] and len(core.ledger.events()) == n_events
    assert core.replayed == 2


def test_every_transition_is_an_immutable_numbered_event(ledger_url: str, make_core: Factory) -> None:
    core = make_core(ledger_url)
    session(core)
    core.cancel("c", "no longer wanted", "ops", key=KEY)
    states = core.ledger.order_states()
    assert {o: (s, str(q)) for o, (s, q) in states.items()} == {
        "a": (OrderStatus.FILLED, "150.0"),
        "b": (OrderStatus.FILLED, "5"),
        "r": (OrderStatus.REJECTED, "0"),
        "s": (OrderStatus.FILLED, "20"),
        "c": (OrderStatus.CANCELLED, "0"),
    }
    for order_id, (status, filled) in states.items():
        events = core.ledger.events(order_id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert events[-1].status is status and events[-1].filled_qty == filled
        assert {e.order_id for e in events} == {order_id}
    assert [len(core.ledger.events(o)) for o in "abrsc"] == [4, 3, 2, 3, 3]
    # Writing the same events and fills again changes nothing; a different event under an
    # existing (order, number) does not overwrite the recorded one.
    before, fills, seq = core.ledger.events(), core.ledger.fills(), core.ledger.seq()
    core.ledger.write(LedgerWrite(events=before, fills=fills))
    forged = before[-1]
    assert forged.order_id == "c" and forged.kind is EventKind.CANCELLED
    core.ledger.write(
        LedgerWrite(
            events=[
                OrderEvent(
                    "c", forged.seq, "BTC", Side.BUY, EventKind.FILL, OrderStatus.FILLED, D(1), D(1),
                    None, None, "", "c#1", "forged", 1,
                )
            ]
        )
    )  # fmt: skip
    assert core.ledger.events() == before and core.ledger.fills() == fills and core.ledger.seq() == seq
    assert core.reconcile()["ok"] is True


def test_calls_without_the_gate_key_are_refused(ledger_url: str, make_core: Factory) -> None:
    core = make_core(ledger_url)
    with pytest.raises(NotTheGateError):
        core.execute([decision("a")], [("BTC", BAR0)])
    with pytest.raises(NotTheGateError):
        core.execute([decision("a")], key="wrong")
    core.execute([decision("w", kind=OrderType.LIMIT, limit="90")], key=KEY)
    with pytest.raises(NotTheGateError):
        core.cancel("w", "x", "ops")
    with pytest.raises(NotTheGateError):
        core.replace("w", "ops", qty=D(2))
    with pytest.raises(NotTheGateError):
        core.cancel_all("x", "ops", key="kk")
    assert [e.order_id for e in core.ledger.events()] == ["w", "w"]
    assert core.ledger.fills() == [] and core.broker.last_bar == {} and core.calls == 1
    assert [r.status for r in core.open_orders()] == [OrderStatus.ACCEPTED]


def test_restart_rebuilds_books_working_orders_and_bar_state(ledger_url: str, make_core: Factory) -> None:
    control = make_core("sqlite:///:memory:")  # the same calls without a restart
    first = make_core(ledger_url)
    for core in (control, first):
        core.execute(
            [
                decision("a", qty="150"),
                decision("b", qty="5", kind=OrderType.LIMIT, limit="99.5"),
                decision("e", Side.SELL, "3", symbol="ETH", kind=OrderType.LIMIT, limit="2000"),
            ],
            key=KEY,
        )
        core.execute([], [("BTC", BAR0)], key=KEY)
    books = (first.portfolio.positions(), first.portfolio.cash, first.portfolio.realized, first.portfolio.fees)
    assert books == ({"BTC": D(100)}, CASH - D(100) * P_A1 - D("2.0078"), D(0), D("2.0078"))
    first.ledger.close()
    second = make_core(ledger_url)
    assert (
        second.portfolio.positions(),
        second.portfolio.cash,
        second.portfolio.realized,
        second.portfolio.fees,
    ) == books
    assert [(r.order_id, r.status, fill_rows(list(r.fills))) for r in second.open_orders()] == [
        ("a", OrderStatus.PARTIALLY_FILLED, EXPECTED_FILLS[:1]),
        ("b", OrderStatus.ACCEPTED, []),
        ("e", OrderStatus.ACCEPTED, []),
    ]
    assert second.working() == {"BTC": D(55), "ETH": D(-3)}
    assert second.broker.last_bar == {"BTC": T0} and second.broker.variance == {"BTC": V0}
    assert [len(o.events) for o in second.broker.working()] == [3, 2, 2]
    # The bar already traded is not traded again: its recorded answer comes back.
    n_fills = len(second.ledger.fills())
    replay = second.execute([], [("BTC", BAR0)], key=KEY)
    assert fill_rows(replay.fills) == EXPECTED_FILLS[:1] and len(second.ledger.fills()) == n_fills
    assert [(e.order_id, e.seq) for e in replay.events] == [("a", 3)]
    assert second.portfolio.positions() == {"BTC": D(100)}
    # The next bar trades exactly as it does without the restart.
    want = control.execute([], [("BTC", BAR1)], key=KEY)
    got = second.execute([], [("BTC", BAR1)], key=KEY)
    assert fill_rows(got.fills) == fill_rows(want.fills) == EXPECTED_FILLS[1:3]
    assert event_rows(got.events) == event_rows(want.events)
    assert (got.positions, got.working, got.cash, got.equity) == (want.positions, want.working, want.cash, want.equity)
    assert second.reconcile()["ok"] is True


def test_restart_keeps_the_arrival_order_of_orders_placed_in_one_call(ledger_url: str, make_core: Factory) -> None:
    """Two GTC market orders from one call share each bar's capacity oldest first; after a
    restart the older one must still come first."""
    thin = Bar(T0 + BAR_NS, 100.0, 101.0, 99.0, 100.5, 600.0)  # capacity 60
    control = make_core("sqlite:///:memory:")
    first = make_core(ledger_url)
    for core in (control, first):
        core.execute([decision("a", qty="150"), decision("b", qty="50")], key=KEY)
        core.execute([], [("BTC", BAR0)], key=KEY)  # a: 100, b: nothing
    first.ledger.close()
    second = make_core(ledger_url)
    order = [o.order_id for o in second.broker.working()]
    want = control.execute([], [("BTC", thin)], key=KEY)
    got = second.execute([], [("BTC", thin)], key=KEY)
    assert [(f.fill_id, str(f.qty)) for f in want.fills] == [("a#2", "50.0"), ("b#1", "10.0")]
    assert fill_rows(got.fills) == fill_rows(want.fills)
    assert order == ["a", "b"]


def test_restart_restores_marks_and_equity(ledger_url: str, make_core: Factory) -> None:
    """Equity after a restart is the equity before it (positions at the last bar's close)."""
    first = make_core(ledger_url)
    first.execute([decision("a", qty="50")], key=KEY)
    first.execute([], [("BTC", BAR0)], key=KEY)
    before = first.account()
    assert before["marks"] == {"BTC": D("100.5")} and before["positions"] == {"BTC": D(50)}
    first.ledger.close()
    second = make_core(ledger_url)
    after = second.account()
    assert after["cash"] == before["cash"] and after["positions"] == before["positions"]
    assert after["seq"] == before["seq"]
    assert after["marks"] == before["marks"]
    assert after["equity"] == before["equity"]


def test_cancel_replace_and_cancel_all_are_recorded_commands(ledger_url: str, make_core: Factory) -> None:
    core = make_core(ledger_url)
    core.execute(
        [
            decision("g1", qty="10", kind=OrderType.LIMIT, limit="90"),
            decision("g2", Side.SELL, "2", symbol="ETH", kind=OrderType.LIMIT, limit="5000"),
            decision("g3", qty="5", kind=OrderType.LIMIT, limit="91"),
        ],
        key=KEY,
    )
    rep = core.replace("g1", "alice", qty=D(12), limit_price=D("90.5"), key=KEY)
    assert (rep.status, rep.qty) == (OrderStatus.ACCEPTED, D(12))
    with pytest.raises(ValueError, match="not a multiple"):
        core.replace("g1", "alice", qty=D("12.0001"), key=KEY)
    with pytest.raises(ValueError, match="must exceed"):
        core.replace("g1", "alice", qty=D(0), key=KEY)
    cancelled = core.cancel("g2", "user asked", "bob", key=KEY)
    assert (cancelled.order_id, cancelled.status, cancelled.reason) == ("g2", OrderStatus.CANCELLED, "user asked")
    with pytest.raises(KeyError):
        core.cancel("g2", "again", "bob", key=KEY)
    kill = core.cancel_all("kill switch", "risk", key=KEY)
    assert [(r.order_id, r.status, r.reason) for r in kill] == [
        ("g1", OrderStatus.CANCELLED, "kill switch"),
        ("g3", OrderStatus.CANCELLED, "kill switch"),
    ]
    assert core.cancel_all("again", "risk", key=KEY) == []
    commands = [
        (e.order_id, e.seq, e.kind, e.status, e.cause, e.reason, str(e.qty), e.limit_price)
        for e in core.ledger.events()
        if e.cause != "intake"
    ]
    assert commands == [
        ("g1", 3, EventKind.REPLACED, OrderStatus.ACCEPTED, "cmd:alice", "replaced qty, limit_price", "12", D("90.5")),
        ("g2", 3, EventKind.CANCELLED, OrderStatus.CANCELLED, "cmd:bob", "user asked", "2", D(5000)),
        ("g1", 4, EventKind.CANCELLED, OrderStatus.CANCELLED, "cmd:risk", "kill switch", "12", D("90.5")),
        ("g3", 3, EventKind.CANCELLED, OrderStatus.CANCELLED, "cmd:risk", "kill switch", "5", D(91)),
    ]
    assert {o: s for o, (s, _) in core.ledger.order_states().items()} == dict.fromkeys(
        ("g1", "g2", "g3"), OrderStatus.CANCELLED
    )
    rows = {str(o["order_id"]): o for o in core.orders(10)}
    assert (rows["g1"]["qty"], rows["g1"]["limit_price"], rows["g1"]["reason"]) == ("12", "90.5", "kill switch")
    assert core.working() == {} and core.open_orders() == []
    restarted = make_core(ledger_url)
    assert restarted.open_orders() == [] and restarted.reconcile()["ok"] is True
    with pytest.raises(KeyError):
        restarted.replace("g3", "alice", qty=D(6), key=KEY)


def test_replace_of_a_done_order_is_refused(ledger_url: str, make_core: Factory) -> None:
    core = make_core(ledger_url)
    core.execute([decision("a", qty="150")], key=KEY)
    core.execute([], [("BTC", BAR0)], key=KEY)
    order = core.broker.orders["a"]
    core.execute([], [("BTC", BAR1)], key=KEY)
    assert order.status is OrderStatus.FILLED
    with pytest.raises(InvalidTransitionError):
        order.replace_terms(0, "cmd:x", qty=D(200))
    with pytest.raises(KeyError):
        core.replace("a", "alice", qty=D(200), key=KEY)
    assert [e.kind for e in core.ledger.events("a")] == [
        EventKind.NEW,
        EventKind.ACCEPTED,
        EventKind.FILL,
        EventKind.FILL,
    ]


def test_reconciliation_is_exact_and_reports_a_corrupted_cash(ledger_url: str, make_core: Factory) -> None:
    core = make_core(ledger_url)
    session(core)
    core.cancel("c", "no longer wanted", "ops", key=KEY)
    # A short partial fill on ETH: sell 150 against a 100-unit capacity.
    core.execute([decision("x", Side.SELL, "150", symbol="ETH", ts=T0 + 10**9)], key=KEY)
    eth = Bar(T0 + BAR_NS, 2000.0, 2010.0, 1990.0, 2005.0, 1000.0)
    core.execute([], [("ETH", eth)], key=KEY)
    p_x = taker("2000", Side.SELL, "100", parkinson(2010.0, 1990.0))
    assert p_x == D("1996.10")
    assert fill_rows(core.ledger.fills())[-1] == (
        "x#1", "x", "SELL", "100.0", str(p_x), str(fee(p_x, "100")), Liquidity.TAKER, T0 + BAR_NS,
    )  # fmt: skip
    cash = D("86452.48812") + 100 * p_x - fee(p_x, "100")
    realized = 20 * (P_S1 - P_A1)
    r = core.reconcile()
    assert r["ok"] is True and r["mismatches"] == []
    assert (r["fills"], r["orders"]) == (5, 6)
    assert r["positions"] == {"BTC": "135.0", "ETH": "-100.0"}
    assert r["cash"] == str(cash) == "286022.56612000"
    assert D(r["realized"]) == realized == D("-1.40")
    assert D(r["fees"]) == D("2.0078") + D("1.0028") + D("0.40128") + fee(p_x, "100")
    assert core.working() == {"ETH": D(-50)}
    core.portfolio.cash += D("0.01")
    bad = core.reconcile()
    assert bad["ok"] is False
    assert bad["mismatches"] == [f"cash: fills say {cash}, live {cash + D('0.01')}"]
    core.portfolio.cash -= D("0.01")
    assert core.reconcile()["ok"] is True


def test_an_embedded_run_starts_a_fresh_ledger_and_never_wipes_a_database(ledger_url: str, make_core: Factory) -> None:
    """`raytrade run` on the embedded market restarts order ids at 0: a SQLite ledger file is
    replaced; a PostgreSQL ledger that holds anything is refused with a clear error, untouched."""
    start_fresh_ledger(ledger_url)  # empty (or absent): fine on both
    core = make_core(ledger_url)
    core.execute([decision("a")], [("BTC", BAR0)], KEY)
    counts = core.ledger.row_counts()
    assert counts["orders"] == 1 and counts["order_events"] >= 1 and counts["bar_marks"] == 1
    if is_postgres(ledger_url):
        not_empty = r"PostgreSQL ledger 127\.0\.0\.1:\d+/\w+ is not empty \(\{'orders': 1"
        with pytest.raises(ConfigError, match=not_empty) as e:
            start_fresh_ledger(ledger_url)
        assert "password" not in str(e.value) and "@" not in str(e.value)
        assert core.ledger.row_counts() == counts  # nothing lost
    else:
        core.ledger.close()
        start_fresh_ledger(ledger_url)
        assert not any(Path(f"{sqlite_file(ledger_url)}{s}").exists() for s in ("", "-wal", "-shm"))
        assert Ledger(ledger_url).row_counts() == dict.fromkeys(Ledger.TABLES, 0)
