"""Revoked tokens: a durable denylist of token ids (``jti``) and of subjects, shared by every gateway replica.

One JSON file, replaced atomically (write, fsync, rename). Each replica re-reads it when its
modification time or size changes (one ``stat`` per check), so a revocation made through one
replica holds on the others at their next request. Entries are dropped once every token they
could match has expired anyway.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from raytrade.deployments.auth import MAX_TTL_S, Claims


@dataclass(frozen=True)
class Revocations:
    """``tokens``: jti -> the token's expiry; ``subjects``: subject -> tokens issued at or before this are void."""

    tokens: dict[str, int]
    subjects: dict[str, int]


class RevocationList:
    """The denylist file at ``path`` (created on the first revocation)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._seen: tuple[int, int] | None = None
        self._current = Revocations({}, {})

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size

    def current(self) -> Revocations:
        """The denylist as the file holds it now."""
        stamp = self._stamp()
        if stamp != self._seen:
            with self._lock:
                self._current = self._read() if stamp is not None else Revocations({}, {})
                self._seen = stamp
        return self._current

    def _read(self) -> Revocations:
        raw = json.loads(self.path.read_text())
        return Revocations(
            {str(k): int(v) for k, v in raw.get("tokens", {}).items()},
            {str(k): int(v) for k, v in raw.get("subjects", {}).items()},
        )

    def reason(self, claims: Claims) -> str | None:
        """Why ``claims`` are revoked, or ``None`` if they are not."""
        r = self.current()
        if claims.token_id in r.tokens:
            return f"token {claims.token_id} was revoked"
        before = r.subjects.get(claims.subject)
        if before is not None and claims.issued_at <= before:
            return f"tokens of {claims.subject!r} issued before {before} were revoked"
        return None

    def revoke(self, now: int, *, token_id: str | None = None, expires_at: int | None = None,
               subject: str | None = None) -> Revocations:  # fmt: skip
        """Add a token id (kept until ``expires_at``, else the longest lifetime) or a subject (every
        token it holds now); expired entries are pruned. Returns the new list."""
        with self._lock:
            r = self._read() if self.path.exists() else Revocations({}, {})
            tokens = {k: v for k, v in r.tokens.items() if v > now}
            subjects = {k: v for k, v in r.subjects.items() if v + MAX_TTL_S > now}
            if token_id is not None:
                tokens[token_id] = expires_at if expires_at is not None else now + MAX_TTL_S
            if subject is not None:
                subjects[subject] = now
            self._write(Revocations(tokens, subjects))
            self._seen = None
        return self.current()

    def _write(self, r: Revocations) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "w") as f:
            json.dump({"tokens": r.tokens, "subjects": r.subjects}, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
