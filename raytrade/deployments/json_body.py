"""JSON request bodies parsed strictly: a duplicated key is an error, not "the last one wins".

``{"qty": "0.01", "qty": "100"}`` means one thing to one parser and another to the next; the
gateway refuses it (422 naming the key) instead of trading whichever value its parser kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

MAX_ERRORS = 10
MAX_MESSAGE = 200


class DuplicateKeyError(json.JSONDecodeError):
    """A JSON object names a key twice (FastAPI answers a decode error with 422)."""

    def __init__(self, key: str, doc: str) -> None:
        super().__init__(f"duplicate key {key[:40]!r}", doc, 0)
        self.key = key


def loads_strict(body: bytes | str) -> Any:
    """``json.loads`` that refuses duplicated object keys (:class:`DuplicateKeyError`)."""
    doc = body.decode("utf-8", "replace") if isinstance(body, bytes) else body

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise DuplicateKeyError(key, doc)
            out[key] = value
        return out

    return json.loads(body, object_pairs_hook=no_duplicates)


class StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_strict(await self.body())
        return self._json


class StrictJsonRoute(APIRoute):
    """The route class of the gateway's API: bodies are parsed by :class:`StrictJsonRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict


def bounded_errors(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """At most :data:`MAX_ERRORS` validation errors (field, short message, type; never the input), and how
    many there were: a body with a million bad keys gets a short answer."""
    shown = []
    for e in errors[:MAX_ERRORS]:
        msg = str(e["msg"])
        cause = (e.get("ctx") or {}).get("error")
        if e["type"] == "json_invalid" and cause:  # the decoder's reason ("duplicate key 'qty'", "Expecting ...")
            msg = f"{msg}: {cause}"
        shown.append({"loc": list(e["loc"])[:8], "msg": msg[:MAX_MESSAGE], "type": e["type"]})
    return {"detail": shown, "errors": len(errors)}
