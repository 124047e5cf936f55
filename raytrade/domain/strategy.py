"""Turn a model score into an order intent: a target position with hysteresis."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from raytrade.domain.instruments import Instrument
from raytrade.domain.money import ZERO, floor_to
from raytrade.domain.orders import OrderIntent, Side, order_id_for


@dataclass(frozen=True, slots=True)
class ThresholdStrategy:
    """Go long above ``long_above``, short (or flat) below ``short_below``, else hold.

    ``score`` is the model's probability that the next horizon's return is positive.
    Position size is ``order_notional`` worth of the instrument, floored to its increment.
    """

    name: str
    long_above: float
    short_below: float
    order_notional: Decimal
    allow_short: bool

    def __post_init__(self) -> None:
        if not 0.0 <= self.short_below <= self.long_above <= 1.0:
            raise ValueError(f"need 0 <= short_below <= long_above <= 1, found {self.short_below}, {self.long_above}")

    def target(self, score: float, position: Decimal, unit: Decimal) -> Decimal:
        """Target signed position for a score, given the current one."""
        if score > self.long_above:
            return unit
        if score < self.short_below:
            return -unit if self.allow_short else ZERO
        return position

    def decide(
        self,
        instrument: Instrument,
        score: float,
        position: Decimal,
        price: Decimal,
        *,
        partition: int,
        offset: int,
        ts_event: int,
        ts_consumed: int,
    ) -> OrderIntent | None:
        """Return the intent that moves ``position`` to the target, or ``None``."""
        unit = floor_to(self.order_notional / price, instrument.size_increment)
        if unit <= ZERO:
            return None
        delta = self.target(score, position, unit) - position
        if delta == ZERO:
            return None
        return OrderIntent(
            order_id=order_id_for(self.name, instrument.symbol, partition, offset),
            strategy=self.name,
            symbol=instrument.symbol,
            side=Side.BUY if delta > 0 else Side.SELL,
            qty=abs(delta),
            ref_price=price,
            ts_event=ts_event,
            ts_consumed=ts_consumed,
            score=score,
        )
