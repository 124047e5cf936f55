"""Backpressure: a slow venue slows intake, the backlog stays in Kafka, lag is measured and exported."""

from __future__ import annotations

import itertools
import re
import time
import urllib.request
import uuid
from pathlib import Path

import psutil
import ray

from raytrade.adapters import kafka
from raytrade.adapters.embedded_broker import EmbeddedBroker
from raytrade.adapters.feed import publish
from raytrade.adapters.synthetic_market import SyntheticMarket
from raytrade.cluster.topology import build
from raytrade.training.bootstrap import ensure_model
from raytrade.training.registry import ModelRegistry
from tests.integration.chaos_harness import config, kill_all, wait_for

N_TICKS = 60_000


def scrape_lag(port: int) -> dict[str, float]:
    """``raytrade_consumer_lag`` per partition from the node's Prometheus endpoint."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    pattern = r'^ray_raytrade_consumer_lag\{.*partition="(\d+)".*\} (\S+)$'
    return {m.group(1): float(m.group(2)) for m in re.finditer(pattern, body, re.M)}


def test_slow_venue_slows_intake_and_lag_is_exported(ray_local: int, broker: EmbeddedBroker, tmp_path: Path) -> None:
    topic = f"bp-{uuid.uuid4().hex[:8]}"
    cfg = config(
        tmp_path,
        topic,
        execution__venue_latency_ms="100",
        strategies__0__params__long_above="0.5",
        strategies__0__params__short_below="0.5",
    )
    adm = kafka.admin("confluent", broker.bootstrap_servers)
    adm.create_topic(topic, 2)
    adm.create_topic(f"{topic}.dlq", 1)
    adm.close()
    scorer = ensure_model(ModelRegistry(tmp_path / "models"), seed=1, days=0.5, horizon=5, rounds=30)
    topo = build(cfg, broker.bootstrap_servers, scorer, str(tmp_path / "ledger.db"))
    try:
        ticks = list(itertools.islice(SyntheticMarket(seed=9).ticks(4 * 3600), N_TICKS))
        procs = [psutil.Process(ray.get(s.pid.remote())) for s in topo.shards]
        rss_before = sum(p.memory_info().rss for p in procs)
        producer = kafka.producer("confluent", broker.bootstrap_servers)
        publish(ticks, producer, topic)  # the whole backlog at once
        producer.close()
        runs = [s.run.remote() for s in topo.shards]

        started = time.monotonic()
        timeline: list[tuple[float, int, int]] = []  # (seconds, position, lag)
        while time.monotonic() - started < 6.0:
            stats = ray.get([s.stats.remote() for s in topo.shards])
            position = sum(sum(s["next_offsets"].values()) for s in stats)
            lag = sum(sum(s["lag"].values()) for s in stats)
            timeline.append((time.monotonic() - started, position, lag))
            if position >= N_TICKS:
                break
            time.sleep(0.2)
        # Each batch with orders waits 100 ms on the venue: intake is throttled and the
        # backlog waits in Kafka, visible as lag, instead of piling up inside the engine.
        throttled = [(t, c, lag) for t, c, lag in timeline if t > 1.0 and lag > N_TICKS * 0.2]
        assert throttled, timeline
        # The lag is the log end minus the shards' position (Tansu's end trails by < 1 producer batch).
        _, position, lag = throttled[-1]
        assert N_TICKS - 2_000 <= position + lag <= N_TICKS, throttled[-1]
        gate = ray.get(topo.risk_gate.state.remote())
        assert gate["inflight"] <= 2  # at most one batch per shard waits on Execution

        exported: dict[str, float] = {}

        def lag_exported() -> bool:
            exported.update(scrape_lag(ray_local))
            return set(exported) == {"0", "1"}

        # Ray's metrics agent exports every ~10 s: the gauge of both partitions shows up.
        wait_for(lag_exported, 60, "the lag metric on the Prometheus endpoint")
        assert all(v >= 0 for v in exported.values())

        def drained() -> bool:
            st = ray.get([s.stats.remote() for s in topo.shards])
            return int(sum(s["consumed"] for s in st)) >= N_TICKS

        wait_for(drained, 180, "the backlog to drain")
        rss_after = sum(p.memory_info().rss for p in procs)
        # A backlog of 30k ticks neither queued inside the shards nor grew their memory much.
        assert rss_after - rss_before < 64 * 2**20, (rss_before, rss_after)
        for s in topo.shards:
            s.stop.remote()
        ray.get(runs, timeout=60)
    finally:
        kill_all(topo)
