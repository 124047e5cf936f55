"""``BuyAndHold``: buy once per symbol at the first bar, then hold (a baseline)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pydantic import Field, model_validator

from raytrade.domain.bars import Bar
from raytrade.strategy.base import Strategy, StrategyParams


class BuyAndHoldParams(StrategyParams):
    """How much to buy of what."""

    qty: Decimal | None = Field(None, gt=0, description="Quantity per symbol (or give notional)")
    notional: Decimal | None = Field(None, gt=0, description="Quote-currency amount per symbol at the first close")
    symbols: list[str] | None = Field(None, description="Only these symbols (default: every symbol of the engine)")

    @model_validator(mode="after")
    def _one_size(self) -> BuyAndHoldParams:
        if (self.qty is None) == (self.notional is None):
            raise ValueError("give exactly one of qty and notional")
        return self


class BuyAndHold(Strategy):
    """Buy ``qty`` (or ``notional`` worth at the close) of each symbol on its first bar; never sell."""

    Params = BuyAndHoldParams
    uses_features = False

    def __init__(self, strategy_id: str, params: StrategyParams | Mapping[str, Any] | None = None) -> None:
        super().__init__(strategy_id, params)
        self.bought: set[str] = set()

    def on_bar(self, symbol: str, bar: Bar, features: Mapping[str, float] | None, score: float | None) -> None:
        """Buy on the symbol's first bar."""
        p = self.params
        assert isinstance(p, BuyAndHoldParams)
        if symbol in self.bought or (p.symbols is not None and symbol not in p.symbols):
            return
        self.bought.add(symbol)
        qty = p.qty if p.qty is not None else (p.notional or Decimal(0)) / Decimal(repr(bar.close))
        self.ctx.target_position(symbol, qty)

    def on_save(self) -> bytes:
        """The symbols bought."""
        return json.dumps(sorted(self.bought)).encode()

    def on_load(self, state: bytes) -> None:
        """Take back :meth:`on_save`."""
        self.bought = set(json.loads(state))
