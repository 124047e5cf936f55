"""Exact money arithmetic on ``Decimal``; floats never touch cash or positions."""

from __future__ import annotations

import math
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Context, Decimal, localcontext

# 40 significant digits: far beyond any price * quantity we handle, so products and
# sums of quantized values are exact (no rounding ever happens inside the context).
MONEY_CONTEXT = Context(prec=40, rounding=ROUND_HALF_EVEN)
ZERO = Decimal(0)


def decimal_from_float(value: float, increment: Decimal) -> Decimal:
    """Return ``value`` rounded to the nearest multiple of ``increment`` (half-even).

    Raises ``ValueError`` for NaN or infinite input: corrupt data is worse than no data.
    """
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, found {value!r}")
    return Decimal(repr(value)).quantize(increment, ROUND_HALF_EVEN, MONEY_CONTEXT)


def floor_to(value: Decimal, increment: Decimal) -> Decimal:
    """Round ``value`` toward zero to a multiple of ``increment``."""
    with localcontext(MONEY_CONTEXT):
        return (value / increment).to_integral_value(rounding=ROUND_DOWN) * increment


def quantize(value: Decimal, increment: Decimal) -> Decimal:
    """Round ``value`` half-even to a multiple of ``increment``."""
    with localcontext(MONEY_CONTEXT):
        return value.quantize(increment, rounding=ROUND_HALF_EVEN)
