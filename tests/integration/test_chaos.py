"""Chaos: the same seeded feed with a shard, Execution or the RiskGate killed mid-stream, and
with the broker paused, leaves exactly the ledger of the fault-free run."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import polars as pl
import pytest
import ray

from raytrade.adapters.embedded_broker import EmbeddedBroker
from raytrade.adapters.synthetic_market import SyntheticMarket
from raytrade.backtest.data import load_market
from raytrade.backtest.runner import Backtest
from raytrade.cluster.topology import Topology
from raytrade.domain.shard_engine import ShardModel
from raytrade.domain.ticks import Tick
from raytrade.strategy.loader import load_strategies
from raytrade.training.bootstrap import ensure_model
from raytrade.training.registry import ModelRegistry
from tests.integration.chaos_harness import Outcome, config, kill_process, read_ledger, run_feed


@pytest.fixture(scope="module")
def scorer(tmp_path_factory: pytest.TempPathFactory) -> ShardModel:
    return ensure_model(ModelRegistry(tmp_path_factory.mktemp("models")), seed=1, days=0.5, horizon=5, rounds=30)


@pytest.fixture(scope="module")
def ticks() -> list[Tick]:
    return list(SyntheticMarket(seed=31).ticks(2 * 3600))


@pytest.fixture(scope="module")
def baseline(
    broker: EmbeddedBroker,
    ray_local: None,
    scorer: ShardModel,
    ticks: list[Tick],
    tmp_path_factory: pytest.TempPathFactory,
) -> Outcome:
    out = run_feed(broker.bootstrap_servers, tmp_path_factory.mktemp("baseline"), scorer, ticks)
    assert len(out.orders) >= 50, "the feed should make enough orders for the comparison to mean something"
    assert len(out.fills) >= 50
    assert sum(s["consumed"] for s in out.shard_stats) == len(ticks)
    return out


def assert_same_ledger(run: Outcome, base: Outcome, n_ticks: int) -> None:
    assert run.orders == base.orders  # same order ids, sides, quantities, statuses, reasons, scores
    assert run.fills == base.fills  # same fills: ids, prices, quantities, fees
    assert run.pnl == base.pnl  # same cash, realized P&L and fees, exactly
    # Every tick counted exactly once, though some were read twice after the crash.
    assert sum(s["consumed"] for s in run.shard_stats) == n_ticks
    assert sum(s["accepted"] for s in run.shard_stats) == n_ticks
    assert all(s["error"] is None for s in run.shard_stats)


def test_shard_killed_mid_stream(baseline: Outcome, broker: EmbeddedBroker, scorer, ticks, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    old: dict[str, int] = {}

    def fault(topo: Topology) -> None:
        old["pid"] = kill_process(topo.shards[0])

    run = run_feed(broker.bootstrap_servers, tmp_path, scorer, ticks, fault=fault)
    assert_same_ledger(run, baseline, len(ticks))
    restarted = run.shard_stats[0]
    assert restarted["restored_from"] is not None, "the restarted shard resumed from its snapshot"
    assert restarted["replay_batches"] >= 1


def test_execution_killed_mid_stream(baseline: Outcome, broker: EmbeddedBroker, scorer, ticks, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pids: list[int] = []

    def fault(topo: Topology) -> None:
        pids.append(kill_process(topo.execution))
        pids.append(int(ray.get(topo.execution.pid.remote(), timeout=60)))  # answers once restarted

    run = run_feed(broker.bootstrap_servers, tmp_path, scorer, ticks, fault=fault)
    assert pids[0] != pids[1]
    assert_same_ledger(run, baseline, len(ticks))


def test_risk_gate_killed_mid_stream(baseline: Outcome, broker: EmbeddedBroker, scorer, ticks, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pids: list[int] = []

    def fault(topo: Topology) -> None:
        pids.append(kill_process(topo.risk_gate))
        pids.append(int(ray.get(topo.risk_gate.pid.remote(), timeout=60)))

    states: list[dict[str, object]] = []

    def drill(topo: Topology) -> None:
        # The kill switch is durable: halt, crash the gate, and the restarted gate is still HALTED.
        ray.get(topo.risk_gate.halt.remote("operator drill"))
        kill_process(topo.risk_gate)
        states.append(ray.get(topo.risk_gate.state.remote(), timeout=60))
        ray.get(topo.risk_gate.resume.remote())
        kill_process(topo.risk_gate)
        states.append(ray.get(topo.risk_gate.state.remote(), timeout=60))

    run = run_feed(broker.bootstrap_servers, tmp_path, scorer, ticks, fault=fault, after=drill)
    assert pids[0] != pids[1]
    assert_same_ledger(run, baseline, len(ticks))
    assert states[0]["state"] == "HALTED" and states[0]["halt_reason"] == "operator drill"
    assert states[1]["state"] == "ACTIVE"
    # The restarted gate re-read the positions from Execution: its view equals the ledger's.
    assert states[1]["positions"] == run.positions


def test_broker_paused_mid_stream(baseline: Outcome, broker: EmbeddedBroker, scorer, ticks, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert broker.pid is not None
    pid = broker.pid

    def fault(_topo: Topology) -> None:
        os.kill(pid, signal.SIGSTOP)  # the broker freezes: no answers, connections stay open
        try:
            time.sleep(3.0)
        finally:
            os.kill(pid, signal.SIGCONT)

    run = run_feed(broker.bootstrap_servers, tmp_path, scorer, ticks, fault=fault)
    assert_same_ledger(run, baseline, len(ticks))


def test_a_rolled_log_gives_the_same_ledger_with_a_shard_killed_across_generations(
    baseline: Outcome, broker: EmbeddedBroker, scorer: ShardModel, ticks: list[Tick], tmp_path: Path
) -> None:
    """The embedded run's rolled log (generations of 5,000 ticks, the consumed ones deleted while trading)
    has the offsets of one topic: same order ids, same ledger, even with a shard killed mid-stream."""
    assert len(ticks) > 8 * 5_000
    old: list[int] = []

    def fault(topo: Topology) -> None:
        old.append(kill_process(topo.shards[1]))

    run = run_feed(broker.bootstrap_servers, tmp_path, scorer, ticks, fault=fault, fault_at=0.5, roll_records=5_000)
    assert_same_ledger(run, baseline, len(ticks))
    assert run.shard_stats[1]["restored_from"] is not None and run.shard_stats[1]["replay_batches"] >= 1
    assert run.gate_state["deleted_generations"] >= len(ticks) // 5_000 - 3  # all but the last few are gone


def test_the_backtest_of_the_same_ticks_gives_the_same_ledger(
    baseline: Outcome, scorer: ShardModel, ticks: list[Tick], tmp_path: Path
) -> None:
    """Live/backtest parity: the fault-free live run (Kafka, two partitions, actors, every risk check
    on) and ``raytrade backtest``'s engine over the same ticks leave the same ledger."""
    cfg = config(tmp_path, "parity")
    cfg = cfg.model_copy(update={"backtest": cfg.backtest.model_copy(update={"fills": "paper"})})
    assert cfg.kafka.partitions == 2 and cfg.risk.max_var is not None and cfg.risk.stop_atr_multiple is not None
    file = tmp_path / "ticks.parquet"
    pl.DataFrame(
        {
            "symbol": [t.symbol for t in ticks],
            "ts": [t.ts for t in ticks],
            "price": [t.price for t in ticks],
            "size": [t.size for t in ticks],
        }
    ).write_parquet(file)
    data = load_market(file, [i.symbol for i in cfg.instruments])
    ledger = tmp_path / "backtest.db"
    run = Backtest(cfg, scorer, lambda: load_strategies(cfg.strategy_specs()), str(ledger)).run(data)
    orders, fills, pnl, positions = read_ledger(str(ledger), cfg.execution.initial_cash)
    assert run.events == len(ticks)
    reasons = {str(o[8]).split(" ")[0] for o in orders if o[6] == "REJECTED"}
    assert {"VaR", "net", "correlated"} <= reasons, reasons  # the portfolio checks bound, across both shards
    assert any(o[1] == "risk:atr_stop" for o in orders) and run.gate.stops_triggered > 0
    assert len(orders) == len(baseline.orders) and orders == baseline.orders  # ids, statuses, reasons, scores
    assert fills == baseline.fills  # prices, quantities, fees
    assert pnl == baseline.pnl and positions == baseline.positions  # cash, realized P&L, fees, to the last decimal


def test_arrival_order_trades_the_same_feed_batch_by_batch(
    baseline: Outcome, broker: EmbeddedBroker, scorer: ShardModel, ticks: list[Tick], tmp_path: Path
) -> None:
    """``gate_order: arrival`` (whole batches, as they come: the fast mode, not deterministic) trades the whole
    feed at the same decision points; its portfolio decisions may differ from the event-time run's."""
    run = run_feed(broker.bootstrap_servers, tmp_path, scorer, ticks, gate_order="arrival")
    assert sum(s["consumed"] for s in run.shard_stats) == len(ticks)
    assert all(s["error"] is None for s in run.shard_stats)
    assert len(run.orders) >= 50 and len(run.fills) >= 50
    ids = {o[0] for o in run.orders}
    assert len(ids & {o[0] for o in baseline.orders}) >= len(baseline.orders) // 2  # the same decision points
