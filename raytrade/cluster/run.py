"""``raytrade run``: stand the whole system up, trade paper, report, shut down cleanly."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import Any, TextIO
from urllib.parse import urlsplit

import ray

from raytrade.adapters.embedded_broker import EmbeddedBroker
from raytrade.adapters.ledger import Ledger, is_postgres, sqlite_file
from raytrade.cluster.config import ConfigError, RunConfig
from raytrade.cluster.feed_runner import Feed, start_feed
from raytrade.cluster.local_ray import local_ray
from raytrade.cluster.ticks_log import GenerationPruner, check_snapshots, create_topics, ticks_log
from raytrade.cluster.topology import Topology, build, state_dir_for
from raytrade.domain.performance import Calendar, periods_per_year
from raytrade.domain.shard_engine import ShardModel
from raytrade.domain.stats import percentile
from raytrade.training.bootstrap import configured_model

__all__ = ["run", "start_fresh_ledger"]

DRAIN_S = 10.0  # at the end: how long the shards may take to trade the feed's last ticks
PRUNE_EVERY_S = 2.0


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _init_ray(cfg: RunConfig, stack: contextlib.ExitStack) -> None:
    """Attach to ``ray.address``, or start a local Ray on loopback (stopped and removed by ``stack``)."""
    if cfg.ray.address:
        ray.init(address=cfg.ray.address, log_to_driver=False)
        stack.callback(ray.shutdown)
        return
    r = cfg.ray
    stack.enter_context(
        local_ray(
            r.num_cpus,
            r.object_store_mb,
            include_dashboard=r.include_dashboard,
            metrics_export_port=r.metrics_export_port,
        )
    )


def _collect(topo: Topology) -> tuple[list[dict[str, Any]], dict[str, Decimal]]:
    stats = ray.get([s.stats.remote() for s in topo.shards])
    marks: dict[str, Decimal] = {}
    for m in ray.get([s.marks.remote() for s in topo.shards]):
        marks.update(m)
    return stats, marks


def _summary(
    topo: Topology,
    feed: Feed,
    started: float,
    model_version: str,
    bootstrap: str,
    embedded: bool,
    ledger: str,
    periods_per_year: float,
) -> dict[str, Any]:
    stats, marks = _collect(topo)
    ex = ray.get(topo.execution.summary.remote(marks))
    lat = [v / 1e6 for v in ray.get(topo.execution.latencies_ns.remote())]
    gate = ray.get(topo.risk_gate.state.remote())
    recon = ray.get(topo.execution.reconcile.remote())
    metrics = ray.get(topo.execution.performance.remote(periods_per_year))
    rejected: Counter[str] = Counter()
    for s in stats:
        rejected.update(s["rejected"])
    by_status = ex["orders_by_status"]
    return {
        "duration_s": round(time.monotonic() - started, 3),
        "ticks_produced": feed.count.sent,
        "ticks_consumed": sum(s["consumed"] for s in stats),
        "ticks_accepted": sum(s["accepted"] for s in stats),
        "ticks_rejected": sum(rejected.values()),
        "rejected_by_reason": dict(sorted(rejected.items())),
        "orders": sum(by_status.values()),
        "orders_by_status": by_status,
        "fills": ex["fills"],
        "risk_state": gate["state"],
        "risk": {k: gate[k] for k in ("halt_reason", "approved", "denied", "stops_triggered", "var", "peak_equity")},
        "reconciliation": recon,
        "metrics": metrics,
        "realized_pnl": ex["realized_pnl"],
        "unrealized_pnl": ex["unrealized_pnl"],
        "fees": ex["fees"],
        "net_pnl": ex["net_pnl"],
        "cash": ex["cash"],
        "equity": ex["equity"],
        "positions": ex["positions"],
        "marks": {s: str(p) for s, p in sorted(marks.items())},
        "latency_ms": {
            "tick_to_order_p50": percentile(lat, 50) if lat else None,
            "tick_to_order_p99": percentile(lat, 99) if lat else None,
            "orders_measured": len(lat),
        },
        "model_version": model_version,
        "kafka": {"bootstrap_servers": bootstrap, "embedded": embedded},
        "ledger_path": ledger,
        "consumer_lag": sum(sum(s["lag"].values()) for s in stats),
        "kafka_transient_errors": sum(s["transient_errors"] for s in stats),
        "shard_errors": [s["error"] for s in stats if s["error"]],
        "feed_error": feed.error,
    }


def _progress(out: TextIO, started: float, feed: Feed, stats: list[dict[str, Any]]) -> None:
    consumed = sum(s["consumed"] for s in stats)
    rejected = sum(sum(s["rejected"].values()) for s in stats)
    orders = sum(s["intents"] for s in stats)
    fills = sum(s["filled"] for s in stats)
    produced = "external" if feed.external else feed.count.sent
    out.write(
        f"[{time.monotonic() - started:6.1f}s] produced={produced} consumed={consumed} "
        f"rejected={rejected} orders={orders} fills={fills}\n"
    )
    out.flush()


def start_fresh_ledger(ledger: str) -> None:
    """Give an embedded run an empty ledger: a SQLite file is deleted; a PostgreSQL database
    that holds anything is refused (``ConfigError``), never wiped: it is somebody's data."""
    file = sqlite_file(ledger)
    if file is not None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{file}{suffix}").unlink(missing_ok=True)
        return
    if not is_postgres(ledger):
        return  # :memory:
    db = Ledger(ledger)
    try:
        rows = {t: n for t, n in db.row_counts().items() if n}
    finally:
        db.close()
    if rows:
        where = urlsplit(ledger)
        name = f"{where.hostname}:{where.port or 5432}{where.path}"
        raise ConfigError(
            f"execution.ledger_path: the PostgreSQL ledger {name} is not empty ({rows}). The embedded "
            "market restarts its offsets, and so its order ids, at 0 on every run: give it an empty "
            "database, or point kafka.bootstrap_servers at your own Kafka."
        )


def run(
    cfg: RunConfig, duration_s: float, *, out: TextIO = sys.stderr, progress_every_s: float = 2.0
) -> dict[str, Any]:
    """Run the system for ``duration_s`` or until its own feed is fully consumed; return the summary.

    With ``feed.source: none`` the ticks come from elsewhere and the run trades until ``duration_s``
    or Ctrl-C. Everything started here (broker, Ray) stops with it, a SIGKILL included.
    """
    started = time.monotonic()
    ppy = periods_per_year(Calendar(cfg.calendar()), 60.0)  # one-minute equity points
    old_term = signal.signal(signal.SIGTERM, _interrupt)
    topo: Topology | None = None
    feed = Feed()
    pruner: GenerationPruner | None = None
    summary: dict[str, Any] = {}
    run_refs: list[Any] = []
    output_dir = Path(cfg.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    ledger = cfg.execution.ledger_path or str(output_dir / "ledger.db")
    embedded = not cfg.kafka.bootstrap_servers
    stack = contextlib.ExitStack()
    try:
        if embedded:
            # A new in-memory topic restarts offsets at 0, so order ids restart too: a new ledger
            # (refused if it is a PostgreSQL one holding data), no snapshots, no kill-switch state.
            start_fresh_ledger(ledger)
            shutil.rmtree(state_dir_for(cfg), ignore_errors=True)
            broker = stack.enter_context(EmbeddedBroker(log_path=output_dir / "broker.log"))
            bootstrap = broker.bootstrap_servers
        else:
            bootstrap = str(cfg.kafka.bootstrap_servers)
        out.write(f"kafka: {bootstrap} ({'embedded tansu' if embedded else 'external'})\n")
        log = ticks_log(cfg, bootstrap, embedded)
        log_id = create_topics(cfg, log)
        if not embedded:
            check_snapshots(state_dir_for(cfg), log_id, bootstrap, cfg.kafka.topic)
        m = cfg.model
        model = configured_model(cfg)
        version = model.version if model is not None else "none"
        out.write(f"model: {version}\n")
        _init_ray(cfg, stack)
        if cfg.serve.enabled:
            out.write(f"gateway: {_deploy_gateway(cfg)}\n")
        if m is not None and model is not None and m.scoring == "serve":
            from raytrade.cluster.serving import APP_NAME
            from raytrade.deployments.serve_scorer import ServeScorer

            model = ShardModel(ServeScorer(APP_NAME), model.history, model.gate, f"{model.version} via Serve")
        topo = build(cfg, bootstrap, model, ledger, named=True, rolling=log.rolling)
        run_refs = [s.run.remote() for s in topo.shards]
        if log.rolling:
            pruner = GenerationPruner(log)
        feed = start_feed(cfg, log)
        next_progress = next_prune = time.monotonic()
        while time.monotonic() - started < duration_s:
            stats = ray.get([s.stats.remote() for s in topo.shards])
            now = time.monotonic()
            if now >= next_progress:
                _progress(out, started, feed, stats)
                next_progress += progress_every_s
            if pruner is not None and now >= next_prune:
                pruner.prune(stats)
                next_prune = now + PRUNE_EVERY_S
            if any(s["error"] for s in stats):
                break
            if feed.consumed_all(sum(s["consumed"] for s in stats)):
                break
            ready, _ = ray.wait(run_refs, timeout=0.25)
            if ready:
                break  # a shard ended on its own: an error, reported below
        feed.stop.set()
        _drain(topo, feed)
        summary = _finish(topo, run_refs, feed, started, version, bootstrap, embedded, ledger, ppy)
        if pruner is not None:
            summary["ticks_log"] = pruner.status()
    except KeyboardInterrupt:
        out.write("interrupted: shutting down\n")
        feed.stop.set()
        if topo is not None:
            with contextlib.suppress(Exception):
                summary = _finish(topo, run_refs, feed, started, "", "", embedded, ledger, ppy)
        summary["interrupted"] = True
    finally:
        feed.stop.set()
        if feed.thread is not None:
            feed.thread.join(timeout=10)
        if pruner is not None:
            pruner.close()
        if ray.is_initialized() and cfg.serve.enabled and cfg.ray.address:
            from ray import serve

            from raytrade.cluster.serving import APP_NAME

            with contextlib.suppress(Exception):
                serve.delete(APP_NAME)  # on a shared cluster: remove our app, leave Serve running
        stack.close()  # Ray (a Ray we started takes Serve down with it), then the broker
        signal.signal(signal.SIGTERM, old_term)
    if summary:
        (output_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    return summary


def _drain(topo: Topology, feed: Feed) -> None:
    """At the end of the run, let the shards trade what the stopped feed published last (at most
    :data:`DRAIN_S`), so the summary accounts for every tick produced."""
    if feed.external or feed.thread is None:
        return
    feed.thread.join(timeout=DRAIN_S)
    deadline = time.monotonic() + DRAIN_S
    while time.monotonic() < deadline:
        stats = ray.get([s.stats.remote() for s in topo.shards])
        if any(s["error"] for s in stats) or sum(s["consumed"] for s in stats) >= feed.count.sent:
            return
        time.sleep(0.1)


def _deploy_gateway(cfg: RunConfig) -> str:
    """Deploy the Serve app (gateway, ensemble, policy) against this engine; return its URL."""
    from raytrade.cluster.serving import deploy, load_serve_config  # Serve is imported only when serving

    m = cfg.model
    if m is None:
        raise ConfigError("serve.enabled needs a model (the gateway serves it): model is null")
    sc = load_serve_config(
        cfg.serve.config,
        host=cfg.serve.host,
        port=cfg.serve.port,
        registry=m.registry,
        model=m.name,
        version=m.version,
        anomaly_gate=m.anomaly_gate,
        namespace=cfg.ray.namespace,
    )
    return deploy(sc)


def _finish(
    topo: Topology,
    run_refs: list[Any],
    feed: Feed,
    started: float,
    version: str,
    bootstrap: str,
    embedded: bool,
    ledger: str,
    periods_per_year: float,
) -> dict[str, Any]:
    for s in topo.shards:
        s.stop.remote()
    errors: list[str] = []
    for ref in run_refs:
        try:
            ray.get(ref, timeout=30)
        except Exception as exc:  # a shard that died: its error goes in the summary
            errors.append(str(exc).splitlines()[0][:300])
    summary = _summary(topo, feed, started, version, bootstrap, embedded, ledger, periods_per_year)
    if errors:
        summary["shard_errors"] = summary["shard_errors"] or errors
    return summary
