"""Durable SQLite ledger (WAL) of orders and fills; idempotent on order and fill ids."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from raytrade.domain.orders import Fill, OrderIntent, OrderReport, OrderStatus, Side

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    order_id    TEXT PRIMARY KEY,
    strategy    TEXT NOT NULL,
    symbol      TEXT NOT NULL,
    side        TEXT NOT NULL,
    qty         TEXT NOT NULL,
    ref_price   TEXT NOT NULL,
    status      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    score       REAL NOT NULL,
    ts_event    INTEGER NOT NULL,
    ts_consumed INTEGER NOT NULL,
    ts_accepted INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS fills (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    fill_id  TEXT NOT NULL UNIQUE,
    order_id TEXT NOT NULL REFERENCES orders(order_id),
    symbol   TEXT NOT NULL,
    side     TEXT NOT NULL,
    qty      TEXT NOT NULL,
    price    TEXT NOT NULL,
    fee      TEXT NOT NULL,
    ts       INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One order outcome to record: the intent, its status and reason, and its fill."""

    intent: OrderIntent
    status: OrderStatus
    reason: str
    fill: Fill | None
    ts_accepted: int


class SqliteLedger:
    """Orders and fills in one SQLite file; each ``record`` call is one transaction."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)

    def reports(self, order_ids: Iterable[str]) -> dict[str, OrderReport]:
        """The recorded outcome of each of ``order_ids`` that is in the ledger."""
        ids = list(order_ids)
        out: dict[str, OrderReport] = {}
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            q = (
                "SELECT o.order_id, o.symbol, o.status, o.reason, "
                "f.fill_id, f.side, f.qty, f.price, f.fee, f.ts "
                "FROM orders o LEFT JOIN fills f ON f.order_id = o.order_id "
                f"WHERE o.order_id IN ({','.join('?' * len(part))})"
            )
            for r in self._db.execute(q, part):
                fill = None
                if r[4] is not None:
                    fill = Fill(r[4], r[0], r[1], Side(r[5]), Decimal(r[6]), Decimal(r[7]), Decimal(r[8]), r[9])
                out[r[0]] = OrderReport(r[0], r[1], OrderStatus(r[2]), fill, r[3])
        return out

    def seq(self) -> int:
        """A sequence number that grows with every recorded order (survives restarts)."""
        row = self._db.execute("SELECT COALESCE(MAX(rowid), 0) FROM orders").fetchone()
        return int(row[0])

    def record(self, entries: Iterable[LedgerEntry]) -> int:
        """Write entries atomically, ignoring order ids already present; return rows added."""
        added = 0
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            for e in entries:
                i = e.intent
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO orders VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        i.order_id,
                        i.strategy,
                        i.symbol,
                        i.side.value,
                        str(i.qty),
                        str(i.ref_price),
                        e.status.value,
                        e.reason,
                        i.score,
                        i.ts_event,
                        i.ts_consumed,
                        e.ts_accepted,
                    ),
                )
                if cur.rowcount == 0:
                    continue
                added += 1
                f = e.fill
                if f is not None:
                    self._db.execute(
                        "INSERT INTO fills (fill_id, order_id, symbol, side, qty, price, fee, ts) "
                        "VALUES (?,?,?,?,?,?,?,?)",
                        (f.fill_id, f.order_id, f.symbol, f.side.value, str(f.qty), str(f.price), str(f.fee), f.ts),
                    )
        return added

    def fills(self) -> list[Fill]:
        """All fills in the order they were booked."""
        rows = self._db.execute(
            "SELECT fill_id, order_id, symbol, side, qty, price, fee, ts FROM fills ORDER BY seq"
        ).fetchall()
        return [Fill(r[0], r[1], r[2], Side(r[3]), Decimal(r[4]), Decimal(r[5]), Decimal(r[6]), r[7]) for r in rows]

    def last_fills(self) -> list[Fill]:
        """The most recent fill of each symbol."""
        rows = self._db.execute(
            "SELECT fill_id, order_id, symbol, side, qty, price, fee, ts FROM fills "
            "WHERE seq IN (SELECT MAX(seq) FROM fills GROUP BY symbol)"
        ).fetchall()
        return [Fill(r[0], r[1], r[2], Side(r[3]), Decimal(r[4]), Decimal(r[5]), Decimal(r[6]), r[7]) for r in rows]

    def recent_orders(self, limit: int, symbol: str | None = None) -> list[dict[str, object]]:
        """The last ``limit`` recorded orders (newest first) with their fill, as JSON-ready dicts."""
        where, args = ("WHERE o.symbol = ?", [symbol]) if symbol else ("", [])
        rows = self._db.execute(
            "SELECT o.order_id, o.strategy, o.symbol, o.side, o.qty, o.ref_price, o.status, o.reason, "
            "o.ts_event, o.ts_accepted, f.qty, f.price, f.fee FROM orders o "
            f"LEFT JOIN fills f ON f.order_id = o.order_id {where} ORDER BY o.rowid DESC LIMIT ?",
            [*args, limit],
        ).fetchall()
        keys = ("order_id", "strategy", "symbol", "side", "qty", "ref_price", "status", "reason", "ts_event")
        out: list[dict[str, object]] = []
        for r in rows:
            order: dict[str, object] = dict(zip(keys, r[:9], strict=True))
            order["ts_accepted"] = r[9]
            order["fill"] = None if r[10] is None else {"qty": r[10], "price": r[11], "fee": r[12]}
            out.append(order)
        return out

    def status_counts(self) -> dict[str, int]:
        """Number of orders per status."""
        return dict(self._db.execute("SELECT status, COUNT(*) FROM orders GROUP BY status").fetchall())

    def latencies_ns(self) -> list[int]:
        """Consumed-to-accepted latency of every accepted (non-rejected) order."""
        rows = self._db.execute(
            "SELECT ts_accepted - ts_consumed FROM orders WHERE status != ?", (OrderStatus.REJECTED.value,)
        )
        return [r[0] for r in rows]

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
