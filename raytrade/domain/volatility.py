"""GARCH(1,1) one-step variance forecast, updated one return at a time (for risk sizing)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GarchParams:
    """``var[t+1] = omega + alpha * r[t]**2 + beta * var[t]`` for log returns ``r`` (not in percent)."""

    omega: float
    alpha: float
    beta: float
    initial_variance: float  # where the recursion starts: the training sample's variance

    def __post_init__(self) -> None:
        ok = self.omega > 0 and self.alpha >= 0 and self.beta >= 0 and self.alpha + self.beta <= 1.0 + 1e-9
        if not ok or not self.initial_variance > 0:
            raise ValueError(f"not a GARCH(1,1) with alpha + beta <= 1 (IGARCH allowed): {self}")

    @property
    def persistence(self) -> float:
        """``alpha + beta``: how slowly a volatility shock decays (1 = never, IGARCH)."""
        return self.alpha + self.beta


class GarchVol:
    """The running forecast for one symbol, starting at the training sample's variance."""

    __slots__ = ("params", "variance")

    def __init__(self, params: GarchParams) -> None:
        self.params = params
        self.variance = params.initial_variance

    def update(self, log_return: float) -> float:
        """Fold in the return just observed; return the next bar's volatility forecast."""
        p = self.params
        self.variance = p.omega + p.alpha * log_return * log_return + p.beta * self.variance
        return math.sqrt(self.variance)

    @property
    def sigma(self) -> float:
        """The current one-step volatility forecast."""
        return math.sqrt(self.variance)
