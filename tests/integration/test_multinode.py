"""Two Ray nodes on one machine: shards on one, the RiskGate and Execution on the other.

Proves that orders reach Execution only through the gate (placement by custom resource,
and Execution refusing any caller without the gate's key, from either node), and measures
how fast a halt stops trading everywhere: from the halt command to the last order
Execution accepted, and to every shard knowing.

The two-node ``ray.cluster_utils.Cluster`` runs in a process of its own
(``multinode_drill.py``) with its own temp dir and auth mode, so nothing of it can leak into
the Ray clusters of the other test modules; afterwards every process marked with its temp
dir is stopped, whatever happened.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from raytrade.adapters.embedded_broker import EmbeddedBroker
from raytrade.adapters.lifeline import Watchdog
from tests.integration.ray_start_cluster import stop_marked

REPO = Path(__file__).resolve().parents[2]
HALT_BUDGET_MS = 100.0  # halt command -> the last order Execution accepted (the budget)
# Halt command -> every shard holds HALTED: two hops across nodes on two busy cores (measured
# 10-70 ms here). The gate denies every intent from the halt on, so this bounds wasted calls only.
SHARD_ACK_BUDGET_MS = 250.0
DRILL_TIMEOUT_S = 420


def test_orders_cross_nodes_only_through_the_gate_and_a_halt_stops_everything_fast(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    ray_tmp = tempfile.mkdtemp(prefix="rt-mn-")  # short: Ray's unix socket paths must fit 107 bytes
    Path(ray_tmp, "ray").mkdir()
    out = tmp_path / "drill.json"
    # Marked: if this test process dies, a watchdog kills the drill and its cluster and removes the folder.
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_TMPDIR": ray_tmp}
    cmd = [sys.executable, "-m", "tests.integration.multinode_drill", broker.bootstrap_servers, str(tmp_path), str(out)]
    watchdog = Watchdog().start()
    watchdog.kill_marked(ray_tmp)
    watchdog.remove(ray_tmp)
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        log, _ = proc.communicate(timeout=DRILL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the process group this test started
        log, _ = proc.communicate()
    finally:
        stop_marked(ray_tmp)
        watchdog.close()
    assert proc.returncode == 0 and out.exists(), f"drill failed ({proc.returncode}):\n{log[-6000:]}"
    r = json.loads(out.read_text())

    # Placement: the engine on one node, the shards on the other, each by its custom resource.
    assert len(r["engine_nodes"]) == 1 and len(r["shard_nodes"]) == 1
    engine, shards = r["engine_nodes"][0], r["shard_nodes"][0]
    assert engine != shards
    assert "risk_node" in r["node_resources"][engine] and "shard_node" in r["node_resources"][shards]
    # Nothing but the gate can trade: a caller on the shards' node, and the driver, are refused.
    assert r["intruder"].startswith("refused: "), r["intruder"]
    assert r["driver"].startswith("refused: "), r["driver"]

    # The last order Execution accepted, and every shard learning of the halt: both within budget.
    last_accept_ms, shard_ms = r["last_accept_after_halt_ms"], r["shard_ack_ms"]
    assert r["shard_states"] == ["HALTED"] * len(shard_ms) and len(shard_ms) == 2
    assert last_accept_ms <= HALT_BUDGET_MS, (last_accept_ms, shard_ms)
    assert max(shard_ms) <= SHARD_ACK_BUDGET_MS, (last_accept_ms, shard_ms)
    assert r["intents_suppressed"] > 0  # the shards kept seeing signals, and sent none
    # Every order in the ledger was decided by the gate; nothing is left working; books exact.
    gate = r["gate"]
    assert gate["state"] == "HALTED" and gate["halt_reason"] == "multi-node drill"
    assert gate["approved"] + gate["denied"] == r["orders"] > 20
    assert r["open_orders"] == 0
    assert r["reconciliation"]["ok"], r["reconciliation"]["mismatches"]

    bench = Path(os.environ.get("RAYTRADE_BENCH_DIR", tmp_path)) / "halt_propagation.json"
    bench.write_text(
        json.dumps({"last_accept_after_halt_ms": last_accept_ms, "shard_ack_ms": shard_ms, "orders": r["orders"]})
    )
    print(f"halt -> last accepted order {last_accept_ms:.2f} ms; -> shards {shard_ms} ms; orders {r['orders']}")
