"""OHLCV bars: one-minute bars built incrementally from ticks, or bars of any span read from files."""

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
    span: int = BAR_NS  # duration in ns (one minute from ticks; a file's bars may be daily)

    @property
    def end(self) -> int:
        """When the bar closes: ``start + span``."""
        return self.start + self.span


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
