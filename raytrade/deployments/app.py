"""The Serve application ``Gateway(Ensemble, Policy)``, built from ``args``.

``import_path: raytrade.deployments.app:build`` in ``configs/serve.yaml``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from ray.serve import Application

from raytrade.deployments.ensemble import Ensemble, Policy
from raytrade.deployments.gateway import Gateway
from raytrade.deployments.gateway_api import GatewaySettings, default_revocations
from raytrade.deployments.rate_limit import RouteLimits


class AppArgs(BaseModel):
    """What ``configs/serve.yaml`` passes as ``args``; unknown keys are an error."""

    model_config = ConfigDict(extra="forbid")

    registry: str = Field("var/models", description="Model registry: a directory or file:// URI")
    model: str = Field("xgb_direction", description="Signal model (ensemble or single) served by /v1/predict")
    version: str = Field("approved", pattern=r"^(approved|latest|v\d{4,})$")
    anomaly_gate: str | None = Field("anomaly_iforest", description="Anomaly detector; null = none")
    policy: str = Field("ppo_policy", description="RL policy served by /v1/policy")
    policy_version: str = Field("approved", pattern=r"^(approved|latest|v\d{4,})$")
    namespace: str = Field("raytrade", description="Ray namespace of the engine's named actors")
    scoring: Literal["local", "handle"] = Field(
        "local",
        description="/v1/predict scores in the gateway replica (local) or through the Ensemble deployment (handle)",
    )
    limits: RouteLimits = Field(RouteLimits(), description="Rate limits per route class (see rate_limit.py)")
    revocations: str | None = Field(None, description="Revoked-tokens file; null = next to the registry")
    swap_timeout_s: float = Field(60.0, gt=0, description="How long an activation waits for every replica")


def build(args: dict[str, Any]) -> Application:
    """The application graph; model choices become the deployments' initial ``user_config``."""
    a = AppArgs.model_validate(args)
    spec = {"registry": a.registry, "name": a.model, "version": a.version, "anomaly_gate": a.anomaly_gate}
    ensemble = Ensemble.options(user_config=spec).bind()  # type: ignore[attr-defined]
    policy_spec = {"registry": a.registry, "name": a.policy, "version": a.policy_version}
    policy = Policy.options(user_config=policy_spec).bind()  # type: ignore[attr-defined]
    settings = GatewaySettings(
        registry=a.registry,
        namespace=a.namespace,
        limits=a.limits,
        revocations=a.revocations or default_revocations(a.registry),
        swap_timeout_s=a.swap_timeout_s,
    )
    gateway_config: dict[str, Any] = {"scoring": a.scoring}
    if a.scoring == "local":
        gateway_config["model"] = spec
    app: Application = Gateway.options(user_config=gateway_config).bind(  # type: ignore[attr-defined]
        ensemble, policy, settings.model_dump()
    )
    return app
