"""The small Kafka interface the engine uses; two client backends implement it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class KafkaError(RuntimeError):
    """A Kafka operation failed (after the client's own retries)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed message. ``timestamp_ms`` is the producer's create time."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int


class Producer(Protocol):
    """Produces keyed messages; the key picks the partition (murmur2, as Java clients do)."""

    def produce(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> None:
        """Queue one message."""

    def flush(self, timeout_s: float = 30.0) -> None:
        """Block until every queued message is acknowledged; raise on delivery failure."""

    def close(self) -> None:
        """Flush and release the client."""


class Consumer(Protocol):
    """Consumes assigned partitions (static assignment, no group rebalancing)."""

    def assign(self, topic: str, partitions: list[int]) -> None:
        """Own ``partitions``, resuming each at its committed offset (else the earliest)."""

    def poll_batch(self, max_records: int, timeout_s: float) -> list[Record]:
        """Return up to ``max_records`` messages, waiting at most ``timeout_s`` for the first."""

    def commit(self, offsets: dict[int, int]) -> None:
        """Synchronously commit ``partition -> next offset to read``."""

    def committed(self, topic: str, partitions: list[int]) -> dict[int, int | None]:
        """The committed next offset per partition (``None`` if never committed)."""

    def close(self) -> None:
        """Leave without committing anything further."""


class Admin(Protocol):
    """Topic administration."""

    def create_topic(self, topic: str, partitions: int) -> None:
        """Create ``topic``; succeed quietly if it exists with the same partition count."""

    def partitions(self, topic: str) -> int | None:
        """Partition count of ``topic``, or ``None`` if it does not exist."""

    def close(self) -> None:
        """Release the client."""
