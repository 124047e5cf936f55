"""The gateway's front door: header cap, credentials, role, rate limit and body cap, before any body is read.

A pure ASGI middleware in front of the FastAPI app. For every request it

1. refuses headers over :data:`MAX_HEADER_BYTES` (431);
2. finds the route's :class:`RoutePolicy` (role, limit class, body cap) by method and path;
3. on a protected route verifies the bearer token, checks revocation and the role (401/403), all
   from the headers alone: a refused caller's body is never read or parsed;
4. spends one request of the caller's bucket (subject, or client address on open routes and
   refused credentials) in the route's class (429 with ``Retry-After``);
5. refuses a declared ``Content-Length`` over the route's cap (413) and reads at most the cap of
   a chunked body (413 beyond it); only then does the app see the request, with the verified
   claims in ``scope["raytrade.claims"]``.

Kept in a module of its own, imported by reference in every replica: the middleware finds the
replica's :class:`Guard` through :func:`activate` (the gateway class itself travels by value).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from raytrade.deployments.auth import AuthError, Claims, Role, TokenCache, require
from raytrade.deployments.rate_limit import RouteClass, RouteLimiter
from raytrade.deployments.revocation import RevocationList

MAX_HEADER_BYTES = 16 * 1024
MAX_HEADERS = 64
CLAIMS_KEY = "raytrade.claims"
ROUTE_KEY = "raytrade.route"
UNKNOWN_ROUTE_BODY = 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True)
class RoutePolicy:
    """Who may call a route (``None``: anyone), its rate-limit class and its largest body in bytes."""

    role: Role | None
    limit: RouteClass
    max_body: int = 0


class RouteTable:
    """Policies by ``"METHOD /path/{param}"``; a path parameter matches one segment."""

    def __init__(self, policies: dict[str, RoutePolicy]) -> None:
        self.policies = dict(policies)
        self._compiled: list[tuple[str, re.Pattern[str], str]] = []
        for key in policies:
            method, _, template = key.partition(" ")
            pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
            self._compiled.append((method, re.compile(f"^{pattern}$"), key))
        self.unknown = RoutePolicy(None, "open", UNKNOWN_ROUTE_BODY)

    def match(self, method: str, path: str) -> tuple[str, RoutePolicy]:
        """The route's key and policy; an unknown route is open (FastAPI answers 404 or 405)."""
        for m, pattern, key in self._compiled:
            if m == method and pattern.match(path):
                return key, self.policies[key]
        return "unmatched", self.unknown


@dataclass(frozen=True)
class Refusal:
    """An answer given by the guard instead of the app."""

    status: int
    detail: str
    headers: tuple[tuple[str, str], ...] = ()


class Guard:
    """The checks of one gateway replica; ``clock`` is monotonic seconds (injected for tests)."""

    def __init__(
        self,
        tokens: TokenCache,
        routes: RouteTable,
        limiter: RouteLimiter,
        revocations: RevocationList | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tokens = tokens
        self.routes = routes
        self.limiter = limiter
        self.revocations = revocations
        self.clock = clock

    def _limited(self, route_class: RouteClass, caller: str) -> Refusal | None:
        wait = self.limiter.take(route_class, caller, self.clock())
        if wait <= 0:
            return None
        return Refusal(429, f"rate limit exceeded ({route_class}): retry in {wait:.2f} s",
                       (("retry-after", str(max(1, round(wait)))),))  # fmt: skip

    def admit(self, scope: Scope) -> tuple[RoutePolicy, Claims | None, Refusal | None]:
        """The route's policy, the caller's verified claims, and the refusal if the request stops here."""
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        key, policy = self.routes.match(scope.get("method", ""), scope.get("path", ""))
        scope[ROUTE_KEY] = key
        size = sum(len(k) + len(v) for k, v in headers)
        if size > MAX_HEADER_BYTES or len(headers) > MAX_HEADERS:
            return policy, None, Refusal(431, f"request headers too large: at most {MAX_HEADERS} headers and "
                                              f"{MAX_HEADER_BYTES} bytes")  # fmt: skip
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        if policy.role is None:
            return policy, None, self._limited(policy.limit, address)
        authorization = None
        for k, v in headers:
            if k.lower() == b"authorization":
                authorization = v.decode("latin-1")
                break
        try:
            claims = self.tokens.verify(authorization)
            revoked = self.revocations.reason(claims) if self.revocations is not None else None
            if revoked:
                raise AuthError(401, revoked)
            require(claims, policy.role)
        except AuthError as exc:
            limited = self._limited("unauthenticated", address)
            if limited is not None:
                return policy, None, limited
            extra = (("www-authenticate", "Bearer"),) if exc.status == 401 else ()
            return policy, None, Refusal(exc.status, exc.message, extra)
        return policy, claims, self._limited(policy.limit, claims.subject)


_ACTIVE: dict[str, Guard] = {}  # one gateway per replica process


def activate(guard: Guard) -> None:
    """Make ``guard`` the one this replica's middleware applies."""
    _ACTIVE["guard"] = guard


def active() -> Guard | None:
    """The replica's guard (``None`` before the gateway constructed it: every request is refused)."""
    return _ACTIVE.get("guard")


async def reply(send: Send, refusal: Refusal) -> None:
    """Send ``refusal`` as a JSON ``{"detail": ...}`` response."""
    body = json.dumps({"detail": refusal.detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in refusal.headers]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _declared_length(scope: Scope) -> int | None:
    for k, v in scope.get("headers", []):
        if k.lower() == b"content-length":
            try:
                return int(v)
            except ValueError:
                return -1
    return None


def _has_body(scope: Scope) -> bool:
    length = _declared_length(scope)
    if length is not None:
        return length != 0
    return any(k.lower() == b"transfer-encoding" for k, _ in scope.get("headers", []))


async def _read_capped(receive: Receive, cap: int) -> bytes | None:
    """The whole body, or ``None`` as soon as it exceeds ``cap`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)  # the client left; the app sees what arrived
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class GuardMiddleware:
    """ASGI middleware applying the replica's :class:`Guard` before the app reads anything."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        guard = active()
        if guard is None:
            await reply(send, Refusal(503, "gateway is starting: no credentials checker yet"))
            return
        policy, claims, refusal = guard.admit(scope)
        if refusal is not None:
            await reply(send, refusal)
            return
        too_large = Refusal(413, f"request body too large: this route takes at most {policy.max_body} bytes")
        declared = _declared_length(scope)
        if declared is not None and (declared < 0 or declared > policy.max_body):
            await reply(send, too_large if declared >= 0 else Refusal(400, "invalid Content-Length"))
            return
        scope[CLAIMS_KEY] = claims
        if not _has_body(scope):
            await self.app(scope, receive, send)
            return
        body = await _read_capped(receive, policy.max_body)
        if body is None:
            await reply(send, too_large)
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
