"""The durable ledger: orders, their immutable event history, fills, bar state and risk events.

One class, two backends with the same SQL: SQLite (a file, the default; WAL) and PostgreSQL
(``postgresql://`` URLs, through psycopg 3). Every :meth:`Ledger.write` is one transaction.

Tables:

- ``order_events``: append-only, one row per transition (``UNIQUE(order_id, event_no)``),
  with its cause. The source of truth for an order's history.
- ``orders``: each order's current terms and state (an upsert per write), for queries.
- ``fills``: every fill, exact decimals, in booking order.
- ``bar_marks``: per symbol, the last bar the paper broker processed and its volatility
  state, so a restarted Execution neither re-trades nor skips a bar.
- ``risk_events``: RiskGate state transitions with their reason.
- ``gate_state``: the RiskGate's rule state as of the last call (written in that call's transaction).

The schema and the row conversions are in :mod:`raytrade.adapters.ledger_schema`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from raytrade.adapters.ledger_queries import LedgerQueries
from raytrade.adapters.ledger_schema import (
    DIALECT,
    EVENT_COLS,
    FILL_COLS,
    ORDER_COLS,
    TABLES,
    dec,
    event_row,
    fill_row,
    num,
    opt,
)
from raytrade.domain.order_lifecycle import EventKind, Order, OrderEvent
from raytrade.domain.orders import (
    Fill,
    OrderIntent,
    OrderReport,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)


@dataclass(slots=True)
class LedgerWrite:
    """What one Execution call changed, written in one transaction."""

    orders: list[Order] = field(default_factory=list)
    events: list[OrderEvent] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    bars: dict[str, tuple[int, float, Decimal]] = field(default_factory=dict)  # start, variance, close
    wall_ns: int | None = None  # wall-clock time of the write: new orders' ts_accepted (latency only)
    gate_state: bytes | None = None  # the RiskGate's rule state as of this call (restored by a restarted gate)

    def __bool__(self) -> bool:
        return bool(self.orders or self.events or self.fills or self.bars or self.gate_state is not None)


def is_postgres(url: str | Path) -> bool:
    """Whether a ledger URL names a PostgreSQL database (else it is a SQLite file)."""
    return str(url).startswith(("postgresql://", "postgres://"))


def sqlite_file(url: str | Path) -> Path | None:
    """The SQLite file a ledger URL names (``None`` for PostgreSQL and ``:memory:``)."""
    path = str(url).removeprefix("sqlite:///")
    return None if is_postgres(url) or path == ":memory:" else Path(path)


class Ledger(LedgerQueries):
    """Orders, events and fills in SQLite or PostgreSQL; see the module docstring."""

    def __init__(self, url: str | Path) -> None:
        self.url = str(url)
        self.dialect = "postgres" if is_postgres(self.url) else "sqlite"
        self._db: Any
        if self.dialect == "postgres":
            import psycopg

            self._db = psycopg.connect(self.url, autocommit=True)
        else:
            file = sqlite_file(self.url)
            if file is not None:
                file.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(file or ":memory:", isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
        # Inside :meth:`group` (one SQLite transaction, this connection the only writer): the last
        # event seq, known without a query, and the bar marks, written once at the group's commit.
        self._grouped = False
        self._seq: int | None = None
        self._marks: dict[str, tuple[int, float, Decimal]] = {}
        with self._tx():
            for stmt in TABLES.format(**DIALECT[self.dialect]).split(";"):
                if stmt.strip():
                    self._db.execute(stmt)

    # -- plumbing -------------------------------------------------------------------------

    def _q(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgres" else sql

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._db.execute(self._q(sql), list(args)).fetchall()]

    @contextmanager
    def _tx(self) -> Iterator[None]:
        if self.dialect == "postgres":
            with self._db.transaction():
                yield
            return
        if self._grouped:  # one write inside a group: all of it or none of it
            self._db.execute("SAVEPOINT write")
            try:
                yield
            except BaseException:
                if self._db.in_transaction:  # (SQLite may have rolled the whole transaction back already)
                    self._db.execute("ROLLBACK TO write")
                raise
            self._db.execute("RELEASE write")
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _in(self, sql: str, ids: Sequence[str]) -> list[tuple[Any, ...]]:
        """Run ``sql`` (with ``{ids}`` for the placeholder list) over ``ids`` in chunks."""
        out: list[tuple[Any, ...]] = []
        for i in range(0, len(ids), 500):
            part = list(ids[i : i + 500])
            out += self._rows(sql.format(ids=",".join("?" * len(part))), part)
        return out

    # -- writing --------------------------------------------------------------------------

    @contextmanager
    def group(self) -> Iterator[None]:
        """Many writes as one SQLite transaction, committed when the block ends (also when it raises:
        every :meth:`write` completed before is kept whole, a failing one leaves nothing).

        For a backtest, whose ledger is its output rather than a recovery log: no commit, no
        ``MAX(seq)`` query and no bar-mark upsert per call. Readers on this connection see the
        writes at once; other connections see them at the commit. PostgreSQL: every write stays
        its own transaction.
        """
        if self.dialect == "postgres" or self._grouped:
            yield
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._grouped, self._seq = True, None
        try:
            yield
        finally:
            self._grouped, self._seq = False, None
            if self._db.in_transaction:
                self._flush_marks()
                self._db.execute("COMMIT")

    def _flush_marks(self) -> None:
        marks, self._marks = self._marks, {}  # taken even if a statement fails (its write rolls back)
        for symbol, (start, variance, close) in marks.items():
            self._db.execute(
                self._q(
                    "INSERT INTO bar_marks (symbol, start, variance, close) VALUES (?,?,?,?) ON CONFLICT (symbol) "
                    "DO UPDATE SET start = excluded.start, variance = excluded.variance, close = excluded.close"
                ),
                [symbol, start, variance, str(close)],
            )

    def write(self, w: LedgerWrite) -> None:
        """Record one call's orders (upsert), events and fills (ignored if present), bar state."""
        if not w:
            return
        if self._grouped and not (w.orders or w.events or w.fills or w.gate_state is not None):
            self._marks.update(w.bars)  # a quiet bar: nothing to write until the group commits
            return
        if w.events:
            self._seq = None  # the next seq() asks the database
        seq = int(self._rows("SELECT COALESCE(MAX(created_seq), 0) FROM orders")[0][0]) if w.orders else 0
        order_sql = self._q(
            f"INSERT INTO orders ({ORDER_COLS}, created_seq) VALUES ({','.join('?' * 18)}) "
            "ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, qty = excluded.qty, "
            "limit_price = excluded.limit_price, stop_price = excluded.stop_price, "
            "filled_qty = excluded.filled_qty, reason = excluded.reason"
        )
        with self._tx():
            for n, o in enumerate(w.orders, 1):
                i = o.intent
                first = w.wall_ns if w.wall_ns is not None else (o.events[0].ts if o.events else 0)
                reason = next((e.reason for e in reversed(o.events) if e.reason), "")
                self._db.execute(
                    order_sql,
                    [
                        i.order_id,
                        i.strategy,
                        i.symbol,
                        i.side.value,
                        i.order_type.value,
                        i.tif.value,
                        str(i.qty),
                        num(i.limit_price),
                        num(i.stop_price),
                        str(i.ref_price),
                        i.score,
                        i.ts_event,
                        i.ts_consumed,
                        first,
                        o.status.value,
                        str(o.filled_qty),
                        reason,
                        seq + n,  # arrival order (kept on update: an upsert does not touch it)
                    ],
                )
            for f in w.fills:
                self._db.execute(
                    self._q(f"INSERT INTO fills ({FILL_COLS}) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING"),
                    [
                        f.fill_id,
                        f.order_id,
                        f.symbol,
                        f.side.value,
                        str(f.qty),
                        str(f.price),
                        str(f.fee),
                        f.ts,
                        f.liquidity.value,
                    ],
                )
            for e in w.events:
                self._db.execute(
                    self._q(
                        f"INSERT INTO order_events ({EVENT_COLS}) VALUES ({','.join('?' * 14)}) ON CONFLICT DO NOTHING"
                    ),
                    [
                        e.order_id,
                        e.seq,
                        e.symbol,
                        e.side.value,
                        e.kind.value,
                        e.status.value,
                        str(e.qty),
                        str(e.filled_qty),
                        num(e.limit_price),
                        num(e.stop_price),
                        e.reason,
                        e.fill_id,
                        e.cause,
                        e.ts,
                    ],
                )
            if not self._grouped:
                self._marks.update(w.bars)
                self._flush_marks()
            if w.gate_state is not None:
                self._db.execute(
                    self._q(
                        "INSERT INTO gate_state (id, state) VALUES (1, ?) "
                        "ON CONFLICT (id) DO UPDATE SET state = excluded.state"
                    ),
                    [w.gate_state],
                )
        if self._grouped:
            self._marks.update(w.bars)

    def record_risk_event(self, ts: int, kind: str, state: str, reason: str) -> None:
        """Append one RiskGate state transition."""
        with self._tx():
            self._db.execute(
                self._q("INSERT INTO risk_events (ts, kind, state, reason) VALUES (?,?,?,?)"), [ts, kind, state, reason]
            )

    # -- reading --------------------------------------------------------------------------

    def gate_state(self) -> bytes | None:
        """The RiskGate's rule state written with the last call that carried one."""
        rows = self._rows("SELECT state FROM gate_state WHERE id = 1")
        return bytes(rows[0][0]) if rows else None

    def seq(self) -> int:
        """Grows with every recorded event (survives restarts)."""
        if self._seq is not None:
            return self._seq
        seq = int(self._rows("SELECT COALESCE(MAX(seq), 0) FROM order_events")[0][0])
        if self._grouped:
            self._seq = seq
        return seq

    def reports(self, order_ids: Iterable[str]) -> dict[str, OrderReport]:
        """The current report of each of ``order_ids`` that is in the ledger."""
        ids = list(dict.fromkeys(order_ids))
        rows = self._in("SELECT order_id, symbol, status, reason, side, qty FROM orders WHERE order_id IN ({ids})", ids)
        fills: dict[str, list[Fill]] = {}
        for r in self._in(
            f"SELECT {FILL_COLS} FROM fills WHERE order_id IN ({{ids}}) ORDER BY seq", [r[0] for r in rows]
        ):
            f = fill_row(r)
            fills.setdefault(f.order_id, []).append(f)
        return {
            r[0]: OrderReport(r[0], r[1], OrderStatus(r[2]), tuple(fills.get(r[0], ())), r[3], Side(r[4]), dec(r[5]))
            for r in rows
        }

    def events(self, order_id: str | None = None) -> list[OrderEvent]:
        """All events (or one order's), in the order they were recorded."""
        where, args = ("WHERE order_id = ?", [order_id]) if order_id else ("", [])
        return [event_row(r) for r in self._rows(f"SELECT {EVENT_COLS} FROM order_events {where} ORDER BY seq", args)]

    def events_by_cause(self, causes: Sequence[str]) -> list[OrderEvent]:
        """The events caused by any of ``causes``, in recorded order."""
        rows = self._in(f"SELECT {EVENT_COLS}, seq FROM order_events WHERE cause IN ({{ids}})", list(causes))
        return [event_row(r) for r in sorted(rows, key=lambda r: int(r[-1]))]

    def intake_events(self, order_ids: Sequence[str]) -> list[OrderEvent]:
        """The NEW/ACCEPTED/REJECTED events of ``order_ids``."""
        rows = self._in(
            f"SELECT {EVENT_COLS}, seq FROM order_events WHERE cause = 'intake' AND order_id IN ({{ids}})",
            list(order_ids),
        )
        return [event_row(r) for r in sorted(rows, key=lambda r: int(r[-1]))]

    def fills(self, fill_ids: Sequence[str] | None = None) -> list[Fill]:
        """All fills (or those of ``fill_ids``) in booking order."""
        if fill_ids is None:
            return [fill_row(r) for r in self._rows(f"SELECT {FILL_COLS} FROM fills ORDER BY seq")]
        rows = self._in(f"SELECT {FILL_COLS}, seq FROM fills WHERE fill_id IN ({{ids}})", list(fill_ids))
        return [fill_row(r) for r in sorted(rows, key=lambda r: int(r[-1]))]

    def last_fills(self) -> list[Fill]:
        """The most recent fill of each symbol."""
        rows = self._rows(
            f"SELECT {FILL_COLS} FROM fills WHERE seq IN (SELECT MAX(seq) FROM fills GROUP BY symbol) ORDER BY symbol"
        )
        return [fill_row(r) for r in rows]

    def working_orders(self) -> list[Order]:
        """Orders still working, rebuilt with their events and fills (for a restarted Execution)."""
        rows = self._rows(
            f"SELECT {ORDER_COLS} FROM orders WHERE status IN (?, ?) ORDER BY created_seq",
            ["ACCEPTED", "PARTIALLY_FILLED"],
        )
        out: list[Order] = []
        for r in rows:
            intent = OrderIntent(
                r[0], r[1], r[2], Side(r[3]), dec(r[6]), dec(r[9]), int(r[11]), int(r[12]), float(r[10]),
                OrderType(r[4]), TimeInForce(r[5]), opt(r[7]), opt(r[8]),
            )  # fmt: skip
            events = self.events(r[0])
            fill_ids = [e.fill_id for e in events if e.fill_id]
            order = Order(intent, OrderStatus(r[14]), self.fills(fill_ids) if fill_ids else [], events)
            order.triggered = any(e.kind is EventKind.TRIGGERED for e in events)
            out.append(order)
        return out

    def bar_marks(self) -> dict[str, tuple[int, float, Decimal]]:
        """Per symbol: the last bar start the broker processed, its variance state and the bar's close."""
        self._flush_marks()
        rows = self._rows("SELECT symbol, start, variance, close FROM bar_marks")
        return {r[0]: (int(r[1]), float(r[2]), dec(r[3])) for r in rows}

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
