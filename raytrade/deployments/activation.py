"""Model activation: validate a registry version before serving it, apply it, roll back if it does not take.

A bad version must never take the gateway down (the kill switch lives there). So:

1. :func:`plan` picks the deployment by the version's kind and refuses what is not servable
   (missing, unapproved, wrong kind) before anything changes;
2. :func:`validate` loads it exactly as a replica would and scores a probe, in a worker thread;
3. :func:`apply_or_roll_back` applies the new ``user_config`` (one declarative apply), waits until
   every replica serves it, and otherwise applies the previous ``user_config`` again.

Replicas keep serving their current model when a swap fails to load (``swap_error`` in their info),
so even a version that breaks between validation and apply leaves the application healthy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from raytrade.deployments import serve_control
from raytrade.deployments.errors import StatusError
from raytrade.deployments.policy_runner import PolicyRunner
from raytrade.deployments.scoring import ModelSpec, Scorer
from raytrade.domain.features import FEATURE_NAMES
from raytrade.training.model_loading import SIGNAL_KINDS
from raytrade.training.registry import ModelRegistry, RegistryError
from raytrade.training.rl.agent import MODULE_KIND

GATEWAY = "Gateway"
ENSEMBLE = "Ensemble"
POLICY = "Policy"


class ActivationError(StatusError):
    """The version cannot be served: ``status`` 404 (absent) or 409 (refused, or failed and rolled back)."""


@dataclass(frozen=True)
class Plan:
    """Which deployment serves the version, and the ``user_config`` of every deployment that changes."""

    deployment: str
    name: str
    version: str
    updates: dict[str, dict[str, Any]]


def plan(registry: ModelRegistry, name: str, version: str, ensemble_spec: dict[str, Any], gateway_scoring: str) -> Plan:
    """The change that serves ``name/version``, or :class:`ActivationError` saying why it cannot be."""
    versions = registry.versions(name)
    if version not in versions:
        raise ActivationError(404, f"model {name!r} has no version {version}; versions: {versions}")
    if not registry.is_approved(name, version):
        approve = f"`raytrade models approve {name} {version}`"
        raise ActivationError(409, f"{name}/{version} is not approved: {approve} first")
    kind = registry.meta(name, version).kind
    if kind == MODULE_KIND:
        return Plan(POLICY, name, version, {POLICY: {"registry": ensemble_spec["registry"], "name": name,
                                                     "version": version}})  # fmt: skip
    if kind not in SIGNAL_KINDS:
        raise ActivationError(
            409,
            f"{name}/{version} is a {kind!r}: only signal models {sorted(SIGNAL_KINDS)} and RL policies "
            f"({MODULE_KIND}) can be activated",
        )
    spec = {**ensemble_spec, "name": name, "version": version}  # same registry and anomaly gate
    updates: dict[str, dict[str, Any]] = {ENSEMBLE: spec}
    if gateway_scoring == "local":
        updates[GATEWAY] = {"scoring": "local", "model": spec}
    return Plan(ENSEMBLE, name, version, updates)


def _load_and_probe(p: Plan) -> None:
    zeros = np.zeros(len(FEATURE_NAMES))
    if p.deployment == POLICY:
        cfg = p.updates[POLICY]
        PolicyRunner(cfg["registry"], cfg["name"], cfg["version"]).act(zeros, 0)
        return
    scorer = Scorer(ModelSpec.from_user_config(p.updates[ENSEMBLE]))
    scorer.score_last(np.tile(zeros, (scorer.history, 1)))


async def validate(p: Plan) -> None:
    """Load the version as a replica would and score a probe (in a worker thread); 409 with the reason if
    it fails (a corrupt artifact, a feature-version mismatch, a model that cannot score)."""
    try:
        await asyncio.to_thread(_load_and_probe, p)
    except (RegistryError, ValueError, KeyError, OSError, RuntimeError) as exc:
        raise ActivationError(409, f"{p.name}/{p.version} does not load: {exc}") from None


async def until(check: Callable[[], Awaitable[bool]], streak: int, timeout_s: float) -> bool:
    """Poll ``check`` until it holds ``streak`` times in a row (every replica answered) or ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    seen = 0
    while time.monotonic() < deadline:
        seen = seen + 1 if await check() else 0
        if seen >= streak:
            return True
        await asyncio.sleep(0.05)
    return False


async def apply_or_roll_back(app: str, p: Plan, served: Callable[[], Awaitable[bool]], timeout_s: float) -> None:
    """Apply ``p``; if ``served`` does not hold within ``timeout_s``, apply the previous ``user_config``
    of the same deployments again and raise :class:`ActivationError` (409) saying so."""
    previous = await serve_control.user_configs(app, list(p.updates))
    try:
        await serve_control.set_user_configs(app, p.updates)
    except LookupError as exc:
        raise ActivationError(409, str(exc)) from None
    if await served():
        return
    await serve_control.set_user_configs(app, previous)
    raise ActivationError(
        409,
        f"{p.name}/{p.version} was applied but not served by every replica within {timeout_s:.0f} s: "
        "rolled back to the previous configuration",
    )
