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

    A symbol's position is what Execution last confirmed (``confirmed``, with the ledger
    sequence number it was read at) plus what approved-but-unsettled intents reserve
    (``reserved``). Execution's replies replace the confirmed part, so the view never
    double-counts a fill, whatever was retried or replayed.
    """

    limits: RiskLimits
    state: TradingState = TradingState.ACTIVE
    halt_reason: str = ""
    confirmed: dict[str, Decimal] = field(default_factory=dict)
    confirmed_seq: dict[str, int] = field(default_factory=dict)
    reserved: dict[str, Decimal] = field(default_factory=dict)
    marks: dict[str, Decimal] = field(default_factory=dict)

    def halt(self, reason: str) -> None:
        """Engage the kill switch."""
        self.state, self.halt_reason = TradingState.HALTED, reason

    def resume(self) -> None:
        """Release the kill switch."""
        self.state, self.halt_reason = TradingState.ACTIVE, ""

    def position(self, symbol: str) -> Decimal:
        """Confirmed plus reserved position."""
        return self.confirmed.get(symbol, ZERO) + self.reserved.get(symbol, ZERO)

    @property
    def positions(self) -> dict[str, Decimal]:
        """The gate's view of every symbol it knows."""
        return {s: self.position(s) for s in sorted(set(self.confirmed) | set(self.reserved))}

    def gross_exposure(self) -> Decimal:
        """Sum of |position| * mark over symbols."""
        with localcontext(MONEY_CONTEXT):
            return sum((abs(q) * self.marks.get(s, ZERO) for s, q in self.positions.items()), ZERO)

    def check(self, intent: OrderIntent) -> RiskDecision:
        """Approve or deny one intent; approval reserves its quantity until :meth:`settle`."""
        if self.state is TradingState.HALTED:
            return RiskDecision(intent, False, f"halted: {self.halt_reason}")
        with localcontext(MONEY_CONTEXT):
            price = intent.ref_price
            notional = intent.qty * price
            if notional > self.limits.max_order_notional:
                return RiskDecision(intent, False, f"order notional {notional} > max {self.limits.max_order_notional}")
            current = self.position(intent.symbol)
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
            self.reserved[intent.symbol] = self.reserved.get(intent.symbol, ZERO) + intent.signed_qty
        return RiskDecision(intent, True)

    def release(self, approved: Iterable[OrderIntent]) -> None:
        """Drop the reservations of ``approved`` intents (settled or failed)."""
        with localcontext(MONEY_CONTEXT):
            for intent in approved:
                left = self.reserved.get(intent.symbol, ZERO) - intent.signed_qty
                if left == ZERO:
                    self.reserved.pop(intent.symbol, None)
                else:
                    self.reserved[intent.symbol] = left

    def confirm(self, positions: dict[str, Decimal], seq: int, fills: Iterable[Fill] = ()) -> None:
        """Take Execution's positions read at ledger sequence ``seq``; older reads are ignored."""
        for symbol, qty in positions.items():
            if seq >= self.confirmed_seq.get(symbol, -1):
                self.confirmed[symbol], self.confirmed_seq[symbol] = qty, seq
        for fill in fills:
            self.marks[fill.symbol] = fill.price

    def settle(
        self, approved: Iterable[OrderIntent], positions: dict[str, Decimal], seq: int, fills: Iterable[Fill]
    ) -> None:
        """Replace the reservations of ``approved`` by Execution's confirmed positions."""
        self.release(approved)
        self.confirm(positions, seq, fills)
