"""The ticks log of a run: its topics (a rolled log on the embedded broker), the shard snapshots that
belong to it, and the deletion of the generations every snapshot has passed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raytrade.adapters import kafka
from raytrade.adapters.kafka.rolling import ConsumerFactory, IndexReader, Pruner, RollingAdmin
from raytrade.adapters.snapshot_store import LogId, SnapshotStore
from raytrade.cluster.config import ConfigError, RunConfig


@dataclass(frozen=True)
class TicksLog:
    """Where ticks are read from: ``rolling`` when the topic is a chain of generations."""

    bootstrap: str
    backend: kafka.Backend
    topic: str
    partitions: int
    rolling: bool

    def admin(self) -> kafka.Admin:
        plain = kafka.admin(self.backend, self.bootstrap)
        return RollingAdmin(plain, self.topic) if self.rolling else plain


def ticks_log(cfg: RunConfig, bootstrap: str, embedded: bool) -> TicksLog:
    """The run's log: rolled on the embedded broker when ``kafka.roll_records`` is set."""
    k = cfg.kafka
    return TicksLog(bootstrap, k.backend, k.topic, k.partitions, embedded and k.roll_records is not None)


def create_topics(cfg: RunConfig, log: TicksLog) -> LogId:
    """Create the ticks log and the dead-letter topic; return the log's identity."""
    adm = log.admin()
    try:
        adm.create_topic(cfg.kafka.topic, cfg.kafka.partitions)
        adm.create_topic(cfg.kafka.dead_letter_topic, 1)
        return LogId(adm.cluster_id(), adm.topic_id(cfg.kafka.topic))
    finally:
        adm.close()


def check_snapshots(state_dir: Path, current: LogId, bootstrap: str, topic: str) -> None:
    """Refuse (``ConfigError``, one line) shard snapshots taken on another broker cluster or another
    incarnation of the topic: their offsets mean nothing here, and resuming from them would trade on
    the wrong messages or die mid-start."""
    for path in sorted(state_dir.glob("shard-*.db")):
        for shard, taken in SnapshotStore.logs(path).items():
            if taken != current:
                raise ConfigError(
                    f"{state_dir}: the snapshot of shard {shard!r} was taken on another log ({taken}) than the "
                    f"{topic!r} topic at {bootstrap} ({current}): remove {state_dir} and the ledger it belongs "
                    "to, or give this broker its own output_dir (or state_dir and execution.ledger_path)"
                )


class GenerationPruner:
    """Deletes the rolled log's generations that every shard's snapshot has passed (driver side)."""

    def __init__(self, log: TicksLog) -> None:
        admin = log.admin()
        assert isinstance(admin, RollingAdmin)
        reader = ConsumerFactory(log.backend, log.bootstrap)(f"raytrade-pruner-{uuid.uuid4().hex[:8]}")
        self.pruner = Pruner(admin, IndexReader(reader, log.topic))
        self.deleted: list[str] = []

    def prune(self, shard_stats: list[dict[str, Any]]) -> list[str]:
        """Delete what the snapshots in ``shard_stats`` (``snapshot_offsets``) no longer need."""
        durable: dict[int, int] = {}
        for s in shard_stats:
            durable.update({int(p): int(o) for p, o in s["snapshot_offsets"].items()})
        gone = self.pruner.prune(durable)
        self.deleted += gone
        return gone

    def status(self) -> dict[str, int]:
        gens = self.pruner.index.refresh()
        return {"open_generation": gens.open, "deleted_generations": len(self.deleted)}

    def close(self) -> None:
        self.pruner.index.close()
        self.pruner.admin.close()
