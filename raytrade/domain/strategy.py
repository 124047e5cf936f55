"""Turn a model score into an order intent: a target position with hysteresis."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from raytrade.domain.instruments import Instrument
from raytrade.domain.money import ZERO, floor_to
from raytrade.domain.orders import OrderIntent, Side, order_id_for
from raytrade.domain.sizing import AdaptiveThresholds, Sizer, SizingInputs


@dataclass(frozen=True, slots=True)
class ThresholdStrategy:
    """Go long above ``long_above``, short (or flat) below ``short_below``, else hold.

    ``score`` is the model's probability that the next horizon's return is positive.
    Position size is ``order_notional`` worth of the instrument, or what ``sizer`` says
    (fixed fraction, Kelly, volatility target), floored to the instrument's increment.
    ``adaptive`` moves the thresholds with volatility and RSI (see
    :class:`~raytrade.domain.sizing.AdaptiveThresholds`).
    """

    name: str
    long_above: float
    short_below: float
    order_notional: Decimal
    allow_short: bool
    sizer: Sizer | None = None
    adaptive: AdaptiveThresholds | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.short_below <= self.long_above <= 1.0:
            raise ValueError(f"need 0 <= short_below <= long_above <= 1, found {self.short_below}, {self.long_above}")

    def target(
        self, score: float, position: Decimal, unit: Decimal, thresholds: tuple[float, float] | None = None
    ) -> Decimal:
        """Target signed position for a score, given the current one."""
        long_above, short_below = thresholds or (self.long_above, self.short_below)
        if score > long_above:
            return unit
        if score < short_below:
            return -unit if self.allow_short else ZERO
        return position

    def unit(
        self, instrument: Instrument, score: float, price: Decimal, direction: int, equity: Decimal, vol: float | None
    ) -> Decimal:
        """The position size for a move in ``direction``, floored to the size increment."""
        notional = self.order_notional
        if self.sizer is not None:
            notional = self.sizer.notional(SizingInputs(equity, price, score, direction, vol))
        return floor_to(notional / price, instrument.size_increment)

    def delta(
        self,
        instrument: Instrument,
        score: float,
        position: Decimal,
        price: Decimal,
        equity: Decimal = ZERO,
        vol: float | None = None,
        rsi: float | None = None,
    ) -> Decimal:
        """The signed quantity that moves ``position`` to the target for ``score`` (zero: hold)."""
        thresholds = self.adaptive.thresholds(vol, rsi) if self.adaptive is not None else None
        long_above, _ = thresholds or (self.long_above, self.short_below)
        direction = 1 if score > long_above else -1
        unit = self.unit(instrument, score, price, direction, equity, vol)
        if unit <= ZERO:
            return ZERO
        return self.target(score, position, unit, thresholds) - position

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
        equity: Decimal = ZERO,
        vol: float | None = None,
        rsi: float | None = None,
    ) -> OrderIntent | None:
        """Return the intent that moves ``position`` to the target, or ``None``."""
        delta = self.delta(instrument, score, position, price, equity, vol, rsi)
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
