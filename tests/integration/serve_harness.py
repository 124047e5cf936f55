"""The Serve application for tests: a registry (two approved signal-model versions, an unapproved one, a tiny
RL policy), the engine's named actors on a topic of their own, the app deployed from ``configs/serve.yaml``;
tokens and an HTTP helper."""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray
import requests
from ray import serve

from raytrade.adapters import kafka
from raytrade.adapters.embedded_broker import EmbeddedBroker, free_port
from raytrade.cluster.serving import deploy, load_serve_config
from raytrade.cluster.topology import Topology, build
from raytrade.deployments.auth import SECRET_ENV, issue_token
from raytrade.training.bootstrap import MODEL_NAME, train_on_synthetic
from raytrade.training.model_loading import shard_model
from raytrade.training.registry import ModelRegistry
from raytrade.training.rl.agent import train_agent
from tests.integration.chaos_harness import config, kill_all

REPO = Path(__file__).resolve().parents[2]
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


def auth(role: str, subject: str = "cli") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role, subject=subject)}"}


def call(method: str, url: str, role: str | None = "admin", **kw: Any) -> requests.Response:
    headers = kw.pop("headers", {})
    if role:
        headers.update(auth(role, subject=kw.pop("subject", "cli")))
    return requests.request(method, url, headers=headers, timeout=30, **kw)


@contextmanager
def jwt_secret_env() -> Iterator[str]:
    """The signing secret in this process's environment, before Ray starts: replicas inherit it."""
    before = os.environ.get(SECRET_ENV)
    os.environ[SECRET_ENV] = SECRET
    try:
        yield SECRET
    finally:
        if before is None:
            os.environ.pop(SECRET_ENV, None)
        else:
            os.environ[SECRET_ENV] = before


@dataclass
class ServedApp:
    url: str
    reg: ModelRegistry
    topo: Topology
    topic: str
    bootstrap: str


@contextmanager
def served_app(tmp: Path, broker: EmbeddedBroker, **app_args: Any) -> Iterator[ServedApp]:
    """Engine actors (named) + the Serve app deployed from configs/serve.yaml on a port of its own;
    ``app_args`` override the application's ``args`` (limits, swap timeout...)."""
    reg = make_registry(tmp / "models")
    topic = f"ticks-{uuid.uuid4().hex[:6]}"
    cfg = config(tmp, topic, ray__namespace=f"ns{uuid.uuid4().hex[:6]}", kafka__partitions="1")
    adm = kafka.admin("confluent", broker.bootstrap_servers)
    adm.create_topic(topic, 1)
    adm.create_topic(f"{topic}.dlq", 1)
    adm.close()
    topo = build(
        cfg, broker.bootstrap_servers, shard_model(reg, MODEL_NAME, "v0001"), str(tmp / "ledger.db"), named=True
    )
    sc = load_serve_config(
        REPO / "configs" / "serve.yaml",
        port=free_port(),
        registry=str(tmp / "models"),
        version="v0001",
        namespace=cfg.ray.namespace,
        **app_args,
    )
    url = deploy(sc)
    for shard in topo.shards:  # consume ticks: bars reach the paper broker, orders trade
        shard.run.remote()
    try:
        yield ServedApp(url, reg, topo, topic, broker.bootstrap_servers)
    finally:
        ray.get([shard.stop.remote() for shard in topo.shards])
        serve.shutdown()  # type: ignore[no-untyped-call]
        kill_all(topo)


def _market_rows() -> np.ndarray:
    from raytrade.adapters.synthetic_market import SyntheticMarket, ticks_to_bars
    from raytrade.training.datasets import build_dataset

    return build_dataset(ticks_to_bars(SyntheticMarket(seed=5).ticks_frame(4 * 3600)), 5).x


_ROWS: list[np.ndarray] = []


def market_rows() -> np.ndarray:
    """Feature vectors of a synthetic market (computed once per process)."""
    if not _ROWS:
        _ROWS.append(_market_rows())
    return _ROWS[0]


def features(n: int, seed: int = 0) -> list[list[float]]:
    """``n`` consecutive feature vectors of a synthetic market (realistic values)."""
    rows_all = market_rows()
    start = int(np.random.default_rng(seed).integers(0, len(rows_all) - n))
    rows: list[list[float]] = rows_all[start : start + n].tolist()
    return rows
