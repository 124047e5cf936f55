"""JWT bearer tokens with roles ``viewer`` < ``trader`` < ``admin`` (HS256, secret from the environment)."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from enum import IntEnum

import jwt

from raytrade.deployments.errors import StatusError

SECRET_ENV = "RAYTRADE_JWT_SECRET"
AUDIENCE = "raytrade-gateway"
ISSUER = "raytrade"
ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32
MAX_TTL_S = 366 * 86_400
MAX_CLAIM_CHARS = 128


class Role(IntEnum):
    """Ordered roles: a role may do everything the ones below it may."""

    viewer = 1
    trader = 2
    admin = 3


class AuthError(StatusError):
    """A request's credentials are refused: ``status`` 401 (who are you?) or 403 (not allowed)."""


@dataclass(frozen=True)
class Claims:
    """What a verified token says."""

    subject: str
    role: Role
    token_id: str
    expires_at: int
    issued_at: int


def secret_from_env(env: dict[str, str] | None = None) -> str:
    """The signing secret from ``RAYTRADE_JWT_SECRET``; a clear error when it is missing or short."""
    secret = (env if env is not None else os.environ).get(SECRET_ENV, "")
    if len(secret.encode()) < MIN_SECRET_BYTES:
        problem = "is not set" if not secret else f"is {len(secret.encode())} bytes"
        raise ValueError(
            f"{SECRET_ENV} {problem}: set it to a random secret of at least {MIN_SECRET_BYTES} bytes "
            "(e.g. `export RAYTRADE_JWT_SECRET=$(openssl rand -hex 32)`) in the environment of the "
            "process that starts Ray"
        )
    return secret


def issue_token(
    secret: str, role: str, ttl_s: float, subject: str = "cli", *, audience: str = AUDIENCE, now: float | None = None
) -> str:
    """A signed token for ``role`` valid ``ttl_s`` seconds."""
    if role not in Role.__members__:
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(Role.__members__)}")
    if not 0 < ttl_s <= MAX_TTL_S:
        raise ValueError(f"ttl must be in (0, {MAX_TTL_S}] seconds, found {ttl_s}")
    iat = int(now if now is not None else time.time())
    claims = {
        "sub": subject,
        "role": role,
        "aud": audience,
        "iss": ISSUER,
        "iat": iat,
        "exp": iat + int(ttl_s),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret: str, authorization: str | None, *, audience: str = AUDIENCE) -> Claims:
    """The claims of an ``Authorization: Bearer <jwt>`` header, or :class:`AuthError` (401) saying why not."""
    if authorization is None:
        raise AuthError(401, "missing Authorization header: send 'Authorization: Bearer <token>'")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise AuthError(401, f"Authorization header must be 'Bearer <token>', found scheme {scheme[:20]!r}")
    if not token.strip():
        raise AuthError(401, "Authorization header 'Bearer' carries no token: send 'Bearer <token>'")
    try:
        raw = jwt.decode(
            token.strip(),
            secret,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "aud", "iss", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError(401, "token expired: issue a new one with `raytrade token`") from None
    except jwt.InvalidAudienceError:
        raise AuthError(401, f"token is for another audience (expected {audience!r})") from None
    except jwt.InvalidIssuerError:
        raise AuthError(401, f"token has the wrong issuer (expected {ISSUER!r})") from None
    except jwt.InvalidSignatureError:
        raise AuthError(401, "token signature is invalid (tampered, or signed with another secret)") from None
    except jwt.ImmatureSignatureError:
        raise AuthError(401, "token issued in the future: check the issuer's clock") from None
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(401, f"token lacks the {exc.claim!r} claim") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(401, f"malformed token: {exc}") from None
    role, sub, jti, iat, exp = (raw.get(k) for k in ("role", "sub", "jti", "iat", "exp"))
    if not isinstance(role, str) or role not in Role.__members__:
        raise AuthError(401, f"token has an unknown role {str(role)[:40]!r}")
    if not isinstance(sub, str) or not 0 < len(sub) <= MAX_CLAIM_CHARS:
        raise AuthError(401, f"token's 'sub' must be a string of 1 to {MAX_CLAIM_CHARS} characters")
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_CLAIM_CHARS:
        raise AuthError(401, f"token's 'jti' must be a string of 1 to {MAX_CLAIM_CHARS} characters")
    # The lifetime cap holds at verification too: a token signed with a far-away 'exp' (by a
    # script with the secret, or before the cap existed) is refused, not trusted for decades.
    if not isinstance(iat, int | float) or not isinstance(exp, int | float) or isinstance(iat, bool):
        raise AuthError(401, "token's 'iat' and 'exp' must be numbers")
    if exp - iat > MAX_TTL_S:
        raise AuthError(401, f"token lifetime exceeds the {MAX_TTL_S // 86_400}-day cap: issue a new one")
    return Claims(sub, Role[role], jti, int(exp), int(iat))


def require(claims: Claims, needed: Role) -> None:
    """:class:`AuthError` (403) unless ``claims`` carry ``needed`` or a higher role."""
    if claims.role < needed:
        raise AuthError(403, f"role {claims.role.name!r} may not do this; it needs {needed.name!r} or higher")


class TokenCache:
    """Verified tokens remembered until they expire (saves re-checking the signature on every request).

    Only successfully verified tokens are cached, keyed by the exact header; expiry is checked
    on every hit, so an expired token is refused exactly as without the cache.
    """

    def __init__(self, secret: str, audience: str = AUDIENCE, max_size: int = 4096) -> None:
        self.secret = secret
        self.audience = audience
        self.max_size = max_size
        self._verified: dict[str, Claims] = {}

    def verify(self, authorization: str | None, now: float | None = None) -> Claims:
        """As :func:`verify_token`."""
        if authorization is not None:
            hit = self._verified.get(authorization)
            if hit is not None:
                if (now if now is not None else time.time()) < hit.expires_at:
                    return hit
                del self._verified[authorization]
                raise AuthError(401, "token expired: issue a new one with `raytrade token`")
        claims = verify_token(self.secret, authorization, audience=self.audience)
        if len(self._verified) >= self.max_size:
            self._verified.clear()
        self._verified[authorization or ""] = claims
        return claims
