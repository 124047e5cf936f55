"""The multi-node drill, run in a process of its own by ``test_multinode.py``.

``python -m tests.integration.multinode_drill BOOTSTRAP WORK_DIR OUT_JSON`` starts a
``ray.cluster_utils.Cluster`` with two nodes on this machine (head: resource ``shard_node``;
second node: resource ``risk_node``), places the shards on the first and the RiskGate and
Execution on the second, tries to trade around the gate from both the shards' node and the
driver, streams a seeded market, halts mid-stream and writes what it saw to ``OUT_JSON``.
The test asserts on that file. A process of its own keeps the cluster's environment
(``RAY_AUTH_MODE``, ``RAY_TMPDIR``) and processes away from the test session's own Ray.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import ray
from ray.cluster_utils import Cluster

from raytrade.actors.execution import NotTheGateError
from raytrade.adapters import kafka
from raytrade.adapters.feed import publish
from raytrade.adapters.ledger import Ledger
from raytrade.adapters.synthetic_market import SyntheticMarket
from raytrade.cluster.topology import Topology, build
from raytrade.domain.orders import OrderStatus
from raytrade.training.bootstrap import ensure_model
from raytrade.training.registry import ModelRegistry
from tests.integration.chaos_harness import config, kill_all

OBJECT_STORE = 80 * 1024 * 1024


@ray.remote(num_cpus=0, resources={"shard_node": 1})
class Intruder:
    """Something on the shards' node that tries to place an order with Execution directly."""

    def try_execute(self, execution: Any, key: str) -> str:
        try:
            ray.get(execution.execute.remote([], [], key))
        except NotTheGateError as exc:
            return f"refused: {exc}"
        return "accepted"


def start_cluster() -> Cluster:
    c = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "resources": {"shard_node": 8},
            "object_store_memory": OBJECT_STORE,
            "include_dashboard": False,
        },
    )
    c.add_node(num_cpus=1, resources={"risk_node": 8}, object_store_memory=OBJECT_STORE)
    c.wait_for_nodes()  # add_node returns before the node is registered
    return c


def drill(bootstrap: str, work: Path) -> dict[str, Any]:
    topic = f"ticks-{uuid.uuid4().hex[:6]}"
    cfg = config(
        work,
        topic,
        placement__engine__resources="{risk_node: 1}",
        placement__shards__resources="{shard_node: 1}",
    )
    adm = kafka.admin("confluent", bootstrap)
    adm.create_topic(topic, 2)
    adm.create_topic(f"{topic}.dlq", 1)
    adm.close()
    model = ensure_model(ModelRegistry(work / "models"), seed=1, days=0.5, horizon=5, rounds=30)
    ledger_path = str(work / "ledger.db")
    topo: Topology = build(cfg, bootstrap, model, ledger_path)
    out: dict[str, Any] = {}
    try:
        out["engine_nodes"] = sorted(set(ray.get([topo.execution.node_id.remote(), topo.risk_gate.node_id.remote()])))
        out["shard_nodes"] = sorted(set(ray.get([s.node_id.remote() for s in topo.shards])))
        out["node_resources"] = {n["NodeID"]: sorted(n["Resources"]) for n in ray.nodes() if n["Alive"]}  # type: ignore[no-untyped-call]

        # Nothing but the gate can trade: a caller on the shards' node, or this driver.
        intruder = Intruder.remote()  # type: ignore[attr-defined]
        out["intruder"] = ray.get(intruder.try_execute.remote(topo.execution, "guess"))
        try:
            ray.get(topo.execution.execute.remote([], [], ""))
            out["driver"] = "accepted"
        except NotTheGateError as exc:
            out["driver"] = f"refused: {exc}"

        runs = [s.run.remote() for s in topo.shards]
        ticks = list(SyntheticMarket(seed=31).ticks(6 * 3600))
        producer = kafka.producer("confluent", bootstrap)
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
            if time.monotonic() > deadline:
                raise TimeoutError(f"no trading yet: {ledger.status_counts()}")
            time.sleep(0.2)
        halt_ns = time.time_ns()
        ray.get(topo.risk_gate.halt.remote("multi-node drill"))
        feeder.join()
        deadline = time.monotonic() + 120
        while sum(s["consumed"] for s in ray.get([s.stats.remote() for s in topo.shards])) < len(ticks):
            if time.monotonic() > deadline:
                raise TimeoutError("the shards did not consume the stream")
            time.sleep(0.2)

        accepted = ledger._rows("SELECT MAX(ts_accepted) FROM orders WHERE status != 'REJECTED'")[0][0]
        stats = ray.get([s.stats.remote() for s in topo.shards])
        out.update(
            ticks=len(ticks),
            last_accept_after_halt_ms=(int(accepted) - halt_ns) / 1e6,
            shard_ack_ms=[(s["trading_state_at_ns"] - halt_ns) / 1e6 for s in stats],
            shard_states=[s["trading_state"] for s in stats],
            intents_suppressed=sum(s["intents_suppressed"] for s in stats),
            gate=ray.get(topo.risk_gate.state.remote()),
            orders=len(ledger.order_states()),
            open_orders=len(ray.get(topo.execution.open_orders.remote())),
            reconciliation=ray.get(topo.execution.reconcile.remote()),
        )
        ledger.close()
        for s in topo.shards:
            s.stop.remote()
        ray.get(runs, timeout=30)
    finally:
        kill_all(topo)
    return out


def main(bootstrap: str, work: Path, out_path: Path) -> None:
    cluster = start_cluster()
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        try:
            result = drill(bootstrap, work)
        finally:
            ray.shutdown()
    finally:
        cluster.shutdown()  # type: ignore[no-untyped-call]
    out_path.write_text(json.dumps(result, default=str))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
