"""A registry with two approved signal-model versions, an unapproved one and a tiny RL policy; tokens."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from raytrade.deployments.auth import issue_token
from raytrade.training.bootstrap import MODEL_NAME, train_on_synthetic
from raytrade.training.registry import ModelRegistry
from raytrade.training.rl.agent import train_agent

SECRET = "test-secret-" + "s" * 40


def make_registry(root: Path, *, policy: bool = True) -> ModelRegistry:
    """v0001 and v0002 of the default model (different seeds, both approved), v0003 unapproved."""
    reg = ModelRegistry(root)
    train_on_synthetic(reg, seed=1, days=0.5, horizon=5, rounds=30)
    train_on_synthetic(reg, seed=2, days=0.5, horizon=5, rounds=10)
    meta = reg.meta(MODEL_NAME, "v0002")
    _, raw = reg.load(MODEL_NAME, "v0002", feature_version=meta.feature_version)
    fields = {k: v for k, v in dataclasses.asdict(meta).items() if k not in ("version", "sha256", "created_at")}
    reg.register(fields, raw, approve=False)
    if policy:
        train = {"iterations": 1, "train_batch_size": 256, "minibatch_size": 64, "num_epochs": 1, "eval_days": 0.1}
        train_agent({"days": 0.2, "episode_bars": 64}, train, reg, approve=True)
    return reg


def token(role: str, ttl_s: float = 600, **kw: object) -> str:
    return issue_token(SECRET, role, ttl_s, **kw)  # type: ignore[arg-type]


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role)}"}
