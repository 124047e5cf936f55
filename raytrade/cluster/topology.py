"""Create the actors of one trading system and wire them together."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from raytrade.actors.execution import Execution
from raytrade.actors.market_shard import MarketShard, ShardKafka
from raytrade.actors.risk_gate import RiskGate
from raytrade.cluster.config import RunConfig
from raytrade.domain.paper_fills import PaperFillModel
from raytrade.domain.risk import RiskLimits
from raytrade.domain.shard_engine import ShardModel
from raytrade.domain.strategy import ThresholdStrategy


@dataclass
class Topology:
    """Handles of the running actors."""

    execution: Any
    risk_gate: Any
    shards: list[Any]
    # The shards' model in the object store. Held here so a restarted shard can re-read its
    # constructor argument (a model above Ray's inline size is dropped once nothing holds it).
    model_ref: Any = None


def strategy_from(cfg: RunConfig) -> ThresholdStrategy:
    """The configured strategy."""
    s = cfg.strategy
    return ThresholdStrategy(s.name, s.long_above, s.short_below, s.order_notional, s.allow_short)


def state_dir_for(cfg: RunConfig) -> Path:
    """Where shard snapshots and the kill-switch state live."""
    return Path(cfg.state_dir) if cfg.state_dir else Path(cfg.output_dir) / "state"


EXECUTION_NAME = "execution"
RISK_GATE_NAME = "risk_gate"


def build(cfg: RunConfig, bootstrap: str, model: ShardModel, ledger_path: str, *, named: bool = False) -> Topology:
    """Start Execution, the RiskGate and one MarketShard per partition (static assignment).

    Every actor is restarted by Ray when it dies and recovers its state (see each class).
    ``named``: register Execution and the RiskGate under :data:`EXECUTION_NAME` and
    :data:`RISK_GATE_NAME` in ``cfg.ray.namespace``, where the HTTP gateway finds them.
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
    fill_model = PaperFillModel(ex.fee_bps, ex.half_spread_bps, ex.slippage_bps)
    execution = Execution.options(**names["execution"]).remote(  # type: ignore[attr-defined]
        instruments, fill_model, ledger_path, ex.initial_cash, ex.venue_latency_ms
    )
    r = cfg.risk
    gate = RiskGate.options(**names["risk_gate"]).remote(  # type: ignore[attr-defined]
        RiskLimits(r.max_order_notional, r.max_position_notional, r.max_gross_exposure),
        execution,
        str(state_dir / "risk_gate.json"),
    )
    k = cfg.kafka
    wiring = ShardKafka(bootstrap, k.backend, k.topic, k.dead_letter_topic, k.group_id)
    strategy = strategy_from(cfg)
    model_ref = ray.put(model)
    shards = [
        MarketShard.remote(  # type: ignore[attr-defined]
            p, [p], wiring, instruments, strategy, model_ref, gate, str(state_dir), cfg.batch_size
        )
        for p in range(k.partitions)
    ]
    return Topology(execution, gate, shards, model_ref)
