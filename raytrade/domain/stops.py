"""ATR trailing stops, one per symbol, ratcheting with the position's favourable extreme."""

from __future__ import annotations

import math
from decimal import Decimal

from raytrade.domain.bars import Bar
from raytrade.domain.indicators import Atr
from raytrade.domain.money import ZERO


class _SymbolStop:
    """One symbol's ATR, bars seen, the side the stop protects (+1, -1, 0 = none) and its level."""

    __slots__ = ("atr", "bars", "level", "side")

    def __init__(self, atr_period: int) -> None:
        self.atr = Atr(atr_period)
        self.bars = 0
        self.side = 0
        self.level: float | None = None


class AtrTrailingStop:
    """Chandelier-style trailing stops: ``multiple`` Wilder ATRs behind the best price since entry.

    Per bar, after folding the bar into the symbol's ATR (always, so the ATR stays warm while flat):

    * flat position: the stop is cleared;
    * fewer than ``atr_period`` bars seen: no stop yet (warm-up);
    * no stop yet, or the position changed side: a fresh stop at ``close - multiple * ATR`` (long)
      or ``close + multiple * ATR`` (short); the bar that sets a stop cannot trigger it;
    * otherwise the bar is checked against the standing level first: a long triggers on ``low <= level``,
      a short on ``high >= level``, and the triggered level is returned and left in place (it keeps firing
      until the position is flat); if not triggered, the level ratchets to
      ``max(level, high - multiple * ATR)`` (long) or ``min(level, low + multiple * ATR)`` (short).
    """

    __slots__ = ("_stops", "atr_period", "multiple")

    def __init__(self, multiple: float = 3.0, atr_period: int = 14) -> None:
        if not (math.isfinite(multiple) and multiple > 0.0):
            raise ValueError(f"multiple must be a finite number > 0, found {multiple!r}")
        if isinstance(atr_period, bool) or not isinstance(atr_period, int) or atr_period < 1:
            raise ValueError(f"atr_period must be a positive integer, found {atr_period!r}")
        self.multiple = multiple
        self.atr_period = atr_period
        self._stops: dict[str, _SymbolStop] = {}

    def on_bar(self, symbol: str, bar: Bar, position: Decimal) -> float | None:
        """Fold in ``symbol``'s closed bar given the position held through it; return the stop level it hit, if any."""
        if not all(math.isfinite(v) for v in (bar.high, bar.low, bar.close)):
            raise ValueError(f"bar prices must be finite, found {bar!r}")
        state = self._stops.get(symbol)
        if state is None:
            state = self._stops[symbol] = _SymbolStop(self.atr_period)
        atr = state.atr.update(bar.high, bar.low, bar.close)
        state.bars += 1
        side = 1 if position > ZERO else -1 if position < ZERO else 0
        if side == 0 or state.bars < self.atr_period:
            state.side, state.level = side, None
            return None
        distance = self.multiple * atr
        level = state.level
        if level is None or side != state.side:
            state.side = side
            state.level = bar.close - distance if side > 0 else bar.close + distance
            return None
        if side > 0:
            if bar.low <= level:
                return level
            state.level = max(level, bar.high - distance)
        else:
            if bar.high >= level:
                return level
            state.level = min(level, bar.low + distance)
        return None

    def level(self, symbol: str) -> float | None:
        """The standing stop level for ``symbol``, or ``None`` when there is none."""
        state = self._stops.get(symbol)
        return None if state is None else state.level

    def side(self, symbol: str) -> int:
        """The side the standing stop protects: +1 long, -1 short, 0 none."""
        state = self._stops.get(symbol)
        return 0 if state is None or state.level is None else state.side
