"""``serve deploy configs/serve.yaml`` onto a ``ray start --head`` cluster, as the README says."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from raytrade.adapters.embedded_broker import free_port
from raytrade.cluster.serving import load_serve_config
from raytrade.deployments.auth import SECRET_ENV
from raytrade.training.bootstrap import train_on_synthetic
from raytrade.training.registry import ModelRegistry
from tests.integration.ray_start_cluster import RayStartCluster
from tests.integration.serve_harness import SECRET, auth

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayStartCluster]:
    root = tmp_path_factory.mktemp("raystart")
    c = RayStartCluster(root, {SECRET_ENV: SECRET, "RAY_AUTH_MODE": "disabled"})
    try:
        yield c.start()
    finally:
        c.stop()


def test_serve_deploy_brings_the_app_up_healthy(cluster: RayStartCluster) -> None:
    train_on_synthetic(ModelRegistry(cluster.root / "models"), seed=1, days=0.3, horizon=5, rounds=10)
    port = free_port()
    cfg = load_serve_config(REPO / "configs" / "serve.yaml", port=port, registry=str(cluster.root / "models"))
    path = cluster.root / "serve.yaml"
    path.write_text(yaml.safe_dump(cfg))
    deployed = cluster.cli("serve", "deploy", str(path), "-a", cluster.dashboard)
    assert deployed.returncode == 0, deployed.stderr
    deadline = time.monotonic() + 180
    while True:
        status = yaml.safe_load(cluster.cli("serve", "status", "-a", cluster.dashboard).stdout or "{}") or {}
        app = (status.get("applications") or {}).get("raytrade", {})
        deployments = app.get("deployments", {})
        if app.get("status") == "RUNNING" and {d["status"] for d in deployments.values()} == {"HEALTHY"}:
            break
        assert app.get("status") not in ("DEPLOY_FAILED", "UNHEALTHY"), app
        assert time.monotonic() < deadline, status
        time.sleep(1)
    assert set(deployments) == {"Gateway", "Ensemble", "Policy"}
    assert requests.get(f"http://127.0.0.1:{port}/health", timeout=30).json() == {"status": "ok"}
    health = requests.get(f"http://127.0.0.1:{port}/v1/health", headers=auth("viewer"), timeout=30).json()
    assert health["ensemble"]["model_version"] == "xgb_direction/v0001"
    assert "raytrade rl" in health["policy"]["absent"]  # no policy trained in this registry: reported, not fatal
    r = requests.post(
        f"http://127.0.0.1:{port}/v1/predict", json={"features": [[0.0] * 11]}, headers=auth("viewer"), timeout=30
    )
    assert r.status_code == 200 and r.json()["model_version"] == "xgb_direction/v0001"
