"""The gateway's refusals that carry their own HTTP status."""

from __future__ import annotations


class StatusError(Exception):
    """A request refused with ``status`` and a message saying why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
