"""Tradable instruments and their precision."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Instrument:
    """A symbol with the increments its prices and quantities are quantized to."""

    symbol: str
    price_increment: Decimal
    size_increment: Decimal

    def __post_init__(self) -> None:
        if not self.symbol:
            raise ValueError("instrument symbol must be non-empty")
        for name in ("price_increment", "size_increment"):
            inc = getattr(self, name)
            if not inc.is_finite() or inc <= 0:
                raise ValueError(f"{name} must be a positive finite decimal, found {inc}")
