"""Recovery building blocks: shard snapshots, the snapshot store, idempotent Execution."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from raytrade.actors.execution import ExecutionCore
from raytrade.adapters.snapshot_store import SnapshotStore
from raytrade.domain.bars import BAR_NS, Bar
from raytrade.domain.features import WARMUP_BARS
from raytrade.domain.instruments import Instrument
from raytrade.domain.order_lifecycle import EventKind
from raytrade.domain.orders import OrderIntent, OrderStatus, RiskDecision, Side
from raytrade.domain.paper_broker import PaperBrokerConfig
from raytrade.domain.shard_engine import ShardEngine
from raytrade.strategy.builtins import ModelThreshold
from tests.unit.test_shard_engine import BTC, messages, momentum


def strategies() -> list[ModelThreshold]:
    return [ModelThreshold("m", {"long_above": 0.6, "short_below": 0.4, "order_notional": "10000"})]


def book(engine: ShardEngine) -> None:
    """Execution's answer as if every intent filled: the view the engine already holds after sending them."""
    engine.sync({"BTCUSDT": engine.positions.get("BTCUSDT", D(0))}, {}, None)


def test_snapshot_restore_continues_exactly_like_an_uninterrupted_engine() -> None:
    prices = [20000.0 + ((i * 37) % 11 - 5) * 7 for i in range(WARMUP_BARS + 60)]
    msgs = messages(prices)
    half = len(msgs) // 2
    straight = ShardEngine([BTC], strategies(), momentum)
    straight.process(msgs[:half], 0)
    book(straight)
    second = straight.process(msgs[half:], 0)

    crashed = ShardEngine([BTC], strategies(), momentum)
    crashed.process(msgs[:half], 0)
    book(crashed)
    blob = crashed.snapshot()
    restored = ShardEngine([BTC], strategies(), momentum)
    restored.restore(blob)
    again = restored.process(msgs[half:], 0)
    assert second.intents, "the second half should trade for the comparison to mean something"
    assert again.intents == second.intents  # same ids, sides, quantities, prices, scores
    assert restored.accepted == straight.accepted == len(msgs)
    # Re-reading a message the snapshot already covers is refused, not traded twice.
    dup = restored.process(msgs[half - 1 : half], 0)
    assert not dup.intents and dup.rejected[0].rejection.reason.value == "out_of_order"


def test_restore_refuses_a_snapshot_of_another_universe() -> None:
    eth = Instrument("ETHUSDT", D("0.01"), D("0.0001"))
    blob = ShardEngine([BTC, eth], strategies(), momentum).snapshot()
    with pytest.raises(ValueError, match="outside this shard's universe"):
        ShardEngine([BTC], strategies(), momentum).restore(blob)


def test_snapshot_store_replaces_atomically_and_survives_reopen(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "s.db")
    assert store.load("g/t/0") is None
    store.save("g/t/0", {0: 10}, b"one")
    store.save("g/t/0", {0: 25, 1: 3}, b"two")
    store.close()
    snap = SnapshotStore(tmp_path / "s.db").load("g/t/0")
    assert snap is not None and snap.offsets == {0: 25, 1: 3} and snap.state == b"two"


def intent(oid: str, side: Side = Side.BUY) -> OrderIntent:
    return OrderIntent(oid, "m", "BTCUSDT", side, D("0.5"), D("20000.00"), 1, 1, 0.7)


def test_execution_answers_a_replayed_call_with_the_recorded_answers(tmp_path: Path) -> None:
    cfg = PaperBrokerConfig(latency_ns=0)
    ex = ExecutionCore([BTC], cfg, str(tmp_path / "l.db"), D(100_000))
    batch = [RiskDecision(intent("a"), True), RiskDecision(intent("b", Side.SELL), False, "position limit")]
    first = ex.execute(batch)
    assert [r.status for r in first.reports] == [OrderStatus.ACCEPTED, OrderStatus.REJECTED]
    assert first.reports[1].reason == "position limit"
    assert first.positions == {"BTCUSDT": D(0)} and first.working == {"BTCUSDT": D("0.5")}
    bar = Bar(2 * BAR_NS, 20000.0, 20010.0, 19990.0, 20005.0, 100.0)
    traded = ex.execute([], [("BTCUSDT", bar)])
    assert [f.order_id for f in traded.fills] == ["a"] and traded.positions == {"BTCUSDT": D("0.5")}
    # The same ids and bar again, even with different verdicts (a gate that restarted): the first answers.
    replay = ex.execute(
        [RiskDecision(intent("a"), False, "halted"), RiskDecision(intent("b", Side.SELL), True)], [("BTCUSDT", bar)]
    )
    assert [r.status for r in replay.reports] == [OrderStatus.FILLED, OrderStatus.REJECTED]
    assert replay.fills == traded.fills and replay.seq == traded.seq
    assert [e.kind for e in replay.events if e.order_id == "a"] == [EventKind.FILL, EventKind.NEW, EventKind.ACCEPTED]
    assert ex.replayed == 2 and len(ex.ledger.fills()) == 1
    assert ex.portfolio.positions() == {"BTCUSDT": D("0.5")}
    # A restarted Execution (new process, same ledger) rebuilds the same books and answers the same.
    again = ExecutionCore([BTC], cfg, str(tmp_path / "l.db"), D(100_000))
    assert again.portfolio.cash == ex.portfolio.cash
    assert again.execute(batch).reports == replay.reports
    positions, marks, seq = again.positions()
    assert positions == {"BTCUSDT": D("0.5")} and marks == {"BTCUSDT": D("20005.00")} and seq == traded.seq
    assert again.reconcile()["ok"]
