"""Shards -> RiskGate -> Execution on real Ray and the real broker, with malformed input."""

from __future__ import annotations

import base64
import json
import os
import signal
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import ray

from raytrade.adapters import kafka
from raytrade.adapters.embedded_broker import EmbeddedBroker
from raytrade.adapters.feed import publish
from raytrade.adapters.ledger import Ledger
from raytrade.adapters.synthetic_market import SyntheticMarket
from raytrade.cluster.topology import Topology, build
from raytrade.domain.portfolio import Portfolio
from raytrade.domain.ticks import Tick, encode_tick
from raytrade.training.bootstrap import ensure_model
from raytrade.training.registry import ModelRegistry
from tests.bad_input import load_corpus
from tests.integration.chaos_harness import config

REPO = Path(__file__).resolve().parents[2]


def consumed(topo: Topology) -> int:
    return sum(s["consumed"] for s in ray.get([s.stats.remote() for s in topo.shards]))


def wait_consumed(topo: Topology, n: int, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while consumed(topo) < n:
        assert time.monotonic() < deadline, f"consumed {consumed(topo)} of {n}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def system(broker: EmbeddedBroker, ray_local: None, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("pipeline")
    topic = f"ticks-{uuid.uuid4().hex[:6]}"
    cfg = config(tmp, topic)
    adm = kafka.admin("confluent", broker.bootstrap_servers)
    adm.create_topic(topic, 2)
    adm.create_topic(f"{topic}.dlq", 1)
    scorer = ensure_model(ModelRegistry(tmp / "models"), seed=1, days=0.5, horizon=5, rounds=30)
    ledger = str(tmp / "ledger.db")
    topo = build(cfg, broker.bootstrap_servers, scorer, ledger)
    runs = [s.run.remote() for s in topo.shards]
    yield cfg, topo, ledger, topic
    for s in topo.shards:
        s.stop.remote()
    ray.get(runs, timeout=30)


def bad_messages(last_btc_ts: int) -> list[tuple[bytes | None, bytes, str | None]]:
    """The bad-input corpus, stamped right after the last BTC tick published so far."""
    corpus = load_corpus(ts=last_btc_ts + 1, old_ts=last_btc_ts - 60_000_000_000)
    return [(m.key, m.value, m.reason) for m in corpus]


def test_pipeline_trades_rejects_bad_input_and_keeps_exact_books(system, broker: EmbeddedBroker) -> None:  # type: ignore[no-untyped-def]
    cfg, topo, ledger_path, topic = system
    ticks = list(SyntheticMarket(seed=21).ticks(3600))
    half = len(ticks) // 2
    producer = kafka.producer("confluent", broker.bootstrap_servers)
    publish(ticks[:half], producer, topic)
    last_btc = max(t.ts for t in ticks[:half] if t.symbol == "BTCUSDT")
    bad = bad_messages(last_btc)
    for key, value, _ in bad:
        producer.produce(topic, key, value)
    publish(ticks[half:], producer, topic)
    total = len(ticks) + len(bad)
    controls = sum(1 for _, _, reason in bad if reason is None)
    bad_only = [(k, v, r) for k, v, r in bad if r is not None]
    wait_consumed(topo, total)

    stats = ray.get([s.stats.remote() for s in topo.shards])
    rejected: dict[str, int] = {}
    for s in stats:
        for k, v in s["rejected"].items():
            rejected[k] = rejected.get(k, 0) + v
    expected: dict[str, int] = {}
    for _, _, reason in bad_only:
        expected[reason] = expected.get(reason, 0) + 1
    assert rejected == expected
    assert sum(s["accepted"] for s in stats) == len(ticks) + controls
    assert all(s["error"] is None for s in stats)

    # Every bad message is in the dead-letter topic, with its reason and original bytes.
    dlq = kafka.consumer("confluent", broker.bootstrap_servers, f"dlq-{uuid.uuid4().hex[:6]}")
    dlq.assign(f"{topic}.dlq", [0])
    records: list[kafka.Record] = []
    deadline = time.monotonic() + 15
    while len(records) < len(bad_only) and time.monotonic() < deadline:
        records += dlq.poll_batch(100, 0.1)
    dlq.close()
    letters = [json.loads(r.value) for r in records]
    assert sorted(d["reason"] for d in letters) == sorted(r for _, _, r in bad_only)
    assert sorted(base64.b64decode(d["value"]) for d in letters) == sorted(v for _, v, _ in bad_only)
    bad_offsets = {(d["partition"], d["offset"]) for d in letters}

    ledger = Ledger(ledger_path)
    orders = ledger.order_states()
    counts = ledger.status_counts()
    fills = ledger.fills()
    assert orders, "the model should have traded over an hour of market"
    assert sum(counts.values()) == len(orders) and counts["FILLED"] > 0
    filled: dict[str, Decimal] = {}
    for f in fills:
        filled[f.order_id] = filled.get(f.order_id, Decimal(0)) + f.qty
    assert {o: q for o, (_, q) in orders.items() if q} == filled  # every fill belongs to its order, exactly
    for oid in orders:  # no order was caused by a rejected message
        if oid.startswith("risk:"):
            continue  # the gate's own ATR stop exits
        _, _, partition, offset = oid.split(":")
        assert (int(partition), int(offset)) not in bad_offsets
    recon = ray.get(topo.execution.reconcile.remote())
    assert recon["ok"], recon["mismatches"]
    # Execution's books equal a replay of the ledger, exactly.
    marks: dict[str, Decimal] = {}
    for m in ray.get([s.marks.remote() for s in topo.shards]):
        marks.update(m)
    summary = ray.get(topo.execution.summary.remote(marks))
    replay = Portfolio.from_fills(cfg.execution.initial_cash, fills)
    assert summary["cash"] == str(replay.cash)
    assert summary["realized_pnl"] == str(replay.realized)
    assert summary["unrealized_pnl"] == str(replay.unrealized(marks))
    assert Decimal(summary["equity"]) - cfg.execution.initial_cash == Decimal(summary["net_pnl"])

    # Kill switch: a halt cancels every open order, reaches every shard (which stop sending
    # intents), and nothing more fills.
    ray.get(topo.risk_gate.halt.remote("test halt"))
    after = Ledger(ledger_path)
    assert not ray.get(topo.execution.open_orders.remote())
    filled_before = len(after.fills())
    suppressed_before = sum(s["intents_suppressed"] for s in ray.get([s.stats.remote() for s in topo.shards]))
    more = list(SyntheticMarket(seed=22, start_ns=ticks[-1].ts + 60 * 10**9).ticks(1800))
    publish(more, producer, topic)
    wait_consumed(topo, total + len(more))
    assert len(after.fills()) == filled_before
    stats = ray.get([s.stats.remote() for s in topo.shards])
    assert all(s["trading_state"] == "HALTED" for s in stats)
    assert sum(s["intents_suppressed"] for s in stats) > suppressed_before
    state = ray.get(topo.risk_gate.state.remote())
    assert state["state"] == "HALTED" and state["halt_reason"] == "test halt"
    assert [e["state"] for e in after.risk_events()][-1:] == ["HALTED"]

    # The gate crashes while halted: Ray restarts it, HALTED survives (persisted), and the
    # new gate knows no shard. A resume still reaches them: the state rides on every reply,
    # so the shards' next batch (bars only, they send no intents) brings ACTIVE back.
    os.kill(int(ray.get(topo.risk_gate.pid.remote())), signal.SIGKILL)
    state = ray.get(topo.risk_gate.state.remote(), timeout=60)  # answered by the restarted gate
    assert state["state"] == "HALTED" and state["halt_reason"] == "test halt"
    ray.get(topo.risk_gate.resume.remote())
    version = ray.get(topo.risk_gate.state.remote())["state_version"]
    orders_before = len(after.order_states())
    later = list(SyntheticMarket(seed=23, start_ns=more[-1].ts + 60 * 10**9).ticks(1800))
    publish(later, producer, topic)
    wait_consumed(topo, total + len(more) + len(later))
    stats = ray.get([s.stats.remote() for s in topo.shards])
    assert [(s["trading_state"], s["trading_state_version"]) for s in stats] == [("ACTIVE", version)] * 2
    assert len(after.order_states()) > orders_before  # trading again
    recon = ray.get(topo.execution.reconcile.remote())
    assert recon["ok"], recon["mismatches"]


def test_tick_round_trip_through_wire_encoding() -> None:
    t = Tick("ETHUSDT", 1500.25, 0.5, 1_672_531_200_000_000_001)
    assert json.loads(encode_tick(t)) == {"symbol": "ETHUSDT", "price": 1500.25, "size": 0.5, "ts": t.ts}
