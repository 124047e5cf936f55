"""A broker with memory storage that restarts has lost the log: trading stops, loudly."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import ray

from raytrade.adapters import kafka
from raytrade.adapters.embedded_broker import EmbeddedBroker
from raytrade.adapters.feed import publish
from raytrade.adapters.ledger import Ledger
from raytrade.adapters.synthetic_market import SyntheticMarket
from raytrade.cluster.topology import build
from raytrade.training.bootstrap import ensure_model
from raytrade.training.registry import ModelRegistry
from tests.integration.chaos_harness import config, consumed, kill_all, wait_for


def test_broker_restart_with_memory_storage_halts_trading(ray_local: None, tmp_path: Path) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log").start()
    topo = None
    try:
        cfg = config(tmp_path, "ticks")
        adm = kafka.admin("confluent", broker.bootstrap_servers)
        adm.create_topic("ticks", 2)
        adm.create_topic("ticks.dlq", 1)
        adm.close()
        scorer = ensure_model(ModelRegistry(tmp_path / "models"), seed=1, days=0.5, horizon=5, rounds=30)
        ledger = str(tmp_path / "ledger.db")
        topo = build(cfg, broker.bootstrap_servers, scorer, ledger)
        runs = [s.run.remote() for s in topo.shards]
        ticks = list(SyntheticMarket(seed=5).ticks(1800))
        producer = kafka.producer("confluent", broker.bootstrap_servers)
        publish(ticks, producer, "ticks")
        producer.close()
        del producer
        wait_for(lambda: consumed(topo) >= len(ticks), 60, "the first feed")
        orders_before = sum(Ledger(ledger).status_counts().values())

        port = broker.port
        broker.stop()
        broker = EmbeddedBroker(port=port, log_path=tmp_path / "tansu2.log").start()  # empty: memory storage
        adm = kafka.admin("confluent", broker.bootstrap_servers)
        adm.create_topic("ticks", 2)  # an operator (or auto-creation) brings the topic back, empty
        adm.close()
        more = list(SyntheticMarket(seed=6, start_ns=ticks[-1].ts + 60 * 10**9).ticks(900))
        producer = kafka.producer("confluent", broker.bootstrap_servers)
        publish(more, producer, "ticks")
        producer.close()
        del producer

        for ref in runs:
            with pytest.raises(ray.exceptions.RayTaskError, match="DataLossError"):
                ray.get(ref, timeout=60)
        state = ray.get(topo.risk_gate.state.remote())
        assert state["state"] == "HALTED"
        assert "data loss" in state["halt_reason"] and "ticks" in state["halt_reason"]
        stats = ray.get([s.stats.remote() for s in topo.shards])
        assert all(s["error"] and s["error"].startswith("DataLossError") for s in stats)
        time.sleep(1.0)
        # Nothing was invented from the new log: no order after the loss.
        assert sum(Ledger(ledger).status_counts().values()) == orders_before
        assert sum(s["consumed"] for s in stats) == len(ticks)
    finally:
        if topo is not None:
            kill_all(topo)
        broker.stop()
