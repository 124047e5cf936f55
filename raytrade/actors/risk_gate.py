"""RiskGate actor: the only door to Execution."""

from __future__ import annotations

from typing import Any

import ray

from raytrade.domain.orders import OrderIntent, OrderReport
from raytrade.domain.risk import RiskLimits, RiskRules


@ray.remote(num_cpus=0)
class RiskGate:
    """Check every intent, forward the decisions to Execution in one call, return reports."""

    def __init__(self, limits: RiskLimits, execution: Any) -> None:
        self.rules = RiskRules(limits)
        self.execution = execution
        self.approved = 0
        self.denied = 0

    async def submit(self, intents: list[OrderIntent]) -> list[OrderReport]:
        """Decide, execute, reconcile the gate's view with the actual fills."""
        decisions = [self.rules.check(i) for i in intents]
        approved = [d.intent for d in decisions if d.approved]
        self.approved += len(approved)
        self.denied += len(decisions) - len(approved)
        reports: list[OrderReport] = await self.execution.execute.remote(decisions)
        self.rules.reconcile(approved, [r.fill for r in reports if r.fill is not None])
        return reports

    def halt(self, reason: str) -> None:
        """Engage the kill switch: every later intent is denied."""
        self.rules.halt(reason)

    def resume(self) -> None:
        """Release the kill switch."""
        self.rules.resume()

    def state(self) -> dict[str, Any]:
        """Trading state, counts and the gate's position view."""
        return {
            "state": self.rules.state.value,
            "halt_reason": self.rules.halt_reason,
            "approved": self.approved,
            "denied": self.denied,
            "positions": {s: str(q) for s, q in self.rules.positions.items()},
        }
