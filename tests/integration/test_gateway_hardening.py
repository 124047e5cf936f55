"""The gateway as an attacker and a careless admin meet it: auth before the body, caps, bounded errors,
strict JSON, bad model versions that never take the kill switch down, rate limits per subject and route
class, token hygiene, a minimal open surface, and traders who cancel only their own orders."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import psutil
import pytest
import ray
import requests
from ray import serve

from raytrade.adapters.embedded_broker import EmbeddedBroker
from raytrade.deployments import activation, serve_control
from raytrade.deployments.activation import ActivationError
from raytrade.deployments.revocation import RevocationList
from raytrade.domain.orders import OrderIntent, OrderType, Side
from raytrade.training.bootstrap import MODEL_NAME
from raytrade.training.registry import ModelRegistry
from tests.integration.serve_harness import SECRET, ServedApp, call, features, jwt_secret_env, served_app, token

LIMITS = {
    "inference": {"rate_per_s": 1, "burst": 5},
    "orders": {"rate_per_s": 5, "burst": 10},
    "read": {"rate_per_s": 5, "burst": 15},
    "control": {"rate_per_s": 5, "burst": 40},
    "open": {"rate_per_s": 2, "burst": 6},
    "unauthenticated": {"rate_per_s": 5, "burst": 10},
}


@pytest.fixture(scope="module")
def jwt_secret() -> Iterator[str]:
    with jwt_secret_env() as secret:
        yield secret


@pytest.fixture(scope="module")
def app(
    jwt_secret: str, ray_local: int, broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedApp]:
    with served_app(tmp_path_factory.mktemp("hard"), broker, limits=LIMITS, swap_timeout_s=10) as a:
        yield a


def refill(seconds: float = 3.0) -> None:
    """Wait until the per-address buckets (open, unauthenticated) are full again."""
    time.sleep(seconds)


def send_until_answered(
    url: str, headers: dict[str, str], body: bytes, chunk: int = 64 * 1024, send_body: bool = True
) -> tuple[int, int, float, bytes]:
    """POST ``body`` over a raw socket, stopping as soon as the server answers (``send_body=False``: declare
    its length but send none of it). Returns the status, the bytes of body sent before the answer, the
    seconds it took and the answer."""
    u = urlsplit(url)
    t0 = time.perf_counter()
    with socket.create_connection((u.hostname or "127.0.0.1", u.port or 80), timeout=30) as s:
        head = [f"POST {u.path} HTTP/1.1", f"Host: {u.hostname}", f"Content-Length: {len(body)}",
                "Content-Type: application/json", *(f"{k}: {v}" for k, v in headers.items())]  # fmt: skip
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        sent = 0 if send_body else len(body)
        answer = b""
        while True:
            readable, _, _ = select.select([s], [], [], 0 if sent < len(body) else 30)
            if readable:
                answer = _read_response(s)
                break
            if sent >= len(body):
                break  # nothing (more) to send and no answer within 30 s
            try:
                s.sendall(body[sent : sent + chunk])
            except (BrokenPipeError, ConnectionResetError):
                answer = _read_response(s)
                break
            sent += chunk
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    return status, min(sent, len(body)), time.perf_counter() - t0, answer


def _read_response(s: socket.socket) -> bytes:
    """One HTTP response: the headers, then ``content-length`` bytes of body (or until the server closes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = s.recv(65536)
        if not more:
            return data
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(ln.split(b":")[1]) for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")), 0)
    while len(body) < length:
        more = s.recv(65536)
        if not more:
            break
        body += more
    return head + b"\r\n\r\n" + body


def gateway_pid(app: ServedApp) -> int:
    r = call("GET", f"{app.url}/v1/health", "viewer", subject="ops")
    assert r.status_code == 200, r.text
    return int(r.json()["gateway"]["replica_pid"])


def test_a_refused_caller_s_body_is_never_read(app: ServedApp) -> None:
    url = f"{app.url}/v1/predict"
    pid = gateway_pid(app)
    rss_before = psutil.Process(pid).memory_info().rss
    many_keys = ("{" + ",".join(f'"k{i}":{i}' for i in range(1_500_000)) + "}").encode()  # ~20 MB
    assert len(many_keys) > 19_000_000
    # Headers alone, declaring 20 MB: the answer comes without a byte of the body.
    status, _, seconds, answer = send_until_answered(url, {}, many_keys, send_body=False)
    assert status == 401 and b"missing Authorization header" in answer and seconds < 5
    viewer = {"Authorization": f"Bearer {token('viewer', subject='big-body')}"}
    status, _, seconds, answer = send_until_answered(url, viewer, many_keys, send_body=False)
    assert status == 413 and b"at most 524288 bytes" in answer and seconds < 5
    # The whole body sent: answered at once, before the client is done sending it.
    status, sent, seconds, answer = send_until_answered(url, {}, many_keys)
    assert status == 401 and sent < len(many_keys) and seconds < 5, (sent, seconds)
    rss_after = psutil.Process(pid).memory_info().rss
    assert rss_after - rss_before < 50 * 2**20, (rss_before, rss_after)

    # While anonymous 5 MB bodies keep coming, a viewer's risk request is answered promptly.
    stop = threading.Event()

    def flood() -> None:
        body = many_keys[: 5 * 2**20]
        while not stop.is_set():
            send_until_answered(url, {}, body)

    attackers = [threading.Thread(target=flood) for _ in range(2)]
    for t in attackers:
        t.start()
    waits = []
    for _ in range(10):
        t0 = time.perf_counter()
        r = call("GET", f"{app.url}/v1/risk", "viewer", subject="risk-watcher")
        waits.append(time.perf_counter() - t0)
        assert r.status_code == 200
    stop.set()
    for t in attackers:
        t.join()
    assert max(waits) < 1.0, waits
    refill()


def test_bodies_over_a_route_s_cap_get_413(app: ServedApp) -> None:
    viewer = {"Authorization": f"Bearer {token('viewer', subject='capper')}"}
    big = json.dumps({"features": features(1), "pad": "x" * 600_000}).encode()

    def chunked() -> Iterator[bytes]:
        for i in range(0, len(big), 50_000):
            yield big[i : i + 50_000]

    r = requests.post(f"{app.url}/v1/predict", data=chunked(), headers={**viewer, "Content-Type": "application/json"},
                      timeout=30)  # fmt: skip
    assert r.status_code == 413 and "at most 524288 bytes" in r.json()["detail"]
    admin = {"Authorization": f"Bearer {token('admin', subject='capper')}", "Content-Type": "application/json"}
    r = requests.post(f"{app.url}/v1/risk/halt", data=json.dumps({"reason": "x" * 5000}), headers=admin, timeout=30)
    assert r.status_code == 413 and "at most 4096 bytes" in r.json()["detail"]
    assert call("GET", f"{app.url}/v1/risk", "viewer", subject="capper").json()["state"] == "ACTIVE"


def test_headers_over_the_cap_get_431(app: ServedApp) -> None:
    r = requests.get(f"{app.url}/health", headers={"X-Padding": "p" * 20_000}, timeout=30)
    assert r.status_code == 431 and "headers too large" in r.json()["detail"]
    many = {f"X-H{i}": "1" for i in range(80)}
    assert requests.get(f"{app.url}/health", headers=many, timeout=30).status_code == 431
    refill()


def test_validation_errors_are_short_whatever_the_body(app: ServedApp) -> None:
    body = {"features": features(1), **{f"k{i}": 0 for i in range(10_000)}}
    r = call("POST", f"{app.url}/v1/predict", "viewer", subject="validator", json=body)
    assert r.status_code == 422
    assert r.json()["errors"] == 10_000 and len(r.json()["detail"]) == 10 and len(r.content) < 4096
    assert r.json()["detail"][0]["loc"][0] == "body" and "input" not in r.json()["detail"][0]


def test_duplicate_json_keys_are_refused_not_last_wins(app: ServedApp) -> None:
    before = call("GET", f"{app.url}/v1/orders?limit=1000", "viewer", subject="dup").json()["orders"]
    raw = '{"symbol": "BTCUSDT", "side": "buy", "qty": "0.01", "qty": "100", "ref_price": "50000"}'
    headers = {"Authorization": f"Bearer {token('trader', subject='dup')}", "Content-Type": "application/json"}
    r = requests.post(f"{app.url}/v1/orders", data=raw, headers=headers, timeout=30)
    assert r.status_code == 422 and "duplicate key 'qty'" in r.json()["detail"][0]["msg"]
    nested = '{"features": [[0,0,0,0,0,0,0,0,0,0,0]], "bars": null, "bars": null}'
    r = requests.post(f"{app.url}/v1/predict", data=nested, headers=headers, timeout=30)
    assert r.status_code == 422 and "duplicate key 'bars'" in r.json()["detail"][0]["msg"]
    after = call("GET", f"{app.url}/v1/orders?limit=1000", "viewer", subject="dup").json()["orders"]
    assert after == before  # nothing was placed


def _copy_version(reg: ModelRegistry, name: str, version: str, *, approve: bool, **changes: Any) -> str:
    meta = reg.meta(name, version)
    _, raw = reg.load(name, version, feature_version=meta.feature_version)
    fields = {k: v for k, v in dataclasses.asdict(meta).items() if k not in ("version", "sha256", "created_at")}
    return reg.register({**fields, **changes}, raw, approve=approve).version


def test_every_kind_of_bad_version_is_refused_and_the_kill_switch_still_works(app: ServedApp) -> None:
    reg, root = app.reg, Path(app.reg.uri.removeprefix("file://"))
    stale = _copy_version(reg, MODEL_NAME, "v0001", approve=True, feature_version="f0-old")
    corrupt = _copy_version(reg, MODEL_NAME, "v0001", approve=True)
    (root / MODEL_NAME / corrupt / "model.bin").write_bytes(b"not a model")
    fields = {k: v for k, v in dataclasses.asdict(reg.meta(MODEL_NAME, "v0001")).items()
              if k not in ("version", "sha256", "created_at")}  # fmt: skip
    garbage = reg.register(fields, b"\x00" * 64, approve=True).version  # checksum right, content not a model
    bad_policy = _copy_version(reg, "ppo_policy", "v0001", approve=True)
    (root / "ppo_policy" / bad_policy / "model.bin").write_bytes(b"truncated")
    cases = [
        ("v0099", None, 404, "has no version"),
        ("v0003", None, 409, "not approved"),
        ("v0001", "anomaly_iforest", 409, "only signal models"),
        (stale, None, 409, "does not load"),
        (corrupt, None, 409, "does not load"),
        (garbage, None, 409, "does not load"),
        (bad_policy, "ppo_policy", 409, "does not load"),
        ("v0001", "no_such_model", 404, "has no version"),
    ]
    for version, model, status, message in cases:
        t0 = time.perf_counter()
        r = call("POST", f"{app.url}/v1/models/{version}/activate", json={"model": model} if model else None)
        assert r.status_code == status and message in r.json()["detail"], (version, model, r.status_code, r.text)
        assert time.perf_counter() - t0 < 10
        halted = call("POST", f"{app.url}/v1/risk/halt", json={"reason": f"after {model or MODEL_NAME}/{version}"})
        assert halted.status_code == 200 and halted.json()["state"] == "HALTED", halted.text
        assert call("POST", f"{app.url}/v1/risk/resume").json()["state"] == "ACTIVE"
    health = call("GET", f"{app.url}/v1/health", "viewer", subject="ops").json()
    assert health["ensemble"]["model_version"] == f"{MODEL_NAME}/v0001" and health["ensemble"]["swap_error"] is None
    assert health["gateway"]["swap_error"] is None
    r = call("POST", f"{app.url}/v1/predict", "viewer", subject="after-bad", json={"features": features(1)})
    assert r.status_code == 200 and r.json()["model_version"] == f"{MODEL_NAME}/v0001"


def test_an_apply_that_fails_on_the_replicas_rolls_back(app: ServedApp) -> None:
    """v0002 passes validation, then its artifact breaks before the replicas load it (a registry
    overwritten mid-swap): the replicas keep v0001, the config is rolled back, halt still works."""
    reg, root = app.reg, Path(app.reg.uri.removeprefix("file://"))
    handle = serve.get_deployment_handle("Ensemble", "raytrade")
    info = handle.info.remote().result()
    plan = activation.plan(reg, MODEL_NAME, "v0002", info["spec"], "local")
    asyncio.run(activation.validate(plan))
    artifact = root / MODEL_NAME / "v0002" / "model.bin"
    good = artifact.read_bytes()
    artifact.write_bytes(b"overwritten")
    try:

        async def served() -> bool:
            async def check() -> bool:
                return bool((await handle.info.remote())["model_version"] == f"{MODEL_NAME}/v0002")

            return await activation.until(check, 5, 8.0)

        before = asyncio.run(serve_control.user_configs("raytrade", ["Ensemble", "Gateway"]))
        with pytest.raises(ActivationError, match="rolled back"):
            asyncio.run(activation.apply_or_roll_back("raytrade", plan, served, 8.0))
        assert asyncio.run(serve_control.user_configs("raytrade", ["Ensemble", "Gateway"])) == before
    finally:
        artifact.write_bytes(good)
    deadline = time.monotonic() + 30
    while (h := call("GET", f"{app.url}/v1/health", "viewer", subject="ops").json())["ensemble"]["swap_error"]:
        assert time.monotonic() < deadline, h  # the rollback's reconfigure clears the swap error
        time.sleep(0.2)
    assert h["ensemble"]["model_version"] == h["gateway"]["model_version"] == f"{MODEL_NAME}/v0001"
    assert call("POST", f"{app.url}/v1/risk/halt", json={"reason": "after rollback"}).json()["state"] == "HALTED"
    assert call("POST", f"{app.url}/v1/risk/resume").json()["state"] == "ACTIVE"


def test_limits_are_per_subject_and_per_route_class(app: ServedApp) -> None:
    url = f"{app.url}/v1/predict"
    alice = [token("viewer", subject="alice") for _ in range(3)]  # minting tokens does not multiply the limit
    codes = [
        requests.post(url, json={"features": features(1)}, headers={"Authorization": f"Bearer {alice[i % 3]}"},
                      timeout=30).status_code
        for i in range(7)
    ]  # fmt: skip
    assert codes[:5] == [200] * 5 and 429 in codes[5:], codes
    limited = requests.post(url, json={"features": features(1)}, headers={"Authorization": f"Bearer {alice[0]}"},
                            timeout=30)  # fmt: skip
    assert limited.status_code == 429 and "(inference)" in limited.json()["detail"]
    assert int(limited.headers["Retry-After"]) >= 1
    order = {"symbol": "BTCUSDT", "side": "buy", "qty": "0.001", "ref_price": "50000", "type": "limit",
             "limit_price": "30000"}  # fmt: skip
    placed = call("POST", f"{app.url}/v1/orders", "trader", subject="alice", json=order)
    assert placed.status_code == 200, placed.text  # orders have a bucket of their own
    assert (
        call("DELETE", f"{app.url}/v1/orders/{placed.json()['order_id']}", "trader", subject="alice").status_code == 200
    )
    assert call("POST", url, "viewer", subject="bob", json={"features": features(1)}).status_code == 200
    reads = [call("GET", f"{app.url}/v1/orders?limit=1000", "viewer", subject="carol").status_code for _ in range(20)]
    assert reads[:15] == [200] * 15 and 429 in reads[15:], reads
    health = [requests.get(f"{app.url}/health", timeout=30).status_code for _ in range(10)]
    assert health[:6] == [200] * 6 and 429 in health[6:], health
    refill()
    wrong = {"Authorization": f"Bearer {jwt.encode({'sub': 'x'}, 'z' * 40, algorithm='HS256')}"}
    denied = [requests.get(f"{app.url}/v1/risk", headers=wrong, timeout=30).status_code for _ in range(14)]
    assert denied[:10] == [401] * 10 and 429 in denied[10:], denied
    assert call("GET", f"{app.url}/v1/risk", "viewer", subject="dave").status_code == 200  # not limited by them
    refill()


def test_token_hygiene(app: ServedApp, tmp_path: Path) -> None:
    risk = f"{app.url}/v1/risk"

    def get(header: str) -> requests.Response:
        return requests.get(risk, headers={"Authorization": header}, timeout=30)

    assert "must be 'Bearer <token>'" in get("Basic dXNlcjpwYXNz").json()["detail"]
    assert "carries no token" in get("Bearer ").json()["detail"]
    now = int(time.time())
    base = {"aud": "raytrade-gateway", "iss": "raytrade", "iat": now, "exp": now + 60, "jti": "j1", "sub": "eve"}
    listed = get("Bearer " + jwt.encode({**base, "role": ["admin"]}, SECRET, algorithm="HS256"))
    assert listed.status_code == 401 and "unknown role" in listed.json()["detail"]
    forever = get("Bearer " + jwt.encode({**base, "role": "admin", "exp": 10**12}, SECRET, algorithm="HS256"))
    assert forever.status_code == 401 and "lifetime exceeds" in forever.json()["detail"]
    refill()

    first, second = token("viewer", subject="mallory"), token("viewer", subject="mallory")
    jti = jwt.decode(first, options={"verify_signature": False})["jti"]
    r = call("POST", f"{app.url}/v1/auth/revoke", json={"jti": jti})
    assert r.status_code == 200 and r.json()["revoked_tokens"] >= 1
    refused = get(f"Bearer {first}")
    assert refused.status_code == 401 and f"token {jti} was revoked" in refused.json()["detail"]
    assert get(f"Bearer {second}").status_code == 200
    assert call("POST", f"{app.url}/v1/auth/revoke", "trader", json={"subject": "mallory"}).status_code == 403
    assert call("POST", f"{app.url}/v1/auth/revoke", json={"subject": "mallory"}).json()["revoked_subjects"] == [
        "mallory"
    ]
    assert "'mallory' issued before" in get(f"Bearer {second}").json()["detail"]
    time.sleep(1.1)
    assert get(f"Bearer {token('viewer', subject='mallory')}").status_code == 200  # a new token works
    file = Path(app.reg.uri.removeprefix("file://")).parent / "revoked_tokens.json"
    assert jti in RevocationList(file).current().tokens  # durable, shared through the file
    refill()


def test_the_open_surface_is_minimal(app: ServedApp) -> None:
    health = requests.get(f"{app.url}/health", timeout=30)
    assert health.status_code == 200 and health.json() == {"status": "ok"}  # no paths, no pids
    assert requests.get(f"{app.url}/docs", timeout=30).status_code == 404
    assert requests.get(f"{app.url}/redoc", timeout=30).status_code == 404
    spec = requests.get(f"{app.url}/openapi.json", timeout=30)
    assert spec.status_code == 200 and "/v1/auth/revoke" in spec.json()["paths"]
    assert "cdn" not in spec.text.lower()
    refill()


def test_traders_cancel_only_their_own_orders(app: ServedApp) -> None:
    order = {"symbol": "BTCUSDT", "side": "buy", "qty": "0.001", "ref_price": "50000", "type": "limit",
             "limit_price": "30000"}  # fmt: skip
    mine = call("POST", f"{app.url}/v1/orders", "trader", subject="tom", json=order).json()
    assert mine["status"] == "ACCEPTED"
    theirs = call("DELETE", f"{app.url}/v1/orders/{mine['order_id']}", "trader", subject="jerry")
    assert theirs.status_code == 403 and "belongs to 'manual:tom'" in theirs.json()["detail"]
    assert call("DELETE", f"{app.url}/v1/orders/{mine['order_id']}", "trader", subject="tom").json()["status"] == (
        "CANCELLED"
    )
    other = call("POST", f"{app.url}/v1/orders", "trader", subject="tom", json=order).json()
    assert call("DELETE", f"{app.url}/v1/orders/{other['order_id']}", "admin").json()["status"] == "CANCELLED"
    now = time.time_ns()
    strategy = OrderIntent("xgb_threshold:BTCUSDT:0:1", "xgb_threshold", "BTCUSDT", Side.BUY, Decimal("0.001"),
                           Decimal(50000), now, now, 0.6, OrderType.LIMIT, limit_price=Decimal(30000))  # fmt: skip
    assert ray.get(app.topo.risk_gate.submit.remote([strategy])).reports[0].status.value == "ACCEPTED"
    r = call("DELETE", f"{app.url}/v1/orders/{strategy.order_id}", "trader", subject="tom")
    assert r.status_code == 403 and "belongs to 'xgb_threshold'" in r.json()["detail"]
    assert call("DELETE", f"{app.url}/v1/orders/{strategy.order_id}", "admin").json()["status"] == "CANCELLED"
