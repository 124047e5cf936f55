"""Market simulator: one symbol's bars, filled by the paper broker's own fill model."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from raytrade.domain.instruments import Instrument
from raytrade.domain.money import ZERO, decimal_from_float, floor_to
from raytrade.domain.orders import OrderIntent, Side
from raytrade.domain.paper_fills import PaperFillModel


@dataclass(frozen=True)
class StepOutcome:
    """What one bar did to the account, in quote currency."""

    pnl: float  # mark-to-market change, net of fees and the fill's spread/slippage
    fee: float
    traded_qty: float


class MarketSimulator:
    """Holds a position in units of ``notional``; each step moves to a target, then marks to the next close.

    Trades are market orders at the bar's close through :class:`PaperFillModel` (the paper
    broker's fees, half spread and slippage, rounded to the instrument's increments).
    """

    def __init__(
        self, instrument: Instrument, closes: np.ndarray, fill_model: PaperFillModel, notional: Decimal
    ) -> None:
        if len(closes) < 2:
            raise ValueError("need at least two bars")
        self.instrument = instrument
        self.closes = closes
        self.fill_model = fill_model
        self.notional = notional
        self.t = 0
        self.position = ZERO  # signed quantity
        self.units = 0  # -1, 0, +1

    @property
    def done(self) -> bool:
        return self.t >= len(self.closes) - 1

    def step(self, target_units: int) -> StepOutcome:
        """Trade to ``target_units`` at close ``t``, hold to close ``t + 1``."""
        if self.done:
            raise RuntimeError("episode is over")
        inst = self.instrument
        price = decimal_from_float(float(self.closes[self.t]), inst.price_increment)
        unit = floor_to(self.notional / price, inst.size_increment)
        delta = unit * target_units - self.position
        pnl = fee = 0.0
        if delta != ZERO:
            intent = OrderIntent(
                order_id=f"rl:{self.t}",
                strategy="rl",
                symbol=inst.symbol,
                side=Side.BUY if delta > 0 else Side.SELL,
                qty=abs(delta),
                ref_price=price,
                ts_event=self.t,
                ts_consumed=self.t,
                score=0.0,
            )
            fill = self.fill_model.fill(intent, inst, self.t)
            fee = float(fill.fee)
            pnl -= fee + float(fill.qty * abs(fill.price - price))  # paid over the close: spread + slippage
            self.position += delta
        self.units = target_units
        nxt = float(self.closes[self.t + 1])
        pnl += float(self.position) * (nxt - float(price))
        self.t += 1
        return StepOutcome(pnl, fee, float(abs(delta)))
