"""Time comes from events: the gate's rate limits and transitions, Execution's order events, commands,
cancels and expiries are stamped with tick/bar time, never the wall clock; the same events give the same
ledger whenever and however fast they are replayed."""

from __future__ import annotations

import time
from decimal import Decimal as D
from pathlib import Path

from raytrade.actors.execution import ExecutionCore
from raytrade.domain.bars import BAR_NS, Bar
from raytrade.domain.gate import GateCore
from raytrade.domain.orders import ExecutionReply, OrderCommand, OrderIntent, OrderType, Side, TimeInForce
from raytrade.domain.paper_broker import PaperBrokerConfig
from raytrade.domain.risk import DAY_NS, RiskLimits, TradingState
from tests.unit.test_shard_engine import BTC, T0

BIG = D(10**9)
SECOND = 10**9


def intent(oid: str, ts: int, qty: str = "0.01", **kw: object) -> OrderIntent:
    return OrderIntent(oid, "s", "BTCUSDT", Side.BUY, D(qty), D("20000"), ts, 0, 0.5, **kw)  # type: ignore[arg-type]


def bar(start: int, price: float = 20000.0) -> Bar:
    return Bar(start, price, price + 5, price - 5, price, 10.0)


def test_order_rate_limits_count_event_seconds_not_wall_seconds() -> None:
    limits = RiskLimits(BIG, BIG, BIG, max_orders_per_s=2)

    def decide(pause_s: float) -> list[bool]:
        gate = GateCore(limits, [BTC])
        out = []
        for n, ts in enumerate([T0, T0 + 1, T0 + 2, T0 + SECOND + 1, T0 + SECOND + 2]):
            call = gate.begin([intent(f"o{n}", ts)], [])
            out += [d.approved for d in gate.decide(call, {})]
            gate.abandon(call)
            time.sleep(pause_s)  # the wall clock moves on; the decisions must not care
        return out

    # 2 per event second: the third of the first second is refused, the next second allows 2 again.
    assert decide(0.0) == decide(0.4) == [True, True, False, True, True]


def test_gate_transitions_are_stamped_with_the_latest_event_time() -> None:
    gate = GateCore(RiskLimits(BIG, BIG, BIG, drawdown_halt=D("0.1")), [BTC])
    call = gate.begin([], [("BTCUSDT", bar(T0))])
    gate.decide(call, {})
    gate.settle(call, ExecutionReply([], {}, 1, cash=D(100_000), equity=D(100_000)))
    call = gate.begin([], [("BTCUSDT", bar(T0 + BAR_NS))])
    gate.decide(call, {})
    [event] = gate.settle(call, ExecutionReply([], {}, 2, cash=D(85_000), equity=D(85_000)))
    assert event.state is TradingState.HALTED and event.ts == T0 + 2 * BAR_NS == gate.event_ns


def test_execution_stamps_orders_commands_and_cancels_with_event_time(tmp_path: Path) -> None:
    cfg = PaperBrokerConfig(latency_ns=0)
    ex = ExecutionCore([BTC], cfg, str(tmp_path / "l.db"), D(100_000), gate_key="k", measure_latency=False)
    gate = GateCore(RiskLimits(BIG, BIG, BIG), [BTC])
    t = T0 + 30 * SECOND
    rest = intent("s:BTCUSDT:0:1", t, order_type=OrderType.LIMIT, limit_price=D("100"))
    day = intent("s:BTCUSDT:0:2", t, order_type=OrderType.LIMIT, limit_price=D("100"), tif=TimeInForce.DAY)
    call = gate.begin([rest, day], [("BTCUSDT", bar(T0))])
    ex.execute(gate.decide(call, {}), [("BTCUSDT", bar(T0))], "k")
    assert [e.ts for e in ex.ledger.events()] == [t, t, t, t]  # NEW and ACCEPTED of both, at the intent's time
    replace = OrderCommand("s:BTCUSDT:0:3~replace", "replace", rest.order_id, "s", "BTCUSDT", t + SECOND, D("0.005"))
    ex.execute([], [], "k", (), [replace])
    ex.execute([], [], "k", (), [replace])  # a replayed command is applied once
    replaced = [e for e in ex.ledger.events(rest.order_id) if e.kind.value == "REPLACED"]
    assert [(e.ts, e.qty, e.cause) for e in replaced] == [(t + SECOND, D("0.005"), "cmd:s:BTCUSDT:0:3~replace")]
    # The DAY order expires on the first bar of the next UTC day, stamped with that bar's time.
    next_day = (T0 // DAY_NS + 1) * DAY_NS
    ex.execute([], [("BTCUSDT", bar(next_day))], "k")
    [expired] = [e for e in ex.ledger.events(day.order_id) if e.kind.value == "EXPIRED"]
    assert expired.ts == next_day
    # A command from outside the market data (the kill switch) takes Execution's event clock.
    [report] = ex.cancel_all("halted", "risk_gate", "k")
    assert report.status.value == "CANCELLED"
    assert ex.ledger.events(rest.order_id)[-1].ts == next_day + BAR_NS == ex.event_ns
    # Without latency measurement the ledger holds event times only: ts_accepted = the intake event.
    rows = ex.ledger._db.execute("SELECT ts_event, ts_accepted FROM orders").fetchall()
    assert rows == [(t, t), (t, t)]
