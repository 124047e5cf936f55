"""Token buckets per key (``rate`` requests per second sustained, ``burst`` at once), and the gateway's
limits per route class: per subject for authenticated routes, per client address for the rest, each
class also capped for all callers together.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RouteClass = Literal["inference", "orders", "read", "control", "open", "unauthenticated"]
ROUTE_CLASSES: tuple[RouteClass, ...] = ("inference", "orders", "read", "control", "open", "unauthenticated")


class RateLimiter:
    """Token buckets keyed by any string; the least recently used keys are forgotten beyond ``max_keys``."""

    def __init__(self, rate: float, burst: int, max_keys: int = 10_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, found rate={rate} burst={burst}")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, key: str, now: float) -> float:
        """Spend one token of ``key``: 0.0 when allowed, else the seconds until one is available."""
        tokens, at = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait

    def give_back(self, key: str) -> None:
        """Return the token :meth:`take` just spent (another limit refused the request)."""
        if key in self._buckets:
            tokens, at = self._buckets[key]
            self._buckets[key] = (min(float(self.burst), tokens + 1.0), at)


class Limit(BaseModel):
    """One route class: each caller's bucket, and one bucket for all callers together (``total_*``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate_per_s: float = Field(gt=0, description="Sustained requests per second of one caller")
    burst: int = Field(ge=1, description="Requests one caller may send at once")
    total_rate_per_s: float | None = Field(None, gt=0, description="All callers together; null = no shared cap")
    total_burst: int | None = Field(None, ge=1)


class RouteLimits(BaseModel):
    """The defaults keep a 2-core machine responsive (measured with ``scripts/bench_serve.py``): one
    caller cannot take more than a fraction of the replica, and the kill switch stays reachable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inference: Limit = Field(Limit(rate_per_s=20, burst=40, total_rate_per_s=60, total_burst=120),
                             description="/v1/predict, /v1/policy; per subject")  # fmt: skip
    orders: Limit = Field(Limit(rate_per_s=10, burst=20, total_rate_per_s=40, total_burst=80),
                          description="POST/DELETE /v1/orders; per subject")  # fmt: skip
    read: Limit = Field(Limit(rate_per_s=10, burst=30, total_rate_per_s=40, total_burst=80),
                        description="positions, orders, risk, models, detailed health; per subject")  # fmt: skip
    control: Limit = Field(Limit(rate_per_s=2, burst=10, total_rate_per_s=5, total_burst=20),
                           description="halt, resume, activate, revoke; per subject")  # fmt: skip
    open: Limit = Field(Limit(rate_per_s=10, burst=20, total_rate_per_s=40, total_burst=80),
                        description="/health, /metrics, /openapi.json, unknown paths; per client address")  # fmt: skip
    unauthenticated: Limit = Field(Limit(rate_per_s=5, burst=20, total_rate_per_s=20, total_burst=50),
                                   description="refused credentials; per client address")  # fmt: skip


class RouteLimiter:
    """Buckets for every route class of :class:`RouteLimits`."""

    def __init__(self, limits: RouteLimits) -> None:
        self.limits = limits
        self._each: dict[str, RateLimiter] = {}
        self._total: dict[str, RateLimiter] = {}
        for name in ROUTE_CLASSES:
            lim: Limit = getattr(limits, name)
            self._each[name] = RateLimiter(lim.rate_per_s, lim.burst)
            if lim.total_rate_per_s is not None:
                self._total[name] = RateLimiter(lim.total_rate_per_s, lim.total_burst or lim.burst)

    def take(self, route_class: RouteClass, caller: str, now: float) -> float:
        """Spend one request of ``caller`` in ``route_class``: 0.0 when allowed, else seconds to wait."""
        each = self._each[route_class]
        wait = each.take(caller, now)
        if wait > 0:
            return wait
        total = self._total.get(route_class)
        if total is not None:
            wait = total.take("*", now)
            if wait > 0:
                each.give_back(caller)
        return wait
