"""Streaming benchmark: shards (validate + bars + features + scoring + strategy) -> RiskGate ->
Execution on the embedded broker, for each Kafka client backend.

Per backend, in one run:
- ``raw_consume``: one plain client of the same backend reading a backlog of N ticks (the ceiling);
- ``throughput``: the shards draining the same size of backlog (ticks/s, ratio to the ceiling);
- ``soak``: a feed at a fixed rate for ``--soak-s`` seconds: in-engine latency (consumed ->
  accepted by Execution) p50/p99/p999, end-to-end latency (produced -> accepted) p50/p99, and the
  memory (RSS) of every engine process sampled through the soak.

Writes JSON (default ``runs/bench/pipeline.json``). Loopback only.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import ray

from raytrade.adapters import kafka
from raytrade.adapters.embedded_broker import EmbeddedBroker
from raytrade.adapters.feed import PublishCount, publish
from raytrade.adapters.ledger import Ledger
from raytrade.adapters.synthetic_market import SyntheticMarket
from raytrade.cluster.config import RunConfig, load_config
from raytrade.cluster.topology import Topology, build
from raytrade.domain.stats import percentile
from raytrade.domain.ticks import Tick
from raytrade.training.bootstrap import ensure_model
from raytrade.training.registry import ModelRegistry

REPO = Path(__file__).resolve().parents[1]
NS = 1_000_000_000


def market(seed: int, start_ns: int = 1_672_531_200 * NS) -> Iterator[Tick]:
    return SyntheticMarket(seed=seed, start_ns=start_ns).ticks(10 * 365 * 86_400)


def produce(bootstrap: str, topic: str, ticks: list[Tick]) -> None:
    """Write a backlog (with the fast client: producing is not what is measured)."""
    producer = kafka.producer("confluent", bootstrap)
    publish(ticks, producer, topic)
    producer.close()


def create_topics(bootstrap: str, *topics: tuple[str, int]) -> None:
    adm = kafka.admin("confluent", bootstrap)
    for name, parts in topics:
        adm.create_topic(name, parts)
    adm.close()


def raw_consume(backend: kafka.Backend, bootstrap: str, topic: str, n: int, batch: int) -> dict[str, Any]:
    """The ceiling: one plain consumer of ``backend`` reading ``n`` messages from both partitions."""
    c = kafka.consumer(backend, bootstrap, f"raw-{uuid.uuid4().hex[:6]}")
    c.assign(topic, [0, 1])
    got = 0
    first = c.poll_batch(batch, 5.0)  # the clock starts at the first message, as for the shards
    t0 = time.perf_counter()
    got += len(first)
    while got < n:
        got += len(c.poll_batch(batch, 1.0))
    dt = time.perf_counter() - t0
    c.close()
    return {"messages": got, "seconds": round(dt, 3), "msgs_per_s": round(got / dt, 1)}


def shard_stats(topo: Topology) -> list[dict[str, Any]]:
    return list(ray.get([s.stats.remote() for s in topo.shards]))


def wait_consumed(topo: Topology, n: int, timeout_s: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        stats = shard_stats(topo)
        if sum(s["consumed"] for s in stats) >= n:
            return stats
        if time.monotonic() > deadline:
            raise TimeoutError(f"consumed {sum(s['consumed'] for s in stats)} of {n}")
        time.sleep(0.05)


def quantiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p99": None, "p999": None, "max": None}
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 3),
        "p99": round(percentile(values, 99), 3),
        "p999": round(percentile(values, 99.9), 3),
        "max": round(max(values), 3),
    }


def record_timestamps(bootstrap: str, topic: str, wanted: set[tuple[int, int]]) -> dict[tuple[int, int], int]:
    """Producer create time (ms) of the records at ``wanted`` (partition, offset)."""
    c = kafka.consumer("confluent", bootstrap, f"ts-{uuid.uuid4().hex[:6]}")
    c.assign(topic, [0, 1], {p: min((o for q, o in wanted if q == p), default=0) for p in (0, 1)})
    out: dict[tuple[int, int], int] = {}
    idle = 0
    while len(out) < len(wanted) and idle < 10:
        recs = c.poll_batch(5000, 0.5)
        idle = 0 if recs else idle + 1
        out.update(((r.partition, r.offset), r.timestamp_ms) for r in recs if (r.partition, r.offset) in wanted)
    c.close()
    return out


def processes(topo: Topology, broker: EmbeddedBroker) -> dict[str, psutil.Process]:
    procs = {f"shard{i}": psutil.Process(ray.get(s.pid.remote())) for i, s in enumerate(topo.shards)}
    procs["risk_gate"] = psutil.Process(ray.get(topo.risk_gate.pid.remote()))
    procs["execution"] = psutil.Process(ray.get(topo.execution.pid.remote()))
    if broker.pid is not None:
        procs["broker"] = psutil.Process(broker.pid)
    procs["driver"] = psutil.Process(os.getpid())
    return procs


def slope_mb_per_min(samples: list[tuple[float, float]]) -> float:
    if len(samples) < 3:
        return 0.0
    xs, ys = [t / 60 for t, _ in samples], [m for _, m in samples]
    return round(statistics.linear_regression(xs, ys).slope, 3)


def soak(
    topo: Topology,
    broker: EmbeddedBroker,
    cfg: RunConfig,
    bootstrap: str,
    start_ns: int,
    rate: float,
    seconds: float,
    linger_ms: int,
) -> dict[str, Any]:
    """Feed at ``rate`` for ``seconds``; latency from the ledger, memory sampled every ~5 s."""
    topic = cfg.kafka.topic
    before = sum(s["consumed"] for s in shard_stats(topo))
    count = PublishCount()
    stop = threading.Event()
    # Tansu's memory storage costs more per request the more record batches it holds (measured:
    # its CPU climbs to a full core within a minute at linger 5 ms), so the soak feed batches more.
    producer = kafka.producer("confluent", bootstrap, **{"linger.ms": linger_ms})
    t_start_ns = time.time_ns()
    feed = threading.Thread(
        target=publish,
        args=(market(seed=11, start_ns=start_ns), producer, topic),
        kwargs={"rate": rate, "stop": stop, "count": count},
        daemon=True,
    )
    procs = processes(topo, broker)
    mem: dict[str, list[tuple[float, float]]] = {k: [] for k in procs}
    t0 = time.monotonic()
    feed.start()
    next_sample = t0
    while time.monotonic() - t0 < seconds:
        if time.monotonic() >= next_sample:
            for k, p in procs.items():
                mem[k].append((time.monotonic() - t0, p.memory_info().rss / 2**20))
            next_sample += 5.0
            st = shard_stats(topo)
            done = sum(s["consumed"] for s in st) - before
            ph = {k: round(sum(s["phase_s"][k] for s in st), 1) for k in st[0]["phase_s"]}
            rebuilds = sum(s["consumer_rebuilds"] for s in st)
            lag = sum(sum(s["lag"].values()) for s in st)
            print(
                f"  soak {time.monotonic() - t0:5.0f}s published={count.sent} consumed={done} lag={lag} "
                f"consumer_rebuilds={rebuilds} {ph}",
                file=sys.stderr,
            )
        time.sleep(0.2)
    stop.set()
    feed.join(timeout=60)
    producer.close()
    for k, p in procs.items():
        mem[k].append((time.monotonic() - t0, p.memory_info().rss / 2**20))
    stats = wait_consumed(topo, before + count.sent, 120)
    consumed = sum(s["consumed"] for s in stats) - before
    gate = ray.get(topo.risk_gate.state.remote())
    ex = ray.get(topo.execution.summary.remote({}))
    ledger = Ledger(cfg.execution.ledger_path or "")
    rows = ledger._db.execute(
        "SELECT order_id, ts_consumed, ts_accepted FROM orders WHERE ts_consumed >= ? AND status != 'REJECTED'",
        (t_start_ns,),
    ).fetchall()
    ledger.close()
    in_engine = [(acc - cons) / 1e6 for _, cons, acc in rows]
    wanted = {(int(oid.split(":")[2]), int(oid.split(":")[3])) for oid, _, _ in rows}
    produced_ms = record_timestamps(bootstrap, topic, wanted)
    e2e = []
    for oid, _, acc in rows:
        key = (int(oid.split(":")[2]), int(oid.split(":")[3]))
        if key in produced_ms:
            e2e.append(acc / 1e6 - produced_ms[key])
    return {
        "rate_target": rate,
        "producer_linger_ms": linger_ms,
        "seconds": seconds,
        "ticks_published": count.sent,
        "ticks_consumed": consumed,
        "orders": len(rows),
        "in_engine_latency_ms": quantiles(in_engine),
        "end_to_end_latency_ms": {**quantiles(e2e), "resolution_ms": 1},
        "shard_phase_s": [s["phase_s"] for s in stats],
        "shard_batches": [s["batches"] for s in stats],
        "consumer_rebuilds": [s["consumer_rebuilds"] for s in stats],
        "gate": {"execute_calls": gate["execute_calls"], "execute_wait_s": gate["execute_wait_s"]},
        "execution": {"calls": ex["execute_calls"], "busy_s": ex["execute_busy_s"]},
        "rss_mb": {
            k: {
                "start": round(v[0][1], 1),
                "end": round(v[-1][1], 1),
                "max": round(max(m for _, m in v), 1),
                "slope_mb_per_min": slope_mb_per_min(v),
            }
            for k, v in mem.items()
        },
    }


@ray.remote(num_cpus=0)
class _Hop:
    """One link of a chain of actors: the same call shape as shard -> gate -> execution."""

    def __init__(self, nxt: Any = None) -> None:
        self.nxt = nxt

    async def call(self, payload: bytes) -> int:
        if self.nxt is None:
            return len(payload)
        return int(await self.nxt.call.remote(payload))


def ray_hop_floor(n: int = 500) -> dict[str, Any]:
    """Latency of a no-op call through two nested actor hops (the floor under the gate path)."""
    end = _Hop.remote()  # type: ignore[attr-defined]
    first = _Hop.remote(end)  # type: ignore[attr-defined]
    ray.get(first.call.remote(b"x"))
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        ray.get(first.call.remote(b"x" * 512))
        samples.append((time.perf_counter() - t0) * 1e3)
    for a in (first, end):
        ray.kill(a)
    return quantiles(samples)


def bench_backend(
    backend: kafka.Backend, args: argparse.Namespace, work: Path, gate_order: str = "event_time"
) -> dict[str, Any]:
    work = work / gate_order
    work.mkdir(parents=True, exist_ok=True)
    broker = EmbeddedBroker(log_path=work / f"tansu-{backend}.log").start()
    topo: Topology | None = None
    runs: list[Any] = []
    try:
        bootstrap = broker.bootstrap_servers
        ticks = list(itertools.islice(market(seed=3), args.ticks))
        create_topics(bootstrap, ("raw", 2), ("ticks", 2), ("ticks.dlq", 1))
        produce(bootstrap, "raw", ticks)
        raw = raw_consume(backend, bootstrap, "raw", len(ticks), args.batch_size)
        print(f"[{backend}, {gate_order}] raw consume: {raw['msgs_per_s']:.0f} msgs/s", file=sys.stderr)

        env = {
            "RAYTRADE__KAFKA__BACKEND": backend,
            "RAYTRADE__STATE_DIR": str(work / f"state-{backend}"),
            "RAYTRADE__OUTPUT_DIR": str(work / f"out-{backend}"),
            "RAYTRADE__EXECUTION__LEDGER_PATH": str(work / f"ledger-{backend}.db"),
            "RAYTRADE__BATCH_SIZE": str(args.batch_size),
            "RAYTRADE__STRATEGIES__0__PARAMS__LONG_ABOVE": "0.505",
            "RAYTRADE__STRATEGIES__0__PARAMS__SHORT_BELOW": "0.495",
            "RAYTRADE__GATE_ORDER": gate_order,
        }
        cfg = load_config(REPO / "configs" / "default.yaml", env=env)
        scorer = ensure_model(ModelRegistry(work / "models"), seed=1, days=1.0, horizon=5, rounds=100)
        produce(bootstrap, "ticks", ticks)
        topo = build(cfg, bootstrap, scorer, str(cfg.execution.ledger_path))
        ray.get([s.stats.remote() for s in topo.shards])  # actors up before the clock starts
        runs = [s.run.remote() for s in topo.shards]
        stats = wait_consumed(topo, len(ticks), 600)
        first = min(s["first_batch_ns"] for s in stats)
        last = max(s["last_batch_ns"] for s in stats)
        rate = len(ticks) / ((last - first) / NS)
        throughput = {
            "ticks": len(ticks),
            "seconds": round((last - first) / NS, 3),
            "ticks_per_s": round(rate, 1),
            "ratio_to_raw_consume": round(rate / raw["msgs_per_s"], 3),
            "orders": sum(s["intents"] for s in stats),
            "batches": sum(s["batches"] for s in stats),
            "shard_phase_s": [s["phase_s"] for s in stats],
        }
        print(
            f"[{backend}] shards: {rate:.0f} ticks/s ({throughput['ratio_to_raw_consume']:.0%} of raw)", file=sys.stderr
        )
        start = ticks[-1].ts + 3600 * NS
        soaked = soak(topo, broker, cfg, bootstrap, start, args.soak_rate, args.soak_s, args.soak_linger_ms)
        lat = soaked["in_engine_latency_ms"]
        print(f"[{backend}] soak: in-engine p50 {lat['p50']} ms p99 {lat['p99']} ms", file=sys.stderr)
        return {"raw_consume": raw, "throughput": throughput, "soak": soaked}
    finally:
        if topo is not None:
            for s in topo.shards:
                s.stop.remote()
            try:
                ray.get(runs, timeout=30)
            finally:
                for a in [*topo.shards, topo.risk_gate, topo.execution]:
                    ray.kill(a, no_restart=True)
        broker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="confluent,kafka-python")
    ap.add_argument("--ticks", type=int, default=200_000, help="backlog size for the throughput phases")
    ap.add_argument("--batch-size", type=int, default=4000)
    ap.add_argument("--soak-s", type=float, default=300.0)
    ap.add_argument("--soak-rate", type=float, default=5000.0, help="ticks/s published during the soak")
    ap.add_argument("--soak-linger-ms", type=int, default=50, help="linger.ms of the soak's producer")
    ap.add_argument(
        "--gate-orders",
        default="event_time,arrival",
        help="RiskGate orders to measure in the same run: event_time (deterministic, the default) and arrival",
    )
    ap.add_argument("--out", default=str(REPO / "runs" / "bench" / "pipeline.json"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="raytrade-bench-"))
    ray.init(
        num_cpus=2,
        object_store_memory=200 * 2**20,
        include_dashboard=False,
        log_to_driver=False,
        _temp_dir=str(work / "ray"),
    )
    try:
        floor = ray_hop_floor()
        print(f"two nested Ray actor hops (no work): p50 {floor['p50']} ms p99 {floor['p99']} ms", file=sys.stderr)
        results = {
            f"{b}/{order}": bench_backend(b, args, work, order)
            for b in args.backends.split(",")
            for order in args.gate_orders.split(",")
        }
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    report = {
        "benchmark": "pipeline",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "ray": ray.__version__},
        "params": vars(args),
        "targets": {"ticks_per_s": 50_000, "ratio_to_raw_consume": 0.25, "in_engine_p50_ms": 2, "in_engine_p99_ms": 10},
        "ray_two_hop_floor_ms": floor,
        "backends": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
