"""Paper fills: a fee in basis points and a half-spread + slippage price model."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext

from raytrade.domain.instruments import Instrument
from raytrade.domain.money import MONEY_CONTEXT, quantize
from raytrade.domain.orders import Fill, OrderIntent, Side

BPS = Decimal(10_000)
FEE_INCREMENT = Decimal("0.00000001")


@dataclass(frozen=True, slots=True)
class PaperFillModel:
    """Fill a market order in full at the reference price moved against the taker.

    ``fill = ref * (1 +- (half_spread_bps + slippage_bps) / 1e4)`` rounded to the price
    increment; ``fee = fill * qty * fee_bps / 1e4`` rounded to 1e-8.
    """

    fee_bps: Decimal
    half_spread_bps: Decimal
    slippage_bps: Decimal

    def fill(self, intent: OrderIntent, instrument: Instrument, ts: int) -> Fill:
        """Return the fill for ``intent``; its id is derived from the order id."""
        with localcontext(MONEY_CONTEXT):
            cost = (self.half_spread_bps + self.slippage_bps) / BPS
            adj = 1 + cost if intent.side is Side.BUY else 1 - cost
            price = quantize(intent.ref_price * adj, instrument.price_increment)
            fee = quantize(price * intent.qty * self.fee_bps / BPS, FEE_INCREMENT)
        return Fill(
            fill_id=f"{intent.order_id}#1",
            order_id=intent.order_id,
            symbol=intent.symbol,
            side=intent.side,
            qty=intent.qty,
            price=price,
            fee=fee,
            ts=ts,
        )
