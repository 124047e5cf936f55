"""The gateway's front door without a server: route policies, credentials before the body, limits per subject
and route class, revocation shared through a file, strict JSON and bounded errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from raytrade.deployments import gateway  # noqa: F401 (its class's methods are the app's routes)
from raytrade.deployments.auth import Claims, Role, TokenCache, issue_token
from raytrade.deployments.gateway_api import ROUTES, api, check_routes
from raytrade.deployments.guard import Guard, RoutePolicy, RouteTable
from raytrade.deployments.json_body import DuplicateKeyError, bounded_errors, loads_strict
from raytrade.deployments.rate_limit import Limit, RouteLimiter, RouteLimits
from raytrade.deployments.revocation import RevocationList

SECRET = "g" * 40


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def scope(method: str, path: str, token: str | None = None, client: str = "10.0.0.1", **headers: str) -> dict[str, Any]:
    raw = [(k.encode(), v.encode()) for k, v in headers.items()]
    if token is not None:
        raw.append((b"authorization", f"Bearer {token}".encode()))
    return {"type": "http", "method": method, "path": path, "headers": raw, "client": (client, 5000)}


def guard(tmp: Path, **limits: Limit) -> tuple[Guard, Clock]:
    clock = Clock()
    wide = Limit(rate_per_s=1000, burst=1000)
    lim = RouteLimits(**{c: limits.get(c, wide) for c in RouteLimits.model_fields})
    g = Guard(TokenCache(SECRET), RouteTable(ROUTES), RouteLimiter(lim), RevocationList(tmp / "revoked.json"), clock)
    return g, clock


def test_every_route_of_the_app_has_a_policy_and_paths_match_templates() -> None:
    check_routes(api, ROUTES)
    table = RouteTable(ROUTES)
    assert table.match("DELETE", "/v1/orders/manual-1")[0] == "DELETE /v1/orders/{order_id}"
    assert table.match("DELETE", "/v1/orders/a/b")[0] == "unmatched"  # a parameter is one segment
    assert table.match("POST", "/v1/models/v0002/activate")[1] == RoutePolicy(Role.admin, "control", 4096)
    assert table.match("GET", "/v1/predict")[0] == "unmatched"  # method matters
    with pytest.raises(ValueError, match="without a policy"):
        check_routes(api, {k: v for k, v in ROUTES.items() if k != "POST /v1/risk/halt"})


def test_credentials_and_role_are_checked_from_headers_alone(tmp_path: Path) -> None:
    g, _ = guard(tmp_path)
    viewer = issue_token(SECRET, "viewer", 60, "vera")
    policy, claims, refusal = g.admit(scope("POST", "/v1/predict", viewer))
    assert refusal is None and claims is not None and claims.subject == "vera" and policy.max_body == 512 * 1024
    _, _, refusal = g.admit(scope("POST", "/v1/risk/halt", viewer))
    assert refusal is not None and refusal.status == 403 and "needs 'admin'" in refusal.detail
    _, _, refusal = g.admit(scope("GET", "/v1/risk"))
    assert refusal is not None and refusal.status == 401 and ("www-authenticate", "Bearer") in refusal.headers
    _, claims, refusal = g.admit(scope("GET", "/health"))
    assert refusal is None and claims is None  # open
    _, _, refusal = g.admit(scope("GET", "/health", **{"x-pad": "p" * 17_000}))
    assert refusal is not None and refusal.status == 431


def test_limits_are_per_subject_per_class_with_a_shared_cap(tmp_path: Path) -> None:
    g, clock = guard(
        tmp_path,
        inference=Limit(rate_per_s=1, burst=2, total_rate_per_s=1, total_burst=3),
        open=Limit(rate_per_s=1, burst=1),
        unauthenticated=Limit(rate_per_s=1, burst=2),
    )
    alice = [issue_token(SECRET, "viewer", 60, "alice") for _ in range(3)]
    refusals = [g.admit(scope("POST", "/v1/predict", t))[2] for t in alice]
    assert refusals[:2] == [None, None] and refusals[2] is not None and refusals[2].status == 429
    assert ("retry-after", "1") in refusals[2].headers and "(inference)" in refusals[2].detail
    assert g.admit(scope("POST", "/v1/orders", issue_token(SECRET, "trader", 60, "alice")))[2] is None
    bob = issue_token(SECRET, "viewer", 60, "bob")
    assert g.admit(scope("POST", "/v1/predict", bob))[2] is None  # bob's own bucket, the shared one has 1 left
    carol = issue_token(SECRET, "viewer", 60, "carol")
    shared = g.admit(scope("POST", "/v1/predict", carol))[2]
    assert shared is not None and shared.status == 429  # the class's cap for everyone together
    clock.t += 1.0
    assert g.admit(scope("POST", "/v1/predict", carol))[2] is None  # carol's bucket was not spent by the refusal
    assert g.admit(scope("GET", "/health", client="1.1.1.1"))[2] is None
    assert g.admit(scope("GET", "/health", client="1.1.1.1"))[2] is not None  # per address
    assert g.admit(scope("GET", "/health", client="2.2.2.2"))[2] is None
    bad = [g.admit(scope("GET", "/v1/risk", "not-a-jwt", client="6.6.6.6"))[2] for _ in range(3)]
    assert [r.status for r in bad if r] == [401, 401, 429]


def test_revocation_by_token_and_by_subject_is_seen_by_every_replica(tmp_path: Path) -> None:
    one, other = RevocationList(tmp_path / "r.json"), RevocationList(tmp_path / "r.json")  # two replicas
    c = Claims("sam", Role.viewer, "jti-1", expires_at=2000, issued_at=1000)
    assert one.reason(c) is None and other.reason(c) is None
    one.revoke(1500, token_id="jti-1", expires_at=2000)
    assert other.reason(c) == "token jti-1 was revoked"
    fresh = Claims("sam", Role.viewer, "jti-2", expires_at=3000, issued_at=1600)
    assert other.reason(fresh) is None
    other.revoke(1700, subject="sam")
    assert one.reason(fresh) is not None and "'sam' issued before 1700" in (one.reason(fresh) or "")
    assert one.reason(Claims("sam", Role.viewer, "jti-3", 4000, issued_at=1701)) is None
    pruned = one.revoke(2500, subject="other")  # jti-1 expired at 2000: dropped
    assert "jti-1" not in pruned.tokens and set(pruned.subjects) == {"sam", "other"}
    assert json.loads((tmp_path / "r.json").read_text())["subjects"]["sam"] == 1700


def test_revoked_tokens_are_refused_by_the_guard(tmp_path: Path) -> None:
    g, _ = guard(tmp_path)
    t = issue_token(SECRET, "admin", 60, "root")
    claims = g.admit(scope("GET", "/v1/risk", t))[1]
    assert claims is not None
    RevocationList(tmp_path / "revoked.json").revoke(int(claims.issued_at), token_id=claims.token_id)
    refusal = g.admit(scope("GET", "/v1/risk", t))[2]
    assert refusal is not None and refusal.status == 401 and "was revoked" in refusal.detail


def test_json_bodies_refuse_duplicate_keys_at_any_depth() -> None:
    assert loads_strict(b'{"a": 1, "b": {"c": 2}}') == {"a": 1, "b": {"c": 2}}
    for doc, key in [('{"qty": 1, "qty": 2}', "qty"), ('{"a": [{"x": 1, "x": 1}]}', "x")]:
        with pytest.raises(DuplicateKeyError) as err:
            loads_strict(doc)
        assert err.value.key == key and f"duplicate key {key!r}" in str(err.value)


def test_error_lists_are_bounded() -> None:
    errors = [{"loc": ("body", f"k{i}"), "msg": "Extra inputs are not permitted" * 20, "type": "extra_forbidden",
               "input": "x" * 1000} for i in range(50_000)]  # fmt: skip
    out = bounded_errors(errors)
    assert out["errors"] == 50_000 and len(out["detail"]) == 10
    assert all(len(e["msg"]) <= 200 and "input" not in e for e in out["detail"])
    assert len(json.dumps(out)) < 4096
