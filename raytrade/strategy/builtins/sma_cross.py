"""``SmaCross``: a moving-average crossover on bar closes, no model."""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Mapping
from decimal import Decimal
from itertools import islice
from typing import Any

from pydantic import Field, model_validator

from raytrade.domain.bars import Bar
from raytrade.strategy.base import Strategy, StrategyParams


class SmaCrossParams(StrategyParams):
    """Windows, size and direction of the crossover."""

    fast: int = Field(10, ge=1, description="Bars in the fast SMA")
    slow: int = Field(30, ge=2, description="Bars in the slow SMA")
    qty: Decimal | None = Field(None, gt=0, description="Fixed quantity per position (or give notional)")
    notional: Decimal | None = Field(None, gt=0, description="Quote-currency size at the decision price")
    allow_short: bool = Field(False, description="Go short on a cross down (else flat)")
    tie_tolerance: float = Field(1e-9, ge=0, description="|fast - slow| <= tol * |slow| is a tie, not a cross")
    symbols: list[str] | None = Field(None, description="Trade only these (default: every symbol of the engine)")

    @model_validator(mode="after")
    def _sizes(self) -> SmaCrossParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be < slow ({self.slow})")
        if (self.qty is None) == (self.notional is None):
            raise ValueError("give exactly one of qty and notional")
        return self


def relation(fast: float, slow: float, tolerance: float) -> int:
    """+1 when fast is above slow beyond the tolerance, -1 below, 0 for a tie."""
    gap = fast - slow
    if abs(gap) <= tolerance * abs(slow):
        return 0
    return 1 if gap > 0 else -1


class SmaCross(Strategy):
    """Long (``qty``, or ``notional`` at the close) when SMA(fast) crosses above SMA(slow), flat (or
    short) when it crosses below; decided at the bar's close.

    SMAs are ``math.fsum`` of the last closes divided by the window (correctly rounded, so any
    implementation that sums the same closes gets the same bits). A cross is a bar whose relation
    (:func:`relation`) is +1 or -1 and differs from the last non-zero relation before it: ties
    carry the previous side and are never crosses. The first side seen after warm-up is not a
    cross (no entry on the first bar).
    """

    Params = SmaCrossParams
    uses_features = False

    def __init__(self, strategy_id: str, params: StrategyParams | Mapping[str, Any] | None = None) -> None:
        super().__init__(strategy_id, params)
        self.closes: dict[str, deque[float]] = {}
        self.side: dict[str, int] = {}  # last non-zero relation per symbol

    def on_bar(self, symbol: str, bar: Bar, features: Mapping[str, float] | None, score: float | None) -> None:
        """Update the SMAs; trade on a cross."""
        p = self.params
        assert isinstance(p, SmaCrossParams)
        if p.symbols is not None and symbol not in p.symbols:
            return
        closes = self.closes.get(symbol)
        if closes is None:
            closes = self.closes[symbol] = deque(maxlen=p.slow)
        closes.append(bar.close)
        if len(closes) < p.slow:
            return
        slow = math.fsum(closes) / p.slow
        fast = math.fsum(islice(closes, p.slow - p.fast, None)) / p.fast
        rel = relation(fast, slow, p.tie_tolerance)
        if rel == 0:
            return
        previous = self.side.get(symbol)
        self.side[symbol] = rel
        if previous is None or previous == rel:
            return
        if rel > 0:
            target = p.qty if p.qty is not None else self._qty(p.notional, bar.close)
        elif p.allow_short:
            target = -(p.qty if p.qty is not None else self._qty(p.notional, bar.close))
        else:
            target = Decimal(0)
        self.ctx.target_position(symbol, target)

    @staticmethod
    def _qty(notional: Decimal | None, price: float) -> Decimal:
        assert notional is not None
        return notional / Decimal(repr(price))

    def on_save(self) -> bytes:
        """The closes in the windows and the last side, as JSON."""
        return json.dumps({"closes": {s: list(c) for s, c in self.closes.items()}, "side": self.side}).encode()

    def on_load(self, state: bytes) -> None:
        """Take back :meth:`on_save`'s JSON."""
        p = self.params
        assert isinstance(p, SmaCrossParams)
        raw = json.loads(state)
        self.closes = {s: deque(c, maxlen=p.slow) for s, c in raw["closes"].items()}
        self.side = {s: int(v) for s, v in raw["side"].items()}
