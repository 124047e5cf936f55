"""Pre-trade risk rules: the pure core of the RiskGate actor."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from enum import StrEnum

from raytrade.domain.money import MONEY_CONTEXT, ZERO
from raytrade.domain.orders import Fill, OrderIntent, RiskDecision


class TradingState(StrEnum):
    """ACTIVE lets orders through; HALTED (the kill switch) stops every order."""

    ACTIVE = "ACTIVE"
    HALTED = "HALTED"


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Hard limits, in quote currency and instrument units."""

    max_order_notional: Decimal
    max_position_notional: Decimal
    max_gross_exposure: Decimal


@dataclass(slots=True)
class RiskRules:
    """Check intents against limits and the trading state, tracking the gate's own view.

    The view (positions, last prices) is updated with every approved intent's projected
    position and corrected with the fills execution reports.
    """

    limits: RiskLimits
    state: TradingState = TradingState.ACTIVE
    halt_reason: str = ""
    positions: dict[str, Decimal] = field(default_factory=dict)
    marks: dict[str, Decimal] = field(default_factory=dict)

    def halt(self, reason: str) -> None:
        """Engage the kill switch."""
        self.state, self.halt_reason = TradingState.HALTED, reason

    def resume(self) -> None:
        """Release the kill switch."""
        self.state, self.halt_reason = TradingState.ACTIVE, ""

    def gross_exposure(self) -> Decimal:
        """Sum of |position| * mark over symbols."""
        with localcontext(MONEY_CONTEXT):
            return sum((abs(q) * self.marks.get(s, ZERO) for s, q in self.positions.items()), ZERO)

    def check(self, intent: OrderIntent) -> RiskDecision:
        """Approve or deny one intent; approval reserves its projected position."""
        if self.state is TradingState.HALTED:
            return RiskDecision(intent, False, f"halted: {self.halt_reason}")
        with localcontext(MONEY_CONTEXT):
            price = intent.ref_price
            notional = intent.qty * price
            if notional > self.limits.max_order_notional:
                return RiskDecision(intent, False, f"order notional {notional} > max {self.limits.max_order_notional}")
            current = self.positions.get(intent.symbol, ZERO)
            projected = current + intent.signed_qty
            if abs(projected) * price > self.limits.max_position_notional and abs(projected) > abs(current):
                return RiskDecision(
                    intent,
                    False,
                    f"position notional {abs(projected) * price} > max {self.limits.max_position_notional}",
                )
            self.marks[intent.symbol] = price
            gross_after = self.gross_exposure() + (abs(projected) - abs(current)) * price
            if gross_after > self.limits.max_gross_exposure and abs(projected) > abs(current):
                return RiskDecision(
                    intent, False, f"gross exposure {gross_after} > max {self.limits.max_gross_exposure}"
                )
            self.positions[intent.symbol] = projected
        return RiskDecision(intent, True)

    def reconcile(self, intents: Iterable[OrderIntent], fills: Iterable[Fill]) -> None:
        """Replace reserved projections of ``intents`` by what actually filled."""
        with localcontext(MONEY_CONTEXT):
            for intent in intents:
                self.positions[intent.symbol] = self.positions.get(intent.symbol, ZERO) - intent.signed_qty
            for fill in fills:
                self.positions[fill.symbol] = self.positions.get(fill.symbol, ZERO) + fill.signed_qty
                self.marks[fill.symbol] = fill.price
