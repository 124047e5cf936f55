"""An example user strategy, outside the raytrade package: Bollinger-band mean reversion with limit orders.

Load it by file path (relative paths are resolved from the working directory)::

    strategies:
      - id: bollinger
        path: examples/strategies/bollinger_reversion.py:BollingerReversion
        params: {window: 20, width: 2.0, qty: "0.05", patience: 3}

When flat, it rests a buy limit at the lower band; an entry limit not filled within ``patience``
bars is cancelled (or moved to the new band with a replace); once long, it rests a sell limit at
the middle band and a protective stop ``stop_pct`` below the entry. It uses every part of the
API: ``on_bar`` with no model, ``on_fill``/``on_order_event``, working orders, cancel, replace,
and ``on_save``/``on_load`` for its state.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pydantic import Field

from raytrade.domain.bars import Bar
from raytrade.domain.order_lifecycle import OrderEvent
from raytrade.domain.orders import Fill, OrderType, Side
from raytrade.strategy import Strategy, StrategyParams


class BollingerParams(StrategyParams):
    """Band, size and patience."""

    window: int = Field(20, ge=2)
    width: float = Field(2.0, gt=0)
    qty: Decimal = Field(gt=0)
    patience: int = Field(3, ge=1, description="Bars an entry limit may rest before it is moved")
    stop_pct: float = Field(0.02, gt=0, lt=1, description="Protective stop below the entry price")


class BollingerReversion(Strategy):
    """Buy the lower band, sell the middle band, with a stop; one position per symbol."""

    Params = BollingerParams

    def __init__(self, strategy_id: str, params: StrategyParams | Mapping[str, Any] | None = None) -> None:
        super().__init__(strategy_id, params)
        self.closes: dict[str, deque[float]] = {}
        self.entry_age: dict[str, int] = {}  # bars the entry limit has rested
        self.events_seen = 0
        self.filled: list[str] = []

    def on_bar(self, symbol: str, bar: Bar, features: Mapping[str, float] | None, score: float | None) -> None:
        p = self.params
        assert isinstance(p, BollingerParams)
        closes = self.closes.setdefault(symbol, deque(maxlen=p.window))
        closes.append(bar.close)
        if len(closes) < p.window:
            return
        mid = math.fsum(closes) / p.window
        sd = math.sqrt(math.fsum((c - mid) ** 2 for c in closes) / p.window)
        lower = Decimal(repr(mid - p.width * sd))
        ctx = self.ctx
        working = ctx.working_orders(symbol)
        entries = [o for o in working if o.side is Side.BUY and o.order_type is OrderType.LIMIT]
        if ctx.position(symbol) == 0 and not working and lower > 0:
            ctx.order(symbol, Side.BUY, p.qty, OrderType.LIMIT, limit_price=lower)
            self.entry_age[symbol] = 0
        elif entries:
            age = self.entry_age.get(symbol, 0) + 1
            self.entry_age[symbol] = age
            if age >= p.patience and lower > 0:
                ctx.replace(entries[0].order_id, limit_price=lower)  # follow the band
                self.entry_age[symbol] = 0

    def on_fill(self, fill: Fill) -> None:
        p = self.params
        assert isinstance(p, BollingerParams)
        self.filled.append(fill.fill_id)
        closes = self.closes.get(fill.symbol)
        if fill.side is Side.BUY and closes:
            mid = Decimal(repr(math.fsum(closes) / len(closes)))
            ctx = self.ctx
            target = max(mid, fill.price * Decimal("1.001"))
            ctx.order(fill.symbol, Side.SELL, fill.qty, OrderType.LIMIT, limit_price=target)
            stop = fill.price * Decimal(repr(1 - p.stop_pct))
            ctx.order(fill.symbol, Side.SELL, fill.qty, OrderType.STOP, stop_price=stop)
        elif fill.side is Side.SELL:
            for o in self.ctx.working_orders(fill.symbol):  # one exit filled: drop the other
                if o.side is Side.SELL:
                    self.ctx.cancel(o.order_id)

    def on_order_event(self, event: OrderEvent) -> None:
        self.events_seen += 1

    def on_save(self) -> bytes:
        return json.dumps(
            {
                "closes": {s: list(c) for s, c in self.closes.items()},
                "entry_age": self.entry_age,
                "events_seen": self.events_seen,
            }
        ).encode()

    def on_load(self, state: bytes) -> None:
        p = self.params
        assert isinstance(p, BollingerParams)
        raw = json.loads(state)
        self.closes = {s: deque(c, maxlen=p.window) for s, c in raw["closes"].items()}
        self.entry_age = {s: int(v) for s, v in raw["entry_age"].items()}
        self.events_seen = int(raw["events_seen"])
