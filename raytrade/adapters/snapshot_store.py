"""Durable shard snapshots: the shard's state and the offsets it covers, in one SQLite row.

The snapshot, not the Kafka group offset, is the source of truth for where a shard
resumes: state and offsets are written in one transaction, so they always agree.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    shard      TEXT PRIMARY KEY,
    offsets    TEXT NOT NULL,
    state      BLOB NOT NULL,
    saved_ns   INTEGER NOT NULL,
    cluster_id TEXT,
    topic_id   TEXT
);
"""


@dataclass(frozen=True, slots=True)
class LogId:
    """Which log a snapshot's offsets refer to: the broker cluster and the topic's id (a recreated topic,
    or the same name on another broker, is another log)."""

    cluster_id: str | None
    topic_id: str | None

    def __str__(self) -> str:
        return f"cluster {self.cluster_id or '?'}, topic id {self.topic_id or '?'}"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A shard's state after consuming everything before ``offsets`` (partition -> next offset)."""

    offsets: dict[int, int]
    state: bytes
    saved_ns: int
    log: LogId = LogId(None, None)


class SnapshotStore:
    """One SQLite file (WAL); each :meth:`save` is one transaction, durable across process crashes."""

    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(snapshots)")}
        for column in ("cluster_id", "topic_id"):  # files written before snapshots recorded their log
            if column not in columns:
                self._db.execute(f"ALTER TABLE snapshots ADD COLUMN {column} TEXT")

    def save(self, shard: str, offsets: dict[int, int], state: bytes, log: LogId = LogId(None, None)) -> None:
        """Replace the shard's snapshot."""
        self._db.execute(
            "INSERT INTO snapshots VALUES (?,?,?,?,?,?) ON CONFLICT(shard) DO UPDATE SET "
            "offsets=excluded.offsets, state=excluded.state, saved_ns=excluded.saved_ns, "
            "cluster_id=excluded.cluster_id, topic_id=excluded.topic_id",
            (shard, json.dumps({str(p): o for p, o in offsets.items()}), state, time.time_ns(), log.cluster_id,
             log.topic_id),
        )  # fmt: skip

    def load(self, shard: str) -> Snapshot | None:
        """The shard's last snapshot, or ``None``."""
        row = self._db.execute(
            "SELECT offsets, state, saved_ns, cluster_id, topic_id FROM snapshots WHERE shard = ?", (shard,)
        ).fetchone()
        if row is None:
            return None
        offsets = {int(p): int(o) for p, o in json.loads(row[0]).items()}
        return Snapshot(offsets, bytes(row[1]), int(row[2]), LogId(row[3], row[4]))

    @staticmethod
    def logs(path: str | Path) -> dict[str, LogId]:
        """The log each snapshot in the file at ``path`` was taken on, by shard key; read only (the file is
        not changed, whoever it belongs to)."""
        db = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
        try:
            columns = {r[1] for r in db.execute("PRAGMA table_info(snapshots)")}
            if not columns:
                return {}
            if not {"cluster_id", "topic_id"} <= columns:  # written before snapshots recorded their log
                return {r[0]: LogId(None, None) for r in db.execute("SELECT shard FROM snapshots")}
            return {r[0]: LogId(r[1], r[2]) for r in db.execute("SELECT shard, cluster_id, topic_id FROM snapshots")}
        finally:
            db.close()

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
