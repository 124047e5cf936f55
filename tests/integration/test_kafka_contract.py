"""The same contract, on the real embedded broker, for both client backends."""

from __future__ import annotations

import time
import uuid

import pytest

from raytrade.adapters import kafka
from raytrade.adapters.embedded_broker import EmbeddedBroker
from raytrade.adapters.feed import publish
from raytrade.adapters.synthetic_market import SyntheticMarket
from raytrade.domain.ticks import Tick, TickValidator


def drain(c: kafka.Consumer, want: int, timeout_s: float = 20.0) -> list[kafka.Record]:
    got: list[kafka.Record] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < want and time.monotonic() < deadline:
        got += c.poll_batch(500, 0.05)
    return got


@pytest.mark.parametrize("backend", kafka.BACKENDS)
def test_produce_consume_commit_resume(broker: EmbeddedBroker, backend: kafka.Backend) -> None:
    topic, group = f"t-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    adm = kafka.admin(backend, broker.bootstrap_servers)
    adm.create_topic(topic, 3)
    adm.create_topic(topic, 3)  # idempotent
    with pytest.raises(kafka.KafkaError, match="expected 5"):
        adm.create_topic(topic, 5)
    assert adm.partitions(topic) == 3
    adm.close()

    ticks = list(SyntheticMarket(seed=5).ticks(120))
    sent = publish(ticks, kafka.producer(backend, broker.bootstrap_servers), topic)
    assert sent == len(ticks) > 500

    c = kafka.consumer(backend, broker.bootstrap_servers, group)
    c.assign(topic, [0, 1, 2])
    first = drain(c, len(ticks))
    assert len(first) == len(ticks)
    by_symbol: dict[bytes, set[int]] = {}
    for r in first:
        assert r.key is not None
        by_symbol.setdefault(r.key, set()).add(r.partition)
        assert r.timestamp_ms > 0
    assert all(len(p) == 1 for p in by_symbol.values())  # key = symbol pins a partition
    # Per-partition order is the produce order, so every symbol's ticks arrive in time order.
    v = TickValidator({t.symbol for t in ticks})
    assert all(isinstance(v.validate(r.value, r.key), Tick) for r in first)

    ends = {p: 0 for p in range(3)}
    for r in first:
        ends[r.partition] = max(ends[r.partition], r.offset + 1)
    busiest = max(ends, key=lambda p: ends[p])
    commit_at = {p: e for p, e in ends.items() if e}
    commit_at[busiest] = ends[busiest] - 7  # pretend the last 7 were not processed
    c.commit(commit_at)
    c.close()

    again = kafka.consumer(backend, broker.bootstrap_servers, group)
    assert again.committed(topic, [0, 1, 2]) == {p: commit_at.get(p) for p in range(3)}
    again.assign(topic, [0, 1, 2])
    replay = drain(again, 7, timeout_s=10)
    time.sleep(0.3)
    replay += again.poll_batch(500, 0.2)
    again.close()
    assert [(r.partition, r.offset) for r in replay] == [(busiest, ends[busiest] - 7 + i) for i in range(7)]


def test_both_backends_place_keys_on_the_same_partitions(broker: EmbeddedBroker) -> None:
    placements = []
    for backend in kafka.BACKENDS:
        topic = f"p-{uuid.uuid4().hex[:8]}"
        kafka.admin(backend, broker.bootstrap_servers).create_topic(topic, 4)
        p = kafka.producer(backend, broker.bootstrap_servers)
        for sym in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "AAPL", "MSFT"):
            p.produce(topic, sym.encode(), b"{}")
        p.flush()
        c = kafka.consumer(backend, broker.bootstrap_servers, f"g-{topic}")
        c.assign(topic, [0, 1, 2, 3])
        placements.append(sorted((r.key or b"", r.partition) for r in drain(c, 6)))
        c.close()
    assert placements[0] == placements[1] and len(placements[0]) == 6


def test_embedded_broker_lifecycle() -> None:
    b = EmbeddedBroker().start()
    pid = b.pid
    assert b.alive() and pid is not None
    b.stop()
    assert not b.alive() and b.pid is None
    import os

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped, not a zombie we left behind
