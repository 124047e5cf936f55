"""One symbol traded to target positions on bars, through the paper broker: the one fill model.

The RL environment and the training evaluation's signal backtest both step this simulator, so a
model is judged by the same fills, fees, spread, square-root impact and volume cap as the paper
broker gives it live and in ``raytrade backtest``: a target decided at bar ``t``'s close is an IOC
market order that works from that close (plus the broker's latency) and fills on bar ``t + 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from raytrade.domain.bars import Bar
from raytrade.domain.instruments import Instrument
from raytrade.domain.money import ZERO, decimal_from_float, floor_to
from raytrade.domain.orders import Fill, OrderIntent, Side, TimeInForce
from raytrade.domain.paper_broker import PaperBroker, PaperBrokerConfig
from raytrade.domain.portfolio import Portfolio


@dataclass(frozen=True)
class StepOutcome:
    """What one bar did to the account, in quote currency."""

    pnl: float  # change of equity over the bar, net of fees, spread and impact
    fee: float
    traded_qty: float


class BarSimulator:
    """Hold ``units`` x (``notional`` / price) of one instrument; each :meth:`step` trades toward a target
    and marks to the next close. ``bars`` are consecutive bars of the symbol (``Bar`` objects).

    A new target is sized at the decision close (``notional`` / close, floored to the size increment)
    and sent as an IOC market order (what the volume cap leaves unfilled is dropped); a target equal
    to the last one sends nothing (no re-sizing to the moving price)."""

    def __init__(
        self,
        instrument: Instrument,
        bars: list[Bar],
        config: PaperBrokerConfig,
        notional: Decimal,
        initial_cash: Decimal = Decimal(1_000_000),
    ) -> None:
        if len(bars) < 2:
            raise ValueError("need at least two bars")
        self.instrument = instrument
        self.bars = bars
        self.notional = notional
        self.broker = PaperBroker([instrument], config)
        self.portfolio = Portfolio(initial_cash)
        self.t = 0
        self.units = 0
        self.fills = 0
        self.broker_fills: list[Fill] = []  # every fill, in order
        self.broker.on_bar(instrument.symbol, bars[0])  # the first bar is history: volatility state only
        self._mark = decimal_from_float(bars[0].close, instrument.price_increment)

    @property
    def done(self) -> bool:
        """No next bar to trade on."""
        return self.t >= len(self.bars) - 1

    @property
    def position(self) -> Decimal:
        """The signed quantity held."""
        return self.portfolio.position(self.instrument.symbol)

    def step(self, target_units: int) -> StepOutcome:
        """Decide ``target_units`` at close ``t``, trade on bar ``t + 1``, mark at its close."""
        if self.done:
            raise RuntimeError("episode is over")
        inst, bar, nxt = self.instrument, self.bars[self.t], self.bars[self.t + 1]
        symbol = inst.symbol
        before = self.portfolio.equity({symbol: self._mark})
        delta = ZERO
        if target_units != self.units:  # a held target is not re-sized to the moving price
            unit = floor_to(self.notional / self._mark, inst.size_increment)
            delta = unit * target_units - self.position
        if delta != ZERO:
            close_ts = bar.end
            intent = OrderIntent(
                f"sim:{symbol}:{self.t}",
                "sim",
                symbol,
                Side.BUY if delta > 0 else Side.SELL,
                abs(delta),
                self._mark,
                close_ts,
                close_ts,
                0.0,
                tif=TimeInForce.IOC,
            )
            self.broker.submit(intent, close_ts)
        result = self.broker.on_bar(symbol, nxt)
        fee = ZERO
        traded = ZERO
        for f in result.fills:
            self.portfolio.apply(f)
            self.broker_fills.append(f)
            fee += f.fee
            traded += f.qty
            self.fills += 1
        self._mark = decimal_from_float(nxt.close, inst.price_increment)
        after = self.portfolio.equity({symbol: self._mark})
        self.units = target_units
        self.t += 1
        return StepOutcome(float(after - before), float(fee), float(traded))
