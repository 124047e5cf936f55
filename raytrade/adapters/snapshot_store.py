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
    shard    TEXT PRIMARY KEY,
    offsets  TEXT NOT NULL,
    state    BLOB NOT NULL,
    saved_ns INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A shard's state after consuming everything before ``offsets`` (partition -> next offset)."""

    offsets: dict[int, int]
    state: bytes
    saved_ns: int


class SnapshotStore:
    """One SQLite file (WAL); each :meth:`save` is one transaction, durable across process crashes."""

    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def save(self, shard: str, offsets: dict[int, int], state: bytes) -> None:
        """Replace the shard's snapshot."""
        self._db.execute(
            "INSERT INTO snapshots VALUES (?,?,?,?) ON CONFLICT(shard) DO UPDATE SET "
            "offsets=excluded.offsets, state=excluded.state, saved_ns=excluded.saved_ns",
            (shard, json.dumps({str(p): o for p, o in offsets.items()}), state, time.time_ns()),
        )

    def load(self, shard: str) -> Snapshot | None:
        """The shard's last snapshot, or ``None``."""
        row = self._db.execute("SELECT offsets, state, saved_ns FROM snapshots WHERE shard = ?", (shard,)).fetchone()
        if row is None:
            return None
        return Snapshot({int(p): int(o) for p, o in json.loads(row[0]).items()}, bytes(row[1]), int(row[2]))

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
