"""The HTTP gateway: versioned FastAPI ingress for inference and for controlling the running engine.

Every route's caller, role, rate limit and body cap are checked by :mod:`raytrade.deployments.guard`
from the headers alone, before the body is read (the table ``ROUTES`` in
:mod:`raytrade.deployments.gateway_api`); ``/health``, ``/metrics`` and ``/openapi.json`` are open and
limited per client address. The engine's RiskGate and Execution are found by name in the configured
Ray namespace (``raytrade run --serve`` names them).

No ``from __future__ import annotations`` here: FastAPI re-reads the handlers' annotations in the
replica (Serve ships the class by value), where strings would not resolve.
"""

import logging
import os
import time
import uuid
from decimal import Decimal
from typing import Annotated, Any

import numpy as np
import orjson
import polars as pl
import ray
from fastapi import Body, Path, Query
from fastapi.responses import JSONResponse, Response
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.handle import DeploymentHandle

from raytrade.cluster.topology import EXECUTION_NAME, RISK_GATE_NAME
from raytrade.deployments import activation, gateway_metrics, guard
from raytrade.deployments.activation import ENSEMBLE, GATEWAY, POLICY
from raytrade.deployments.auth import Role, TokenCache, secret_from_env
from raytrade.deployments.gateway_api import (
    ROUTES,
    Caller,
    EngineUnavailableError,
    GatewaySettings,
    HaltRequest,
    api,
    check_routes,
    error,
    field_error,
    manual_owner,
    report_json,
)
from raytrade.deployments.guard import Guard, RouteTable
from raytrade.deployments.rate_limit import RouteLimiter
from raytrade.deployments.revocation import RevocationList
from raytrade.deployments.schemas import (
    ActivateRequest,
    ActivateResponse,
    OrderRequest,
    OrderResponse,
    PolicyRequest,
    PolicyResponse,
    PredictRequest,
    PredictResponse,
    RevokeRequest,
)
from raytrade.deployments.scoring import ModelSpec, Scorer, feature_rows_from_bars
from raytrade.domain.orders import OrderIntent, OrderType, Side, TimeInForce
from raytrade.training.registry import ModelRegistry

__all__ = ["ENSEMBLE", "GATEWAY", "POLICY", "Gateway"]

log = logging.getLogger(__name__)


@serve.deployment(max_ongoing_requests=64, ray_actor_options={"num_cpus": 0})
@serve.ingress(api)
class Gateway:
    """FastAPI ingress composed with the :class:`Ensemble` and :class:`Policy` deployments."""

    def __init__(
        self, ensemble: DeploymentHandle[Any], policy: DeploymentHandle[Any], settings: dict[str, Any]
    ) -> None:
        check_routes(api, ROUTES)
        self.settings = GatewaySettings.model_validate(settings)
        self.scoring = "handle"
        self.local: Scorer | None = None
        self.swap_error: str | None = None
        self.configured = False
        self.user_config: dict[str, Any] = {"scoring": "handle"}
        self.ensemble = ensemble
        self.policy = policy
        self.registry = ModelRegistry(self.settings.registry)
        self.revocations = RevocationList(self.settings.revocations)
        tokens = TokenCache(secret_from_env(), self.settings.audience)
        guard.activate(Guard(tokens, RouteTable(ROUTES), RouteLimiter(self.settings.limits), self.revocations))
        self._actors: dict[str, Any] = {}

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """``{"scoring": "handle"}``, or ``{"scoring": "local", "model": <ModelSpec fields>}``.

        ``local``: this replica holds its own copy of the active model and scores single
        requests in process, skipping the hop to the Ensemble deployment (see the serving
        benchmark); activation updates this copy in the same config apply as the Ensemble's.
        A copy that fails to load on a swap leaves the current one serving (``swap_error``): a
        model must never take the gateway, and the kill switch with it, down.
        """
        try:
            unknown = sorted(set(user_config) - {"scoring", "model"})
            if unknown or user_config.get("scoring") not in ("handle", "local"):
                raise ValueError(f"gateway user_config needs scoring: handle|local (and model), found {user_config}")
            local = None
            if user_config["scoring"] == "local":
                local = Scorer(ModelSpec.from_user_config(user_config["model"]))
        except Exception as exc:
            if not self.configured:
                raise  # the first configuration: a deployment that cannot score must not start
            self.swap_error = f"{type(exc).__name__}: {exc}"[:500]
            log.error("gateway kept %s: the new configuration failed: %s", self._label(), self.swap_error)
            return
        self.local, self.scoring, self.user_config = local, user_config["scoring"], dict(user_config)
        self.swap_error, self.configured = None, True

    def _label(self) -> str | None:
        return self.local.label if self.local is not None else None

    # -- engine ------------------------------------------------------------------------------

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
    async def predict(self, body: PredictRequest, _: Caller) -> Any:
        """Score one symbol: each member model's P(up), the ensemble's, and the anomaly flag."""
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
            return field_error(["body", "features" if body.features is not None else "bars"], str(exc))
        return Response(orjson.dumps(result), media_type="application/json")  # validated shape; skips re-serializing

    @api.post("/v1/policy", response_model=PolicyResponse, tags=["inference"])
    async def policy_action(self, body: PolicyRequest, _: Caller) -> Any:
        """The RL agent's greedy action for one feature vector and the current position."""
        try:
            return await self.policy.act.remote(np.asarray(body.features, dtype=np.float64), body.position)
        except LookupError as exc:
            return error(503, str(exc).splitlines()[-1])

    @api.get("/v1/positions", tags=["engine"])
    async def positions(self, _: Caller) -> dict[str, Any]:
        """Positions, cash and P&L marked at the last fill prices."""
        _, marks, _ = await self._call(EXECUTION_NAME, "positions")
        summary: dict[str, Any] = await self._call(EXECUTION_NAME, "summary", marks)
        summary["marks"] = {s: str(p) for s, p in sorted(marks.items())}
        return summary

    @api.get("/v1/orders", tags=["engine"])
    async def orders(
        self,
        _: Caller,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        symbol: Annotated[str | None, Query(max_length=32)] = None,
    ) -> dict[str, Any]:
        """The most recent orders (newest first), with their fills."""
        return {"orders": await self._call(EXECUTION_NAME, "orders", limit, symbol)}

    @api.post("/v1/orders", response_model=OrderResponse, tags=["engine"])
    async def place_order(self, body: OrderRequest, claims: Caller) -> Any:
        """A manual order; the RiskGate decides on it like on any other. Its owner is ``manual:<subject>``."""
        symbols: list[str] = await self._call(EXECUTION_NAME, "symbols")
        if body.symbol not in symbols:
            return field_error(["body", "symbol"], f"unknown symbol {body.symbol!r}; tradable: {symbols}")
        price = body.ref_price
        if price is None:
            _, marks, _ = await self._call(EXECUTION_NAME, "positions")
            price = marks.get(body.symbol)
            if price is None:
                return error(409, f"no fill price for {body.symbol} yet: give ref_price")
        now = time.time_ns()
        try:
            intent = OrderIntent(
                f"manual-{uuid.uuid4().hex}",
                manual_owner(claims.subject),
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
            return field_error(["body"], str(exc))
        reply = await self._call(RISK_GATE_NAME, "submit", [intent])
        return report_json(reply.reports[0])

    @api.delete("/v1/orders/{order_id}", response_model=OrderResponse, tags=["engine"])
    async def cancel_order(self, order_id: Annotated[str, Path(max_length=200)], claims: Caller) -> Any:
        """Cancel a working order (through the RiskGate): a trader only their own manual orders, an admin any.
        404 if no such order is working, 403 if it is someone else's."""
        owner = None if claims.role >= Role.admin else manual_owner(claims.subject)
        try:
            report = await self._call(RISK_GATE_NAME, "cancel", order_id, claims.subject, owner)
        except KeyError:
            return error(404, f"no working order {order_id}")
        except PermissionError as exc:
            return error(403, str(exc).splitlines()[-1].split(": ", 1)[-1])
        return report_json(report)

    @api.get("/v1/risk", tags=["risk"])
    async def risk(self, _: Caller) -> dict[str, Any]:
        """Trading state (ACTIVE/REDUCING/HALTED), limits, positions and exposures."""
        state: dict[str, Any] = await self._call(RISK_GATE_NAME, "state")
        return state

    @api.post("/v1/risk/halt", tags=["risk"])
    async def halt(self, claims: Caller, body: Annotated[HaltRequest | None, Body()] = None) -> dict[str, Any]:
        """Engage the kill switch: every later order is denied until resumed (survives restarts)."""
        reason = (body or HaltRequest()).reason
        await self._call(RISK_GATE_NAME, "halt", f"{reason} (by {claims.subject})")
        state: dict[str, Any] = await self._call(RISK_GATE_NAME, "state")
        return state

    @api.post("/v1/risk/resume", tags=["risk"])
    async def resume(self, _: Caller) -> dict[str, Any]:
        """Release the kill switch."""
        await self._call(RISK_GATE_NAME, "resume")
        state: dict[str, Any] = await self._call(RISK_GATE_NAME, "state")
        return state

    # -- models ------------------------------------------------------------------------------

    async def _active(self) -> dict[str, Any]:
        active: dict[str, Any] = {"ensemble": await self.ensemble.info.remote()}
        active["gateway"] = {
            "scoring": self.scoring,
            "model_version": self._label(),
            "swap_error": self.swap_error,
            "replica_pid": os.getpid(),
        }
        active["policy"] = await self.policy.info.remote()
        return active

    @api.get("/v1/models", tags=["models"])
    async def models(self, _: Caller) -> dict[str, Any]:
        """Registered models and versions, which are approved, and what is being served."""
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
        _: Caller,
        body: Annotated[ActivateRequest | None, Body()] = None,
    ) -> Any:
        """Serve another approved registry version: validated (loaded and scored here) before it is applied,
        replicas reload it in place (no restart, no failed requests), and a version that does not take on
        every replica is rolled back (409 with the reason)."""
        info = await self.ensemble.info.remote()
        name = (body.model if body and body.model else None) or info["model_version"].split("/")[0]
        plan = activation.plan(self.registry, name, version, info["spec"], self.scoring)
        await activation.validate(plan)
        handle = self.policy if plan.deployment == POLICY else self.ensemble
        previous = (await handle.info.remote())["model_version"]
        want = f"{name}/{version}"
        timeout = self.settings.swap_timeout_s

        async def served() -> bool:
            if not await activation.until(lambda: self._served_by(handle, want), 5, timeout):
                return False
            return GATEWAY not in plan.updates or await activation.until(self._served_locally(want), 1, timeout)

        await activation.apply_or_roll_back(serve.get_replica_context().app_name, plan, served, timeout)
        return {"deployment": plan.deployment, "model": name, "version": version, "previous": previous,
                "replicas_updated": True}  # fmt: skip

    async def _served_by(self, handle: DeploymentHandle[Any], label: str) -> bool:
        return bool((await handle.info.remote())["model_version"] == label)

    def _served_locally(self, label: str) -> Any:
        async def check() -> bool:
            return self._label() == label

        return check

    # -- auth --------------------------------------------------------------------------------

    @api.post("/v1/auth/revoke", tags=["auth"])
    async def revoke(self, body: RevokeRequest, claims: Caller) -> dict[str, Any]:
        """Revoke one token (``jti``) or every token a subject holds now; every replica refuses them."""
        now = int(time.time())
        r = self.revocations.revoke(now, token_id=body.jti, subject=body.subject)
        log.warning("revoked %s by %s", body.jti or f"subject {body.subject!r}", claims.subject)
        return {"revoked_tokens": len(r.tokens), "revoked_subjects": sorted(r.subjects)}

    # -- operations --------------------------------------------------------------------------

    @api.get("/health", tags=["operations"])
    async def health(self) -> Any:
        """200 ``{"status": "ok"}`` when the gateway and its model answer, else 503; no details (open route)."""
        try:
            await self.ensemble.info.remote()
        except Exception:
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return {"status": "ok"}

    @api.get("/v1/health", tags=["operations"])
    async def health_detail(self, _: Caller) -> Any:
        """What each deployment serves, and the engine's trading state."""
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
