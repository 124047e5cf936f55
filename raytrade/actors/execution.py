"""Execution actor: the Ray shell around :class:`~raytrade.actors.execution_core.ExecutionCore`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import ray

from raytrade.actors.execution_core import ExecutionCore, NotTheGateError
from raytrade.domain.bars import Bar
from raytrade.domain.orders import ExecutionReply, OrderCommand, OrderReport, RiskDecision

__all__ = ["Execution", "ExecutionCore", "NotTheGateError"]


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class Execution:
    """Ray actor shell around :class:`ExecutionCore` (the one writer of the ledger).

    Restarted by Ray when it dies; every method is idempotent, so Ray also retries the
    calls that were in flight, and a restarted instance rebuilds its books from the ledger.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.core = ExecutionCore(*args, **kwargs)

    def execute(
        self,
        decisions: list[RiskDecision],
        bars: Sequence[tuple[str, Bar]] = (),
        key: str = "",
        recorded: Sequence[str] = (),
        commands: Sequence[OrderCommand] = (),
        gate_state: bytes | None = None,
    ) -> ExecutionReply:
        """See :meth:`ExecutionCore.execute`."""
        return self.core.execute(decisions, bars, key, recorded, commands, gate_state)

    def cancel(self, order_id: str, reason: str, who: str, key: str = "", owner: str | None = None) -> OrderReport:
        """See :meth:`ExecutionCore.cancel`."""
        return self.core.cancel(order_id, reason, who, key, owner)

    def replace(
        self,
        order_id: str,
        who: str,
        qty: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        key: str = "",
    ) -> OrderReport:
        """See :meth:`ExecutionCore.replace`."""
        return self.core.replace(order_id, who, qty, limit_price, stop_price, key)

    def cancel_all(self, reason: str, who: str, key: str = "") -> list[OrderReport]:
        """See :meth:`ExecutionCore.cancel_all`."""
        return self.core.cancel_all(reason, who, key)

    def open_orders(self) -> list[OrderReport]:
        """See :meth:`ExecutionCore.open_orders`."""
        return self.core.open_orders()

    def reports(self, order_ids: list[str]) -> dict[str, OrderReport]:
        """See :meth:`ExecutionCore.reports`."""
        return self.core.reports(order_ids)

    def positions(self) -> tuple[dict[str, Decimal], dict[str, Decimal], int]:
        """See :meth:`ExecutionCore.positions`."""
        return self.core.positions()

    def account(self) -> dict[str, Any]:
        """See :meth:`ExecutionCore.account`."""
        return self.core.account()

    def record_risk_event(self, ts: int, kind: str, state: str, reason: str) -> None:
        """See :meth:`ExecutionCore.record_risk_event`."""
        self.core.record_risk_event(ts, kind, state, reason)

    def reconcile(self) -> dict[str, Any]:
        """See :meth:`ExecutionCore.reconcile`."""
        return self.core.reconcile()

    def pid(self) -> int:
        """The actor's process id (for fault-injection tests and memory probes)."""
        return os.getpid()

    def node_id(self) -> str:
        """The Ray node this actor runs on."""
        return ray.get_runtime_context().get_node_id()

    def summary(self, marks: dict[str, Decimal]) -> dict[str, Any]:
        """See :meth:`ExecutionCore.summary`."""
        return self.core.summary(marks)

    def symbols(self) -> list[str]:
        """See :meth:`ExecutionCore.symbols`."""
        return self.core.symbols()

    def orders(self, limit: int, symbol: str | None = None) -> list[dict[str, object]]:
        """See :meth:`ExecutionCore.orders`."""
        return self.core.orders(limit, symbol)

    def latencies_ns(self) -> list[int]:
        """See :meth:`ExecutionCore.latencies_ns`."""
        return self.core.latencies_ns()

    def performance(self, periods_per_year: float) -> dict[str, Any]:
        """See :meth:`ExecutionCore.performance`."""
        return self.core.performance(periods_per_year)
