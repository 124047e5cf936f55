"""Round trips (closed trades) rebuilt from fills, and the per-trade statistics built on them.

A trade opens when a symbol's position leaves 0 and closes when it returns to 0. Fills are taken
per symbol in time order (ties keep their input order). A fill in the trade's direction adds to it
(scaling in), an opposite fill reduces it (a partial close); a fill larger than the open position
closes the trade and opens a new one in the other direction with the remainder, its fee split pro
rata to the two parts. All arithmetic is exact ``Decimal`` under :data:`MONEY_CONTEXT`.

A position still open after the last fill is not a round trip: it is left out of the result (its
fills count in :func:`traded_notional` and :func:`total_fees`, but not in any per-trade statistic).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Literal

from raytrade.domain.money import MONEY_CONTEXT, ZERO
from raytrade.domain.orders import Fill


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """One closed trade.

    ``qty`` is the total quantity opened (equal to the total closed); ``entry_price`` and
    ``exit_price`` are the volume-weighted prices of the opening and of the closing fills;
    ``entry_ts`` is the first opening fill's time and ``exit_ts`` the time of the fill that brought
    the position back to 0 (ns); ``fees`` are the fees of its fills (pro rata for a flipping fill)
    and ``pnl`` is net of them: ``sign * (exit notional - entry notional) - fees``.
    """

    symbol: str
    side: Literal["LONG", "SHORT"]
    qty: Decimal
    entry_ts: int
    exit_ts: int
    entry_price: Decimal
    exit_price: Decimal
    pnl: Decimal
    fees: Decimal

    @property
    def holding_ns(self) -> int:
        """Nanoseconds from the first entry fill to the closing fill."""
        return self.exit_ts - self.entry_ts


@dataclass(slots=True)
class _OpenTrade:
    sign: int
    entry_ts: int
    position: Decimal = ZERO  # open quantity, unsigned
    entry_qty: Decimal = ZERO
    entry_notional: Decimal = ZERO
    exit_qty: Decimal = ZERO
    exit_notional: Decimal = ZERO
    fees: Decimal = ZERO

    def close(self, symbol: str, ts: int) -> RoundTrip:
        return RoundTrip(
            symbol=symbol,
            side="LONG" if self.sign > 0 else "SHORT",
            qty=self.entry_qty,
            entry_ts=self.entry_ts,
            exit_ts=ts,
            entry_price=self.entry_notional / self.entry_qty,
            exit_price=self.exit_notional / self.exit_qty,
            pnl=self.sign * (self.exit_notional - self.entry_notional) - self.fees,
            fees=self.fees,
        )


def round_trips(fills: Iterable[Fill]) -> list[RoundTrip]:
    """Closed trades from ``fills`` (any symbols, any order), sorted by exit time, then symbol.

    Positions still open after the last fill are ignored (see the module docstring).
    Raises ``ValueError`` for a fill with a quantity that is not positive.
    """
    by_symbol: dict[str, list[Fill]] = {}
    for f in fills:
        if not f.qty > 0:
            raise ValueError(f"fill {f.fill_id}: qty must be > 0, found {f.qty}")
        by_symbol.setdefault(f.symbol, []).append(f)
    out: list[RoundTrip] = []
    with localcontext(MONEY_CONTEXT):
        for symbol, symbol_fills in by_symbol.items():
            cur: _OpenTrade | None = None
            for f in sorted(symbol_fills, key=lambda x: x.ts):
                qty, fee, sign = f.qty, f.fee, f.side.sign
                if cur is not None and sign != cur.sign:
                    closed = min(qty, cur.position)
                    closed_fee = fee if closed == qty else fee * closed / qty
                    cur.position -= closed
                    cur.exit_qty += closed
                    cur.exit_notional += closed * f.price
                    cur.fees += closed_fee
                    qty -= closed
                    fee -= closed_fee
                    if cur.position == 0:
                        out.append(cur.close(symbol, f.ts))
                        cur = None
                if qty > 0:
                    if cur is None:
                        cur = _OpenTrade(sign=sign, entry_ts=f.ts)
                    cur.position += qty
                    cur.entry_qty += qty
                    cur.entry_notional += qty * f.price
                    cur.fees += fee
    out.sort(key=lambda t: (t.exit_ts, t.symbol))
    return out


def traded_notional(fills: Iterable[Fill]) -> Decimal:
    """Sum of ``qty * price`` over all fills (exact)."""
    with localcontext(MONEY_CONTEXT):
        return sum((f.qty * f.price for f in fills), ZERO)


def total_fees(fills: Iterable[Fill]) -> Decimal:
    """Sum of the fees of all fills (exact)."""
    with localcontext(MONEY_CONTEXT):
        return sum((f.fee for f in fills), ZERO)


def win_rate(trades: Sequence[RoundTrip]) -> float:
    """Fraction of trades with ``pnl > 0`` (a zero-pnl trade is not a win); NaN without trades."""
    if not trades:
        return math.nan
    return sum(1 for t in trades if t.pnl > 0) / len(trades)


def profit_factor(trades: Sequence[RoundTrip]) -> float:
    """Gross wins / |gross losses| (net pnl per trade).

    NaN without trades or when no trade won or lost; ``inf`` with wins and no losses; 0 with
    losses and no wins.
    """
    with localcontext(MONEY_CONTEXT):
        wins = sum((t.pnl for t in trades if t.pnl > 0), ZERO)
        losses = -sum((t.pnl for t in trades if t.pnl < 0), ZERO)
        if losses == 0:
            return math.inf if wins > 0 else math.nan
        return float(wins / losses)


def expectancy(trades: Sequence[RoundTrip]) -> float:
    """Mean net pnl per trade, in the quote currency; NaN without trades."""
    if not trades:
        return math.nan
    with localcontext(MONEY_CONTEXT):
        return float(sum((t.pnl for t in trades), ZERO) / len(trades))


def average_holding_ns(trades: Sequence[RoundTrip]) -> float:
    """Mean time from entry to exit, in nanoseconds; NaN without trades."""
    if not trades:
        return math.nan
    return sum(t.holding_ns for t in trades) / len(trades)
