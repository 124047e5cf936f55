"""The Serve application end to end: gateway (JWT roles, limits) + ensemble + RL policy + the engine's actors."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import ray
import requests
from ray import serve

from raytrade.adapters import kafka
from raytrade.adapters.embedded_broker import EmbeddedBroker
from raytrade.cluster.topology import Topology
from raytrade.deployments.policy_runner import PolicyRunner
from raytrade.deployments.rate_limit import ROUTE_CLASSES
from raytrade.deployments.scoring import ModelSpec, Scorer, feature_rows_from_bars
from raytrade.deployments.serve_scorer import ServeScorer
from raytrade.domain.shard_engine import ShardModel
from raytrade.domain.ticks import Tick, encode_tick
from raytrade.training.bootstrap import MODEL_NAME
from raytrade.training.model_loading import shard_model
from tests.integration.serve_harness import auth, call, features, jwt_secret_env, market_rows, served_app, token

REPO = Path(__file__).resolve().parents[2]


# Wide enough that these tests are never limited (test_gateway_hardening.py tests the limits).
LIMITS = {c: {"rate_per_s": 1000, "burst": 1000} for c in ROUTE_CLASSES}


@pytest.fixture(scope="module")
def jwt_secret() -> Iterator[str]:
    with jwt_secret_env() as secret:  # before Ray starts: replicas inherit the environment of the node
        yield secret


@pytest.fixture(scope="module")
def app(
    jwt_secret: str, ray_local: int, broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    with served_app(tmp_path_factory.mktemp("serve"), broker, limits=LIMITS) as a:
        yield a.url, a.reg, a.topo, a.topic, a.bootstrap


def test_predict_matches_the_in_process_model_and_reports_members_and_anomaly(app: Any) -> None:
    url, reg, _, _, _ = app
    local = Scorer(ModelSpec(reg.uri, MODEL_NAME, "v0001", "anomaly_iforest"))
    rows = features(3)
    r = call("POST", f"{url}/v1/predict", "viewer", json={"features": rows})
    assert r.status_code == 200, r.text
    want = local.score(np.asarray(rows)[None, -1:, :])[0]
    got = r.json()
    assert got["model_version"] == "xgb_direction/v0001"
    assert got["score"] == pytest.approx(want["score"], abs=1e-12)
    assert got["models"] == {"xgb_direction": pytest.approx(want["score"], abs=1e-12)}
    assert got["anomaly"] is want["anomaly"]
    typical = [r for r in market_rows()[:200] if not local.gate.flags(r[None, :])[0]][:1]  # type: ignore[union-attr]
    assert (
        call("POST", f"{url}/v1/predict", "viewer", json={"features": [typical[0].tolist()]}).json()["anomaly"] is False
    )
    far = [[50.0] * 11]  # far outside anything trained on: the gate flags it
    assert call("POST", f"{url}/v1/predict", "viewer", json={"features": far}).json()["anomaly"] is True


def test_the_ensemble_deployment_batches_concurrent_calls_with_the_same_results(app: Any) -> None:
    _, reg, _, _, _ = app
    handle = serve.get_deployment_handle("Ensemble", "raytrade")
    local = Scorer(ModelSpec(reg.uri, MODEL_NAME, "v0001", "anomaly_iforest"))
    rows = [np.asarray(features(1, seed)) for seed in range(16)]
    responses = [handle.predict.remote(r) for r in rows]  # concurrent: served in batches
    got = [r.result() for r in responses]
    want = [local.score(r[None, :, :])[0] for r in rows]
    assert [g["score"] for g in got] == [w["score"] for w in want]
    assert [g["anomaly"] for g in got] == [w["anomaly"] for w in want]
    assert handle.predict_unbatched.remote(rows[0]).result()["score"] == want[0]["score"]
    windows = np.stack(rows)
    assert list(handle.predict_windows.remote(windows).result()) == [w["score"] for w in want]


@ray.remote(num_cpus=0)
class _AsyncScorer:
    """Scores inside an asyncio actor, as a MarketShard does."""

    def __init__(self, model: ShardModel) -> None:
        self.model = model

    async def score(self, windows: np.ndarray) -> np.ndarray:
        return self.model.score(windows)


def test_shards_can_score_through_the_ensemble_deployment(app: Any) -> None:
    _, reg, _, _, _ = app
    local = shard_model(reg, MODEL_NAME, "v0001")
    remote = ShardModel(ServeScorer("raytrade", "Ensemble"), local.history, local.gate, "via serve")
    actor = _AsyncScorer.remote(remote)  # type: ignore[attr-defined]
    windows = np.asarray(features(64))[:, None, :]
    got = ray.get(actor.score.remote(windows))
    assert list(got) == list(local.score(windows))
    ray.kill(actor)


def test_predict_from_raw_bars_uses_the_training_features(app: Any) -> None:
    url, reg, _, _, _ = app
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, 80)))
    bars = [
        {"open": c, "high": c * 1.001, "low": c * 0.999, "close": c, "volume": float(v)}
        for c, v in zip(close, rng.uniform(1, 5, 80), strict=True)
    ]
    r = call("POST", f"{url}/v1/predict", "viewer", json={"bars": bars})
    assert r.status_code == 200, r.text
    local = Scorer(ModelSpec(reg.uri, MODEL_NAME, "v0001", "anomaly_iforest"))
    want = local.score_last(feature_rows_from_bars(pl.DataFrame(bars)))
    assert r.json()["score"] == pytest.approx(want["score"], abs=1e-12)
    few = call("POST", f"{url}/v1/predict", "viewer", json={"bars": bars[:5]})
    assert few.status_code == 422 and few.json()["detail"][0]["loc"] == ["body", "bars"]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"features": [[0.0] * 10]}, ["body", "features", 0]),
        ({"features": [[0.0] * 10 + [float("nan")]]}, ["body", "features", 0, 10]),
        ({}, ["body"]),
        ({"features": [[0.0] * 11], "bars": []}, ["body", "bars"]),
        ({"bars": [{"open": 1, "high": 0.5, "low": 1, "close": 1, "volume": 1}]}, ["body", "bars", 0]),
        ({"features": [[0.0] * 11], "extra": 1}, ["body", "extra"]),
    ],
)
def test_malformed_predict_bodies_get_422_naming_the_field(app: Any, body: dict[str, Any], loc: list[Any]) -> None:
    url, _, _, _, _ = app
    r = call("POST", f"{url}/v1/predict", "viewer", data=json.dumps(body), headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert any(e["loc"][: len(loc)] == loc for e in r.json()["detail"]), r.json()
    garbage = call(
        "POST", f"{url}/v1/predict", "viewer", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert garbage.status_code == 422


def test_policy_action_matches_the_registered_module(app: Any) -> None:
    url, reg, _, _, _ = app
    runner = PolicyRunner(reg.uri, "ppo_policy", "approved")
    for seed in range(3):
        f = features(1, seed)[0]
        r = call("POST", f"{url}/v1/policy", "viewer", json={"features": f, "position": 1})
        assert r.status_code == 200, r.text
        want = runner.act(np.asarray(f), 1)
        assert r.json()["action"] == want["action"] and r.json()["logits"] == pytest.approx(want["logits"], abs=1e-6)
    assert call("POST", f"{url}/v1/policy", "viewer", json={"features": f, "position": 2}).status_code == 422


def test_credentials_are_checked_per_route_with_clear_messages(app: Any) -> None:
    url, _, _, _, _ = app
    order = {"symbol": "BTCUSDT", "side": "buy", "qty": "0.001", "ref_price": "50000"}
    missing = call("GET", f"{url}/v1/risk", None)
    assert missing.status_code == 401 and "missing Authorization" in missing.json()["detail"]
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    expired = token("admin", ttl_s=60, now=time.time() - 3600)
    r = call("GET", f"{url}/v1/risk", None, headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    head, payload, sig = token("viewer").split(".")
    forged = json.loads(__import__("base64").urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged["role"] = "admin"
    b64 = __import__("base64").urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("=")
    r = call("GET", f"{url}/v1/risk", None, headers={"Authorization": f"Bearer {head}.{b64}.{sig}"})
    assert r.status_code == 401 and "signature" in r.json()["detail"]
    other = token("admin", audience="someone-else")
    r = call("GET", f"{url}/v1/risk", None, headers={"Authorization": f"Bearer {other}"})
    assert r.status_code == 401 and "audience" in r.json()["detail"]
    r = call("POST", f"{url}/v1/orders", "viewer", json=order)
    assert r.status_code == 403 and "needs 'trader'" in r.json()["detail"]
    r = call("POST", f"{url}/v1/risk/halt", "trader", json={"reason": "x"})
    assert r.status_code == 403 and "needs 'admin'" in r.json()["detail"]
    assert call("POST", f"{url}/v1/models/v0001/activate", "trader").status_code == 403
    assert call("GET", f"{url}/v1/risk", "viewer").status_code == 200
    assert call("GET", f"{url}/health", None).status_code == 200


def trade_minutes(topo: Topology, topic: str, bootstrap: str, price: float, minutes: int) -> None:
    """Publish BTC ticks for the next ``minutes`` of wall-clock event time (bars close, orders trade)."""
    producer = kafka.producer("confluent", bootstrap)
    now = time.time_ns()
    start = now - now % (60 * 10**9)
    n = 0
    for m in range(minutes + 1):
        for k in range(6):
            ts = start + m * 60 * 10**9 + k * 10 * 10**9
            tick = Tick("BTCUSDT", price + (k % 3) * 5.0 - 5.0, 50.0, ts)
            producer.produce(topic, b"BTCUSDT", encode_tick(tick))
            n += 1
    producer.flush(10)


def order_status(url: str, order_id: str) -> dict[str, Any]:
    listed = call("GET", f"{url}/v1/orders?limit=50", "viewer").json()["orders"]
    return next(o for o in listed if o["order_id"] == order_id)


def test_manual_orders_pass_the_risk_gate_trade_on_later_bars_and_the_kill_switch_stops_them(app: Any) -> None:
    url, _, topo, topic, bootstrap = app
    order = {"symbol": "BTCUSDT", "side": "buy", "qty": "0.01", "ref_price": "50000"}
    r = call("POST", f"{url}/v1/orders", "trader", json=order)
    assert r.status_code == 200, r.text
    placed = r.json()
    assert placed["status"] == "ACCEPTED" and placed["fills"] == []  # it trades on a later bar, not now
    resting = call(
        "POST", f"{url}/v1/orders", "trader", json={**order, "type": "limit", "limit_price": "40000.00"}
    ).json()
    assert resting["status"] == "ACCEPTED"
    trade_minutes(topo, topic, bootstrap, 50000.0, 3)
    deadline = time.monotonic() + 30
    while order_status(url, placed["order_id"])["status"] != "FILLED":
        assert time.monotonic() < deadline, order_status(url, placed["order_id"])
        time.sleep(0.2)
    filled = order_status(url, placed["order_id"])
    assert filled["strategy"] == "manual:cli" and Decimal(filled["filled_qty"]) == Decimal("0.01")
    assert 49995 <= Decimal(filled["fills"][0]["price"]) <= 50005  # within the bar's traded range
    assert order_status(url, resting["order_id"])["status"] == "ACCEPTED"  # 40,000 never traded
    cancelled = call("DELETE", f"{url}/v1/orders/{resting['order_id']}", "trader")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
    assert call("DELETE", f"{url}/v1/orders/{resting['order_id']}", "trader").status_code == 404
    pos = call("GET", f"{url}/v1/positions", "viewer").json()
    assert Decimal(pos["positions"]["BTCUSDT"]) >= Decimal("0.01")
    big = call("POST", f"{url}/v1/orders", "trader", json={**order, "qty": "1"})  # 50,000 > max order 25,000
    assert big.json()["status"] == "REJECTED" and "order notional" in big.json()["reason"]
    fat = call("POST", f"{url}/v1/orders", "trader", json={**order, "ref_price": "60000"})  # 20% off the last trade
    assert fat.json()["status"] == "REJECTED" and "from the last trade" in fat.json()["reason"]
    unknown = call("POST", f"{url}/v1/orders", "trader", json={**order, "symbol": "NOPE"})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "symbol"]
    nan = call("POST", f"{url}/v1/orders", "trader", json={**order, "ref_price": "NaN"})
    assert nan.status_code == 422
    no_limit = call("POST", f"{url}/v1/orders", "trader", json={**order, "type": "limit"})
    assert no_limit.status_code == 422 and "needs limit_price" in no_limit.text

    halted = call("POST", f"{url}/v1/risk/halt", "admin", json={"reason": "test drill"})
    assert halted.status_code == 200 and halted.json()["state"] == "HALTED"
    assert ray.get(topo.risk_gate.state.remote())["state"] == "HALTED"
    risk = call("GET", f"{url}/v1/risk", "viewer").json()
    assert risk["halt_reason"] == "test drill (by cli)" and risk["limits"]["max_order_notional"] == "25000"
    denied = call("POST", f"{url}/v1/orders", "trader", json=order).json()
    assert denied["status"] == "REJECTED" and denied["reason"].startswith("halted: test drill")
    assert call("POST", f"{url}/v1/risk/resume", "admin").json()["state"] == "ACTIVE"
    assert call("POST", f"{url}/v1/orders", "trader", json=order).json()["status"] == "ACCEPTED"


def test_hot_swap_keeps_serving_and_switches_version(app: Any) -> None:
    url, _, _, _, _ = app
    assert call("POST", f"{url}/v1/models/v0003/activate").status_code == 409  # not approved
    assert call("POST", f"{url}/v1/models/v0099/activate").status_code == 404
    assert call("POST", f"{url}/v1/models/latest/activate").status_code == 422
    before = call("GET", f"{url}/v1/health", "viewer").json()["ensemble"]
    seen: list[tuple[float, int, str]] = []
    stop = threading.Event()

    def flow() -> None:
        session = requests.Session()
        while not stop.is_set():
            r = session.post(f"{url}/v1/predict", json={"features": features(1)}, headers=auth("viewer"), timeout=30)
            seen.append((time.monotonic(), r.status_code, r.json().get("model_version", r.text)))

    threads = [threading.Thread(target=flow) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    r = call("POST", f"{url}/v1/models/v0002/activate")
    swapped_at = time.monotonic()
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join()
    assert r.status_code == 200, r.text
    assert r.json() == {
        "deployment": "Ensemble",
        "model": MODEL_NAME,
        "version": "v0002",
        "previous": "xgb_direction/v0001",
        "replicas_updated": True,
    }
    assert len(seen) > 50 and all(code == 200 for _, code, _ in seen), [s for s in seen if s[1] != 200][:3]
    versions = [v for _, _, v in seen]
    assert versions[0] == "xgb_direction/v0001" and versions[-1] == "xgb_direction/v0002"
    assert all(v == "xgb_direction/v0002" for at, _, v in seen if at > swapped_at)
    health = call("GET", f"{url}/v1/health", "viewer").json()
    after = health["ensemble"]
    assert after["replica_pid"] == before["replica_pid"]  # reconfigured in place, not restarted
    assert after["model_version"] == "xgb_direction/v0002"
    assert after["anomaly_gate"] == before["anomaly_gate"] == "anomaly_iforest/v0002"  # the gate carried over
    assert health["gateway"]["model_version"] == "xgb_direction/v0002" and health["gateway"]["swap_error"] is None
    metrics = requests.get(f"{url}/metrics", timeout=30).text
    served = [ln for ln in metrics.splitlines() if ln.startswith('raytrade_gateway_requests_total{route="/v1/predict"')]
    assert served and sum(float(ln.split()[-1]) for ln in served) >= len(seen)
    models = call("GET", f"{url}/v1/models", "viewer").json()
    assert models["active"]["ensemble"]["model_version"] == "xgb_direction/v0002"
    assert [v["approved"] for v in models["registry"][MODEL_NAME]] == [True, True, False]
    assert call("POST", f"{url}/v1/models/v0001/activate").json()["previous"] == "xgb_direction/v0002"


def test_openapi_fuzzing_with_valid_tokens_finds_no_server_error(app: Any) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    url, _, _, _, _ = app
    spec = requests.get(f"{url}/openapi.json", timeout=30).json()
    assert {"/v1/predict", "/v1/policy", "/v1/orders", "/v1/risk/halt", "/health"} <= set(spec["paths"])
    schema = schemathesis.openapi.from_dict(spec)
    failures: list[str] = []
    calls = 0
    for result in schema.get_all_operations():
        op = result.ok()  # type: ignore[union-attr]

        @given(case=op.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case: Any) -> None:
            nonlocal calls
            response = case.call(base_url=url, headers=auth("admin"), timeout=30)
            calls += 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}")

        fuzz()
    call("POST", f"{url}/v1/risk/resume")
    call("POST", f"{url}/v1/models/v0001/activate")
    assert calls >= 100 and not failures, failures[:5]
