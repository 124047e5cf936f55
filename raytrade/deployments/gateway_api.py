"""The gateway's FastAPI app, apart from its routes: the route policy table, settings, the verified caller,
error answers and helpers. The routes are the :class:`~raytrade.deployments.gateway.Gateway` class's methods.

Serve freezes a copy of ``api`` (and the route handlers, by value) when the class is decorated, so
everything a handler uses is defined here or above the class, and there is no ``from __future__ import
annotations``: FastAPI re-reads the annotations in the replica, where strings would not resolve.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from raytrade.deployments import gateway_metrics
from raytrade.deployments.auth import AUDIENCE, AuthError, Claims, Role
from raytrade.deployments.errors import StatusError
from raytrade.deployments.guard import CLAIMS_KEY, GuardMiddleware, RoutePolicy
from raytrade.deployments.json_body import StrictJsonRoute, bounded_errors
from raytrade.deployments.rate_limit import RouteLimits
from raytrade.domain.orders import OrderReport
from raytrade.training.registry import RegistryError

KB = 1024

# Who may call what, its rate-limit class and its largest body. Every route of ``api`` must be here
# (checked when a replica starts): a route without a policy would be a route without auth.
ROUTES: dict[str, RoutePolicy] = {
    "POST /v1/predict": RoutePolicy(Role.viewer, "inference", 512 * KB),
    "POST /v1/policy": RoutePolicy(Role.viewer, "inference", 4 * KB),
    "GET /v1/positions": RoutePolicy(Role.viewer, "read"),
    "GET /v1/orders": RoutePolicy(Role.viewer, "read"),
    "POST /v1/orders": RoutePolicy(Role.trader, "orders", 4 * KB),
    "DELETE /v1/orders/{order_id}": RoutePolicy(Role.trader, "orders"),
    "GET /v1/risk": RoutePolicy(Role.viewer, "read"),
    "POST /v1/risk/halt": RoutePolicy(Role.admin, "control", 4 * KB),
    "POST /v1/risk/resume": RoutePolicy(Role.admin, "control", 4 * KB),
    "GET /v1/models": RoutePolicy(Role.viewer, "read"),
    "POST /v1/models/{version}/activate": RoutePolicy(Role.admin, "control", 4 * KB),
    "POST /v1/auth/revoke": RoutePolicy(Role.admin, "control", 4 * KB),
    "GET /v1/health": RoutePolicy(Role.viewer, "read"),
    "GET /health": RoutePolicy(None, "open"),
    "GET /metrics": RoutePolicy(None, "open"),
    "GET /openapi.json": RoutePolicy(None, "open"),
}


class GatewaySettings(BaseModel):
    """The gateway's own settings (``args`` of the Serve application)."""

    model_config = ConfigDict(extra="forbid")

    registry: str = Field(description="Model registry (directory or file:// URI) listed and activated from")
    namespace: str = Field("raytrade", description="Ray namespace of the engine's named actors")
    audience: str = Field(AUDIENCE, description="Expected JWT audience")
    limits: RouteLimits = Field(RouteLimits(), description="Rate limits per route class")
    revocations: str = Field(description="The revoked-tokens file, shared by every replica")
    swap_timeout_s: float = Field(60.0, gt=0, description="How long an activation waits for every replica")


class EngineUnavailableError(Exception):
    """The trading engine's actors are not reachable."""


class HaltRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("manual halt", min_length=1, max_length=500)


api = FastAPI(
    title="raytrade gateway",
    version="1",
    description="Inference (ensemble, RL policy) and control (orders, risk, kill switch, models) of raytrade.",
    docs_url=None,  # the Swagger/ReDoc pages load scripts from a CDN; /openapi.json is served
    redoc_url=None,
)
api.router.route_class = StrictJsonRoute
bearer = HTTPBearer(auto_error=False, description="JWT from `raytrade token --role viewer|trader|admin`")


def caller(request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Claims:
    """The claims the guard verified for this request (``bearer`` documents the scheme in OpenAPI)."""
    claims = request.scope.get(CLAIMS_KEY)
    if not isinstance(claims, Claims):
        raise AuthError(401, "no verified credentials for this request")
    return claims


Caller = Annotated[Claims, Depends(caller)]


def error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


api.add_middleware(GuardMiddleware)
api.add_middleware(gateway_metrics.MeasureRequests)  # outermost: refusals are counted too


@api.exception_handler(RequestValidationError)
async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
    # Field, message and type only (echoing the input back leaks payloads and NaN is not JSON), and
    # a bounded number of them.
    return JSONResponse(bounded_errors(list(exc.errors())), status_code=422)


@api.exception_handler(StatusError)
async def _refused(_: Request, exc: StatusError) -> JSONResponse:
    unauthenticated = isinstance(exc, AuthError) and exc.status == 401
    return error(exc.status, exc.message, {"WWW-Authenticate": "Bearer"} if unauthenticated else None)


@api.exception_handler(EngineUnavailableError)
async def _engine_down(_: Request, exc: EngineUnavailableError) -> JSONResponse:
    return error(503, str(exc))


@api.exception_handler(RegistryError)
async def _registry_error(_: Request, exc: RegistryError) -> JSONResponse:
    return error(409, str(exc))


def report_json(report: OrderReport) -> dict[str, Any]:
    return {
        "order_id": report.order_id,
        "status": report.status.value,
        "reason": report.reason,
        "filled_qty": str(report.filled_qty),
        "fills": [
            {"fill_id": f.fill_id, "qty": str(f.qty), "price": str(f.price), "fee": str(f.fee)} for f in report.fills
        ],
    }


def field_error(loc: list[str], msg: str) -> JSONResponse:
    return JSONResponse({"detail": [{"loc": loc, "msg": msg, "type": "value_error"}]}, status_code=422)


def manual_owner(subject: str) -> str:
    """The strategy name of a subject's manual orders (who may cancel them)."""
    return f"manual:{subject}"


def default_revocations(registry: str) -> str:
    """The revoked-tokens file next to the registry (``var/models`` -> ``var/revoked_tokens.json``)."""
    root = registry.removeprefix("file://")
    return str(Path(root).resolve().parent / "revoked_tokens.json")


def _endpoints(routes: list[Any]) -> Iterator[str]:
    for r in routes:
        methods = getattr(r, "methods", None)
        if methods:
            yield from (f"{m} {r.path}" for m in methods if m != "HEAD")
        elif hasattr(r, "original_router"):  # an included router (Serve mounts the class's routes on one)
            yield from _endpoints(r.original_router.routes)


def check_routes(app: FastAPI, routes: dict[str, RoutePolicy]) -> None:
    """Every route of ``app`` has a policy in ``routes`` and every policy a route (else ``ValueError``)."""
    served = set(_endpoints(app.routes))
    missing, stale = sorted(served - set(routes)), sorted(set(routes) - served)
    if missing or stale:
        raise ValueError(f"gateway routes without a policy: {missing}; policies without a route: {stale}")
