"""JWT roles, expiry, tampering, audience; the per-token rate limiter; the token CLI."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from raytrade.cluster.cli import main
from raytrade.deployments.auth import (
    SECRET_ENV,
    AuthError,
    Role,
    TokenCache,
    issue_token,
    require,
    secret_from_env,
    verify_token,
)
from raytrade.deployments.rate_limit import RateLimiter

SECRET = "k" * 40
UNSIGNED: Any = None  # alg "none" takes no key


def bearer(t: str) -> str:
    return f"Bearer {t}"


def test_a_token_round_trips_with_its_role_and_lifetime() -> None:
    t = issue_token(SECRET, "trader", 1800, "alice", now=1_000_000_000)
    raw = jwt.decode(t, SECRET, algorithms=["HS256"], audience="raytrade-gateway", options={"verify_exp": False})
    assert raw["exp"] - raw["iat"] == 1800 and raw["sub"] == "alice" and raw["role"] == "trader"
    claims = verify_token(SECRET, bearer(issue_token(SECRET, "trader", 60, "alice")))
    assert claims.role is Role.trader and claims.subject == "alice" and len(claims.token_id) == 32


BAD_HEADERS: list[tuple[Callable[[], str | None], str]] = [  # built when the test runs: tokens expire
    (lambda: None, "missing Authorization header"),
    (lambda: "Basic abc", "must be 'Bearer <token>', found scheme 'Basic'"),
    (lambda: "Bearer ", "carries no token"),
    (lambda: "", "must be 'Bearer <token>'"),
    (lambda: "Bearer not.a.jwt", "malformed token"),
    (lambda: bearer(issue_token(SECRET, "admin", 60, now=1_000_000_000)), "token expired"),
    (lambda: bearer(issue_token("z" * 40, "admin", 60)), "signature is invalid"),
    (lambda: bearer(issue_token(SECRET, "admin", 60, audience="other")), "another audience"),
    (lambda: bearer(jwt.encode({"sub": "x", "role": "admin"}, SECRET, algorithm="HS256")), "lacks the"),
    (lambda: bearer(jwt.encode({"sub": "x", "exp": 9e9}, UNSIGNED, algorithm="none")), "malformed token"),
]


@pytest.mark.parametrize(("make_header", "message"), BAD_HEADERS)
def test_bad_credentials_get_401_saying_why(make_header: Callable[[], str | None], message: str) -> None:
    with pytest.raises(AuthError) as err:
        verify_token(SECRET, make_header())
    assert err.value.status == 401 and message in err.value.message


def test_a_tampered_payload_is_refused() -> None:
    head, payload, sig = issue_token(SECRET, "viewer", 60).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    with pytest.raises(AuthError, match="signature is invalid"):
        verify_token(SECRET, bearer(f"{head}.{forged}.{sig}"))


def test_an_unknown_role_claim_is_refused() -> None:
    t = issue_token(SECRET, "viewer", 60)
    raw = jwt.decode(t, SECRET, algorithms=["HS256"], audience="raytrade-gateway")
    with pytest.raises(AuthError, match="unknown role 'root'"):
        verify_token(SECRET, bearer(jwt.encode({**raw, "role": "root"}, SECRET, algorithm="HS256")))


@pytest.mark.parametrize("role", [["admin"], {"r": "admin"}, 3, None, True])
def test_a_role_claim_that_is_not_a_string_is_refused_not_a_crash(role: Any) -> None:
    now = int(time.time())
    raw = {
        "sub": "x",
        "aud": "raytrade-gateway",
        "iss": "raytrade",
        "iat": now,
        "exp": now + 60,
        "jti": "j",
        "role": role,
    }
    with pytest.raises(AuthError) as err:
        verify_token(SECRET, bearer(jwt.encode(raw, SECRET, algorithm="HS256")))
    assert err.value.status == 401 and "unknown role" in err.value.message


def test_the_lifetime_cap_holds_when_verifying() -> None:
    now = int(time.time())
    base = {"sub": "x", "aud": "raytrade-gateway", "iss": "raytrade", "jti": "j", "role": "admin"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"iat": now, "exp": 10**12}, "lifetime exceeds the 366-day cap"),
        ({"iat": now - 400 * 86_400, "exp": now + 60}, "lifetime exceeds"),
        ({"iat": now + 3600, "exp": now + 7200}, "issued in the future"),
        ({"iat": "now", "exp": now + 60}, "malformed token"),
        ({"iat": now, "exp": now + 60, "sub": ["x"]}, "Subject must be a string"),
        ({"iat": now, "exp": now + 60, "sub": "x" * 200}, "'sub' must be a string of 1 to 128"),
    ]
    for claims, message in cases:
        with pytest.raises(AuthError, match=message):
            verify_token(SECRET, bearer(jwt.encode({**base, **claims}, SECRET, algorithm="HS256")))
    assert verify_token(SECRET, bearer(jwt.encode({**base, "iat": now, "exp": now + 366 * 86_400}, SECRET))).role


def test_roles_are_ordered_viewer_trader_admin() -> None:
    allowed = {(have, need): True for have in Role for need in Role if have >= need}
    for have in Role:
        claims = verify_token(SECRET, bearer(issue_token(SECRET, have.name, 60)))
        for need in Role:
            if allowed.get((have, need)):
                require(claims, need)
            else:
                with pytest.raises(AuthError) as err:
                    require(claims, need)
                assert err.value.status == 403 and f"needs {need.name!r}" in err.value.message


def test_issuing_checks_role_ttl_and_the_secret() -> None:
    with pytest.raises(ValueError, match="unknown role"):
        issue_token(SECRET, "root", 60)
    with pytest.raises(ValueError, match="ttl"):
        issue_token(SECRET, "viewer", 0)
    with pytest.raises(ValueError, match="is not set"):
        secret_from_env({})
    with pytest.raises(ValueError, match="is 5 bytes"):
        secret_from_env({SECRET_ENV: "short"})
    assert secret_from_env({SECRET_ENV: SECRET}) == SECRET


def test_token_cache_remembers_verified_tokens_until_they_expire() -> None:
    cache = TokenCache(SECRET)
    issued = int(time.time())
    t = bearer(issue_token(SECRET, "trader", 60, now=issued))
    first = cache.verify(t)  # a miss: the signature is checked
    assert cache.verify(t, now=issued + 59) is first
    with pytest.raises(AuthError, match="expired"):
        cache.verify(t, now=issued + 60)
    with pytest.raises(AuthError, match="missing"):
        cache.verify(None)


def test_rate_limiter_allows_a_burst_then_the_sustained_rate() -> None:
    lim = RateLimiter(rate=2.0, burst=3)
    assert [lim.take("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert lim.take("a", 0.0) == pytest.approx(0.5)  # one token every 0.5 s
    assert lim.take("b", 0.0) == 0.0  # per key
    assert lim.take("a", 0.5) == 0.0  # refilled one token
    assert lim.take("a", 0.5) == pytest.approx(0.5)
    assert [lim.take("a", 100.0) for _ in range(4)][:3] == [0.0, 0.0, 0.0]  # refill caps at the burst
    small = RateLimiter(rate=1.0, burst=1, max_keys=2)
    for k in "xyz":
        small.take(k, 0.0)
    assert small.take("x", 0.0) == 0.0  # forgotten (least recently used), so it starts full again
    with pytest.raises(ValueError):
        RateLimiter(rate=0, burst=1)


def test_token_cli_issues_a_verifiable_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    assert main(["token", "--role", "admin", "--ttl", "30m", "--subject", "ops"]) == 0
    t = capsys.readouterr().out.strip()
    claims = verify_token(SECRET, bearer(t))
    raw = jwt.decode(t, SECRET, algorithms=["HS256"], audience="raytrade-gateway")
    assert claims.role is Role.admin and claims.subject == "ops" and raw["exp"] - raw["iat"] == 1800
    monkeypatch.delenv(SECRET_ENV)
    assert main(["token", "--role", "admin"]) == 2
    assert "RAYTRADE_JWT_SECRET is not set" in capsys.readouterr().err
