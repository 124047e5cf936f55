"""Portfolio accounting with FIFO lots in exact decimals.

Invariant (tested): ``equity(marks) - initial_cash == realized + unrealized(marks) - fees``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, localcontext

from raytrade.domain.money import MONEY_CONTEXT, ZERO
from raytrade.domain.orders import Fill


@dataclass(slots=True)
class Lot:
    """An open lot: signed quantity at an entry price."""

    qty: Decimal
    price: Decimal


@dataclass(slots=True)
class Portfolio:
    """Cash, FIFO lots per symbol, realized trading P&L and fees paid."""

    initial_cash: Decimal
    cash: Decimal = ZERO
    realized: Decimal = ZERO
    fees: Decimal = ZERO
    lots: dict[str, deque[Lot]] = field(default_factory=dict)
    held: dict[str, Decimal] = field(default_factory=dict)  # per symbol: the sum of its lots, kept by apply()

    def __post_init__(self) -> None:
        if self.cash == ZERO:
            self.cash = self.initial_cash

    def position(self, symbol: str) -> Decimal:
        """Signed position in ``symbol``."""
        return self.held.get(symbol, ZERO)

    def positions(self) -> dict[str, Decimal]:
        """All non-zero positions."""
        return {s: q for s, q in self.held.items() if q != ZERO}

    def apply(self, fill: Fill) -> None:
        """Book a fill: move cash, pay the fee, close lots FIFO, open the remainder."""
        with localcontext(MONEY_CONTEXT):
            signed = fill.signed_qty
            self.cash -= signed * fill.price + fill.fee
            self.fees += fill.fee
            lots = self.lots.setdefault(fill.symbol, deque())
            remaining = signed
            while remaining != ZERO and lots and (lots[0].qty > 0) != (remaining > 0):
                lot = lots[0]
                closed = min(abs(remaining), abs(lot.qty))
                direction = 1 if lot.qty > 0 else -1
                self.realized += direction * closed * (fill.price - lot.price)
                lot.qty -= direction * closed
                remaining += direction * closed
                if lot.qty == ZERO:
                    lots.popleft()
            if remaining != ZERO:
                lots.append(Lot(remaining, fill.price))
            self.held[fill.symbol] = self.held.get(fill.symbol, ZERO) + signed

    def unrealized(self, marks: Mapping[str, Decimal]) -> Decimal:
        """Open-lot P&L at ``marks`` (symbols without a mark use their entry price)."""
        with localcontext(MONEY_CONTEXT):
            total = ZERO
            for symbol, lots in self.lots.items():
                for lot in lots:
                    total += lot.qty * (marks.get(symbol, lot.price) - lot.price)
            return total

    def equity(self, marks: Mapping[str, Decimal]) -> Decimal:
        """Cash plus positions valued at ``marks`` (a symbol without a mark: its lots at their entry prices)."""
        if not self.held:
            return self.cash
        with localcontext(MONEY_CONTEXT):
            value = ZERO
            for symbol, qty in self.held.items():
                mark = marks.get(symbol)
                if mark is not None:
                    value += qty * mark
                else:
                    value += sum((lot.qty * lot.price for lot in self.lots[symbol]), ZERO)
            return self.cash + value

    @classmethod
    def from_fills(cls, initial_cash: Decimal, fills: Iterable[Fill]) -> Portfolio:
        """Rebuild a portfolio by replaying fills in order."""
        p = cls(initial_cash)
        for f in fills:
            p.apply(f)
        return p
