"""Two Ray nodes on one machine: shards on one, the RiskGate and Execution on the other.

Proves that orders reach Execution only through the gate (placement by custom resource,
and Execution refusing any caller without the gate's key, from either node), and measures
how fast a halt stops trading everywhere: from the halt command to the last order
Execution accepted, and to every shard knowing.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from ray.cluster_utils import Cluster

from raytrade.actors.execution import NotTheGateError
from raytrade.adapters import kafka
from raytrade.adapters.embedded_broker import EmbeddedBroker
from raytrade.adapters.feed import publish
from raytrade.adapters.ledger import Ledger
from raytrade.adapters.synthetic_market import SyntheticMarket
from raytrade.cluster.topology import Topology, build
from raytrade.domain.orders import OrderStatus
from raytrade.training.bootstrap import ensure_model
from raytrade.training.registry import ModelRegistry
from tests.integration.chaos_harness import config, kill_all

HALT_BUDGET_MS = 100.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Head node (the shards' resource) + a second node (the engine's resource), small and local."""
    tmp = tempfile.mkdtemp(prefix="rt-mn-")
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_TMPDIR")}
    os.environ.update(RAY_AUTH_MODE="disabled", RAY_TMPDIR=tmp)
    Path(tmp, "ray").mkdir()
    c = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "resources": {"shard_node": 8},
            "object_store_memory": 80 * 1024 * 1024,
            "include_dashboard": False,
        },
    )
    c.add_node(num_cpus=1, resources={"risk_node": 8}, object_store_memory=80 * 1024 * 1024)
    ray.init(address=c.address, log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()  # type: ignore[no-untyped-call]
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@ray.remote(num_cpus=0, resources={"shard_node": 1})
class Intruder:
    """Something on the shards' node that tries to place an order with Execution directly."""

    def try_execute(self, execution: Any, key: str) -> str:
        try:
            ray.get(execution.execute.remote([], [], key))
        except NotTheGateError as exc:
            return f"refused: {exc}"
        return "accepted"


def test_orders_cross_nodes_only_through_the_gate_and_a_halt_stops_everything_fast(
    cluster: Cluster, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    topic = f"ticks-{uuid.uuid4().hex[:6]}"
    cfg = config(
        tmp_path,
        topic,
        placement__engine__resources="{risk_node: 1}",
        placement__shards__resources="{shard_node: 1}",
    )
    adm = kafka.admin("confluent", broker.bootstrap_servers)
    adm.create_topic(topic, 2)
    adm.create_topic(f"{topic}.dlq", 1)
    model = ensure_model(ModelRegistry(tmp_path / "models"), seed=1, days=0.5, horizon=5, rounds=30)
    ledger_path = str(tmp_path / "ledger.db")
    topo: Topology = build(cfg, broker.bootstrap_servers, model, ledger_path)
    try:
        engine_nodes = set(ray.get([topo.execution.node_id.remote(), topo.risk_gate.node_id.remote()]))
        shard_nodes = set(ray.get([s.node_id.remote() for s in topo.shards]))
        assert len(engine_nodes) == 1 and len(shard_nodes) == 1 and engine_nodes != shard_nodes

        # Nothing but the gate can trade: a caller on the shards' node, or this driver, is refused.
        intruder = Intruder.remote()  # type: ignore[attr-defined]
        assert ray.get(intruder.try_execute.remote(topo.execution, "guess")).startswith("refused: ")
        with pytest.raises(NotTheGateError):
            ray.get(topo.execution.execute.remote([], [], ""))

        runs = [s.run.remote() for s in topo.shards]
        ticks = list(SyntheticMarket(seed=31).ticks(6 * 3600))
        producer = kafka.producer("confluent", broker.bootstrap_servers)
        chunk = len(ticks) // 60

        def feed() -> None:  # a steady stream, so orders are flowing when the halt comes
            for i in range(0, len(ticks), chunk):
                publish(ticks[i : i + chunk], producer, topic)
                time.sleep(0.25)

        feeder = threading.Thread(target=feed)
        feeder.start()
        ledger = Ledger(ledger_path)
        deadline = time.monotonic() + 90
        while ledger.status_counts().get(OrderStatus.FILLED.value, 0) < 20:
            assert time.monotonic() < deadline, f"no trading yet: {ledger.status_counts()}"
            time.sleep(0.2)
        halt_ns = time.time_ns()
        ray.get(topo.risk_gate.halt.remote("multi-node drill"))
        feeder.join()
        total = len(ticks)
        deadline = time.monotonic() + 120
        while sum(s["consumed"] for s in ray.get([s.stats.remote() for s in topo.shards])) < total:
            assert time.monotonic() < deadline, "shards did not consume the stream"
            time.sleep(0.2)

        # The last order Execution accepted, and every shard learning of the halt: both within budget.
        accepted = ledger._rows("SELECT MAX(ts_accepted) FROM orders WHERE status != 'REJECTED'")[0][0]
        last_accept_ms = (int(accepted) - halt_ns) / 1e6
        stats = ray.get([s.stats.remote() for s in topo.shards])
        shard_ms = [(s["trading_state_at_ns"] - halt_ns) / 1e6 for s in stats]
        assert all(s["trading_state"] == "HALTED" for s in stats)
        assert last_accept_ms <= HALT_BUDGET_MS and max(shard_ms) <= HALT_BUDGET_MS, (last_accept_ms, shard_ms)
        assert sum(s["intents_suppressed"] for s in stats) > 0  # the shards kept seeing signals, sent none
        # Every order in the ledger was decided by the gate; nothing is left working.
        gate = ray.get(topo.risk_gate.state.remote())
        orders = ledger.order_states()
        assert gate["approved"] + gate["denied"] == len(orders) > 20
        assert not ray.get(topo.execution.open_orders.remote())
        recon = ray.get(topo.execution.reconcile.remote())
        assert recon["ok"], recon["mismatches"]
        out = Path(os.environ.get("RAYTRADE_BENCH_DIR", tmp_path)) / "halt_propagation.json"
        out.write_text(
            json.dumps({"last_accept_after_halt_ms": last_accept_ms, "shard_ack_ms": shard_ms, "orders": len(orders)})
        )
        print(f"halt -> last accepted order {last_accept_ms:.2f} ms; -> shards {shard_ms} ms; orders {len(orders)}")
        for s in topo.shards:
            s.stop.remote()
        ray.get(runs, timeout=30)
    finally:
        kill_all(topo)
