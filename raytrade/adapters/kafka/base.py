"""The small Kafka interface the engine uses; two client backends implement it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class KafkaError(RuntimeError):
    """A Kafka operation failed (after the client's own retries)."""


class FlushTimeoutError(KafkaError):
    """Messages are still queued after the flush timeout (broker unreachable); nothing failed yet."""


class DataLossError(KafkaError):
    """The broker's log no longer holds offsets we already consumed (truncated or recreated topic)."""


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

    transient_errors: int  # broker errors the client skipped (it reconnects by itself)

    def assign(self, topic: str, partitions: list[int], offsets: dict[int, int] | None = None) -> None:
        """Own ``partitions``, starting at ``offsets[p]`` when given, else the committed offset
        (else the earliest)."""

    def poll_batch(self, max_records: int, timeout_s: float) -> list[Record]:
        """Return up to ``max_records`` messages, waiting at most ``timeout_s`` for the first."""

    def commit(self, offsets: dict[int, int], asynchronous: bool = False) -> None:
        """Commit ``partition -> next offset to read`` (``asynchronous``: do not wait for the broker)."""

    def committed(self, topic: str, partitions: list[int]) -> dict[int, int | None]:
        """The committed next offset per partition (``None`` if never committed)."""

    def watermarks(
        self, partitions: list[int], timeout_s: float, topic: str | None = None
    ) -> dict[int, tuple[int, int]]:
        """``(log start, log end)`` offsets of each partition of the assigned topic (or of ``topic``),
        asked of the broker.

        Tansu quirk (measured): its log end is the base offset of the last record batch, so
        it can trail the true end by up to one producer batch.
        """

    def close(self) -> None:
        """Leave without committing anything further."""


class Admin(Protocol):
    """Topic administration."""

    def create_topic(self, topic: str, partitions: int) -> None:
        """Create ``topic``; succeed quietly if it exists with the same partition count."""

    def partitions(self, topic: str) -> int | None:
        """Partition count of ``topic``, or ``None`` if it does not exist."""

    def topic_id(self, topic: str) -> str | None:
        """The topic's unique id (a recreated topic gets a new one), or ``None`` if absent."""

    def delete_topic(self, topic: str) -> None:
        """Delete ``topic`` and its log; succeed quietly if it is absent."""

    def cluster_id(self) -> str | None:
        """The broker cluster's id (``None`` if it reports none)."""

    def close(self) -> None:
        """Release the client."""
