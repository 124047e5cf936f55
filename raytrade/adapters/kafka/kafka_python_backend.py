"""kafka-python backend: pure Python, the design's named client."""

from __future__ import annotations

import contextlib
from typing import Any

import kafka
import kafka.errors
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.structs import OffsetAndMetadata, TopicPartition

from raytrade.adapters.kafka.base import KafkaError, Record


class KafkaPythonProducer:
    """Producer; kafka-python's default partitioner is murmur2 (Java-compatible)."""

    def __init__(self, bootstrap: str, **overrides: Any) -> None:
        conf: dict[str, Any] = {"bootstrap_servers": bootstrap, "linger_ms": 5, "acks": "all"}
        conf.update(overrides)
        self._p = kafka.KafkaProducer(**conf)
        self._futures: list[Any] = []

    def produce(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> None:
        """Queue one message."""
        self._futures.append(self._p.send(topic, key=key, value=value, partition=partition))
        if len(self._futures) > 10_000:
            self._drain(30.0)

    def _drain(self, timeout_s: float) -> None:
        futures, self._futures = self._futures, []
        self._p.flush(timeout_s)
        failed = [f for f in futures if f.failed()]
        if failed:
            raise KafkaError(f"{len(failed)} deliveries failed, first: {failed[0].exception}")

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait for acknowledgements; raise if any delivery failed."""
        try:
            self._drain(timeout_s)
        except kafka.errors.KafkaTimeoutError as exc:
            raise KafkaError(f"flush timed out after {timeout_s}s") from exc

    def close(self) -> None:
        """Flush and close."""
        self.flush()
        self._p.close()


class KafkaPythonConsumer:
    """Consumer with manual assignment and synchronous commits."""

    def __init__(self, bootstrap: str, group_id: str, **overrides: Any) -> None:
        conf: dict[str, Any] = {
            "bootstrap_servers": bootstrap,
            "group_id": group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "fetch_max_wait_ms": 10,
            "session_timeout_ms": 2000,
            "heartbeat_interval_ms": 500,
        }
        conf.update(overrides)
        self._c = kafka.KafkaConsumer(**conf)
        self._topic = ""

    def assign(self, topic: str, partitions: list[int]) -> None:
        """Assign partitions; the client resumes at committed offsets (else earliest)."""
        self._topic = topic
        self._c.assign([TopicPartition(topic, p) for p in partitions])

    def poll_batch(self, max_records: int, timeout_s: float) -> list[Record]:
        """Poll once and flatten the per-partition batches."""
        batches = self._c.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        out: list[Record] = []
        for tp, records in batches.items():
            for m in records:
                out.append(Record(tp.partition, m.offset, m.key, m.value or b"", m.timestamp))
        return out

    def commit(self, offsets: dict[int, int]) -> None:
        """Commit synchronously."""
        if not offsets:
            return
        try:
            self._c.commit({TopicPartition(self._topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()})
        except kafka.errors.KafkaError as exc:
            raise KafkaError(f"commit failed: {exc}") from exc

    def committed(self, topic: str, partitions: list[int]) -> dict[int, int | None]:
        """Committed offsets from the broker."""
        return {p: self._c.committed(TopicPartition(topic, p)) for p in partitions}

    def close(self) -> None:
        """Close without committing."""
        self._c.close(autocommit=False)


class KafkaPythonAdmin:
    """Admin client."""

    def __init__(self, bootstrap: str) -> None:
        self._a = KafkaAdminClient(bootstrap_servers=bootstrap)
        self._bootstrap = bootstrap

    def partitions(self, topic: str) -> int | None:
        """Partition count, or ``None`` if absent."""
        for t in self._a.describe_topics([topic]):
            if t.get("name", t.get("topic")) == topic and t.get("error_code", 0) == 0:
                return len(t.get("partitions", []))
        return None

    def create_topic(self, topic: str, partitions: int) -> None:
        """Create the topic, tolerating an identical existing one."""
        with contextlib.suppress(kafka.errors.TopicAlreadyExistsError):
            self._a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
        existing = self.partitions(topic)
        if existing != partitions:
            raise KafkaError(f"topic {topic} has {existing} partitions, expected {partitions}")

    def close(self) -> None:
        """Close the admin client."""
        self._a.close()
