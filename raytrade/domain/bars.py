"""One-minute bars built incrementally from ticks."""

from __future__ import annotations

from dataclasses import dataclass

BAR_NS = 60_000_000_000


@dataclass(slots=True)
class Bar:
    """OHLCV bar; ``start`` is the bar-open time in integer nanoseconds."""

    start: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class BarBuilder:
    """Aggregate one symbol's ticks into bars of ``BAR_NS``; emit a bar when it closes.

    A bar closes when the first tick of a later minute arrives (event time, not wall time).
    """

    __slots__ = ("current",)

    def __init__(self) -> None:
        self.current: Bar | None = None

    def add(self, price: float, size: float, ts: int) -> Bar | None:
        """Add a tick; return the bar it closed, if any."""
        start = ts - ts % BAR_NS
        bar = self.current
        if bar is not None and bar.start == start:
            if price > bar.high:
                bar.high = price
            elif price < bar.low:
                bar.low = price
            bar.close = price
            bar.volume += size
            return None
        self.current = Bar(start, price, price, price, price, size)
        return bar
