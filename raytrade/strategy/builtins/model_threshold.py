"""``ModelThreshold``: trade the model's probability of an up move against two thresholds (the default)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pydantic import Field, model_validator

from raytrade.domain.bars import Bar
from raytrade.domain.money import decimal_from_float
from raytrade.domain.orders import Side
from raytrade.domain.sizing import AdaptiveThresholds, sizer_from
from raytrade.domain.strategy import ThresholdStrategy
from raytrade.strategy.base import Strategy, StrategyParams


class AdaptiveParams(StrategyParams):
    """Thresholds that widen with volatility and stop chasing RSI extremes."""

    vol_ref: float = Field(gt=0, description="Per-bar volatility (rv_30) at which the band is the configured one")
    vol_k: float = Field(0.5, ge=0, description="How fast the band widens above vol_ref")
    rsi_overbought: float = Field(70.0, gt=50, le=100, description="No new longs above this RSI")
    rsi_oversold: float = Field(30.0, ge=0, lt=50, description="No new shorts below this RSI")


class ModelThresholdParams(StrategyParams):
    """Long above ``long_above``, short (or flat) below ``short_below``, else hold."""

    long_above: float = Field(0.53, ge=0, le=1)
    short_below: float = Field(0.47, ge=0, le=1)
    order_notional: Decimal = Field(Decimal(10_000), gt=0)
    allow_short: bool = True
    sizing: dict[str, Any] | None = Field(
        None,
        description="null = order_notional; else {method: fixed_notional|fixed_fraction|kelly|vol_target, ...params}",
    )
    adaptive: AdaptiveParams | None = Field(None, description="RSI/volatility-adaptive thresholds; null = fixed")

    @model_validator(mode="after")
    def _ordered(self) -> ModelThresholdParams:
        if self.short_below > self.long_above:
            raise ValueError(f"short_below ({self.short_below}) must be <= long_above ({self.long_above})")
        if self.sizing is not None:
            sizer_from(self.sizing)  # a bad method or parameter fails at start, not at the first trade
        return self


class ModelThreshold(Strategy):
    """Hold one unit (``order_notional`` of the instrument, or what ``sizing`` says) long when the
    model's P(up) is above ``long_above``, short (flat if ``allow_short`` is false) below
    ``short_below``, and keep the position in between. Decides on each bar's closing event at that
    event's price; no order on a bar without a score (warm-up, or flagged by the anomaly gate)."""

    Params = ModelThresholdParams
    requires_model = True

    def __init__(self, strategy_id: str, params: StrategyParams | Mapping[str, Any] | None = None) -> None:
        super().__init__(strategy_id, params)
        p = self.params
        assert isinstance(p, ModelThresholdParams)
        adaptive = None
        if p.adaptive is not None:
            a = p.adaptive
            adaptive = AdaptiveThresholds(
                p.long_above, p.short_below, a.vol_ref, a.vol_k, a.rsi_overbought, a.rsi_oversold
            )
        sizer = sizer_from(p.sizing) if p.sizing is not None else None
        self.rule = ThresholdStrategy(
            self.id, p.long_above, p.short_below, p.order_notional, p.allow_short, sizer, adaptive
        )

    def on_bar(self, symbol: str, bar: Bar, features: Mapping[str, float] | None, score: float | None) -> None:
        """Move the position toward the score's target."""
        if score is None or features is None:
            return
        ctx = self.ctx
        inst = ctx.instruments[symbol]
        last = ctx.price(symbol)
        if last is None:
            return
        price = decimal_from_float(last, inst.price_increment)
        delta = self.rule.delta(
            inst,
            score,
            ctx.position(symbol),
            price,
            ctx.equity,
            features["rv_30"],
            (features["rsi_14"] + 0.5) * 100.0,
        )
        if delta:
            ctx.order(symbol, Side.BUY if delta > 0 else Side.SELL, abs(delta), score=score)
