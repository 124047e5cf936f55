"""Serve deployments that hold models: the signal ensemble (batched) and the RL policy."""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import numpy as np
import torch
from ray import serve

from raytrade.deployments.policy_runner import PolicyRunner
from raytrade.deployments.scoring import ModelSpec, Scorer
from raytrade.training.registry import ModelRegistry

MAX_BATCH = 32
log = logging.getLogger(__name__)


@serve.deployment(max_ongoing_requests=2 * MAX_BATCH, ray_actor_options={"num_cpus": 0})
class Ensemble:
    """The active signal model (ensemble or single) and anomaly gate; swapped in place by ``reconfigure``.

    ``user_config`` is a :class:`ModelSpec` as a dict. A new version is loaded completely
    before it replaces the old one, so requests in flight during a swap are answered by
    one version or the other, never fail.
    """

    def __init__(self) -> None:
        torch.set_num_threads(1)
        self.scorer: Scorer | None = None
        self.swap_error: str | None = None

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Load the configured model; on a swap, a version that fails to load leaves the current one serving
        (reported as ``swap_error``, and the gateway rolls the config back) instead of failing the replica."""
        try:
            scorer = Scorer(ModelSpec.from_user_config(user_config))
        except Exception as exc:
            if self.scorer is None:
                raise  # the first configuration: a replica with no model must not start
            self.swap_error = f"{type(exc).__name__}: {exc}"[:500]
            log.error("Ensemble kept %s: %s", self.scorer.label, self.swap_error)
            return
        self.scorer, self.swap_error = scorer, None

    def _ready(self) -> Scorer:
        if self.scorer is None:
            raise RuntimeError("no model configured: deploy with a user_config naming one")
        return self.scorer

    def info(self) -> dict[str, Any]:
        """What this replica serves."""
        s = self._ready()
        return {
            "model_version": s.label,
            "anomaly_gate": s.gate_label,
            "spec": dataclasses.asdict(s.spec),
            "history": s.history,
            "replica_pid": os.getpid(),
            "swap_error": self.swap_error,
        }

    @serve.batch(max_batch_size=MAX_BATCH, batch_wait_timeout_s=0.001)
    async def _batched(self, requests: list[np.ndarray]) -> list[dict[str, Any] | str]:
        scorer = self._ready()
        h = scorer.history
        ok = [i for i, r in enumerate(requests) if len(r) >= h]
        out: list[dict[str, Any] | str] = [
            f"{scorer.label} reads the last {h} feature vectors, found {len(r)}" for r in requests
        ]
        if ok:
            for i, result in zip(ok, scorer.score(np.stack([requests[i][-h:] for i in ok])), strict=True):
                out[i] = result
        return out

    async def predict(self, rows: np.ndarray) -> dict[str, Any]:
        """Score the last ``history`` of ``rows`` (feature vectors, oldest first), batched with concurrent calls."""
        result = await self._batched(rows)
        if isinstance(result, str):
            raise ValueError(result)
        return result

    def predict_unbatched(self, rows: np.ndarray) -> dict[str, Any]:
        """Score the last ``history`` of ``rows`` alone (the benchmark's comparison with batching)."""
        return self._ready().score_last(rows)

    def predict_windows(self, windows: np.ndarray) -> np.ndarray:
        """Ensemble scores of many windows at once (the shards' batched path)."""
        return np.asarray([r["score"] for r in self._ready().score(windows)])


@serve.deployment(max_ongoing_requests=16, ray_actor_options={"num_cpus": 0})
class Policy:
    """The RL policy (inference-only RLModule); ``user_config``: ``{registry, name, version}``.

    With ``version`` 'approved' or 'latest' and no such model registered yet, the replica
    serves without a policy (``info`` says so; the gateway answers 503 on ``/v1/policy``)
    instead of failing the whole application; a pinned version that is missing fails it.
    """

    def __init__(self) -> None:
        torch.set_num_threads(1)
        self.runner: PolicyRunner | None = None
        self.absent = "no policy configured"
        self.swap_error: str | None = None
        self.configured = False

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        unknown = sorted(set(user_config) - {"registry", "name", "version"})
        if unknown:
            raise ValueError(f"unknown policy user_config key(s) {unknown}")
        registry, name, version = user_config["registry"], user_config["name"], user_config["version"]
        if version in ("approved", "latest") and not ModelRegistry(registry).versions(name):
            self.runner = None
            self.absent = f"no RL policy {name!r} in the registry yet: train one with `raytrade rl`"
            self.configured = True
            return
        try:
            runner = PolicyRunner(registry, name, version)
        except Exception as exc:
            if not self.configured:
                raise  # the first configuration names a policy that does not load: fail the deployment
            self.swap_error = f"{type(exc).__name__}: {exc}"[:500]
            log.error("Policy kept %s: %s", self.runner.label if self.runner else None, self.swap_error)
            return
        self.runner, self.swap_error, self.configured = runner, None, True

    def info(self) -> dict[str, Any]:
        return {
            "model_version": self.runner.label if self.runner else None,
            "absent": self.absent,
            "swap_error": self.swap_error,
        }

    def act(self, features: np.ndarray, position: int) -> dict[str, Any]:
        if self.runner is None:
            raise LookupError(self.absent)
        return self.runner.act(features, position)
