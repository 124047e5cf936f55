"""The ledger's read side for the API, the console and reconciliation: recent orders, counts, latencies,
risk transitions and order states (mixed into :class:`~raytrade.adapters.ledger.Ledger`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from raytrade.adapters.ledger_schema import ORDER_COLS, dec
from raytrade.domain.orders import OrderReport, OrderStatus


class LedgerQueries:
    """Queries over the ledger's tables; the connection and the row helpers come from the ledger."""

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def reports(self, order_ids: Iterable[str]) -> dict[str, OrderReport]:
        raise NotImplementedError

    def recent_orders(self, limit: int, symbol: str | None = None) -> list[dict[str, object]]:
        """The last ``limit`` orders (newest first) with their fills, as JSON-ready dicts."""
        where, args = ("WHERE symbol = ?", [symbol]) if symbol else ("", [])
        rows = self._rows(
            f"SELECT {ORDER_COLS} FROM orders {where} ORDER BY created_seq DESC, order_id LIMIT ?", [*args, limit]
        )
        reports = self.reports([r[0] for r in rows])
        keys = [k.strip() for k in ORDER_COLS.split(",")]
        out: list[dict[str, object]] = []
        for r in rows:
            order: dict[str, object] = {
                k: (str(v) if isinstance(v, Decimal) else v) for k, v in zip(keys, r, strict=True)
            }
            for k in ("qty", "limit_price", "stop_price", "ref_price", "filled_qty"):
                order[k] = None if order[k] is None else str(dec(order[k]))
            order["fills"] = [
                {
                    "fill_id": f.fill_id,
                    "qty": str(f.qty),
                    "price": str(f.price),
                    "fee": str(f.fee),
                    "liquidity": f.liquidity.value,
                }
                for f in reports[r[0]].fills
            ]
            out.append(order)
        return out

    TABLES = ("orders", "order_events", "fills", "bar_marks", "risk_events")

    def row_counts(self) -> dict[str, int]:
        """Rows per table (all zero: a fresh ledger)."""
        return {t: int(self._rows(f"SELECT COUNT(*) FROM {t}")[0][0]) for t in self.TABLES}

    def status_counts(self) -> dict[str, int]:
        """Number of orders per current status."""
        return {r[0]: int(r[1]) for r in self._rows("SELECT status, COUNT(*) FROM orders GROUP BY status")}

    def latencies_ns(self) -> list[int]:
        """Consumed-to-accepted latency of every order the engine accepted (not rejected)."""
        rows = self._rows(
            "SELECT ts_accepted - ts_consumed FROM orders WHERE status != ?", [OrderStatus.REJECTED.value]
        )
        return [int(r[0]) for r in rows]

    def risk_events(self) -> list[dict[str, object]]:
        """RiskGate transitions, oldest first."""
        rows = self._rows("SELECT seq, ts, kind, state, reason FROM risk_events ORDER BY seq")
        return [dict(zip(("seq", "ts", "kind", "state", "reason"), r, strict=True)) for r in rows]

    def order_states(self) -> dict[str, tuple[OrderStatus, Decimal]]:
        """Every order's recorded status and filled quantity (for reconciliation)."""
        return {
            r[0]: (OrderStatus(r[1]), dec(r[2])) for r in self._rows("SELECT order_id, status, filled_qty FROM orders")
        }
