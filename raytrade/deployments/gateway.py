"""The HTTP gateway: versioned FastAPI ingress for inference and for controlling the running engine.

Every ``/v1`` route needs a JWT bearer token (:mod:`raytrade.deployments.auth`); ``/health``
and ``/metrics`` are open (no secrets in them). The engine's RiskGate and Execution are
found by name in the configured Ray namespace (``raytrade run --serve`` names them).
"""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Annotated, Any

import numpy as np
import orjson
import polars as pl
import ray
from fastapi import Body, Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.handle import DeploymentHandle

from raytrade.cluster.topology import EXECUTION_NAME, RISK_GATE_NAME
from raytrade.deployments import gateway_metrics, serve_control
from raytrade.deployments.auth import AUDIENCE, AuthError, Claims, Role, TokenCache, require, secret_from_env
from raytrade.deployments.rate_limit import RateLimiter
from raytrade.deployments.schemas import (
    ActivateRequest,
    ActivateResponse,
    OrderRequest,
    OrderResponse,
    PolicyRequest,
    PolicyResponse,
    PredictRequest,
    PredictResponse,
)
from raytrade.deployments.scoring import ModelSpec, Scorer, feature_rows_from_bars
from raytrade.domain.orders import OrderIntent, OrderReport, OrderType, Side, TimeInForce
from raytrade.training.registry import ModelRegistry, RegistryError

GATEWAY = "Gateway"
ENSEMBLE = "Ensemble"
POLICY = "Policy"
RL_KINDS = ("rllib_ppo_module",)


class GatewaySettings(BaseModel):
    """The gateway's own settings (``args`` of the Serve application)."""

    registry: str = Field(description="Model registry (directory or file:// URI) listed and activated from")
    namespace: str = Field("raytrade", description="Ray namespace of the engine's named actors")
    audience: str = Field(AUDIENCE, description="Expected JWT audience")
    rate_per_s: float = Field(200.0, gt=0, description="Sustained requests per second per token (orders, predict)")
    burst: int = Field(400, ge=1, description="Requests a token may send at once before being limited")
    swap_timeout_s: float = Field(60.0, gt=0, description="How long an activation waits for every replica")


class EngineUnavailableError(Exception):
    """The trading engine's actors are not reachable."""


class RateLimitedError(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limit exceeded: retry in {retry_after:.2f} s")
        self.retry_after = retry_after


class HaltRequest(BaseModel):
    reason: str = Field("manual halt", min_length=1, max_length=500)


api = FastAPI(
    title="raytrade gateway",
    version="1",
    description="Inference (ensemble, RL policy) and control (orders, risk, kill switch, models) of raytrade.",
)
bearer = HTTPBearer(auto_error=False, description="JWT from `raytrade token --role viewer|trader|admin`")
Token = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


api.add_middleware(gateway_metrics.MeasureRequests)


@api.exception_handler(RequestValidationError)
async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
    # Field, message and type only: echoing the input back can fail (NaN is not JSON) and leaks payloads.
    errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return JSONResponse({"detail": errors}, status_code=422)


@api.exception_handler(AuthError)
async def _auth_error(_: Request, exc: AuthError) -> JSONResponse:
    return _error(exc.status, exc.message, {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None)


@api.exception_handler(RateLimitedError)
async def _rate_limited(_: Request, exc: RateLimitedError) -> JSONResponse:
    return _error(429, str(exc), {"Retry-After": str(max(1, round(exc.retry_after)))})


@api.exception_handler(EngineUnavailableError)
async def _engine_down(_: Request, exc: EngineUnavailableError) -> JSONResponse:
    return _error(503, str(exc))


@api.exception_handler(RegistryError)
async def _registry_error(_: Request, exc: RegistryError) -> JSONResponse:
    # Missing versions are answered 404 before any load; what remains is a registry that disagrees (checksum,
    # feature version, kind): a conflict with the registry's state.
    return _error(409, str(exc))


def _report_json(report: OrderReport) -> dict[str, Any]:
    return {
        "order_id": report.order_id,
        "status": report.status.value,
        "reason": report.reason,
        "filled_qty": str(report.filled_qty),
        "fills": [
            {"fill_id": f.fill_id, "qty": str(f.qty), "price": str(f.price), "fee": str(f.fee)} for f in report.fills
        ],
    }


def _field_error(loc: list[str], msg: str) -> JSONResponse:
    return JSONResponse({"detail": [{"loc": loc, "msg": msg, "type": "value_error"}]}, status_code=422)


@serve.deployment(max_ongoing_requests=64, ray_actor_options={"num_cpus": 0})
@serve.ingress(api)
class Gateway:
    """FastAPI ingress composed with the :class:`Ensemble` and :class:`Policy` deployments."""

    def __init__(
        self, ensemble: DeploymentHandle[Any], policy: DeploymentHandle[Any], settings: dict[str, Any]
    ) -> None:
        self.settings = GatewaySettings.model_validate(settings)
        self.secret = secret_from_env()
        self.scoring = "handle"
        self.local: Scorer | None = None
        self.user_config: dict[str, Any] = {"scoring": "handle"}
        self.ensemble = ensemble
        self.policy = policy
        self.tokens = TokenCache(self.secret, self.settings.audience)
        self.limiter = RateLimiter(self.settings.rate_per_s, self.settings.burst)
        self.registry = ModelRegistry(self.settings.registry)
        self._actors: dict[str, Any] = {}

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """``{"scoring": "handle"}``, or ``{"scoring": "local", "model": <ModelSpec fields>}``.

        ``local``: this replica holds its own copy of the active model and scores single
        requests in process, skipping the hop to the Ensemble deployment (see the serving
        benchmark); activation updates this copy in the same config apply as the Ensemble's.
        """
        unknown = sorted(set(user_config) - {"scoring", "model"})
        if unknown or user_config.get("scoring") not in ("handle", "local"):
            raise ValueError(f"gateway user_config needs scoring: handle|local (and model), found {user_config}")
        local = Scorer(ModelSpec.from_user_config(user_config["model"])) if user_config["scoring"] == "local" else None
        self.local, self.scoring, self.user_config = local, user_config["scoring"], dict(user_config)

    # -- auth, limits, engine -------------------------------------------------------------

    def _auth(self, token: HTTPAuthorizationCredentials | None, role: Role, limited: bool = False) -> Claims:
        header = f"{token.scheme} {token.credentials}" if token else None
        claims = self.tokens.verify(header)
        require(claims, role)
        if limited:
            wait = self.limiter.take(claims.token_id, time.monotonic())
            if wait > 0:
                raise RateLimitedError(wait)
        return claims

    def _actor(self, name: str) -> Any:
        if name not in self._actors:
            try:
                self._actors[name] = ray.get_actor(name, namespace=self.settings.namespace)
            except ValueError:
                raise EngineUnavailableError(
                    f"the trading engine is not running (no actor {name!r} in Ray namespace "
                    f"{self.settings.namespace!r}): start it with `raytrade run --serve`"
                ) from None
        return self._actors[name]

    async def _call(self, name: str, method: str, *args: Any) -> Any:
        try:
            return await getattr(self._actor(name), method).remote(*args)
        except RayActorError as exc:
            self._actors.pop(name, None)
            raise EngineUnavailableError(f"engine actor {name!r} is unavailable: {exc}") from None

    # -- inference ---------------------------------------------------------------------------

    @api.post("/v1/predict", response_model=PredictResponse, tags=["inference"])
    async def predict(self, body: PredictRequest, token: Token) -> Any:
        """Score one symbol: each member model's P(up), the ensemble's, and the anomaly flag."""
        self._auth(token, Role.viewer, limited=True)
        if body.features is not None:
            rows = np.asarray(body.features, dtype=np.float64)
        else:
            assert body.bars is not None
            rows = feature_rows_from_bars(pl.DataFrame([b.model_dump() for b in body.bars]))
        try:
            local = self.local
            if local is not None:
                result: dict[str, Any] = local.score_last(rows)
            else:
                result = await self.ensemble.predict.remote(rows)
        except ValueError as exc:
            return _field_error(["body", "features" if body.features is not None else "bars"], str(exc))
        return Response(orjson.dumps(result), media_type="application/json")  # validated shape; skips re-serializing

    @api.post("/v1/policy", response_model=PolicyResponse, tags=["inference"])
    async def policy_action(self, body: PolicyRequest, token: Token) -> Any:
        """The RL agent's greedy action for one feature vector and the current position."""
        self._auth(token, Role.viewer, limited=True)
        try:
            return await self.policy.act.remote(np.asarray(body.features, dtype=np.float64), body.position)
        except LookupError as exc:
            return _error(503, str(exc).splitlines()[-1])

    # -- engine ------------------------------------------------------------------------------

    @api.get("/v1/positions", tags=["engine"])
    async def positions(self, token: Token) -> dict[str, Any]:
        """Positions, cash and P&L marked at the last fill prices."""
        self._auth(token, Role.viewer)
        _, marks, _ = await self._call(EXECUTION_NAME, "positions")
        summary: dict[str, Any] = await self._call(EXECUTION_NAME, "summary", marks)
        summary["marks"] = {s: str(p) for s, p in sorted(marks.items())}
        return summary

    @api.get("/v1/orders", tags=["engine"])
    async def orders(
        self,
        token: Token,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        symbol: Annotated[str | None, Query(max_length=32)] = None,
    ) -> dict[str, Any]:
        """The most recent orders (newest first), with their fills."""
        self._auth(token, Role.viewer)
        return {"orders": await self._call(EXECUTION_NAME, "orders", limit, symbol)}

    @api.post("/v1/orders", response_model=OrderResponse, tags=["engine"])
    async def place_order(self, body: OrderRequest, token: Token) -> Any:
        """A manual market order; the RiskGate decides on it like on any other."""
        claims = self._auth(token, Role.trader, limited=True)
        symbols: list[str] = await self._call(EXECUTION_NAME, "symbols")
        if body.symbol not in symbols:
            return _field_error(["body", "symbol"], f"unknown symbol {body.symbol!r}; tradable: {symbols}")
        price = body.ref_price
        if price is None:
            _, marks, _ = await self._call(EXECUTION_NAME, "positions")
            price = marks.get(body.symbol)
            if price is None:
                return _error(409, f"no fill price for {body.symbol} yet: give ref_price")
        now = time.time_ns()
        try:
            intent = OrderIntent(
                f"manual-{uuid.uuid4().hex}",
                f"manual:{claims.subject}",
                body.symbol,
                Side(body.side.upper()),
                Decimal(body.qty),
                Decimal(price),
                now,
                now,
                0.0,
                OrderType(body.type.upper()),
                TimeInForce(body.tif),
                body.limit_price,
                body.stop_price,
            )
        except ValueError as exc:
            return _field_error(["body"], str(exc))
        reply = await self._call(RISK_GATE_NAME, "submit", [intent])
        return _report_json(reply.reports[0])

    @api.delete("/v1/orders/{order_id}", response_model=OrderResponse, tags=["engine"])
    async def cancel_order(self, order_id: Annotated[str, Path(max_length=200)], token: Token) -> Any:
        """Cancel a working order (through the RiskGate); 404 if no such order is working."""
        claims = self._auth(token, Role.trader, limited=True)
        try:
            report = await self._call(RISK_GATE_NAME, "cancel", order_id, claims.subject)
        except KeyError:
            return _error(404, f"no working order {order_id}")
        return _report_json(report)

    @api.get("/v1/risk", tags=["risk"])
    async def risk(self, token: Token) -> dict[str, Any]:
        """Trading state (ACTIVE/HALTED), limits, positions and exposures."""
        self._auth(token, Role.viewer)
        state: dict[str, Any] = await self._call(RISK_GATE_NAME, "state")
        return state

    @api.post("/v1/risk/halt", tags=["risk"])
    async def halt(self, token: Token, body: Annotated[HaltRequest | None, Body()] = None) -> dict[str, Any]:
        """Engage the kill switch: every later order is denied until resumed (survives restarts)."""
        claims = self._auth(token, Role.admin)
        reason = (body or HaltRequest()).reason
        await self._call(RISK_GATE_NAME, "halt", f"{reason} (by {claims.subject})")
        state: dict[str, Any] = await self._call(RISK_GATE_NAME, "state")
        return state

    @api.post("/v1/risk/resume", tags=["risk"])
    async def resume(self, token: Token) -> dict[str, Any]:
        """Release the kill switch."""
        self._auth(token, Role.admin)
        await self._call(RISK_GATE_NAME, "resume")
        state: dict[str, Any] = await self._call(RISK_GATE_NAME, "state")
        return state

    # -- models ------------------------------------------------------------------------------

    async def _active(self) -> dict[str, Any]:
        active: dict[str, Any] = {"ensemble": await self.ensemble.info.remote()}
        local = self.local
        active["gateway"] = {"scoring": self.scoring, "model_version": local.label if local else None}
        active["policy"] = await self.policy.info.remote()
        return active

    @api.get("/v1/models", tags=["models"])
    async def models(self, token: Token) -> dict[str, Any]:
        """Registered models and versions, which are approved, and what is being served."""
        self._auth(token, Role.viewer)
        out: dict[str, Any] = {}
        for name in self.registry.names():
            versions = []
            for v in self.registry.versions(name):
                m = self.registry.meta(name, v)
                versions.append(
                    {
                        "version": v,
                        "kind": m.kind,
                        "approved": self.registry.is_approved(name, v),
                        "created_at": m.created_at,
                        "metrics": m.metrics,
                    }
                )
            out[name] = versions
        return {"registry": out, "active": await self._active()}

    @api.post("/v1/models/{version}/activate", response_model=ActivateResponse, tags=["models"])
    async def activate(
        self,
        version: Annotated[str, Path(pattern=r"^v\d{4,}$", description="Registry version, e.g. v0002")],
        token: Token,
        body: Annotated[ActivateRequest | None, Body()] = None,
    ) -> Any:
        """Serve another approved registry version: replicas reload it in place (no restart, no failed requests)."""
        self._auth(token, Role.admin)
        info = await self.ensemble.info.remote()
        name = (body.model if body and body.model else None) or info["model_version"].split("/")[0]
        versions = self.registry.versions(name)
        if version not in versions:
            return _error(404, f"model {name!r} has no version {version}; versions: {versions}")
        meta = self.registry.meta(name, version)
        if not self.registry.is_approved(name, version):
            return _error(409, f"{name}/{version} is not approved: `raytrade models approve {name} {version}` first")
        deployment = POLICY if meta.kind in RL_KINDS else ENSEMBLE
        handle = self.policy if deployment == POLICY else self.ensemble
        previous = (await handle.info.remote())["model_version"]
        app = serve.get_replica_context().app_name
        updates: dict[str, dict[str, Any]] = {}
        if deployment == POLICY:
            updates[POLICY] = {"registry": self.settings.registry, "name": name, "version": version}
        else:
            spec = {**info["spec"], "name": name, "version": version}  # same registry and anomaly gate
            updates[ENSEMBLE] = spec
            if self.scoring == "local":
                updates[GATEWAY] = {"scoring": "local", "model": spec}
        try:
            await serve_control.set_user_configs(app, updates)
        except LookupError as exc:
            return _error(409, str(exc))
        want = f"{name}/{version}"
        updated = await self._until(lambda: self._served_by(handle, want), streak=5)
        if GATEWAY in updates:
            updated = updated and await self._until(lambda: self._served_locally(want), streak=1)
        return {"deployment": deployment, "model": name, "version": version, "previous": previous,
                "replicas_updated": updated}  # fmt: skip

    async def _served_by(self, handle: DeploymentHandle[Any], label: str) -> bool:
        return bool((await handle.info.remote())["model_version"] == label)

    async def _served_locally(self, label: str) -> bool:
        return self.local is not None and self.local.label == label

    async def _until(self, check: Callable[[], Awaitable[bool]], streak: int) -> bool:
        """Poll ``check`` until it holds ``streak`` times in a row (every replica answered) or the swap timeout."""
        deadline = time.monotonic() + self.settings.swap_timeout_s
        seen = 0
        while time.monotonic() < deadline:
            seen = seen + 1 if await check() else 0
            if seen >= streak:
                return True
            await asyncio.sleep(0.05)
        return False

    # -- operations --------------------------------------------------------------------------

    @api.get("/health", tags=["operations"])
    async def health(self) -> Any:
        """200 when the gateway and the ensemble answer; the policy and the engine are reported."""
        body: dict[str, Any] = {"gateway": "ok"}
        status = 200
        try:
            body.update(await self._active())
        except Exception as exc:
            body["ensemble"] = f"unavailable: {type(exc).__name__}"
            status = 503
        try:
            body["engine"] = (await self._call(RISK_GATE_NAME, "state"))["state"]
        except EngineUnavailableError as exc:
            body["engine"] = str(exc)
        return JSONResponse(body, status_code=status)

    @api.get("/metrics", tags=["operations"])
    async def metrics(self) -> Response:
        """Prometheus metrics of this gateway replica (requests by route and status, latency)."""
        body, content_type = gateway_metrics.exposition()
        return Response(body, media_type=content_type)
