"""Run one seeded feed through a full topology, optionally with a fault mid-stream; read the ledger."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import ray

from raytrade.adapters import kafka
from raytrade.adapters.feed import publish
from raytrade.adapters.kafka.rolling import RollingProducer
from raytrade.adapters.ledger import Ledger
from raytrade.cluster.config import RunConfig, load_config
from raytrade.cluster.ticks_log import GenerationPruner, TicksLog, create_topics
from raytrade.cluster.topology import Topology, build
from raytrade.domain.portfolio import Portfolio
from raytrade.domain.shard_engine import ShardModel
from raytrade.domain.ticks import Tick

REPO = Path(__file__).resolve().parents[2]

Fault = Callable[[Topology], None]

# The ledger's deterministic content: everything but wall-clock times.
ORDER_COLUMNS = "order_id, strategy, symbol, side, qty, ref_price, status, filled_qty, reason, score"
FILL_COLUMNS = "fill_id, order_id, symbol, side, qty, price, fee"


@dataclass
class Outcome:
    """What a run left behind."""

    orders: list[tuple[Any, ...]]
    fills: list[tuple[Any, ...]]
    pnl: dict[str, Decimal]
    positions: dict[str, str]
    shard_stats: list[dict[str, Any]]
    gate_state: dict[str, Any]


def kill_process(actor: Any) -> int:
    """SIGKILL the actor's worker process (a crash, not a clean exit); return the old pid."""
    pid = int(ray.get(actor.pid.remote()))
    os.kill(pid, signal.SIGKILL)
    return pid


def config(tmp: Path, topic: str, **extra: str) -> RunConfig:
    env = {
        "RAYTRADE__KAFKA__TOPIC": topic,
        "RAYTRADE__KAFKA__DEAD_LETTER_TOPIC": f"{topic}.dlq",
        "RAYTRADE__KAFKA__GROUP_ID": f"g-{topic}",
        "RAYTRADE__STRATEGIES__0__PARAMS__LONG_ABOVE": "0.51",
        "RAYTRADE__STRATEGIES__0__PARAMS__SHORT_BELOW": "0.49",
        "RAYTRADE__STATE_DIR": str(tmp / "state"),
        "RAYTRADE__BATCH_SIZE": "500",
        # Every risk check of configs/default.yaml stays on (rates, VaR, correlation, drawdown
        # breakers, ATR stops): the gate takes the shards' groups in event-time order, and a
        # restarted gate resumes its rule state from the ledger, so runs compare fill for fill.
        # Tighter portfolio limits than the default, so that they bind on this feed: the seed-31
        # two hours make 5 ATR stops and deny 53 orders on VaR, 34 on net and 7 on correlated exposure.
        "RAYTRADE__RISK__VAR_QUANTILE": "0.95",
        "RAYTRADE__RISK__VAR_HORIZON_BARS": "10",
        "RAYTRADE__RISK__MAX_VAR": "110",
        "RAYTRADE__RISK__MAX_CORRELATED_EXPOSURE": "21000",
        "RAYTRADE__RISK__MAX_NET_EXPOSURE": "20000",
        **{f"RAYTRADE__{k.upper()}": v for k, v in extra.items()},
    }
    return load_config(REPO / "configs" / "default.yaml", env=env)


def kill_all(topo: Topology) -> None:
    """Kill every actor of ``topo`` for good (no restart): the end of a test's system."""
    for a in [*topo.shards, topo.risk_gate, topo.execution]:
        ray.kill(a, no_restart=True)


def consumed(topo: Topology) -> int:
    return sum(s["consumed"] for s in ray.get([s.stats.remote() for s in topo.shards], timeout=60))


def wait_for(pred: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


Rows = list[tuple[Any, ...]]


def read_ledger(path: str, initial_cash: Decimal) -> tuple[Rows, Rows, dict[str, Decimal], dict[str, str]]:
    ledger = Ledger(path)
    orders = ledger._db.execute(f"SELECT {ORDER_COLUMNS} FROM orders ORDER BY order_id").fetchall()
    fills = ledger._db.execute(f"SELECT {FILL_COLUMNS} FROM fills ORDER BY fill_id").fetchall()
    book = Portfolio.from_fills(initial_cash, ledger.fills())
    ledger.close()
    pnl = {"cash": book.cash, "realized": book.realized, "fees": book.fees}
    return orders, fills, pnl, {s: str(q) for s, q in sorted(book.positions().items())}


def run_feed(
    bootstrap: str,
    tmp: Path,
    scorer: ShardModel,
    ticks: list[Tick],
    *,
    fault: Fault | None = None,
    after: Fault | None = None,
    fault_at: float = 0.4,
    rate: float = 8000.0,
    timeout_s: float = 120.0,
    roll_records: int | None = None,
    **extra: str,
) -> Outcome:
    """Publish ``ticks`` at ``rate`` to a new topic, trade them, inject ``fault`` once
    ``fault_at`` of them were consumed, wait until every tick is consumed, call ``after``,
    read the ledger. ``roll_records``: a rolled log of generations of that many records, the
    consumed ones deleted as the snapshots pass them (as ``raytrade run`` does on its broker)."""
    topic = f"chaos-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True, exist_ok=True)
    cfg = config(tmp, topic, **extra)
    log = TicksLog(bootstrap, "confluent", topic, cfg.kafka.partitions, roll_records is not None)
    create_topics(cfg, log)
    ledger = str(tmp / "ledger.db")
    topo = build(cfg, bootstrap, scorer, ledger, rolling=log.rolling)
    runs = [s.run.remote() for s in topo.shards]
    producer: kafka.Producer = kafka.producer("confluent", bootstrap)
    pruner = None
    if roll_records is not None:
        producer = RollingProducer(producer, log.admin(), topic, cfg.kafka.partitions, roll_records)
        pruner = GenerationPruner(log)
    feed = threading.Thread(target=publish, args=(ticks, producer, topic), kwargs={"rate": rate}, daemon=True)
    feed.start()

    def progressed(share: float) -> bool:
        if pruner is not None:
            pruner.prune(ray.get([s.stats.remote() for s in topo.shards], timeout=60))
        return consumed(topo) >= share * len(ticks)

    try:
        if fault is not None:
            wait_for(lambda: progressed(fault_at), timeout_s, "the fault point")
            fault(topo)
        wait_for(lambda: progressed(1.0), timeout_s, f"{len(ticks)} ticks consumed")
        feed.join(timeout=30)
        # The ledger as the stream left it (``after`` may halt, which cancels open orders).
        outcome = read_ledger(ledger, cfg.execution.initial_cash)
        if after is not None:
            after(topo)
        stats = ray.get([s.stats.remote() for s in topo.shards], timeout=60)
        gate = ray.get(topo.risk_gate.state.remote(), timeout=60)
        for s in topo.shards:
            s.stop.remote()
        ray.get(runs, timeout=60)
    finally:
        kill_all(topo)
        if pruner is not None:
            gate["deleted_generations"] = len(pruner.deleted)
            pruner.close()
    return Outcome(*outcome, stats, gate)
