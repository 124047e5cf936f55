"""Create the actors of one trading system and wire them together."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from raytrade.actors.execution import Execution
from raytrade.actors.market_shard import MarketShard
from raytrade.actors.risk_gate import RiskGate
from raytrade.actors.shard_wiring import ShardKafka
from raytrade.cluster.config import RunConfig
from raytrade.domain.shard_engine import ShardModel


@dataclass
class Topology:
    """Handles of the running actors."""

    execution: Any
    risk_gate: Any
    shards: list[Any]
    # The shards' model in the object store. Held here so a restarted shard can re-read its
    # constructor argument (a model above Ray's inline size is dropped once nothing holds it).
    model_ref: Any = None


def state_dir_for(cfg: RunConfig) -> Path:
    """Where shard snapshots and the kill-switch state live."""
    return Path(cfg.state_dir) if cfg.state_dir else Path(cfg.output_dir) / "state"


EXECUTION_NAME = "execution"
RISK_GATE_NAME = "risk_gate"


def build(
    cfg: RunConfig,
    bootstrap: str,
    model: ShardModel | None,
    ledger_path: str,
    *,
    named: bool = False,
    rolling: bool = False,
) -> Topology:
    """Start Execution, the RiskGate and one MarketShard per partition (static assignment).

    Every actor is restarted by Ray when it dies and recovers its state (see each class).
    ``named``: register Execution and the RiskGate under :data:`EXECUTION_NAME` and
    :data:`RISK_GATE_NAME` in ``cfg.ray.namespace``, where the HTTP gateway finds them.
    ``rolling``: the ticks topic is a rolled log (the embedded broker with ``kafka.roll_records``).
    """
    names: dict[str, dict[str, str]] = {"execution": {}, "risk_gate": {}}
    if named:
        ns = cfg.ray.namespace
        names = {
            "execution": {"name": EXECUTION_NAME, "namespace": ns},
            "risk_gate": {"name": RISK_GATE_NAME, "namespace": ns},
        }
    instruments = [i.instrument() for i in cfg.instruments]
    state_dir = state_dir_for(cfg)
    ex = cfg.execution
    # The capability that lets the gate, and only the gate, place orders with Execution.
    key = secrets.token_hex(16)
    k = cfg.kafka
    ordered = cfg.gate_order == "event_time"
    engine = cfg.placement.engine.options()
    execution = Execution.options(**names["execution"], **engine).remote(  # type: ignore[attr-defined]
        instruments, ex.broker_config(), ledger_path, ex.initial_cash, ex.venue_latency_ms, key
    )
    gate = RiskGate.options(**names["risk_gate"], **engine).remote(  # type: ignore[attr-defined]
        cfg.risk.limits(),
        execution,
        str(state_dir / "risk_gate.json"),
        instruments,
        key,
        shards=k.partitions if ordered else 0,
    )
    wiring = ShardKafka(bootstrap, k.backend, k.topic, k.dead_letter_topic, k.group_id, rolling)
    specs = cfg.strategy_specs()
    model_ref = ray.put(model)
    placement = cfg.placement.shards.options()
    shards = [
        MarketShard.options(**placement).remote(  # type: ignore[attr-defined]
            p,
            [p],
            wiring,
            instruments,
            specs,
            model_ref,
            gate,
            str(state_dir),
            cfg.batch_size,
            initial_equity=ex.initial_cash,
            disable_failing=cfg.on_strategy_error == "disable",
            ordered=ordered,
        )
        for p in range(k.partitions)
    ]
    ray.get(gate.register_shards.remote(shards, ordered))
    return Topology(execution, gate, shards, model_ref)
