"""The ledger's schema (SQLite and PostgreSQL dialects) and the conversions between rows and domain values."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from raytrade.domain.order_lifecycle import EventKind, OrderEvent
from raytrade.domain.orders import Fill, Liquidity, OrderStatus, Side

TABLES = """
CREATE TABLE IF NOT EXISTS orders (
    order_id    TEXT PRIMARY KEY,
    strategy    TEXT NOT NULL,
    symbol      TEXT NOT NULL,
    side        TEXT NOT NULL,
    order_type  TEXT NOT NULL,
    tif         TEXT NOT NULL,
    qty         {num} NOT NULL,
    limit_price {num},
    stop_price  {num},
    ref_price   {num} NOT NULL,
    score       DOUBLE PRECISION NOT NULL,
    ts_event    BIGINT NOT NULL,
    ts_consumed BIGINT NOT NULL,
    ts_accepted BIGINT NOT NULL,
    status      TEXT NOT NULL,
    filled_qty  {num} NOT NULL,
    reason      TEXT NOT NULL,
    created_seq BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS order_events (
    seq         {serial},
    order_id    TEXT NOT NULL REFERENCES orders(order_id),
    event_no    INTEGER NOT NULL,
    symbol      TEXT NOT NULL,
    side        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    qty         {num} NOT NULL,
    filled_qty  {num} NOT NULL,
    limit_price {num},
    stop_price  {num},
    reason      TEXT NOT NULL,
    fill_id     TEXT,
    cause       TEXT NOT NULL,
    ts          BIGINT NOT NULL,
    UNIQUE (order_id, event_no)
);
CREATE INDEX IF NOT EXISTS order_events_cause ON order_events (cause);
CREATE INDEX IF NOT EXISTS orders_created_seq ON orders (created_seq);
CREATE TABLE IF NOT EXISTS fills (
    seq       {serial},
    fill_id   TEXT NOT NULL UNIQUE,
    order_id  TEXT NOT NULL REFERENCES orders(order_id),
    symbol    TEXT NOT NULL,
    side      TEXT NOT NULL,
    qty       {num} NOT NULL,
    price     {num} NOT NULL,
    fee       {num} NOT NULL,
    liquidity TEXT NOT NULL,
    ts        BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS bar_marks (
    symbol   TEXT PRIMARY KEY,
    start    BIGINT NOT NULL,
    variance DOUBLE PRECISION NOT NULL,
    close    {num} NOT NULL
);
CREATE TABLE IF NOT EXISTS gate_state (
    id    INTEGER PRIMARY KEY,
    state {blob} NOT NULL
);
CREATE TABLE IF NOT EXISTS risk_events (
    seq    {serial},
    ts     BIGINT NOT NULL,
    kind   TEXT NOT NULL,
    state  TEXT NOT NULL,
    reason TEXT NOT NULL
);
"""
DIALECT = {
    "sqlite": {"num": "TEXT", "serial": "INTEGER PRIMARY KEY AUTOINCREMENT", "blob": "BLOB"},
    "postgres": {"num": "NUMERIC", "serial": "BIGSERIAL PRIMARY KEY", "blob": "BYTEA"},
}
ORDER_COLS = (
    "order_id, strategy, symbol, side, order_type, tif, qty, limit_price, stop_price, ref_price, score, "
    "ts_event, ts_consumed, ts_accepted, status, filled_qty, reason"
)
EVENT_COLS = (
    "order_id, event_no, symbol, side, kind, status, qty, filled_qty, limit_price, stop_price, reason, fill_id, "
    "cause, ts"
)
FILL_COLS = "fill_id, order_id, symbol, side, qty, price, fee, ts, liquidity"


def dec(v: Any) -> Decimal:
    """A stored number as an exact decimal."""
    return v if isinstance(v, Decimal) else Decimal(str(v))


def opt(v: Any) -> Decimal | None:
    """A nullable stored number."""
    return None if v is None else dec(v)


def num(v: Decimal | None) -> str | None:
    """A decimal as stored (text, exact)."""
    return None if v is None else str(v)


def fill_row(r: Sequence[Any]) -> Fill:
    """A ``fills`` row (``FILL_COLS``) as a fill."""
    return Fill(r[0], r[1], r[2], Side(r[3]), dec(r[4]), dec(r[5]), dec(r[6]), int(r[7]), Liquidity(r[8]))


def event_row(r: Sequence[Any]) -> OrderEvent:
    """An ``order_events`` row (``EVENT_COLS``) as an event."""
    return OrderEvent(
        r[0],
        int(r[1]),
        r[2],
        Side(r[3]),
        EventKind(r[4]),
        OrderStatus(r[5]),
        dec(r[6]),
        dec(r[7]),
        opt(r[8]),
        opt(r[9]),
        r[10],
        r[11],
        r[12],
        int(r[13]),
    )
