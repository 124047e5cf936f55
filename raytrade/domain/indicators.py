"""Incremental (streaming) indicators, updated once per closed bar.

Each has a batch twin in :mod:`raytrade.domain.features_batch`; a test proves they agree.
Definitions:

* SMA(n): mean of the last n closes.
* EMA(n): ``y = a*x + (1-a)*y_prev`` with ``a = 2/(n+1)``, seeded with the first value.
* Wilder smoothing (RSI, ATR): the same recursion with ``a = 1/n``, seeded with the first value.
* Bollinger(20, 2): SMA(20) +- 2 population standard deviations (two-pass, exact).
* Realized volatility(n): ``sqrt(mean(log_return**2))`` over the last n bar-to-bar returns.
"""

from __future__ import annotations

import math
from collections import deque


class Ema:
    """Exponential moving average seeded with the first value."""

    __slots__ = ("alpha", "value")

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.value: float | None = None

    @classmethod
    def span(cls, n: int) -> Ema:
        """EMA with ``alpha = 2/(n+1)``."""
        return cls(2.0 / (n + 1))

    @classmethod
    def wilder(cls, n: int) -> Ema:
        """Wilder's smoothing: ``alpha = 1/n``."""
        return cls(1.0 / n)

    def update(self, x: float) -> float:
        """Add a value and return the new average."""
        v = self.value
        self.value = x if v is None else self.alpha * x + (1.0 - self.alpha) * v
        return self.value


class Window:
    """The last ``n`` values with exact mean and population standard deviation."""

    __slots__ = ("n", "values")

    def __init__(self, n: int) -> None:
        self.n = n
        self.values: deque[float] = deque(maxlen=n)

    def push(self, x: float) -> None:
        """Append a value, dropping the oldest when full."""
        self.values.append(x)

    @property
    def full(self) -> bool:
        """True once ``n`` values have been seen."""
        return len(self.values) == self.n

    def mean(self) -> float:
        """Mean of the window (two-pass friendly: summed fresh each time)."""
        return math.fsum(self.values) / len(self.values)

    def pstd(self) -> float:
        """Population standard deviation, two-pass."""
        m = self.mean()
        return math.sqrt(math.fsum((v - m) ** 2 for v in self.values) / len(self.values))


class Rsi:
    """Wilder RSI: 100 - 100/(1 + avg_gain/avg_loss); 50 when flat, 100 with no losses."""

    __slots__ = ("gain", "loss", "prev")

    def __init__(self, n: int = 14) -> None:
        self.gain = Ema.wilder(n)
        self.loss = Ema.wilder(n)
        self.prev: float | None = None

    def update(self, close: float) -> float | None:
        """Add a close; return RSI once a change has been seen."""
        prev, self.prev = self.prev, close
        if prev is None:
            return None
        change = close - prev
        g = self.gain.update(change if change > 0 else 0.0)
        loss = self.loss.update(-change if change < 0 else 0.0)
        return rsi_from(g, loss)


def rsi_from(avg_gain: float, avg_loss: float) -> float:
    """RSI from smoothed gain and loss."""
    if avg_loss == 0.0:
        return 50.0 if avg_gain == 0.0 else 100.0
    return 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)


class Atr:
    """Wilder ATR; the first true range is high - low."""

    __slots__ = ("avg", "prev_close")

    def __init__(self, n: int = 14) -> None:
        self.avg = Ema.wilder(n)
        self.prev_close: float | None = None

    def update(self, high: float, low: float, close: float) -> float:
        """Add a bar; return the ATR."""
        pc = self.prev_close
        tr = high - low if pc is None else max(high - low, abs(high - pc), abs(low - pc))
        self.prev_close = close
        return self.avg.update(tr)
