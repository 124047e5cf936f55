"""Prometheus metrics of a gateway replica, and the ASGI middleware that records them.

Kept in their own module: the gateway class is shipped to replicas by value (cloudpickle), so
module globals it referenced directly would be copies; this module is imported by reference.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

REGISTRY = CollectorRegistry()
REQUESTS = Counter("raytrade_gateway_requests", "Gateway requests", ["route", "status"], registry=REGISTRY)
LATENCY = Histogram(
    "raytrade_gateway_request_seconds",
    "Gateway request latency (inside the replica)",
    ["route"],
    buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 5.0),
    registry=REGISTRY,
)


def exposition() -> tuple[bytes, str]:
    """The metrics in the Prometheus text format, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


class MeasureRequests:
    """Pure ASGI middleware counting requests by route template and status, and timing them."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = [500]

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")  # the router's template; else the guard's (a refused request)
            name = (
                getattr(route, "path", None)
                or scope.get("raytrade.route", "unmatched").partition(" ")[2]
                or "unmatched"
            )
            LATENCY.labels(name).observe(time.perf_counter() - t0)
            REQUESTS.labels(name, str(status[0])).inc()
